"""Firing parallel HTTP calls at a live server, as the race tests do: every call in its
own thread and client, released together, retried like a real till while the hub answers
503 (no database connection to spare)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import Merchant, order

Call = Callable[[httpx.Client], httpx.Response]


BUSY_RETRIES = 30


def patient(call: Call, c: httpx.Client) -> httpx.Response:
    """``call``, retried as a real client does while the hub answers 503 (no database
    connection to spare): after ``Retry-After`` seconds, the same request and key."""
    for _ in range(BUSY_RETRIES):
        r = call(c)
        if r.status_code != 503:
            return r
        assert r.json()["code"] in ("database_busy", "database_unavailable"), r.text
        assert "Idempotent-Replayed" not in r.headers
        time.sleep(float(r.headers["Retry-After"]))
    return r


def fire(
    base_url: str, calls: Sequence[Call], barrier_timeout: float = 30
) -> list[httpx.Response]:
    """Run every call in its own thread (own client), all released at the same instant.

    Responses come back in the order of ``calls``.
    """
    n = len(calls)
    barrier = threading.Barrier(n, timeout=barrier_timeout)

    def run(call: Call) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60) as c:
            barrier.wait()
            return patient(call, c)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, calls))


def redeem_call(m: Merchant, code: str, key: str, token: str | None = None) -> Call:
    body = {"code": code, "store": "SH-001", "order": order(12800, order_id=f"O-{key}")}
    headers = {**m.auth(token), "Idempotency-Key": key}
    return lambda c: c.post("/v1/redemptions", json=body, headers=headers)


def reversal_call(m: Merchant, redemption_id: str, key: str) -> Call:
    headers = {**m.auth(), "Idempotency-Key": key}
    return lambda c: c.post(
        f"/v1/redemptions/{redemption_id}/reversal", json={"reason": "refund"}, headers=headers
    )


def outcome(r: httpx.Response) -> tuple[int, str]:
    """(status, status-or-problem-code); anything unexpected fails with the body shown."""
    assert r.status_code in (201, 409), f"{r.status_code}: {r.text}"
    doc = r.json()
    return r.status_code, doc["status"] if r.status_code == 201 else doc["code"]

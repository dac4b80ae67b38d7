"""The end-to-end proof of offline redemption, on the real hub process (both backends):

a till caches the keys while `hub serve` runs; the hub process is stopped; the till sells
200 coupons offline from their signed tokens, and 3 tampered tokens (an altered
signature, an altered payload, a token signed by a key the hub never made) are refused on
the till; it is killed (``kill -9``) mid-queue and restarted to finish; meanwhile 5 of its
coupons are redeemed online at another store; a new `hub serve` process starts and the
till syncs: 195 redemptions recorded once each with their original ``occurred_at``, 5
conflicts listed and alerted, the tampered tokens never accepted, the queue empty, and a
second sync of the same items changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from hub.client import HubClient
from hub.client.queue import OfflineQueue
from hub.db.schema import coupons, offline_conflicts, redemptions
from hub.domain.offline import TokenClaims, parse
from hub.signing import generate_keypair, sign
from tests.conftest import Merchant, free_port, issue, make_merchant, make_template

ROOT = Path(__file__).resolve().parents[2]
ONE_YUAN_OFF = {  # 197 × 10 yuan stays under the default offline limits (200, ¥2,000)
    "benefit": {"kind": "threshold", "threshold": 5000, "discount": 1000},
    "validity": {"type": "relative", "days": 30},
}

TILL = """
import json, sys
from hub.client import HubClient, OfflineRefused, RetryPolicy
url, key, queue, tokens = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
till = HubClient(url, key, terminal_id="T-07", store="SH-001", offline_queue=queue,
                 retry=RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.02))
for i, token in enumerate(tokens):
    try:
        r = till.redeem(token, {"id": f"P-{i}", "amount": 8800})
        print("OFFLINE", r.code, r.idempotency_key, flush=True)
    except OfflineRefused as err:
        print("NO", err.code, flush=True)
"""


def _tamper(token: str) -> str:
    head, payload, sig = token.rsplit(".", 2)
    mid = len(sig) // 2
    return f"{head}.{payload}.{sig[:mid]}{'A' if sig[mid] != 'A' else 'B'}{sig[mid + 1:]}"


def _redeemed(db: Engine, codes: list[str]) -> int:
    with db.connect() as conn:
        return int(conn.execute(
            select(func.count()).select_from(redemptions.join(coupons))
            .where(coupons.c.code.in_(codes))).scalar_one())


def _till(url: str, key: str, queue: Path, tokens: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", TILL, url, key, str(queue), str(tokens)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )



@contextmanager
def hub_serve(db: Engine, port: int, log: Path) -> Iterator[None]:
    """`hub serve` as its own process on ``db``; stopped (SIGTERM, drained) on exit."""
    url = db.url.render_as_string(hide_password=False)
    env = {**os.environ, "HUB_DB_POOL_SIZE": "3", "HUB_DB_MAX_OVERFLOW": "2",
           "HUB_LOG_LEVEL": "WARNING"}
    env.pop("HUB_DATABASE_URL", None)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--no-demo", "--db", url,
             "--port", str(port), "--demo-file", str(log.with_suffix(".json"))],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "hub serve did not start"
                time.sleep(0.1)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait(timeout=10)


def _forged(tokens: list[str], merchant_id: str) -> list[str]:
    """Three tokens no till may accept, one for each of 3 coupons presented nowhere else:
    the first's signature altered; the second's payload under the first's signature; the
    third's claims signed by a key the hub never made."""
    first, second, third = tokens
    sig_altered = _tamper(first)
    payload_swapped = ".".join([*second.rsplit(".", 2)[:2], first.rsplit(".", 1)[1]])
    c = parse(third).claims
    private, _ = generate_keypair()
    unknown_key = sign(private, TokenClaims(
        "ok_NEVERMADEBYTHEHUB", merchant_id, c.code, c.template_id, c.holder,
        c.valid_from, c.valid_until, c.issued_at))
    return [sig_altered, payload_swapped, unknown_key]


def test_offline_end_to_end(db: Engine, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    m: Merchant = make_merchant(db, now)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    key = m.store_keys["SH-001"]
    template = make_template(db, m, now, ONE_YUAN_OFF, name="满50减10")
    codes = issue(db, m, template, now, count=203)
    sold, forged_codes = codes[:200], codes[200:]
    queue = tmp_path / "till.db"
    log = tmp_path / "serve.log"

    # online: the merchant sets the offline limits, the till caches the keys, the
    # customers' apps hold the tokens
    with hub_serve(db, port, log), httpx.Client(base_url=url, timeout=30) as http:
        r = http.put("/v1/offline/rules", json={"max_count": 250, "max_discount": 300_000,
                                                "max_offline_seconds": 3600},
                     headers={**m.auth(), "Idempotency-Key": "rules-1"})
        assert r.status_code == 200, r.text
        with HubClient(url, key, terminal_id="T-07", store="SH-001",
                       offline_queue=queue) as till:
            doc = till.offline_keys()
            assert doc.merchant == m.id and doc.public_keys
        tokens = []
        for code in codes:
            r = http.get(f"/v1/coupons/{code}/token", headers=m.auth(key))
            assert r.status_code == 200, r.text
            tokens.append(r.json()["token"])
    # the hub's process is gone: nothing answers on its port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)

    forged = _forged(tokens[200:], m.id)
    presented = list(tokens[:200])
    for at, token in zip((10, 100, 180), forged, strict=True):
        presented.insert(at, token)
    (tmp_path / "tokens.json").write_text(json.dumps(presented))

    # the till sells offline and is killed mid-queue
    child = _till(url, key, queue, tmp_path / "tokens.json")
    assert child.stdout is not None
    seen: list[list[str]] = []
    deadline = time.monotonic() + 120
    while len(seen) < 60 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        seen.append(line.split())
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    receipts = [w[2] for w in seen if w[0] == "OFFLINE"]
    assert 50 <= len(receipts) <= 60
    q = OfflineQueue(queue)
    assert [i.idempotency_key for i in q.items()][: len(receipts)] == receipts
    q.close()

    # restarted, it presents every token again: the queued ones are refused locally
    child = _till(url, key, queue, tmp_path / "tokens.json")
    out, _ = child.communicate(timeout=600)
    words = [line.split() for line in out.splitlines()]
    assert len(words) == 203
    assert [words[i][1] for i in (10, 100, 180)] == [
        "token_signature_invalid", "token_signature_invalid", "token_unknown_key"]
    q = OfflineQueue(queue)
    items = q.items(status="pending")
    assert len(items) == 200 and {i.code for i in items} == set(sold)
    offline_at = {i.code: i.occurred_at for i in items}
    q.close()

    # a new hub process; 5 of the queued coupons are redeemed at another store first
    elsewhere = [sold[n] for n in (0, 40, 90, 120, 199)]
    with hub_serve(db, port, log), httpx.Client(base_url=url, timeout=30) as http:
        for n, code in enumerate(elsewhere):
            r = http.post("/v1/redemptions", json={"code": code, "order": {
                "id": f"BJ-{n}", "amount": 8800}}, headers={
                **m.auth(m.store_keys["BJ-001"]), "Idempotency-Key": f"bj-{n}"})
            assert r.status_code == 201, r.text
        with HubClient(url, key, terminal_id="T-07", store="SH-001",
                       offline_queue=queue) as till:
            report = till.sync()
            assert report.complete, report.error
            assert report.counts == {"redeemed": 195, "replayed": 0, "refused": 0,
                                     "conflict": 5}
            conflicts = till.queued(outcome="conflict")
            assert sorted(i.code for i in conflicts) == sorted(elsewhere)
            assert all(i.conflict_id for i in conflicts)
            assert till.queued(status="pending") == []  # the queue is empty
            assert till.queue.tally().count == 0  # type: ignore[union-attr]
            listed = http.get("/v1/conflicts", headers=m.auth()).json()["items"]
            assert len(listed) == 5
            alerts = http.get("/v1/alerts", params={"alert": "offline_conflict"},
                              headers=m.auth()).json()["items"]
            assert len(alerts) == 5
            # everything sent again (as after a lost answer): replayed, nothing new
            with till.queue.transaction() as conn:  # type: ignore[union-attr]
                conn.execute("UPDATE queue SET status = 'pending'")
            again = till.sync()
            assert again.counts == {"redeemed": 0, "replayed": 200, "refused": 0,
                                    "conflict": 0}
            assert len(http.get("/v1/conflicts", headers=m.auth()).json()["items"]) == 5
            alerts = http.get("/v1/alerts", params={"alert": "offline_conflict"},
                              headers=m.auth()).json()["items"]
            assert len(alerts) == 5

    with db.connect() as conn:
        rows = conn.execute(
            select(coupons.c.code, redemptions.c.occurred_at, redemptions.c.store_code)
            .select_from(redemptions.join(coupons))
            .where(coupons.c.code.in_(codes))
        ).all()
        n_conflicts = conn.execute(
            select(func.count()).select_from(offline_conflicts)
            .where(offline_conflicts.c.merchant_id == m.id)
        ).scalar_one()
    by_code: dict[str, list[tuple[datetime, str]]] = {}
    for code, occurred, store in rows:
        by_code.setdefault(code, []).append((occurred, store))
    assert all(len(v) == 1 for v in by_code.values())  # no coupon redeemed twice
    assert set(by_code) == set(sold)  # 195 by the till, 5 elsewhere; no forged one
    till_rows = {c: v[0] for c, v in by_code.items() if c not in elsewhere}
    assert len(till_rows) == 195
    assert all(store == "SH-001" for _, store in till_rows.values())
    assert all(occurred == offline_at[c] for c, (occurred, _) in till_rows.items())
    assert n_conflicts == 5
    assert _redeemed(db, forged_codes) == 0

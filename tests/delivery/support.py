"""Helpers shared by the delivery tests (subscriptions, redemptions, a synchronous runtime,
and respx answers chosen per coupon code)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine, select

from hub.db.schema import outbox_events, subscriptions
from hub.delivery.runtime import Runtime

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL = "https://receiver.example/hook"
REDEMPTION_EVENTS = ("coupon.redeemed", "coupon.redemption_reversed")


def subscribe_raw(
    client: Any,
    merchant: Any,
    url: str = URL,
    events: tuple[str, ...] | list[str] = REDEMPTION_EVENTS,
    secret: str = SECRET,
    **extra: Any,
) -> httpx.Response:
    return client.post(
        "/v1/subscriptions",
        headers=merchant.auth(),
        json={
            "connector": "webhook",
            "config": {"url": url, "secret": secret},
            "events": list(events),
            **extra,
        },
    )


def subscribe(client: Any, merchant: Any, url: str = URL, **kw: Any) -> str:
    r = subscribe_raw(client, merchant, url, **kw)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def redeem(client: Any, merchant: Any, code: str, store: str = "SH-001") -> str:
    r = client.post(
        "/v1/redemptions",
        json={"code": code, "store": store, "order": {"id": f"O-{code}", "amount": 12800}},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["redemption_id"])


def reverse(client: Any, merchant: Any, rid: str) -> None:
    r = client.post(
        f"/v1/redemptions/{rid}/reversal",
        json={},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text


@contextmanager
def runtime(db: Engine, clock: Callable[[], datetime]) -> Iterator[Runtime]:
    rt = Runtime(db, clock=clock)
    try:
        yield rt
    finally:
        rt.stop()


def drain(db: Engine, clock: Callable[[], datetime]) -> int:
    with runtime(db, clock) as rt:
        return rt.drain()


def deliveries(client: Any, merchant: Any, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/v1/deliveries", headers=merchant.auth(), params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def delivery(client: Any, merchant: Any, delivery_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/deliveries/{delivery_id}", headers=merchant.auth())
    assert r.status_code == 200, r.text
    return dict(r.json())


def subscription(client: Any, merchant: Any, sub_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/subscriptions/{sub_id}", headers=merchant.auth())
    assert r.status_code == 200, r.text
    return dict(r.json())


def iso_z(dt: datetime) -> str:
    """The API's time format (UTC, milliseconds, ``Z``)."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def event_of(request: httpx.Request) -> dict[str, Any]:
    return dict(json.loads(request.content))


def code_of(request: httpx.Request) -> str | None:
    return event_of(request)["data"].get("code")


def sent_events(route: Any) -> list[dict[str, Any]]:
    """The envelopes a respx route received, in order."""
    return [event_of(call.request) for call in route.calls]


def stored_secret(db: Engine, sub_id: str) -> str:
    """The subscription's secret as stored, decrypted (it is kept encrypted at rest)."""
    from hub.secrets import keyring

    with db.connect() as conn:
        config = conn.execute(
            select(subscriptions.c.config).where(subscriptions.c.id == sub_id)
        ).scalar_one()
    return str(keyring(db).decrypt(config["secret"]))


def events_of_type(db: Engine, merchant_id: str, event_type: str) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(outbox_events.c.id, outbox_events.c.data)
            .where(outbox_events.c.merchant_id == merchant_id, outbox_events.c.type == event_type)
            .order_by(outbox_events.c.seq)
        ).all()
    return [{"id": r.id, "data": r.data} for r in rows]

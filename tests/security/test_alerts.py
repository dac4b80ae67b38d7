"""Repeat-redemption alerts (同一券码短时间内多次核销提醒) and ``GET /v1/alerts``.

A redeemed code presented again within the repeat window, or one code tried at two or
more stores within it, raises one ``alert.raised`` (``repeat_redemption_attempt``) per
code per window. Alerts are events (a subscription receives them) and are listed by
``GET /v1/alerts`` with filters and cursor pagination.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, select

from hub.db.engine import write_conn
from hub.db.schema import deliveries, outbox_events
from hub.domain.codes import mask
from hub.events import validate_event
from hub.services import alerts, keys, outbox
from tests.conftest import (
    THRESHOLD_SPEC,
    Clock,
    Merchant,
    issue,
    make_merchant,
    make_template,
    order,
)


def redeem(
    c: TestClient[Any], m: Merchant, code: str, store: str, amount: int = 12800
) -> httpx.Response:
    headers = {**m.auth(m.store_keys[store]), "Idempotency-Key": uuid.uuid4().hex}
    body = {"code": code, "order": order(amount)}
    return c.post("/v1/redemptions", json=body, headers=headers)


def validate(
    c: TestClient[Any], m: Merchant, code: str, store: str, amount: int = 12800
) -> httpx.Response:
    body = {"code": code, "order": order(amount)}
    return c.post("/v1/redemptions/validate", json=body, headers=m.auth(m.store_keys[store]))


def repeat_alerts(db: Engine) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(outbox_events)
            .where(outbox_events.c.type == "alert.raised")
            .order_by(outbox_events.c.seq)
        ).all()
    out = []
    for row in rows:
        validate_event(
            outbox.envelope(
                id=row.id,
                type=row.type,
                merchant_id=row.merchant_id,
                occurred_at=row.occurred_at,
                recorded_at=row.recorded_at,
                data=row.data,
            )
        )
        if row.data["alert"] == "repeat_redemption_attempt":
            out.append({**row.data, "store_code": row.store_code, "event_id": row.id})
    return out


@pytest.fixture
def code(db: Engine, merchant: Merchant, clock: Clock) -> str:
    [c] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    return c


def test_a_redeemed_code_presented_again_raises_one_alert(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock, code: str
) -> None:
    first = redeem(client, merchant, code, "SH-001")
    assert first.status_code == 201
    clock.advance(minutes=3)
    again = redeem(client, merchant, code, "SH-002")
    assert again.status_code == 409 and again.json()["code"] == "coupon_already_redeemed"
    [alert] = repeat_alerts(db)
    assert alert["severity"] == "warning" and alert["store_code"] == "SH-002"
    d = alert["details"]
    assert d["reason"] == "presented_after_redemption"
    assert d["code"] == mask(code) and code not in str(alert)  # never the whole code
    assert d["redemption_id"] == first.json()["redemption_id"]
    assert d["redeemed_store"] == "SH-001" and d["stores"] == ["SH-001", "SH-002"]
    assert [a["outcome"] for a in d["attempts"]] == ["redeemed", "coupon_already_redeemed"]
    assert "SH-001" in alert["message"] and "SH-002" in alert["message"]
    # more attempts in the same window (a validate too) add no alert: one per window
    assert redeem(client, merchant, code, "BJ-001").status_code == 409
    assert validate(client, merchant, code, "SH-002").status_code == 409
    assert len(repeat_alerts(db)) == 1


def test_a_validate_of_a_redeemed_code_is_a_presentation_too(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock, code: str
) -> None:
    assert redeem(client, merchant, code, "SH-001").status_code == 201
    assert validate(client, merchant, code, "SH-001").status_code == 409
    [alert] = repeat_alerts(db)
    assert alert["details"]["stores"] == ["SH-001"]  # same store still counts
    assert alert["details"]["reason"] == "presented_after_redemption"


def test_a_redemption_older_than_the_window_raises_nothing(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock, code: str
) -> None:
    assert redeem(client, merchant, code, "SH-001").status_code == 201
    clock.advance(seconds=601)  # HUB_REPEAT_WINDOW_SECONDS defaults to 600
    assert redeem(client, merchant, code, "SH-002").status_code == 409
    assert repeat_alerts(db) == []


def test_one_code_tried_at_two_stores_raises_an_alert(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock
) -> None:
    spec = {**THRESHOLD_SPEC, "usage": {"stores": ["SH-001"]}}
    [only_sh1] = issue(db, merchant, make_template(db, merchant, clock.now, spec), clock.now)
    r = validate(client, merchant, only_sh1, "SH-002")
    assert r.json()["code"] == "store_not_allowed"
    assert validate(client, merchant, only_sh1, "SH-002").status_code == 422
    assert repeat_alerts(db) == []  # one store so far
    clock.advance(minutes=2)
    assert redeem(client, merchant, only_sh1, "BJ-001").json()["code"] == "store_not_allowed"
    [alert] = repeat_alerts(db)
    d = alert["details"]
    assert d["reason"] == "several_stores" and d["stores"] == ["SH-002", "BJ-001"]
    assert d["redemption_id"] is None
    assert [a["store"] for a in d["attempts"]] == ["SH-002", "SH-002", "BJ-001"]
    assert "2 stores" in alert["message"]


def test_refused_at_one_store_then_redeemed_at_another_raises_an_alert(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock, code: str
) -> None:
    assert validate(client, merchant, code, "SH-001", amount=5000).status_code == 422
    clock.advance(minutes=1)
    ok = redeem(client, merchant, code, "SH-002")  # the success learns of the refusal
    assert ok.status_code == 201
    [alert] = repeat_alerts(db)
    d = alert["details"]
    assert d["reason"] == "several_stores" and d["stores"] == ["SH-001", "SH-002"]
    assert d["redemption_id"] == ok.json()["redemption_id"]
    assert [a["outcome"] for a in d["attempts"]] == ["threshold_not_met", "redeemed"]


def test_retries_at_one_store_raise_nothing(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock, code: str
) -> None:
    for amount in (5000, 8000, 9999):  # the cashier adds items until the threshold is met
        assert validate(client, merchant, code, "SH-001", amount=amount).status_code == 422
    assert validate(client, merchant, code, "SH-001").status_code == 200
    assert redeem(client, merchant, code, "SH-001").status_code == 201
    assert repeat_alerts(db) == []


def test_a_new_window_may_alert_again(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock, code: str
) -> None:
    assert redeem(client, merchant, code, "SH-001").status_code == 201
    assert redeem(client, merchant, code, "SH-002").status_code == 409
    clock.advance(seconds=601)
    # reversal and a new redemption, then a new repeat: a new window, a new alert
    rid = client.get("/v1/redemptions", headers=merchant.auth()).json()["items"][0]
    headers = {**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex}
    r = client.post(f"/v1/redemptions/{rid['redemption_id']}/reversal", headers=headers)
    assert r.status_code == 201
    assert redeem(client, merchant, code, "SH-001").status_code == 201
    assert redeem(client, merchant, code, "BJ-001").status_code == 409
    assert len(repeat_alerts(db)) == 2


def test_alerts_are_events_a_subscription_receives(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock, code: str
) -> None:
    sub = client.post(
        "/v1/subscriptions",
        json={
            "connector": "webhook",
            "config": {"url": "https://receiver.example/pager", "secret": "s" * 32},
            "events": ["alert.raised"],
        },
        headers=merchant.auth(),
    )
    assert sub.status_code == 201, sub.text
    assert redeem(client, merchant, code, "SH-001").status_code == 201
    assert redeem(client, merchant, code, "SH-002").status_code == 409
    [alert] = repeat_alerts(db)
    with db.connect() as conn:
        wanted = conn.execute(
            select(deliveries.c.event_id, deliveries.c.event_type).where(
                deliveries.c.subscription_id == sub.json()["id"]
            )
        ).all()
    assert [(d.event_id, d.event_type) for d in wanted] == [(alert["event_id"], "alert.raised")]


# --- GET /v1/alerts -------------------------------------------------------------------------


def _raise(db: Engine, m: Merchant, clock: Clock, kind: str, severity: str, **kw: Any) -> None:
    with write_conn(db) as conn:
        alerts.raise_alert(
            conn,
            merchant_id=m.id,
            kind=kind,
            severity=severity,
            message=f"{kind} {severity}",
            details={"n": kw.pop("n", 0)},
            now=clock.now,
            **kw,
        )


@pytest.fixture
def seeded(db: Engine, merchant: Merchant, clock: Clock) -> Iterator[Clock]:
    """Seven alerts a minute apart (newest: n=6) and one of another merchant."""
    start = clock.now
    plan = [
        ("code_enumeration_suspected", "warning", "SH-001"),
        ("repeat_redemption_attempt", "warning", "SH-002"),
        ("subscription_circuit_open", "warning", None),
        ("repeat_redemption_attempt", "critical", "SH-001"),
        ("code_enumeration_suspected", "warning", None),
        ("repeat_redemption_attempt", "warning", "SH-002"),
        ("repeat_redemption_attempt", "warning", "SH-001"),
    ]
    for n, (kind, severity, store) in enumerate(plan):
        _raise(db, merchant, clock, kind, severity, n=n, store_code=store)
        clock.advance(minutes=1)
    other = make_merchant(db, clock.now, name="Other")
    _raise(db, other, clock, "repeat_redemption_attempt", "warning", n=99)
    clock.now = start
    yield clock


def _ns(r: httpx.Response) -> list[int]:
    assert r.status_code == 200, r.text
    return [item["details"]["n"] for item in r.json()["items"]]


def test_alerts_newest_first_with_filters(
    client: TestClient[Any], merchant: Merchant, seeded: Clock
) -> None:
    admin = merchant.auth()
    everything = client.get("/v1/alerts", headers=admin)
    assert _ns(everything) == [6, 5, 4, 3, 2, 1, 0]  # not the other merchant's
    item = everything.json()["items"][0]
    assert set(item) == {"id", "alert", "severity", "message", "details", "occurred_at", "store"}
    assert item["alert"] == "repeat_redemption_attempt" and item["store"] == "SH-001"
    assert item["id"].startswith("evt_") and item["occurred_at"].endswith("Z")
    get = client.get
    assert _ns(get("/v1/alerts?alert=repeat_redemption_attempt", headers=admin)) == [6, 5, 3, 1]
    assert _ns(get("/v1/alerts?severity=critical", headers=admin)) == [3]
    assert _ns(
        get("/v1/alerts?alert=repeat_redemption_attempt&severity=warning", headers=admin)
    ) == [6, 5, 1]
    start = seeded.now
    window = {
        "from": (start + timedelta(minutes=2)).isoformat(),
        "to": (start + timedelta(minutes=5)).isoformat(),
    }
    assert _ns(get("/v1/alerts", params=window, headers=admin)) == [4, 3, 2]
    assert _ns(get("/v1/alerts?alert=nothing_like_this", headers=admin)) == []


def test_alerts_cursor_pagination(
    client: TestClient[Any], merchant: Merchant, seeded: Clock
) -> None:
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/v1/alerts", params=params, headers=merchant.auth())
        seen += _ns(r)
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [6, 5, 4, 3, 2, 1, 0] and pages == 3
    bad = client.get("/v1/alerts?cursor=not-a-cursor", headers=merchant.auth())
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    for query in ("severity=loud", "limit=0", "from=yesterday"):
        r = client.get(f"/v1/alerts?{query}", headers=merchant.auth())
        assert 400 <= r.status_code < 500, (query, r.text)


def test_who_may_read_alerts(
    client: TestClient[Any], db: Engine, merchant: Merchant, seeded: Clock
) -> None:
    def token(role: str, **kw: Any) -> dict[str, str]:
        made = keys.create_key(db, merchant.id, role, seeded.now, name=role, **kw)
        return {"Authorization": f"Bearer {made.token}"}

    assert _ns(client.get("/v1/alerts", headers=token("integrator")))[:1] == [6]
    assert len(_ns(client.get("/v1/alerts", headers=token("analyst")))) == 7
    # an analyst limited to some stores sees only alerts of those stores
    limited = token("analyst", store_codes=["SH-002"])
    assert _ns(client.get("/v1/alerts", headers=limited)) == [5, 1]
    store = client.get("/v1/alerts", headers=merchant.auth(merchant.store_keys["SH-001"]))
    assert store.status_code == 403

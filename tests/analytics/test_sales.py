"""POST /v1/sales: orders reported with or without a coupon, idempotent per order id."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, func, select

from hub.db.schema import outbox_events, sales
from hub.events.schemas import validate_event
from hub.services.outbox import envelope
from tests.conftest import Clock, Merchant

ORDER = {"order_id": "S-1", "store": "SH-001", "channel": "pos", "customer": "M0001",
         "amount": 5600, "occurred_at": "2026-11-25T08:00:00Z"}  # fmt: skip


def post(client: Any, m: Merchant, orders: list[dict[str, Any]], key: str | None = None) -> Any:
    return client.post("/v1/sales", json={"orders": orders}, headers=m.auth(key))


def test_recorded_once_replayed_after(client: Any, db: Engine, merchant: Merchant) -> None:
    r = post(client, merchant, [ORDER, {**ORDER, "order_id": "S-2", "customer": None}])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "orders": [{"order_id": "S-1", "status": "recorded"},
                   {"order_id": "S-2", "status": "recorded"}],
        "recorded": 2, "replayed": 0,
    }  # fmt: skip
    r = post(client, merchant, [ORDER])
    assert r.json()["orders"] == [{"order_id": "S-1", "status": "replayed"}]
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sales)).scalar() == 2
        events = conn.execute(
            select(outbox_events).where(outbox_events.c.type == "sale.recorded")
        ).all()
    assert len(events) == 2
    for e in events:  # published with a valid schema
        validate_event(envelope(
            id=e.id, type=e.type, merchant_id=e.merchant_id, occurred_at=e.occurred_at,
            recorded_at=e.recorded_at, data=e.data,
        ))  # fmt: skip


def test_other_content_is_a_conflict_and_nothing_is_stored(
    client: Any, db: Engine, merchant: Merchant
) -> None:
    assert post(client, merchant, [ORDER]).status_code == 200
    r = post(client, merchant, [{**ORDER, "order_id": "S-9"}, {**ORDER, "amount": 5601}])
    assert r.status_code == 409 and r.json()["code"] == "sale_conflict"
    r = post(client, merchant, [{**ORDER, "order_id": "S-8"}, {**ORDER, "order_id": "S-8",
                                                                 "amount": 1}])
    assert r.status_code == 409 and r.json()["code"] == "sale_conflict"
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sales)).scalar() == 1


def test_a_store_key_reports_for_its_store_only(
    client: Any, db: Engine, merchant: Merchant
) -> None:
    key = merchant.store_keys["SH-002"]
    mine = {k: v for k, v in ORDER.items() if k != "store"}
    assert post(client, merchant, [mine], key=key).status_code == 200
    with db.connect() as conn:
        assert conn.execute(select(sales.c.store_code)).scalar() == "SH-002"
    r = post(client, merchant, [{**ORDER, "order_id": "S-3"}], key=key)
    assert r.status_code == 403 and r.json()["code"] == "store_forbidden"


def test_refusals(client: Any, merchant: Merchant, clock: Clock) -> None:
    cases = [
        ([{**ORDER, "store": "XX-1"}], 422, "store_not_found"),
        ([{k: v for k, v in ORDER.items() if k != "store"}], 422, "store_required"),
        ([{**ORDER, "customer": "nobody"}], 422, "customer_not_found"),
        ([{**ORDER, "channel": "fax"}], 400, None),
        ([{**ORDER, "amount": -1}], 400, None),
        ([], 400, None),
        ([{**ORDER, "order_id": f"X-{i}"} for i in range(501)], 400, None),
    ]
    for orders, status, code in cases:
        r = post(client, merchant, orders)
        assert r.status_code in (status, 422 if status == 400 else status), r.text
        if code:
            assert r.json()["code"] == code
    analyst = __import__("hub.services.keys", fromlist=["x"]).create_key(
        client.app.state.hub.engine, merchant.id, "analyst", clock.now
    ).token
    r = post(client, merchant, [ORDER], key=analyst)
    assert r.status_code == 403


def test_a_coupon_order_is_marked(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    from tests.conftest import issue, make_template, order

    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    r = client.post(
        "/v1/redemptions",
        json={"code": code, "store": "SH-001", "order": order(12800, order_id="C-1")},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    at = clock.now.isoformat()
    r = post(client, merchant, [{**ORDER, "order_id": "C-1", "occurred_at": at}])
    assert r.status_code == 200
    with db.connect() as conn:
        assert conn.execute(select(sales.c.coupon_order)).scalar() is True

"""Redemption events of exchange coupons say what left the store: ``data.gift`` is the
SKU and the units the order actually got, on the redemption and on its reversal (ERP
connectors move stock by it); other kinds carry ``gift: null``."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from hub.db.schema import outbox_events
from tests.conftest import THRESHOLD_SPEC, issue, make_template

TWO_TEAS = {
    "benefit": {"kind": "exchange", "sku": "TEA", "qty": 2, "price": 0},
    "validity": {"type": "relative", "days": 30},
}


def _events(db, kind: str) -> list[dict]:
    with db.connect() as conn:
        rows = conn.execute(select(outbox_events.c.data).where(outbox_events.c.type == kind))
        return [dict(r.data) for r in rows]


def _redeem(client, merchant, code: str, order: dict) -> str:
    r = client.post(
        "/v1/redemptions",
        json={"code": code, "store": "SH-001", "order": order},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["redemption_id"])


def test_gift_is_the_units_given_on_redemption_and_reversal(client, db, merchant, clock):
    [code] = issue(db, merchant, make_template(db, merchant, clock.now, TWO_TEAS), clock.now)
    order = {
        "id": "G-1",
        "amount": 1650,
        "lines": [
            {"sku": "CAKE", "qty": 1, "unit_price": 1200},
            {"sku": "TEA", "qty": 1, "unit_price": 450},
        ],
    }
    rid = _redeem(client, merchant, code, order)
    [redeemed] = _events(db, "coupon.redeemed")
    assert redeemed["gift"] == {"sku": "TEA", "qty": 1}  # the coupon gives 2; one was there
    r = client.post(
        f"/v1/redemptions/{rid}/reversal",
        json={"reason": "refund"},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    [reversed_] = _events(db, "coupon.redemption_reversed")
    assert reversed_["gift"] == {"sku": "TEA", "qty": 1}
    assert reversed_["template"]["kind"] == "exchange" and reversed_["customer"] is None


def test_other_kinds_carry_no_gift(client, db, merchant, clock):
    [code] = issue(
        db,
        merchant,
        make_template(db, merchant, clock.now, THRESHOLD_SPEC),
        clock.now,
        customers=["M0001"],
    )
    _redeem(client, merchant, code, {"id": "G-2", "amount": 12800})
    [redeemed] = _events(db, "coupon.redeemed")
    assert redeemed["gift"] is None and redeemed["customer"] == "M0001"

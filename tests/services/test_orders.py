"""The multi-coupon redeem's core, called as a reservation's confirm calls it: inside the
caller's write transaction, judged at the hold's time, naming the reservation."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from sqlalchemy import select, update

from hub.db.engine import write_conn
from hub.db.schema import coupons, order_redemptions, redemptions
from hub.domain.cart import Line, Order
from hub.domain.errors import DomainError
from hub.services.guard import Guard
from hub.services.lookup import CodeLookup
from hub.services.orders import OrderRedeemSpec, redeem_order_in_txn
from tests.conftest import issue, make_template

KINDS = ["exchange", "percentage", "threshold"]


def template(db, merchant, clock, benefit, days=30, name="t") -> str:
    spec = {
        "benefit": benefit,
        "validity": {"type": "relative", "days": days},
        "stacking": {"combines_with": KINDS, "max_per_order": 3},
    }
    return make_template(db, merchant, clock.now - timedelta(days=days - 1), spec, name=name)


def close_window(db, code: str, until) -> None:
    with db.begin() as conn:
        conn.execute(update(coupons).where(coupons.c.code == code).values(valid_until=until))


def test_a_confirm_judges_at_the_hold_time_and_names_the_reservation(db, merchant, clock):
    held_at = clock.now - timedelta(minutes=10)
    # the 满减's window closed 5 minutes ago: open at the hold time, closed now
    closing = template(db, merchant, clock, {"kind": "threshold", "threshold": 5000,
                                             "discount": 500}, days=1, name="满50减5")
    [thr] = issue(db, merchant, closing, clock.now - timedelta(hours=1))
    close_window(db, thr, clock.now - timedelta(minutes=5))
    gift = template(db, merchant, clock, {"kind": "exchange", "sku": "CUP", "qty": 1},
                    name="送杯子")
    [cup] = issue(db, merchant, gift, clock.now - timedelta(hours=1))
    order = Order(id="W-1", amount=9000, lines=(
        Line(sku="CUP", qty=1, unit_price=1500, category="merch"),
        Line(sku="TEA", qty=3, unit_price=2500, category="drinks"),
    ))
    spec = OrderRedeemSpec(codes=(thr, cup), store="SH-001", channel="mini_program", order=order)
    with CodeLookup(db, Guard(), merchant.principal, clock.now) as lookup, write_conn(db) as conn:
        status, raw = redeem_order_in_txn(conn, merchant.principal, spec, at=held_at,
                                          now=clock.now, lookup=lookup, reservation_id="rsv_1")
    assert status == 201
    out = msgspec.json.decode(raw)
    assert out["reservation_id"] == "rsv_1" and out["redeemed_at"].startswith(
        held_at.isoformat()[:19])
    # the exchange first (the cup, 1500), the 满减 on the 7500 left
    assert [(c["code"], c["discount"]) for c in out["coupons"]] == [(cup, 1500), (thr, 500)]
    assert out["coupons"][0]["gift"] == {"sku": "CUP", "qty": 1}
    assert [ln["payable"] for ln in out["lines"]] == [0, 7500 - 500]
    with db.connect() as conn:
        row = conn.execute(select(order_redemptions)).one()
        assert (row.reservation_id, row.occurred_at) == ("rsv_1", held_at)
        assert sorted(conn.execute(select(redemptions.c.order_redemption_id)).scalars()) == [
            row.id, row.id]


def test_judged_now_the_closed_window_refuses_and_nothing_is_written(db, merchant, clock):
    closing = template(db, merchant, clock, {"kind": "threshold", "threshold": 5000,
                                             "discount": 500}, days=1, name="满50减5")
    [thr] = issue(db, merchant, closing, clock.now - timedelta(hours=1))
    close_window(db, thr, clock.now - timedelta(minutes=5))
    other = template(db, merchant, clock, {"kind": "percentage", "percent_off": 10}, name="9折")
    [pct] = issue(db, merchant, other, clock.now - timedelta(hours=1))
    spec = OrderRedeemSpec(codes=(pct, thr), store="SH-001", channel="pos",
                           order=Order(id="W-2", amount=9000))
    with (
        CodeLookup(db, Guard(), merchant.principal, clock.now) as lookup,
        write_conn(db) as conn,  # the caller's transaction commits (with its stored refusal)
        pytest.raises(DomainError) as refused,
    ):
        redeem_order_in_txn(conn, merchant.principal, spec, at=clock.now, now=clock.now,
                            lookup=lookup)
    assert (refused.value.code, refused.value.extra["coupon"]) == ("coupon_expired", thr)
    with db.connect() as conn:
        assert conn.execute(select(redemptions)).all() == []
        statuses = conn.execute(select(coupons.c.status)).scalars().all()
    assert sorted(statuses) == ["issued", "issued"]


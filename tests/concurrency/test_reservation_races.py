"""Reservations under races, over a live server (PostgreSQL for real; SQLite serialises
writers): racing holds on one coupon — exactly one holds it, all or nothing; confirm
racing the expiry job — exactly one of them ends the reservation; confirm racing a till
redeeming the held code — the coupon is redeemed exactly once, by the confirm."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from hub.db.schema import coupons, reservations
from tests.concurrency.support import Call, fire
from tests.conftest import issue, make_template, order

STACKABLE = {
    "benefit": {"kind": "threshold", "threshold": 1000, "discount": 100},
    "validity": {"type": "relative", "days": 30},
    "stacking": {"combines_with": ["threshold"]},
}


def reserve_call(m, codes: list[str], key: str, ttl: int = 900) -> Call:
    body = {"codes": codes, "store": "SH-001", "channel": "web",
            "order": order(12800, order_id=f"W-{key}"), "ttl_seconds": ttl}
    headers = {**m.auth(), "Idempotency-Key": key}
    return lambda c: c.post("/v1/reservations", json=body, headers=headers)


def confirm_call(m, rid: str, key: str) -> Call:
    headers = {**m.auth(), "Idempotency-Key": key}
    return lambda c: c.post(f"/v1/reservations/{rid}/confirm", headers=headers)


def outcome(r) -> int | str:
    assert r.status_code in (200, 201, 409), f"{r.status_code}: {r.text}"
    return r.status_code if r.status_code < 300 else r.json()["code"]


def holders(db, codes: list[str]) -> dict[str, str | None]:
    with db.connect() as conn:
        return dict(conn.execute(
            select(coupons.c.code, coupons.c.reservation_id).where(coupons.c.code.in_(codes))
        ).all())


def test_racing_reservations_for_one_code_exactly_one_holds(live_server, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now, STACKABLE)
    shared, *own = issue(db, merchant, tpl, clock.now, count=9)
    # eight reservations each want the shared coupon and one of their own
    calls = [reserve_call(merchant, [mine, shared], f"hold-{i}") for i, mine in enumerate(own)]

    responses = fire(live_server, calls)

    got = Counter(outcome(r) for r in responses)
    assert got == {201: 1, "coupon_reserved": 7}, got
    [winner] = [r.json() for r in responses if r.status_code == 201]
    held = holders(db, [shared, *own])
    assert held[shared] == winner["id"]
    # all or nothing: the losers hold none of their own coupons
    assert {c for c, rid in held.items() if rid is not None} == set(winner["codes"])
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(reservations)).scalar_one() == 1

"""Reservations under races, over a live server (PostgreSQL for real; SQLite serialises
writers): racing holds on one coupon — exactly one holds it, all or nothing; confirm
racing the expiry job — exactly one of them ends the reservation; confirm racing a till
redeeming the held code — the coupon is redeemed exactly once, by the confirm."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from hub.db.schema import coupons, outbox_events, redemptions, reservations
from hub.services.reservations import expire_reservations
from tests.concurrency.support import Call, fire, redeem_call
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


def test_confirm_racing_the_expiry_job_ends_each_reservation_once(
    live_server, db, merchant, clock
):
    """The job runs with a clock at the holds' expiry, the confirms one second before it:
    each reservation ends either confirmed (201, no expiry event) or expired (409, one
    event, its coupon free) — never both, never neither."""
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=12)
    rids = []
    with httpx.Client(base_url=live_server, timeout=60) as c:
        for i, code in enumerate(codes):
            r = reserve_call(merchant, [code], f"h-{i}", ttl=60)(c)
            assert r.status_code == 201, r.text
            rids.append(r.json()["id"])
    clock.advance(seconds=59)
    job_now = clock.now + timedelta(seconds=1)
    expired: list[int] = []
    stop = threading.Event()

    def job() -> None:  # the expiry job, over and over while the confirms run
        while not stop.is_set():
            expired.append(expire_reservations(db, job_now))

    runner = threading.Thread(target=job)
    runner.start()
    try:
        responses = fire(live_server, [confirm_call(merchant, rid, f"c-{i}")
                                       for i, rid in enumerate(rids)])
    finally:
        stop.set()
        runner.join()
    expired.append(expire_reservations(db, job_now))  # whatever the confirms left

    got = [outcome(r) for r in responses]
    assert set(got) <= {201, "reservation_expired"}, got
    confirmed = {rid for rid, o in zip(rids, got, strict=True) if o == 201}
    with db.connect() as conn:
        statuses = dict(conn.execute(select(reservations.c.id, reservations.c.status)).all())
        events = Counter(conn.execute(
            select(outbox_events.c.type).where(outbox_events.c.type.in_(
                ("reservation.expired", "order.redeemed")))).scalars())
        redeemed = conn.execute(select(func.count()).select_from(redemptions)).scalar_one()
        held = conn.execute(select(func.count()).select_from(coupons).where(
            coupons.c.reservation_id.is_not(None))).scalar_one()
    assert {rid for rid, s in statuses.items() if s == "confirmed"} == confirmed
    assert {s for rid, s in statuses.items() if rid not in confirmed} <= {"expired"}
    assert sum(expired) == len(rids) - len(confirmed) == events["reservation.expired"]
    assert events["order.redeemed"] == len(confirmed) == redeemed
    assert held == 0


def test_confirm_racing_tills_redeeming_the_held_code(live_server, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    with httpx.Client(base_url=live_server, timeout=60) as c:
        r = reserve_call(merchant, [code], "hold")(c)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    tills = [redeem_call(merchant, code, f"till-{i}") for i in range(6)]

    responses = fire(live_server, [confirm_call(merchant, rid, "confirm"), *tills])

    assert outcome(responses[0]) == 201
    got = Counter(outcome(r) for r in responses[1:])
    assert set(got) <= {"coupon_reserved", "coupon_already_redeemed"}, got
    with db.connect() as conn:
        rows = conn.execute(select(redemptions.c.order_redemption_id)).all()
    assert len(rows) == 1 and rows[0].order_redemption_id == responses[0].json()[
        "order_redemption_id"]


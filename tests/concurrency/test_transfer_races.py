"""Transfers racing over a live server (both backends; PostgreSQL for real concurrency):
20 friends accepting one offer at once leave exactly one holder; an accept racing the
holder's cancel ends one way or the other, never both; one friend accepting two offers
of a template they may hold once gets one."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from hub.db.schema import coupon_transfers, coupons, customers, outbox_events
from hub.services import catalog, keys
from tests.concurrency.support import Call, fire
from tests.conftest import THRESHOLD_SPEC, Clock, Merchant, issue, make_template

GIFT = {**THRESHOLD_SPEC, "transferable": True}


def _offer(base: str, auth: dict[str, str], code: str, holder: str) -> str:
    r = httpx.post(f"{base}/v1/coupons/{code}/transfers", json={"customer": holder},
                   headers={**auth, "Idempotency-Key": f"offer-{code}"}, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _post(path: str, auth: dict[str, str], customer: str) -> Call:
    return lambda c: c.post(path, json={"customer": customer}, headers=auth)


def _outcome(r: httpx.Response) -> Any:
    return r.status_code if r.status_code < 300 else r.json()["code"]


def _holder(db: Engine, code: str) -> str | None:
    with db.connect() as conn:
        return conn.execute(
            select(customers.c.external_id)
            .select_from(coupons.join(customers, customers.c.id == coupons.c.customer_id))
            .where(coupons.c.code == code)
        ).scalar()


def _events(db: Engine, code: str) -> Counter[str]:
    with db.connect() as conn:
        cid = conn.execute(select(coupons.c.id).where(coupons.c.code == code)).scalar()
        return Counter(conn.execute(
            select(outbox_events.c.type).where(outbox_events.c.coupon_id == cid)).scalars())


def _app(db: Engine, m: Merchant, clock: Clock) -> dict[str, str]:
    return m.auth(keys.create_key(db, m.id, "app", clock.now).token)


def test_twenty_friends_accept_one_offer(live_server, db, merchant, clock):
    for i in range(20):
        catalog.create_customer(db, merchant.principal, f"F{i:02d}", None, None, clock.now)
    app = _app(db, merchant, clock)
    [code] = issue(db, merchant, make_template(db, merchant, clock.now, GIFT), clock.now,
                   customers=["M0001"])
    token = _offer(live_server, app, code, "M0001")
    path = f"/v1/transfers/{token}/accept"

    responses = fire(live_server, [_post(path, app, f"F{i:02d}") for i in range(20)],
                     barrier_timeout=120)

    outcomes = Counter(_outcome(r) for r in responses)
    assert outcomes == {200: 1, "transfer_closed": 19}, outcomes
    [winner] = [r.json()["to_customer"] for r in responses if r.status_code == 200]
    assert _holder(db, code) == winner
    assert _events(db, code)["coupon.transferred"] == 1
    with db.connect() as conn:
        row = conn.execute(select(coupon_transfers.c.status, customers.c.external_id)
                           .join(customers, customers.c.id == coupon_transfers.c.to_customer_id)
                           ).one()
    assert tuple(row) == ("accepted", winner)
    # the winner's retry answers the same; the others stay refused
    again = httpx.post(f"{live_server}{path}", json={"customer": winner}, headers=app)
    assert again.status_code == 200 and again.json()["to_customer"] == winner


def test_accept_racing_cancel_ends_one_way(live_server, db, merchant, clock):
    app = _app(db, merchant, clock)
    tpl = make_template(db, merchant, clock.now, GIFT)
    rounds = 8
    codes = issue(db, merchant, tpl, clock.now, customers=["M0001"] * rounds)
    endings = Counter()
    for code in codes:
        token = _offer(live_server, app, code, "M0001")
        accept, cancel = fire(live_server, [
            _post(f"/v1/transfers/{token}/accept", app, "M0002"),
            _post(f"/v1/transfers/{token}/cancel", app, "M0001"),
        ])
        got = (_outcome(accept), _outcome(cancel))
        assert got in ((200, "transfer_closed"), ("transfer_closed", 200)), got
        events = _events(db, code)
        if accept.status_code == 200:
            endings["accepted"] += 1
            assert _holder(db, code) == "M0002"
            assert events["coupon.transferred"] == 1 and events["coupon.transfer_cancelled"] == 0
        else:
            endings["cancelled"] += 1
            assert _holder(db, code) == "M0001"
            assert events["coupon.transferred"] == 0 and events["coupon.transfer_cancelled"] == 1
    assert sum(endings.values()) == rounds


def test_one_friend_accepting_two_offers_holds_the_limit(live_server, db, merchant, clock):
    app = _app(db, merchant, clock)
    tpl = make_template(db, merchant, clock.now, {**GIFT, "per_customer_limit": 1})
    first, second = issue(db, merchant, tpl, clock.now, customers=["M0001", "M0002"])
    tokens = [_offer(live_server, app, first, "M0001"), _offer(live_server, app, second, "M0002")]

    responses = fire(live_server, [_post(f"/v1/transfers/{t}/accept", app, "M0003")
                                   for t in tokens])

    outcomes = Counter(_outcome(r) for r in responses)
    assert outcomes == {200: 1, "per_customer_limit_reached": 1}, outcomes
    with db.connect() as conn:
        held = conn.execute(
            select(func.count()).select_from(coupons.join(
                customers, customers.c.id == coupons.c.customer_id))
            .where(customers.c.external_id == "M0003", coupons.c.template_id == tpl)
        ).scalar_one()
    assert held == 1

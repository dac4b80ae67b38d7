"""Reservations (POST /v1/reservations, /confirm, /release, GET): a hold on coupons while
an online customer pays. Every redeem path refuses a held coupon with ``coupon_reserved``
and when the hold ends; holds expire lazily and by the periodic job (one event each)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from hub.db.schema import coupons, outbox_events, reservations
from hub.events import validate_event
from hub.services import keys, outbox
from hub.services.jsonio import iso
from hub.services.reservations import expire_reservations
from tests.conftest import THRESHOLD_SPEC, issue, make_template, order

PERCENT_SPEC: dict[str, Any] = {
    "benefit": {"kind": "percentage", "percent_off": 10, "threshold": 0},
    "validity": {"type": "relative", "days": 30},
    "stacking": {"combines_with": ["threshold"]},
}
STACKING_THRESHOLD: dict[str, Any] = {
    **THRESHOLD_SPEC, "stacking": {"combines_with": ["percentage"]},
}


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def reserve(client, merchant, codes, *, auth=None, idem=None, **fields) -> httpx.Response:
    body = {"codes": codes, "store": "SH-001", "channel": "web", "order": order(), **fields}
    headers = {**(auth or merchant.auth()), "Idempotency-Key": idem or uuid.uuid4().hex}
    return client.post("/v1/reservations", json=body, headers=headers)


def act(client, merchant, rid, verb, *, auth=None, idem=None) -> httpx.Response:
    headers = {**(auth or merchant.auth()), "Idempotency-Key": idem or uuid.uuid4().hex}
    return client.post(f"/v1/reservations/{rid}/{verb}", headers=headers)


def redeem(client, merchant, code, *, store="SH-001") -> httpx.Response:
    return client.post(
        "/v1/redemptions",
        json={"code": code, "store": store, "order": order()},
        headers={**merchant.auth(merchant.store_keys[store]), **key()},
    )


def events(db, type_: str) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(outbox_events).where(outbox_events.c.type == type_)
            .order_by(outbox_events.c.recorded_at)
        ).all()
    return [dict(r._mapping) for r in rows]


def hold_of(db, code: str) -> tuple[Any, Any]:
    with db.connect() as conn:
        row = conn.execute(
            select(coupons.c.reservation_id, coupons.c.reserved_until)
            .where(coupons.c.code == code)
        ).one()
    return row.reservation_id, row.reserved_until


def test_hold_blocks_redeem_validate_void_and_other_holds(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    code, other = issue(db, merchant, tpl, clock.now, count=2)
    r = reserve(client, merchant, [code], ttl_seconds=600)
    assert r.status_code == 201, r.text
    held = r.json()
    until = iso(clock.now + timedelta(seconds=600))
    assert held["status"] == "held" and held["codes"] == [code]
    assert held["expires_at"] == until and held["held_at"] == iso(clock.now)
    assert (held["discount"], held["payable"]) == (2000, 10800)
    assert held["coupons"][0]["discount"] == 2000
    assert hold_of(db, code)[0] == held["id"]

    refused = redeem(client, merchant, code)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "coupon_reserved"
    assert refused.json()["held_until"] == until
    v = client.post("/v1/redemptions/validate",
                    json={"code": code, "store": "SH-001", "order": order()},
                    headers=merchant.auth())
    assert (v.status_code, v.json()["code"]) == (409, "coupon_reserved")
    pos = client.post("/v1/pos/pos.native/redeem",
                      json={"code": code, "order": order()},
                      headers={**merchant.auth(merchant.store_keys["SH-001"]), **key()})
    assert pos.status_code == 409 and pos.json()["code"] == "coupon_reserved", pos.text
    void = client.post(f"/v1/coupons/{code}/void", json={"reason": "x"}, headers=merchant.auth())
    assert (void.status_code, void.json()["code"]) == (409, "coupon_reserved")
    in_order = client.post("/v1/orders/redeem",
                           json={"codes": [code], "store": "SH-001", "channel": "web",
                                 "order": order()},
                           headers={**merchant.auth(), **key()})
    assert (in_order.status_code, in_order.json()["code"]) == (409, "coupon_reserved")
    assert in_order.json()["coupon"] == code and in_order.json()["held_until"] == until
    again = reserve(client, merchant, [other, code])
    assert again.status_code == 409 and again.json()["code"] == "coupon_reserved"
    assert again.json()["coupon"] == code and again.json()["held_until"] == until
    assert hold_of(db, other) == (None, None)  # all or nothing
    assert redeem(client, merchant, other).status_code == 201  # the other is untouched

    got = client.get(f"/v1/reservations/{held['id']}", headers=merchant.auth())
    assert got.status_code == 200 and got.json()["status"] == "held"
    assert [e["data"]["reservation_id"] for e in events(db, "reservation.created")] == [held["id"]]


def test_release_frees_the_coupons_once(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    rid = reserve(client, merchant, [code]).json()["id"]
    idem = uuid.uuid4().hex
    r = act(client, merchant, rid, "release", idem=idem)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "released" and r.json()["ended_at"] == iso(clock.now)
    replay = act(client, merchant, rid, "release", idem=idem)
    assert replay.content == r.content and replay.headers["Idempotent-Replayed"] == "true"
    again = act(client, merchant, rid, "release")
    assert (again.status_code, again.json()["code"]) == (409, "reservation_released")
    confirm = act(client, merchant, rid, "confirm")
    assert (confirm.status_code, confirm.json()["code"]) == (409, "reservation_released")
    assert hold_of(db, code) == (None, None)
    assert redeem(client, merchant, code).status_code == 201
    [event] = events(db, "reservation.released")
    assert event["data"]["codes"] == [code] and event["data"]["status"] == "released"
    validate_event(outbox.envelope(
        id=event["id"], type=event["type"], merchant_id=event["merchant_id"],
        occurred_at=event["occurred_at"], recorded_at=event["recorded_at"], data=event["data"]))


def test_a_lapsed_hold_blocks_nothing_and_ends_lazily(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    code, second = issue(db, merchant, tpl, clock.now, count=2)
    first = reserve(client, merchant, [code], ttl_seconds=60).json()
    other = reserve(client, merchant, [second], ttl_seconds=60).json()
    clock.advance(seconds=60)
    got = client.get(f"/v1/reservations/{first['id']}", headers=merchant.auth()).json()
    assert got["status"] == "expired" and got["ended_at"] == first["expires_at"]
    # another reservation may take the coupon the moment the hold lapsed
    taken = reserve(client, merchant, [code])
    assert taken.status_code == 201, taken.text
    r = act(client, merchant, first["id"], "confirm")
    assert (r.status_code, r.json()["code"]) == (409, "reservation_expired")
    assert hold_of(db, code)[0] == taken.json()["id"]  # the expiry cleared only its own hold
    assert [e["data"]["reservation_id"] for e in events(db, "reservation.expired")] == [
        first["id"]]
    # the till may redeem a coupon whose hold lapsed, before any job ran
    assert redeem(client, merchant, second).status_code == 201
    assert expire_reservations(db, clock.now) == 1  # only `other` was left to record
    r = act(client, merchant, other["id"], "release")
    assert (r.status_code, r.json()["code"]) == (409, "reservation_expired")
    assert len(events(db, "reservation.expired")) == 2


def test_the_job_expires_each_reservation_once(client, db, merchant, clock):
    from hub.delivery.runtime import Runtime

    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=3)
    short = reserve(client, merchant, codes[:1], ttl_seconds=60).json()
    long = reserve(client, merchant, codes[1:2], ttl_seconds=1800).json()
    assert expire_reservations(db, clock.now) == 0
    clock.advance(seconds=61)
    runtime = Runtime(db, clock=clock)
    try:
        assert runtime.expire_reservations_once() == 1
        assert runtime.expire_reservations_once() == 0
    finally:
        runtime.client.close()
    assert expire_reservations(db, clock.now) == 0
    [event] = events(db, "reservation.expired")
    assert event["data"]["reservation_id"] == short["id"]
    assert event["occurred_at"] == clock.now - timedelta(seconds=1)  # when the hold ended
    assert event["data"]["ended_at"] == short["expires_at"]
    assert hold_of(db, codes[0]) == (None, None)
    assert hold_of(db, codes[1])[0] == long["id"]
    with db.connect() as conn:
        status = conn.execute(select(reservations.c.status).where(
            reservations.c.id == short["id"])).scalar()
    assert status == "expired"
    r = act(client, merchant, short["id"], "confirm")
    assert (r.status_code, r.json()["code"]) == (409, "reservation_expired")
    assert len(events(db, "reservation.expired")) == 1


def test_replay_and_key_reuse(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    code, other = issue(db, merchant, tpl, clock.now, count=2)
    idem = uuid.uuid4().hex
    first = reserve(client, merchant, [code], idem=idem)
    assert first.status_code == 201
    replay = reserve(client, merchant, [code], idem=idem)
    assert replay.status_code == 201 and replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    reused = reserve(client, merchant, [other], idem=idem)
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    missing = client.post("/v1/reservations", json={"codes": [other], "store": "SH-001",
                                                    "channel": "web", "order": order()},
                          headers=merchant.auth())
    assert (missing.status_code, missing.json()["code"]) == (400, "idempotency_key_required")
    with db.connect() as conn:
        assert len(conn.execute(select(reservations.c.id)).all()) == 1
    # a refusal is stored and replayed too
    idem = uuid.uuid4().hex
    refused = reserve(client, merchant, [code], idem=idem)
    assert refused.status_code == 409
    assert reserve(client, merchant, [code], idem=idem).content == refused.content


def test_the_set_is_judged_as_a_redeem_would(client, db, merchant, clock):
    pct = make_template(db, merchant, clock.now, PERCENT_SPEC, name="9折")
    thr = make_template(db, merchant, clock.now, STACKING_THRESHOLD)
    alone = make_template(db, merchant, clock.now)
    [p1] = issue(db, merchant, pct, clock.now)
    [t1] = issue(db, merchant, thr, clock.now)
    [a1] = issue(db, merchant, alone, clock.now)
    both = reserve(client, merchant, [t1, p1], order=order(20000))
    assert both.status_code == 201, both.text
    body = both.json()
    assert body["codes"] == [p1, t1]  # percentage before threshold
    # 10 % of 20000 = 2000, then 满100减20 on the 18000 left
    assert [c["discount"] for c in body["coupons"]] == [2000, 2000]
    assert (body["discount"], body["payable"]) == (4000, 16000)
    refused = reserve(client, merchant, [a1, t1])
    assert (refused.status_code, refused.json()["code"]) == (409, "coupon_reserved")
    [t2] = issue(db, merchant, thr, clock.now)
    r = reserve(client, merchant, [a1, t2])
    assert r.status_code == 422 and r.json()["code"] == "coupons_not_combinable", r.text
    r = reserve(client, merchant, [a1, a1])
    assert r.json()["code"] == "duplicate_coupon", r.text
    r = reserve(client, merchant, [a1], order=order(5000))
    assert r.json()["code"] == "threshold_not_met" and r.json()["coupon"] == a1
    r = reserve(client, merchant, [a1], ttl_seconds=1801)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")
    r = reserve(client, merchant, issue(db, merchant, alone, clock.now, count=11))
    assert r.json()["code"] == "too_many_coupons"
    assert hold_of(db, a1) == (None, None)


def test_roles_scope_and_the_wallet(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [mine, sh2] = issue(db, merchant, tpl, clock.now, customers=["M0001", "M0001"])
    app = keys.create_key(db, merchant.id, "app", clock.now, channels=["mini_program"]).token
    r = reserve(client, merchant, [mine], auth=merchant.auth(app), channel="web")
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    r = reserve(client, merchant, [mine], auth=merchant.auth(app), channel="mini_program")
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    wallet = client.get("/v1/customers/M0001/coupons", headers=merchant.auth(app)).json()
    by_code = {c["code"]: (c["usable_now"], c["reason"]) for c in wallet["items"]}
    assert by_code == {mine: (False, "coupon_reserved"), sh2: (True, None)}
    # a store key sees only its own store's reservations, and acts only there
    other_store = merchant.auth(merchant.store_keys["SH-002"])
    assert client.get(f"/v1/reservations/{rid}", headers=other_store).json()["code"] == (
        "reservation_not_found")
    r = act(client, merchant, rid, "release", auth=other_store)
    assert (r.status_code, r.json()["code"]) == (404, "reservation_not_found")
    r = reserve(client, merchant, [sh2], auth=other_store)
    assert r.json()["code"] == "store_forbidden"
    r = reserve(client, merchant, [sh2], auth=other_store, store=None, channel="pos")
    assert r.status_code == 201 and r.json()["store"] == "SH-002"
    assert client.get("/v1/reservations/rsv_nothing", headers=merchant.auth()).status_code == 404
    assert act(client, merchant, rid, "release", auth=merchant.auth(app)).status_code == 200


def test_confirm_redeems_the_held_coupons_as_one_order(client, db, merchant, clock):
    pct = make_template(db, merchant, clock.now, PERCENT_SPEC, name="9折")
    thr = make_template(db, merchant, clock.now, STACKING_THRESHOLD)
    [p1] = issue(db, merchant, pct, clock.now)
    [t1] = issue(db, merchant, thr, clock.now)
    held = reserve(client, merchant, [t1, p1], order=order(20000)).json()
    clock.advance(seconds=30)
    idem = uuid.uuid4().hex
    r = act(client, merchant, held["id"], "confirm", idem=idem)
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["status"] == "redeemed" and done["reservation_id"] == held["id"]
    assert [c["code"] for c in done["coupons"]] == [p1, t1]
    assert (done["discount"], done["payable"]) == (held["discount"], held["payable"])
    assert done["redeemed_at"] == held["held_at"]  # judged (and dated) at the hold
    replay = act(client, merchant, held["id"], "confirm", idem=idem)
    assert replay.content == r.content and replay.headers["Idempotent-Replayed"] == "true"
    again = act(client, merchant, held["id"], "confirm")
    assert (again.status_code, again.json()["code"]) == (409, "reservation_confirmed")
    r = act(client, merchant, held["id"], "release")
    assert (r.status_code, r.json()["code"]) == (409, "reservation_confirmed")
    got = client.get(f"/v1/reservations/{held['id']}", headers=merchant.auth()).json()
    assert got["status"] == "confirmed"
    assert got["order_redemption_id"] == done["order_redemption_id"]
    assert hold_of(db, p1) == (None, None) and hold_of(db, t1) == (None, None)
    redeemed = {e["data"]["code"] for e in events(db, "coupon.redeemed")}
    assert redeemed == {p1, t1}
    [order_event] = events(db, "order.redeemed")
    assert order_event["data"]["order_redemption_id"] == done["order_redemption_id"]
    for e in [*events(db, "coupon.redeemed"), order_event]:
        validate_event(outbox.envelope(
            id=e["id"], type=e["type"], merchant_id=e["merchant_id"],
            occurred_at=e["occurred_at"], recorded_at=e["recorded_at"], data=e["data"]))
    refused = redeem(client, merchant, t1)
    assert (refused.status_code, refused.json()["code"]) == (409, "coupon_already_redeemed")


def test_confirm_after_the_window_closed_during_the_hold(client, db, merchant, clock):
    spec = {**THRESHOLD_SPEC, "validity": {
        "type": "fixed", "start": iso(clock.now - timedelta(days=1)),
        "end": iso(clock.now + timedelta(minutes=5))}}
    tpl = make_template(db, merchant, clock.now, spec)
    [code] = issue(db, merchant, tpl, clock.now)
    held = reserve(client, merchant, [code], ttl_seconds=900).json()
    clock.advance(minutes=10)  # the window closed; the hold lasts 5 more minutes
    from hub.services.housekeeping import expire_coupons

    assert expire_coupons(db, clock.now) == 0  # the sweep leaves a held coupon alone
    r = act(client, merchant, held["id"], "confirm")
    assert r.status_code == 201, r.text
    assert r.json()["coupons"][0]["code"] == code
    with db.connect() as conn:
        assert conn.execute(select(coupons.c.status).where(coupons.c.code == code)).scalar() == (
            "redeemed")


def test_an_expired_holds_coupon_is_swept_once_the_hold_ends(client, db, merchant, clock):
    from hub.services.housekeeping import expire_coupons

    spec = {**THRESHOLD_SPEC, "validity": {
        "type": "fixed", "start": iso(clock.now - timedelta(days=1)),
        "end": iso(clock.now + timedelta(minutes=5))}}
    [code] = issue(db, merchant, make_template(db, merchant, clock.now, spec), clock.now)
    reserve(client, merchant, [code], ttl_seconds=900)
    clock.advance(minutes=10)
    assert expire_coupons(db, clock.now) == 0
    clock.advance(minutes=5)
    assert expire_coupons(db, clock.now) == 1


def test_a_vendor_till_is_told_the_coupon_is_held(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    assert reserve(client, merchant, [code]).status_code == 201
    r = client.post("/v1/pos/pos.mapped.acme/redeem",
                    json={"req_id": uuid.uuid4().hex, "shop_no": "SH-001", "coupon_no": code,
                          "order_no": "A-9", "total_amt": "128.00"},
                    headers=merchant.auth(merchant.store_keys["SH-001"]))
    assert r.json()["ret"] == 1011, r.text


def test_an_app_key_confirms_on_its_channels_only(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    web_code, mp_code = issue(db, merchant, tpl, clock.now, count=2)
    app = merchant.auth(keys.create_key(db, merchant.id, "app", clock.now,
                                        channels=["mini_program"]).token)
    on_web = reserve(client, merchant, [web_code]).json()["id"]
    r = act(client, merchant, on_web, "confirm", auth=app)
    assert (r.status_code, r.json()["code"]) == (404, "reservation_not_found")
    mine = reserve(client, merchant, [mp_code], auth=app, channel="mini_program").json()["id"]
    r = act(client, merchant, mine, "confirm", auth=app)
    assert r.status_code == 201 and r.json()["channel"] == "mini_program", r.text
    assert hold_of(db, web_code)[0] == on_web  # untouched by the refused confirm

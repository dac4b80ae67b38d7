"""Several coupons on one order, all or nothing (POST /v1/orders/redeem), its read-back and
its reversal, on both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from hub.db.schema import coupons, order_redemptions, outbox_events, redemptions
from hub.events.schemas import validate_event
from hub.services import keys, outbox
from tests.conftest import issue, make_template

ALL_KINDS = ["exchange", "percentage", "threshold"]
THRESHOLD = {
    "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
    "validity": {"type": "relative", "days": 30},
    "stacking": {"combines_with": ALL_KINDS, "max_per_order": 5},
}
PERCENTAGE = {
    "benefit": {"kind": "percentage", "percent_off": 10},
    "validity": {"type": "relative", "days": 30},
    "stacking": {"combines_with": ALL_KINDS, "max_per_order": 5},
}
EXCLUSIVE = {
    "benefit": {"kind": "threshold", "threshold": 5000, "discount": 500},
    "validity": {"type": "relative", "days": 30},
}


def codes_of(db, merchant, clock, spec, count=1, name="t") -> list[str]:
    tpl = make_template(db, merchant, clock.now - timedelta(hours=1), spec, name=name)
    return issue(db, merchant, tpl, clock.now - timedelta(hours=1), count=count)


def redeem(client, headers, body, key=None):
    h = {**headers, "Idempotency-Key": key or uuid.uuid4().hex}
    return client.post("/v1/orders/redeem", json=body, headers=h)


def body(codes, amount=12800, order_id="A-1", **more) -> dict[str, Any]:
    return {"codes": codes, "channel": "pos", "order": {"id": order_id, "amount": amount}, **more}


def statuses(db, codes) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute(select(coupons.c.code, coupons.c.status)).all()
    by_code = dict(rows)
    return [by_code[c] for c in codes]


def count(db, table, *where) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())


def events(db, type_: str) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(outbox_events).where(outbox_events.c.type == type_).order_by(outbox_events.c.seq)
        ).all()
    out = []
    for row in rows:
        env = outbox.envelope(
            id=row.id, type=row.type, merchant_id=row.merchant_id,
            occurred_at=row.occurred_at, recorded_at=row.recorded_at, data=row.data,
        )
        validate_event(env)
        out.append(env["data"])
    return out


def test_two_coupons_redeem_together_in_the_order_of_application(client, db, merchant, clock):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    store = merchant.auth(merchant.store_keys["SH-001"])
    # the threshold is given first but applied last, on what the 10% left: 12800 - 1280
    r = redeem(client, store, body([thr, pct]))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["order_redemption_id"].startswith("ord_")
    assert out["store"] == "SH-001" and out["channel"] == "pos" and out["order_id"] == "A-1"
    assert [c["code"] for c in out["coupons"]] == [pct, thr]
    assert [c["discount"] for c in out["coupons"]] == [1280, 2000]
    assert out["coupons"][1]["eligible_amount"] == 12800 - 1280
    assert (out["discount"], out["payable"]) == (3280, 12800 - 3280)
    assert statuses(db, [pct, thr]) == ["redeemed", "redeemed"]
    mine = redemptions.c.order_redemption_id == out["order_redemption_id"]
    assert count(db, redemptions, mine) == 2
    assert count(db, order_redemptions) == 1

    redeemed = events(db, "coupon.redeemed")
    assert [e["code"] for e in redeemed] == [pct, thr]
    assert {e["order_redemption_id"] for e in redeemed} == {out["order_redemption_id"]}
    assert [e["redemption_id"] for e in redeemed] == [c["redemption_id"] for c in out["coupons"]]
    [order_event] = events(db, "order.redeemed")
    assert order_event["discount"] == 3280
    assert order_event["order"] == {"id": "A-1", "amount": 12800}

    got = client.get(f"/v1/orders/{out['order_redemption_id']}", headers=store)
    assert got.status_code == 200, got.text
    assert got.json() == {**out, "reversed_at": None, "reversal_reason": None}


def test_a_later_threshold_is_judged_on_what_the_earlier_coupons_left(client, db, merchant, clock):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    # 10500 alone meets 满100, but not after 10% off (9450): nothing is redeemed
    r = redeem(client, merchant.auth(), body([pct, thr], amount=10500, store="SH-001"))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "threshold_not_met" and problem["coupon"] == thr
    assert statuses(db, [pct, thr]) == ["issued", "issued"]
    assert count(db, redemptions) == 0 and count(db, order_redemptions) == 0
    assert events(db, "coupon.redeemed") == [] and events(db, "order.redeemed") == []


def test_one_bad_code_redeems_nothing(client, db, merchant, clock):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    store = merchant.auth(merchant.store_keys["SH-001"])
    voided = client.post(f"/v1/coupons/{thr}/void", json={}, headers=merchant.auth())
    assert voided.status_code == 200
    r = redeem(client, store, body([pct, thr]))
    assert r.status_code == 409 and r.json()["code"] == "coupon_voided"
    assert r.json()["coupon"] == thr
    assert statuses(db, [pct]) == ["issued"]
    assert count(db, redemptions) == 0 and count(db, order_redemptions) == 0


def test_replay_reuse_and_stored_refusals(client, db, merchant, clock):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    store = merchant.auth(merchant.store_keys["SH-001"])
    first = redeem(client, store, body([pct, thr]), key="k-1")
    assert first.status_code == 201
    again = redeem(client, store, body([pct, thr]), key="k-1")
    assert again.status_code == 201 and again.content == first.content
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = redeem(client, store, body([thr, pct]), key="k-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    # a refusal is stored and replayed too
    refused = redeem(client, store, body([pct, thr], order_id="A-2"), key="k-2")
    assert refused.status_code == 409 and refused.json()["code"] == "coupon_already_redeemed"
    replayed = redeem(client, store, body([pct, thr], order_id="A-2"), key="k-2")
    assert replayed.content == refused.content
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    missing = client.post("/v1/orders/redeem", json=body([pct]), headers=store)
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_required"


def test_stacking_refusals(client, db, merchant, clock):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [exc] = codes_of(db, merchant, clock, EXCLUSIVE, name="独享")
    admin = merchant.auth()
    r = redeem(client, admin, body([pct, exc], store="SH-001"))
    assert r.status_code == 422 and r.json()["code"] == "coupons_not_combinable"
    assert r.json()["coupons"] == [pct, exc]
    r = redeem(client, admin, body([pct, pct.lower()], store="SH-001"))
    assert r.status_code == 422 and r.json()["code"] == "duplicate_coupon"
    limited = {**PERCENTAGE, "stacking": {"combines_with": ALL_KINDS, "max_per_order": 2}}
    three = codes_of(db, merchant, clock, limited, count=3, name="限2张")
    r = redeem(client, admin, body(three, store="SH-001"))
    assert r.status_code == 422 and r.json()["code"] == "too_many_coupons"
    assert statuses(db, [pct, exc, *three]) == ["issued"] * 5


def test_reverse_the_whole_order_once(client, db, merchant, clock):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    store = merchant.auth(merchant.store_keys["SH-001"])
    out = redeem(client, store, body([pct, thr])).json()
    oid = out["order_redemption_id"]
    # one coupon of it cannot be reversed alone
    one = out["coupons"][0]["redemption_id"]
    r = client.post(f"/v1/redemptions/{one}/reversal", json={},
                    headers={**store, "Idempotency-Key": "single"})
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    assert r.json()["order_redemption_id"] == oid

    h = {**store, "Idempotency-Key": "rv-1"}
    r = client.post(f"/v1/orders/{oid}/reversal", json={"reason": "refund"}, headers=h)
    assert r.status_code == 201, r.text
    rev = r.json()
    assert rev["status"] == "reversed" and rev["discount"] == 3280
    assert [c["coupon_status"] for c in rev["coupons"]] == ["issued", "issued"]
    assert statuses(db, [pct, thr]) == ["issued", "issued"]
    again = client.post(f"/v1/orders/{oid}/reversal", json={"reason": "refund"}, headers=h)
    assert again.content == r.content and again.headers.get("Idempotent-Replayed") == "true"
    twice = client.post(f"/v1/orders/{oid}/reversal", json={},
                        headers={**store, "Idempotency-Key": "rv-2"})
    assert twice.status_code == 409 and twice.json()["code"] == "order_already_reversed"
    assert len(events(db, "coupon.redemption_reversed")) == 2
    [order_event] = events(db, "order.reversed")
    assert order_event["order_redemption_id"] == oid and order_event["reason"] == "refund"
    got = client.get(f"/v1/orders/{oid}", headers=store).json()
    assert got["status"] == "reversed" and got["reversal_reason"] == "refund"
    # the coupons can be used again
    assert redeem(client, store, body([pct, thr], order_id="A-2")).status_code == 201

    unknown = client.post("/v1/orders/ord_01JDK000000000000000000099/reversal", json={},
                          headers={**store, "Idempotency-Key": "rv-3"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "order_redemption_not_found"


def test_store_and_app_keys_are_scoped(client, db, merchant, clock):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    made = keys.create_key(db, merchant.id, "app", clock.now, channels=["mini_program"])
    app = {"Authorization": f"Bearer {made.token}"}
    r = redeem(client, app, body([pct, thr]))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"  # pos is not its channel
    r = redeem(client, app, {**body([pct, thr]), "channel": "mini_program"})
    assert r.status_code == 422 and r.json()["code"] == "store_required"
    r = redeem(client, app, {**body([pct, thr]), "channel": "mini_program", "store": "SH-002"})
    assert r.status_code == 201, r.text
    oid = r.json()["order_redemption_id"]
    assert client.get(f"/v1/orders/{oid}", headers=app).status_code == 200
    other_store = merchant.auth(merchant.store_keys["SH-001"])
    r = client.get(f"/v1/orders/{oid}", headers=other_store)
    assert r.status_code == 404 and r.json()["code"] == "order_redemption_not_found"
    r = redeem(client, other_store, body([pct], store="SH-002"))
    assert r.status_code == 403 and r.json()["code"] == "store_forbidden"


def test_an_app_key_sees_and_reverses_only_its_channels_orders(client, db, merchant, clock):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    made = redeem(client, merchant.auth(), body([pct, thr], store="SH-001"))
    assert made.status_code == 201, made.text
    oid = made.json()["order_redemption_id"]
    web = keys.create_key(db, merchant.id, "app", clock.now, channels=["web"])
    app = {"Authorization": f"Bearer {web.token}"}
    # a pos order is not the web shop's: as if it did not exist
    r = client.get(f"/v1/orders/{oid}", headers=app)
    assert r.status_code == 404 and r.json()["code"] == "order_redemption_not_found"
    r = client.post(f"/v1/orders/{oid}/reversal", json={},
                    headers={**app, "Idempotency-Key": "app-rv"})
    assert r.status_code == 404
    assert statuses(db, [pct, thr]) == ["redeemed", "redeemed"]
    # analysts and integrators neither redeem nor read orders
    analyst = keys.create_key(db, merchant.id, "analyst", clock.now)
    r = client.get(f"/v1/orders/{oid}", headers={"Authorization": f"Bearer {analyst.token}"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_the_reversal_is_audited_and_a_closed_window_leaves_the_coupons_expired(
    client, db, merchant, clock
):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    admin = merchant.auth()
    oid = redeem(client, admin, body([pct, thr], store="SH-002")).json()["order_redemption_id"]
    clock.advance(days=31)  # both windows have closed
    r = client.post(f"/v1/orders/{oid}/reversal", json={"reason": "late refund"},
                    headers={**admin, "Idempotency-Key": "late"})
    assert r.status_code == 201, r.text
    assert [c["coupon_status"] for c in r.json()["coupons"]] == ["expired", "expired"]
    assert statuses(db, [pct, thr]) == ["expired", "expired"]
    [entry] = client.get("/v1/audit?action=order.reversed", headers=admin).json()["items"]
    assert entry["target"] == {"type": "order_redemption", "id": oid}
    assert entry["details"]["reason"] == "late refund"
    assert sorted(entry["details"]["redemptions"]) == sorted(
        c["redemption_id"] for c in r.json()["coupons"]
    )


def test_exchange_and_threshold_on_lines_with_the_gift_in_the_events(client, db, merchant, clock):
    exchange = {
        "benefit": {"kind": "exchange", "sku": "CUP", "qty": 1},
        "validity": {"type": "relative", "days": 30},
        "stacking": {"combines_with": ALL_KINDS, "max_per_order": 5},
    }
    [cup] = codes_of(db, merchant, clock, exchange, name="送杯子")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    lines = [{"sku": "TEA", "category": "drinks", "qty": 4, "unit_price": 2500},
             {"sku": "CUP", "category": "merch", "qty": 1, "unit_price": 1800}]
    store = merchant.auth(merchant.store_keys["SH-001"])
    order_body = {"codes": [thr, cup], "channel": "pos",
                  "order": {"id": "L-1", "amount": 11800, "lines": lines}}
    r = redeem(client, store, order_body)
    assert r.status_code == 201, r.text
    out = r.json()
    # the cup goes first (1800); the 满100 is judged on the 10000 left and applies
    assert [(c["code"], c["discount"]) for c in out["coupons"]] == [(cup, 1800), (thr, 2000)]
    assert out["lines"] == [
        {"index": 0, "sku": "TEA", "amount": 10000, "discount": 2000, "payable": 8000,
         "by_coupon": [{"code": thr, "discount": 2000}]},
        {"index": 1, "sku": "CUP", "amount": 1800, "discount": 1800, "payable": 0,
         # the threshold covers the whole order: its share of a line with nothing left is 0
         "by_coupon": [{"code": cup, "discount": 1800}, {"code": thr, "discount": 0}]},
    ]
    gifts = {e["code"]: e["gift"] for e in events(db, "coupon.redeemed")}
    assert gifts == {cup: {"sku": "CUP", "qty": 1}, thr: None}
    # the reversal's events carry the gift back (stock returns) and name the order
    oid = out["order_redemption_id"]
    client.post(f"/v1/orders/{oid}/reversal", json={}, headers={**store, "Idempotency-Key": "x"})
    reversed_ = {e["code"]: e for e in events(db, "coupon.redemption_reversed")}
    assert reversed_[cup]["gift"] == {"sku": "CUP", "qty": 1}
    assert {e["order_redemption_id"] for e in reversed_.values()} == {oid}


def repeat_alerts(db) -> list[dict[str, Any]]:
    return [d for d in events(db, "alert.raised") if d["alert"] == "repeat_redemption_attempt"]


def test_a_redeemed_coupon_presented_again_in_an_order_raises_the_alert(
    client, db, merchant, clock
):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    first = client.post(
        "/v1/redemptions", json={"code": thr, "order": {"id": "A-0", "amount": 12800}},
        headers={**merchant.auth(merchant.store_keys["SH-001"]), "Idempotency-Key": "one"},
    )
    assert first.status_code == 201, first.text
    clock.advance(minutes=3)
    r = redeem(client, merchant.auth(merchant.store_keys["SH-002"]), body([pct, thr]))
    assert r.status_code == 409 and r.json()["coupon"] == thr
    [alert] = repeat_alerts(db)
    d = alert["details"]
    assert d["reason"] == "presented_after_redemption" and d["stores"] == ["SH-001", "SH-002"]
    assert d["redemption_id"] == first.json()["redemption_id"]
    assert [a["outcome"] for a in d["attempts"]] == ["redeemed", "coupon_already_redeemed"]


def test_refused_at_one_store_then_redeemed_in_an_order_at_another_raises_the_alert(
    client, db, merchant, clock
):
    [pct] = codes_of(db, merchant, clock, PERCENTAGE, name="9折")
    [thr] = codes_of(db, merchant, clock, THRESHOLD, name="满100减20")
    small = body([pct, thr], amount=5000, store="SH-001")
    refused = redeem(client, merchant.auth(), small)
    assert refused.status_code == 422 and refused.json()["coupon"] == thr
    clock.advance(minutes=1)
    ok = redeem(client, merchant.auth(), body([pct, thr], store="SH-002"))
    assert ok.status_code == 201, ok.text
    [alert] = repeat_alerts(db)
    d = alert["details"]
    assert d["reason"] == "several_stores" and d["stores"] == ["SH-001", "SH-002"]
    assert d["redemption_id"] == ok.json()["coupons"][1]["redemption_id"]
    assert [a["outcome"] for a in d["attempts"]] == ["threshold_not_met", "redeemed"]

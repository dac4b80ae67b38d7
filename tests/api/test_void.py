"""Voiding a coupon: issued → voided (final); other states refuse with a code."""

from __future__ import annotations

from sqlalchemy import func, select

from hub.db.schema import outbox_events
from tests.conftest import issue, make_template, order


def test_void_then_redeem_is_refused(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    r = client.post(
        f"/v1/coupons/{code}/void", json={"reason": "issued by mistake"}, headers=merchant.auth()
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "voided"
    r = client.post(
        "/v1/redemptions",
        json={"code": code, "store": "SH-001", "order": order()},
        headers={**merchant.auth(), "Idempotency-Key": "v1"},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "coupon_voided"
    r = client.get(f"/v1/coupons/{code}", headers=merchant.auth())
    assert r.json()["status"] == "voided"
    assert [h["type"] for h in r.json()["history"]] == ["coupon.issued", "coupon.voided"]
    assert r.json()["history"][-1]["reason"] == "issued by mistake"


def test_void_twice_and_void_redeemed_are_illegal(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    a, b = issue(db, merchant, tpl, clock.now, count=2)
    assert client.post(f"/v1/coupons/{a}/void", headers=merchant.auth()).status_code == 200
    r = client.post(f"/v1/coupons/{a}/void", headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (409, "illegal_transition")
    r = client.post(
        "/v1/redemptions",
        json={"code": b, "store": "SH-001", "order": order()},
        headers={**merchant.auth(), "Idempotency-Key": "v2"},
    )
    assert r.status_code == 201
    r = client.post(f"/v1/coupons/{b}/void", headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (409, "illegal_transition")
    with db.connect() as conn:
        voided = conn.execute(
            select(func.count())
            .select_from(outbox_events)
            .where(outbox_events.c.type == "coupon.voided")
        ).scalar_one()
    assert voided == 1


def test_void_needs_admin_and_expired_coupon_cannot_be_voided(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    store_key = merchant.store_keys["SH-001"]
    r = client.post(f"/v1/coupons/{code}/void", headers=merchant.auth(store_key))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    clock.advance(days=40)
    r = client.post(f"/v1/coupons/{code}/void", headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (409, "illegal_transition")

"""GET /v1/customers/{customer}/coupons: by status, soonest expiry first, usable now or
the reason, cursor paging."""

from __future__ import annotations

from datetime import timedelta

from hub.services import keys
from tests.conftest import THRESHOLD_SPEC, issue, make_template, order


def test_the_wallet_by_status_soonest_expiry_first(client, db, merchant, clock):
    short = make_template(db, merchant, clock.now, {**THRESHOLD_SPEC,
                                                   "validity": {"type": "relative", "days": 3}})
    long = make_template(db, merchant, clock.now)
    later = make_template(db, merchant, clock.now, {**THRESHOLD_SPEC, "validity": {
        "type": "relative", "days": 10, "start_after_days": 1}})
    [c_long] = issue(db, merchant, long, clock.now, customers=["M0001"])
    [c_short] = issue(db, merchant, short, clock.now, customers=["M0001"])
    [c_later] = issue(db, merchant, later, clock.now, customers=["M0001"])
    [c_used] = issue(db, merchant, long, clock.now, customers=["M0001"])
    issue(db, merchant, long, clock.now, customers=["M0002"])  # someone else's
    r = client.post("/v1/redemptions", json={"code": c_used, "store": "SH-001",
                                             "order": order()},
                    headers={**merchant.auth(), "Idempotency-Key": "w-1"})
    assert r.status_code == 201, r.text
    app = keys.create_key(db, merchant.id, "app", clock.now).token
    url = "/v1/customers/M0001/coupons"

    usable = client.get(url, headers=merchant.auth(app)).json()["items"]
    assert [c["code"] for c in usable] == [c_short, c_later, c_long]
    assert [(c["usable_now"], c["reason"]) for c in usable] == [
        (True, None), (False, "coupon_not_yet_valid"), (True, None)]
    used = client.get(url, params={"status": "used"}, headers=merchant.auth()).json()["items"]
    assert [(c["code"], c["status"], c["reason"]) for c in used] == [
        (c_used, "redeemed", "coupon_already_redeemed")]
    clock.advance(days=4)
    expired = client.get(url, params={"status": "expired"}, headers=merchant.auth()).json()
    assert [(c["code"], c["reason"]) for c in expired["items"]] == [(c_short, "coupon_expired")]
    every = client.get(url, params={"status": "all"}, headers=merchant.auth()).json()["items"]
    assert {c["code"] for c in every} == {c_short, c_later, c_long, c_used}


def test_cursor_paging_and_refusals(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    codes = [issue(db, merchant, tpl, clock.now + timedelta(minutes=i), customers=["M0003"])[0]
             for i in range(5)]
    url = "/v1/customers/M0003/coupons"
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(url, params=params, headers=merchant.auth()).json()
        seen += [c["code"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == codes
    r = client.get(url, params={"cursor": "garbage"}, headers=merchant.auth())
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"
    r = client.get(url, params={"status": "lost"}, headers=merchant.auth())
    assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
    r = client.get("/v1/customers/NOBODY/coupons", headers=merchant.auth())
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    store = client.get(url, headers=merchant.auth(merchant.store_keys["SH-001"]))
    assert store.status_code == 403

"""End-to-end happy path through the HTTP API (both backends)."""

from __future__ import annotations

from tests.conftest import issue, make_template, order


def test_present_verify_done(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    key = merchant.store_keys["SH-001"]
    r = client.get(f"/v1/coupons/{code}", headers=merchant.auth(key))
    assert r.status_code == 200 and r.json()["status"] == "issued"
    body = {"code": code, "order": order(12800)}
    r = client.post("/v1/redemptions/validate", json=body, headers=merchant.auth(key))
    assert r.status_code == 200, r.text
    assert r.json()["discount"] == 2000
    r = client.post(
        "/v1/redemptions", json=body, headers={**merchant.auth(key), "Idempotency-Key": "pos-1"}
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "redeemed" and out["discount"] == 2000 and out["store"] == "SH-001"
    assert out["payable"] == 10800
    r = client.get(f"/v1/coupons/{code}", headers=merchant.auth(key))
    assert r.json()["status"] == "redeemed"
    assert [h["type"] for h in r.json()["history"]] == ["coupon.issued", "coupon.redeemed"]

"""GET /v1/customers/{customer}/recommendations on both databases: fitted from the
redemption history, cached per merchant, fresh about what the customer holds."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from hub.services import keys
from hub.services import recommendations as svc
from tests.conftest import THRESHOLD_SPEC, issue, make_merchant, make_template, order

PERCENT_SPEC = {
    "benefit": {"kind": "percentage", "percent_off": 15},
    "validity": {"type": "relative", "days": 30},
}


class Shop:
    def __init__(self, client: Any, db: Any, clock: Any) -> None:
        self.client, self.db, self.clock = client, db, clock
        self.m = make_merchant(db, clock.now, customers=8)
        now = clock.now
        self.thr = make_template(db, self.m, now, THRESHOLD_SPEC, name="满100减20")
        self.pct = make_template(db, self.m, now, PERCENT_SPEC, name="8.5折")
        self.thr2 = make_template(db, self.m, now + timedelta(seconds=1), THRESHOLD_SPEC,
                                  name="满100减20 B")
        self.pct2 = make_template(db, self.m, now + timedelta(seconds=1), PERCENT_SPEC,
                                  name="8.5折 B")
        # M0001 redeems percentage coupons and leaves threshold ones; M0002-M0006 the reverse
        used = issue(db, self.m, self.pct, now, customers=["M0001"] * 3)
        issue(db, self.m, self.thr, now, customers=["M0001"] * 3)
        for c in ("M0002", "M0003", "M0004", "M0005", "M0006"):
            used += issue(db, self.m, self.thr, now, customers=[c, c])
            issue(db, self.m, self.pct, now, customers=[c, c])
        clock.advance(days=1)
        for code in used:
            self.redeem(code)
        clock.advance(days=40)  # every window has closed: the outcomes are known

    def redeem(self, code: str) -> None:
        r = self.client.post(
            "/v1/redemptions",
            json={"code": code, "store": "SH-001", "order": order(order_id=f"o-{code}")},
            headers={**self.m.auth(), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text

    def get(self, customer: str, key: str | None = None, **params: Any) -> Any:
        return self.client.get(f"/v1/customers/{customer}/recommendations", params=params,
                               headers=self.m.auth(key))


@pytest.fixture
def shop(client, db, clock) -> Shop:
    return Shop(client, db, clock)


def test_a_customer_who_redeems_one_kind_gets_that_kind_first(shop: Shop):
    r = shop.get("M0001")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer"] == "M0001" and body["cold_start"] is False
    items = body["items"]
    assert [i["kind"] for i in items[:2]] == ["percentage", "percentage"]
    assert items[0]["template_id"] == shop.pct and items[0]["reason_code"] == "own_template"
    assert items[1]["template_id"] == shop.pct2 and items[1]["reason_code"] == "own_kind"
    assert [i["rank"] for i in items] == [1, 2, 3, 4]
    assert all(len(i["score"].split(".")[1]) == 4 for i in items)
    assert body["profile"] == {
        "home_store": "SH-001", "preference": "offline", "preferred_kind": "percentage",
        "spend_band": "mid", "recency": "lapsing",
    }
    assert body["model"]["coupons"] == 26 and body["model"]["refresh_seconds"] == 600
    crowd = shop.get("M0003").json()["items"]
    assert [i["kind"] for i in crowd[:2]] == ["threshold", "threshold"]
    assert shop.get("M0001", limit=1).json()["items"] == items[:1]


def test_cold_start(shop: Shop):
    body = shop.get("M0008").json()
    assert body["cold_start"] is True
    assert body["profile"]["recency"] == "never"
    assert {i["reason_code"] for i in body["items"]} == {"cold_start"}
    # customers without history redeemed the threshold coupon (10 of 13 first coupons)
    assert body["items"][0]["template_id"] == shop.thr
    assert "no history yet" in body["items"][0]["reason"]


def test_what_the_customer_holds_is_read_fresh_and_the_model_is_refitted_later(shop: Shop):
    first = shop.get("M0001").json()
    # an unused coupon held now: that template is no longer pushed, at once
    issue(shop.db, shop.m, shop.pct2, shop.clock.now, customers=["M0001"])
    second = shop.get("M0001").json()
    assert shop.pct2 not in [i["template_id"] for i in second["items"]]
    assert second["model"] == first["model"]  # the same fit
    shop.clock.advance(minutes=11)
    third = shop.get("M0001").json()
    assert third["model"]["fitted_at"] > first["model"]["fitted_at"]
    assert third["model"]["coupons"] == 27
    # a paused template is not pushed either, without waiting for a refit
    r = shop.client.post(f"/v1/templates/{shop.pct}/pause", headers={
        **shop.m.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 200, r.text
    ids = [i["template_id"] for i in shop.get("M0001").json()["items"]]
    assert shop.pct not in ids and ids
    svc.forget(shop.db, shop.m.id)


def test_who_may_ask(shop: Shop):
    db, m, now = shop.db, shop.m, shop.clock.now
    app = keys.create_key(db, m.id, "app", now, channels=["mini_program"]).token
    analyst = keys.create_key(db, m.id, "analyst", now).token
    integrator = keys.create_key(db, m.id, "integrator", now).token
    assert shop.get("M0001", app).status_code == 200
    assert shop.get("M0001", analyst).status_code == 200
    for key in (m.store_keys["SH-001"], integrator):
        r = shop.get("M0001", key)
        assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    r = shop.get("NOBODY")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    for bad in ("0", "51", "many"):
        r = shop.get("M0001", limit=bad)
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
    # another merchant's customer of the same external id is not this one
    other = make_merchant(db, now, name="Other", customers=1)
    r = shop.client.get("/v1/customers/M0001/recommendations", headers=other.auth())
    assert r.status_code == 200 and r.json()["cold_start"] is True
    assert r.json()["items"] == []  # the other merchant has no templates

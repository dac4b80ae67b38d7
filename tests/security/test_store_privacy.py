"""Keys limited to stores do not see other stores' redemptions (issue 9 item 7).

A store key, or an analyst key limited to some stores, reading a coupon
(``GET /v1/coupons/{code}``) or the alerts list sees that another store's event
happened and when, never which store, which redemption, which order, how much or for
whom. Keys that see every store (admin, an unlimited analyst) and the store where it
happened see it all. Both backends.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import Engine

from hub.services import keys
from tests.conftest import Clock, Merchant, issue, make_template, order

HIDDEN = ("redemption_id", "store", "order_id", "discount", "customer", "reason", "channel")


def _redeem(c: TestClient[Any], auth: dict[str, str], code: str, order_id: str) -> str:
    r = c.post(
        "/v1/redemptions",
        json={"code": code, "order": order(order_id=order_id)},
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["redemption_id"])


def _keys(db: Engine, m: Merchant, clock: Clock) -> dict[str, dict[str, str]]:
    def analyst(stores: list[str] | None) -> dict[str, str]:
        token = keys.create_key(db, m.id, "analyst", clock.now, store_codes=stores).token
        return m.auth(token)

    return {
        "admin": m.auth(),
        "SH-001": m.auth(m.store_keys["SH-001"]),
        "SH-002": m.auth(m.store_keys["SH-002"]),
        "analyst-all": analyst(None),
        "analyst-SH-001": analyst(["SH-001"]),
        "analyst-SH-001+BJ-001": analyst(["SH-001", "BJ-001"]),
    }


def test_coupon_history_hides_other_stores_redemptions(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now, customers=["M0001"])
    who = _keys(db, merchant, clock)
    # redeemed at SH-002, reversed there, redeemed again at SH-002
    first = _redeem(client, who["SH-002"], code, "SECRET-ORDER-1")
    r = client.post(
        f"/v1/redemptions/{first}/reversal",
        json={"reason": "customer returned the tea"},
        headers={**who["SH-002"], "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    second = _redeem(client, who["SH-002"], code, "SECRET-ORDER-2")

    def view(name: str) -> dict[str, Any]:
        got = client.get(f"/v1/coupons/{code}", headers=who[name])
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    for name in ("admin", "SH-002", "analyst-all"):  # they see everything
        body = view(name)
        assert body["redemption_id"] == second
        store_events = [h for h in body["history"] if h["type"] != "coupon.issued"]
        assert [h["type"] for h in store_events] == [
            "coupon.redeemed",
            "coupon.redemption_reversed",
            "coupon.redeemed",
        ]
        assert [h["redemption_id"] for h in store_events] == [first, first, second]
        assert {h["store"] for h in store_events} == {"SH-002"}
        assert store_events[0]["order_id"] == "SECRET-ORDER-1"

    for name in ("SH-001", "analyst-SH-001", "analyst-SH-001+BJ-001"):
        body = view(name)
        text = str(body)
        assert body["status"] == "redeemed"  # the state is the coupon's, not the store's
        assert body["redemption_id"] is None, name
        for secret in (first, second, "SH-002", "SECRET-ORDER-1", "SECRET-ORDER-2"):
            assert secret not in text, (name, secret)
        types = [h["type"] for h in body["history"]]
        assert types == [
            "coupon.issued",
            "coupon.redeemed",
            "coupon.redemption_reversed",
            "coupon.redeemed",
        ]
        for h in body["history"][1:]:
            assert not set(HIDDEN) & set(h), (name, h)
            assert h["at"] and h["event_id"]
        # the reversal's resulting coupon status is no secret (the status shows it)
        assert body["history"][2]["coupon_status"] == "issued"


def test_alerts_hide_other_stores_redemptions(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    who = _keys(db, merchant, clock)
    rid = _redeem(client, who["SH-002"], code, "SECRET-ORDER-9")
    again = client.post(  # presented again at SH-001: a repeat alert at SH-001
        "/v1/redemptions/validate",
        json={"code": code, "order": order()},
        headers=who["SH-001"],
    )
    assert again.json()["code"] == "coupon_already_redeemed"

    def alerts(name: str) -> list[dict[str, Any]]:
        r = client.get("/v1/alerts?alert=repeat_redemption_attempt", headers=who[name])
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    [full] = alerts("admin")
    assert full["details"]["redemption_id"] == rid
    assert full["details"]["redeemed_store"] == "SH-002"
    assert "SH-002" in full["message"]
    for name in ("analyst-SH-001", "analyst-SH-001+BJ-001"):
        [mine] = alerts(name)
        assert mine["store"] == "SH-001"
        assert rid not in str(mine) and "SH-002" not in str(mine), mine
        assert mine["details"]["stores"] == ["SH-001"]
        outcomes = [a["outcome"] for a in mine["details"]["attempts"]]
        assert outcomes == ["redeemed", "coupon_already_redeemed"]

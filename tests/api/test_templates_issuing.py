"""Templates, issuing, claiming and coupon look-up through the HTTP API (both backends).

Also the catalogue endpoints (stores, products, customers, merchant).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from hub.db.schema import coupon_templates, coupons, customers, outbox_events
from hub.domain.codes import display, is_well_formed
from tests.conftest import order

THRESHOLD = {"kind": "threshold", "threshold": 10000, "discount": 2000}


def _at(s: str) -> datetime:
    return datetime.fromisoformat(s)


def _utc(s: str) -> datetime:
    """Parse a response time, insisting that it is UTC written with ``Z``."""
    assert s.endswith("Z"), s
    return _at(s)


def create_template(client, m, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "满100减20")
    body.setdefault("benefit", THRESHOLD)
    body.setdefault("validity", {"type": "relative", "days": 30})
    r = client.post("/v1/templates", json=body, headers=m.auth())
    assert r.status_code == 201, r.text
    return r.json()


def issue_http(client, m, tpl: str, **body: Any):
    return client.post(f"/v1/templates/{tpl}/coupons", json=body, headers=m.auth())


def redeem_http(client, m, code: str, key: str, store: str = "SH-001", **extra: Any):
    body = {"code": code, "store": store, "order": order(12800), **extra}
    return client.post(
        "/v1/redemptions", json=body, headers={**m.auth(), "Idempotency-Key": key}
    )


def issued_count(client, m, tpl: str) -> int:
    r = client.get(f"/v1/templates/{tpl}", headers=m.auth())
    assert r.status_code == 200, r.text
    return int(r.json()["issued_count"])


def coupons_of(db, tpl: str) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(coupons).where(coupons.c.template_id == tpl)
            ).scalar_one()
        )


# --- templates ------------------------------------------------------------------------


def test_create_each_kind_and_read_back(client, merchant):
    thr = create_template(client, merchant, name="满100减20", total_quantity=500,
                          per_customer_limit=2, usage={"channels": ["pos", "app"]})
    pct = create_template(
        client, merchant, name="8.5折",
        benefit={"kind": "percentage", "percent_off": 15, "cap": 1000},
        usage={"categories": ["drinks"]},
    )
    exc = create_template(
        client, merchant, name="9.9元换购",
        benefit={"kind": "exchange", "sku": "TEA-01", "price": 990},
        validity={"type": "relative", "days": 7, "start_after_days": 1},
        usage={"stores": ["SH-001"]},
    )
    assert thr["id"] != pct["id"] != exc["id"]
    assert thr["kind"] == "threshold" and thr["status"] == "active" and thr["issued_count"] == 0
    assert thr["benefit"] == THRESHOLD
    assert thr["total_quantity"] == 500 and thr["per_customer_limit"] == 2
    assert thr["usage"]["channels"] == ["app", "pos"]
    assert pct["kind"] == "percentage"
    assert pct["benefit"] == {"kind": "percentage", "percent_off": 15, "threshold": 0, "cap": 1000}
    assert pct["total_quantity"] is None and pct["per_customer_limit"] is None
    assert exc["kind"] == "exchange"
    assert exc["benefit"] == {"kind": "exchange", "sku": "TEA-01", "qty": 1, "price": 990,
                              "threshold": 0}
    assert exc["validity"] == {"type": "relative", "days": 7, "start_after_days": 1}
    assert exc["usage"]["stores"] == ["SH-001"]

    r = client.get("/v1/templates", headers=merchant.auth())
    assert r.status_code == 200
    items = r.json()["items"]
    assert [t["id"] for t in items] == [thr["id"], pct["id"], exc["id"]]
    assert items[1] == pct
    for t in (thr, pct, exc):
        r = client.get(f"/v1/templates/{t['id']}", headers=merchant.auth())
        assert r.status_code == 200 and r.json() == t

    r = client.get("/v1/templates/tpl_NOPE", headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (404, "template_not_found")


def test_issued_coupons_of_each_kind_give_their_discount(client, merchant):
    pct = create_template(client, merchant,
                          benefit={"kind": "percentage", "percent_off": 15, "cap": 1000})
    exc = create_template(client, merchant,
                          benefit={"kind": "exchange", "sku": "TEA-01", "price": 990})
    [p] = issue_http(client, merchant, pct["id"], count=1).json()["coupons"]
    [e] = issue_http(client, merchant, exc["id"], count=1).json()["coupons"]
    # 15 % of 12,800 is 1,920, capped at 1,000
    r = redeem_http(client, merchant, p["code"], "pct-1")
    assert r.status_code == 201, r.text
    assert r.json()["discount"] == 1000 and r.json()["template"]["kind"] == "percentage"
    lines = [{"sku": "TEA-01", "qty": 2, "unit_price": 1800}]
    r = client.post(
        "/v1/redemptions",
        json={"code": e["code"], "store": "SH-001", "order": order(3600, lines)},
        headers={**merchant.auth(), "Idempotency-Key": "exc-1"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["discount"] == 1800 - 990  # one unit at the fixed price 9.90
    assert r.json()["payable"] == 3600 - 810


def test_template_creation_refuses_bad_rules(client, merchant):
    r = client.post("/v1/templates", headers=merchant.auth(), json={
        "name": "x", "benefit": THRESHOLD,
        "validity": {"type": "fixed", "start": "2026-05-01T00:00:00+08:00",
                     "end": "2026-04-01T00:00:00+08:00"},
    })
    assert (r.status_code, r.json()["code"]) == (422, "invalid_template")
    r = client.post("/v1/templates", headers=merchant.auth(), json={
        "name": "x", "benefit": {"kind": "bogus"}, "validity": {"type": "relative", "days": 1},
    })
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")
    r = client.post("/v1/templates", headers=merchant.auth(merchant.store_keys["SH-001"]),
                    json={"name": "x", "benefit": THRESHOLD,
                          "validity": {"type": "relative", "days": 1}})
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    assert client.get("/v1/templates", headers=merchant.auth()).json()["items"] == []


# --- validity windows --------------------------------------------------------------------


def test_relative_window_ends_at_local_midnight_in_shanghai(client, merchant, clock):
    tpl = create_template(client, merchant, validity={"type": "relative", "days": 1})["id"]
    # 00:30 on 11 March in Shanghai is still 10 March in UTC: the local date counts.
    clock.now = datetime(2026, 3, 10, 16, 30, tzinfo=UTC)
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    assert _utc(c["valid_from"]) == clock.now
    assert _utc(c["valid_until"]) == datetime(2026, 3, 11, 16, 0, tzinfo=UTC)  # 12 Mar 00:00 +8
    # 23:30 on 10 March in Shanghai: a one-day coupon lasts until local midnight, 30 minutes
    clock.now = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    assert _utc(c["valid_until"]) == datetime(2026, 3, 10, 16, 0, tzinfo=UTC)

    tpl30 = create_template(client, merchant, validity={"type": "relative", "days": 30})["id"]
    clock.now = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 on 10 March in Shanghai
    [c] = issue_http(client, merchant, tpl30, count=1).json()["coupons"]
    assert _utc(c["valid_until"]) == datetime(2026, 4, 8, 16, 0, tzinfo=UTC)  # 9 Apr 00:00 +8
    r = client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth())
    assert _utc(r.json()["valid_until"]) == datetime(2026, 4, 8, 16, 0, tzinfo=UTC)
    assert _utc(r.json()["valid_from"]) == clock.now


def test_relative_window_with_delayed_start(client, merchant, clock):
    tpl = create_template(
        client, merchant, validity={"type": "relative", "days": 3, "start_after_days": 2}
    )["id"]
    clock.now = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)  # 04:00 on 2 June in Shanghai
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    assert _utc(c["valid_from"]) == datetime(2026, 6, 3, 16, 0, tzinfo=UTC)  # 4 Jun 00:00 +8
    assert _utc(c["valid_until"]) == datetime(2026, 6, 6, 16, 0, tzinfo=UTC)  # 7 Jun 00:00 +8
    r = redeem_http(client, merchant, c["code"], "early")
    assert (r.status_code, r.json()["code"]) == (422, "coupon_not_yet_valid")
    clock.now = datetime(2026, 6, 3, 16, 0, tzinfo=UTC)
    assert redeem_http(client, merchant, c["code"], "on-time").status_code == 201


def test_fixed_window(client, merchant, clock):
    clock.now = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)
    tpl = create_template(client, merchant, validity={
        "type": "fixed", "start": "2026-04-01T00:00:00+08:00", "end": "2026-05-01T00:00:00+08:00",
    })
    v = tpl["validity"]
    assert v["type"] == "fixed"
    assert _at(v["start"]) == datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
    assert _at(v["end"]) == datetime(2026, 4, 30, 16, 0, tzinfo=UTC)
    [c] = issue_http(client, merchant, tpl["id"], count=1).json()["coupons"]
    assert c["valid_from"] == "2026-03-31T16:00:00.000Z"
    assert c["valid_until"] == "2026-04-30T16:00:00.000Z"
    # the same window whenever it is issued
    clock.now = datetime(2026, 4, 10, 4, 0, tzinfo=UTC)
    [c2] = issue_http(client, merchant, tpl["id"], count=1).json()["coupons"]
    assert (c2["valid_from"], c2["valid_until"]) == (c["valid_from"], c["valid_until"])
    r = client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth())
    assert r.json()["status"] == "issued"
    clock.now = datetime(2026, 4, 30, 16, 0, tzinfo=UTC)  # end is exclusive
    assert client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth()).json()["status"] == (
        "expired"
    )


# --- pause / resume ------------------------------------------------------------------------


def test_pause_stops_issuing_but_not_redeeming_and_resume(client, db, merchant):
    tpl = create_template(client, merchant)["id"]
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    r = client.post(f"/v1/templates/{tpl}/pause", headers=merchant.auth())
    assert r.status_code == 200 and r.json()["status"] == "paused"
    assert client.get(f"/v1/templates/{tpl}", headers=merchant.auth()).json()["status"] == "paused"
    r = issue_http(client, merchant, tpl, count=1)
    assert (r.status_code, r.json()["code"]) == (409, "template_paused")
    r = issue_http(client, merchant, tpl, customers=["M0001"])
    assert (r.status_code, r.json()["code"]) == (409, "template_paused")
    assert issued_count(client, merchant, tpl) == 1 and coupons_of(db, tpl) == 1
    # the coupon issued before the pause still works
    r = redeem_http(client, merchant, c["code"], "paused-1")
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/templates/{tpl}/resume", headers=merchant.auth())
    assert r.status_code == 200 and r.json()["status"] == "active"
    r = issue_http(client, merchant, tpl, count=2)
    assert r.status_code == 201 and r.json()["issued"] == 2
    assert issued_count(client, merchant, tpl) == 3
    with db.connect() as conn:
        types = conn.execute(
            select(outbox_events.c.type).where(outbox_events.c.type.like("template.%"))
            .order_by(outbox_events.c.seq)
        ).scalars().all()
    assert types == ["template.created", "template.paused", "template.resumed"]


# --- issuing ------------------------------------------------------------------------------


def test_issue_unassigned_and_to_customers(client, db, merchant, clock):
    tpl = create_template(client, merchant)["id"]
    r = issue_http(client, merchant, tpl, count=3, channel="app")
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["template_id"] == tpl and out["issued"] == 3 and len(out["coupons"]) == 3
    assert all(c["customer"] is None and c["channel"] == "app" for c in out["coupons"])
    r = issue_http(client, merchant, tpl, customers=["M0001", "M0002"])
    assert r.status_code == 201, r.text
    assert [c["customer"] for c in r.json()["coupons"]] == ["M0001", "M0002"]
    code = r.json()["coupons"][1]["code"]
    look = client.get(f"/v1/coupons/{code}", headers=merchant.auth()).json()
    assert look["holder"] == "M0002" and look["status"] == "issued"
    assert issued_count(client, merchant, tpl) == 5 and coupons_of(db, tpl) == 5
    r = issue_http(client, merchant, tpl)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")
    r = issue_http(client, merchant, "tpl_UNKNOWN", count=1)
    assert (r.status_code, r.json()["code"]) == (404, "template_not_found")


def test_unknown_customer_issues_nothing(client, db, merchant):
    tpl = create_template(client, merchant, total_quantity=100)["id"]
    issue_http(client, merchant, tpl, count=2)
    with db.connect() as conn:
        events_before = conn.execute(select(func.count()).select_from(outbox_events)).scalar_one()
    r = issue_http(client, merchant, tpl, customers=["M0001", "NOBODY", "M0002"])
    assert r.status_code == 422
    assert r.json()["code"] == "customer_not_found"
    assert r.json()["customers"] == ["NOBODY"]
    assert issued_count(client, merchant, tpl) == 2
    assert coupons_of(db, tpl) == 2
    with db.connect() as conn:
        events_after = conn.execute(select(func.count()).select_from(outbox_events)).scalar_one()
    assert events_after == events_before
    # stock was not consumed by the refused call: 98 are still left
    r = issue_http(client, merchant, tpl, count=99)
    assert (r.status_code, r.json()["remaining"]) == (409, 98)


def test_total_stock_is_enforced(client, db, merchant):
    tpl = create_template(client, merchant, total_quantity=5)["id"]
    assert issue_http(client, merchant, tpl, count=3).status_code == 201
    r = issue_http(client, merchant, tpl, count=3)
    assert r.status_code == 409
    assert r.json()["code"] == "template_out_of_stock" and r.json()["remaining"] == 2
    r = issue_http(client, merchant, tpl, customers=["M0001", "M0002", "M0003"])
    assert (r.status_code, r.json()["code"], r.json()["remaining"]) == (
        409, "template_out_of_stock", 2)
    assert issue_http(client, merchant, tpl, count=2).status_code == 201
    r = issue_http(client, merchant, tpl, count=1)
    assert (r.status_code, r.json()["remaining"]) == (409, 0)
    assert issued_count(client, merchant, tpl) == 5 and coupons_of(db, tpl) == 5


def test_per_customer_limit_across_calls_and_within_one(client, db, merchant):
    tpl = create_template(client, merchant, per_customer_limit=2)["id"]
    assert issue_http(client, merchant, tpl, customers=["M0001"]).status_code == 201
    assert issue_http(client, merchant, tpl, customers=["M0001", "M0002"]).status_code == 201
    r = issue_http(client, merchant, tpl, customers=["M0002", "M0001"])
    assert r.status_code == 409
    assert r.json()["code"] == "per_customer_limit_reached" and r.json()["limit"] == 2
    assert issued_count(client, merchant, tpl) == 3  # nothing issued, not even for M0002
    # within one call: three for M0003 exceeds 2
    r = issue_http(client, merchant, tpl, customers=["M0003", "M0003", "M0003"])
    assert (r.status_code, r.json()["code"]) == (409, "per_customer_limit_reached")
    r = issue_http(client, merchant, tpl, customers=["M0003", "M0003"])
    assert r.status_code == 201 and r.json()["issued"] == 2
    assert issued_count(client, merchant, tpl) == 5 and coupons_of(db, tpl) == 5
    # unassigned coupons are not counted against anyone
    assert issue_http(client, merchant, tpl, count=4).status_code == 201


def test_batch_of_ten_thousand_in_one_call(client, db, merchant):
    tpl = create_template(client, merchant)["id"]
    r = issue_http(client, merchant, tpl, count=10_000)
    assert r.status_code == 201, r.text[:500]
    out = r.json()
    assert out["issued"] == 10_000 and len(out["coupons"]) == 10_000
    codes = [c["code"] for c in out["coupons"]]
    assert len(set(codes)) == 10_000
    assert all(is_well_formed(c) for c in codes)
    assert issued_count(client, merchant, tpl) == 10_000
    with db.connect() as conn:
        n_events = conn.execute(
            select(func.count()).select_from(outbox_events)
            .where(outbox_events.c.type == "coupon.issued")
        ).scalar_one()
        n_distinct = conn.execute(
            select(func.count(func.distinct(outbox_events.c.coupon_id)))
            .where(outbox_events.c.type == "coupon.issued")
        ).scalar_one()
        stored = set(conn.execute(
            select(coupons.c.code).where(coupons.c.template_id == tpl)
        ).scalars())
    assert n_events == 10_000 and n_distinct == 10_000
    assert stored == set(codes)
    r = issue_http(client, merchant, tpl, count=10_001)
    assert (r.status_code, r.json()["code"]) == (422, "batch_too_large")


def test_issue_to_thousands_of_customers_in_one_call(client, db, merchant, clock):
    """A customers list larger than the 64 KiB redeem body limit, checked in chunks."""
    ids = [f"BULK-{i:05d}-member-of-the-club" for i in range(3000)]
    with db.begin() as conn:
        conn.execute(insert(customers), [
            {"id": f"cus_bulk{i}", "merchant_id": merchant.id, "external_id": x,
             "created_at": clock.now}
            for i, x in enumerate(ids)
        ])
    tpl = create_template(client, merchant, per_customer_limit=1)["id"]
    r = issue_http(client, merchant, tpl, customers=ids)
    assert r.status_code == 201, r.text[:300]
    assert r.json()["issued"] == 3000
    assert [c["customer"] for c in r.json()["coupons"]] == ids
    r = issue_http(client, merchant, tpl, customers=[*ids[:10], "M0001"])
    assert (r.status_code, r.json()["code"]) == (409, "per_customer_limit_reached")
    r = issue_http(client, merchant, tpl, customers=["M0001", *ids[2990:], "NOBODY"])
    assert (r.status_code, r.json()["code"]) == (422, "customer_not_found")
    assert issued_count(client, merchant, tpl) == 3000 and coupons_of(db, tpl) == 3000


# --- claim --------------------------------------------------------------------------------


def test_claim_gives_an_unassigned_coupon_once(client, db, merchant):
    tpl = create_template(client, merchant)["id"]
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    r = client.post(f"/v1/coupons/{c['code']}/claim", json={"customer": "M0003"},
                    headers=merchant.auth())
    assert r.status_code == 200, r.text
    assert r.json() == {"code": c["code"], "customer": "M0003", "status": "issued"}
    assert client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth()).json()["holder"] == (
        "M0003"
    )
    r = client.post(f"/v1/coupons/{c['code']}/claim", json={"customer": "M0004"},
                    headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (409, "coupon_already_claimed")
    r = client.post(f"/v1/coupons/{c['code']}/claim", json={"customer": "M0003"},
                    headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (409, "coupon_already_claimed")
    assert client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth()).json()["holder"] == (
        "M0003"
    )
    [c2] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    r = client.post(f"/v1/coupons/{c2['code']}/claim", json={"customer": "NOBODY"},
                    headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (422, "customer_not_found")
    assert client.get(f"/v1/coupons/{c2['code']}", headers=merchant.auth()).json()["holder"] is None


def test_claim_respects_per_customer_limit(client, merchant):
    tpl = create_template(client, merchant, per_customer_limit=1)["id"]
    issue_http(client, merchant, tpl, customers=["M0001"])
    a, b = issue_http(client, merchant, tpl, count=2).json()["coupons"]
    r = client.post(f"/v1/coupons/{a['code']}/claim", json={"customer": "M0001"},
                    headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (409, "per_customer_limit_reached")
    assert client.get(f"/v1/coupons/{a['code']}", headers=merchant.auth()).json()["holder"] is None
    r = client.post(f"/v1/coupons/{a['code']}/claim", json={"customer": "M0002"},
                    headers=merchant.auth())
    assert r.status_code == 200
    r = client.post(f"/v1/coupons/{b['code']}/claim", json={"customer": "M0002"},
                    headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (409, "per_customer_limit_reached")


# --- look-up, expiry and reversal -------------------------------------------------------------


def test_coupon_lookup_shows_holder_validity_status_and_history(client, merchant, clock):
    tpl = create_template(client, merchant, name="满100减20")["id"]
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    code = c["code"]
    issued_at = clock.now
    clock.advance(minutes=5)
    client.post(f"/v1/coupons/{code}/claim", json={"customer": "M0002"}, headers=merchant.auth())
    clock.advance(minutes=5)
    key = merchant.store_keys["SH-002"]
    r = client.post("/v1/redemptions", json={"code": code, "order": order(15000)},
                    headers={**merchant.auth(key), "Idempotency-Key": "look-1"})
    assert r.status_code == 201, r.text
    rid = r.json()["redemption_id"]
    redeemed_at = clock.now
    clock.advance(minutes=5)
    r = client.post(f"/v1/redemptions/{rid}/reversal", json={"reason": "refund"},
                    headers={**merchant.auth(), "Idempotency-Key": "look-rev"})
    assert r.status_code == 201, r.text

    # lower case with dashes (the display form) finds the same coupon
    shown = display(code).lower()
    assert "-" in shown
    r = client.get(f"/v1/coupons/{shown}", headers=merchant.auth())
    assert r.status_code == 200, r.text
    look = r.json()
    assert look["code"] == code and look["display_code"] == display(code)
    assert look["holder"] == "M0002"
    assert look["template"] == {"id": tpl, "name": "满100减20", "kind": "threshold"}
    assert look["status"] == "issued" and look["redemption_id"] is None
    assert _utc(look["issued_at"]) == issued_at
    assert _utc(look["valid_from"]) == issued_at
    assert _utc(look["valid_until"]) == _utc(c["valid_until"])
    hist = look["history"]
    assert [h["type"] for h in hist] == [
        "coupon.issued", "coupon.claimed", "coupon.redeemed", "coupon.redemption_reversed",
    ]
    assert _utc(hist[0]["at"]) == issued_at
    assert hist[1]["customer"] == "M0002"
    assert hist[2]["store"] == "SH-002" and hist[2]["redemption_id"] == rid
    assert hist[2]["discount"] == 2000 and _utc(hist[2]["at"]) == redeemed_at
    assert hist[3]["redemption_id"] == rid and hist[3]["reason"] == "refund"
    assert hist[3]["coupon_status"] == "issued"
    assert len({h["event_id"] for h in hist}) == 4

    r = client.get("/v1/coupons/not-a-code", headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (422, "code_malformed")


def test_status_reads_expired_after_valid_until(client, merchant, clock):
    tpl = create_template(client, merchant, validity={"type": "relative", "days": 2})["id"]
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    until = _utc(c["valid_until"])
    clock.now = until - timedelta(seconds=1)
    assert client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth()).json()["status"] == (
        "issued"
    )
    clock.now = until
    r = client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth())
    assert r.json()["status"] == "expired"
    r = redeem_http(client, merchant, c["code"], "late")
    assert (r.status_code, r.json()["code"]) == (422, "coupon_expired")


def test_reversal_after_window_closed_expires_the_coupon(client, db, merchant, clock):
    tpl = create_template(client, merchant, validity={"type": "relative", "days": 1})["id"]
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    r = redeem_http(client, merchant, c["code"], "exp-1")
    assert r.status_code == 201, r.text
    rid = r.json()["redemption_id"]
    clock.now = _utc(c["valid_until"]) + timedelta(minutes=1)
    r = client.post(f"/v1/redemptions/{rid}/reversal",
                    headers={**merchant.auth(), "Idempotency-Key": "exp-rev"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "reversed" and r.json()["coupon_status"] == "expired"
    look = client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth()).json()
    assert look["status"] == "expired"
    with db.connect() as conn:
        assert conn.execute(
            select(coupons.c.status).where(coupons.c.code == c["code"])
        ).scalar_one() == "expired"
    r = redeem_http(client, merchant, c["code"], "exp-2")
    assert (r.status_code, r.json()["code"]) == (422, "coupon_expired")


def test_reversal_within_window_lets_the_coupon_be_redeemed_again(client, merchant, clock):
    tpl = create_template(client, merchant)["id"]
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    r = redeem_http(client, merchant, c["code"], "again-1")
    assert r.status_code == 201, r.text
    rid = r.json()["redemption_id"]
    r = redeem_http(client, merchant, c["code"], "again-2")
    assert (r.status_code, r.json()["code"]) == (409, "coupon_already_redeemed")
    clock.advance(hours=1)
    r = client.post(f"/v1/redemptions/{rid}/reversal",
                    headers={**merchant.auth(), "Idempotency-Key": "again-rev"})
    assert r.status_code == 201 and r.json()["coupon_status"] == "issued"
    assert client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth()).json()["status"] == (
        "issued"
    )
    clock.advance(minutes=1)
    r = redeem_http(client, merchant, c["code"], "again-3", store="BJ-001")
    assert r.status_code == 201, r.text
    assert r.json()["redemption_id"] != rid
    look = client.get(f"/v1/coupons/{c['code']}", headers=merchant.auth()).json()
    assert look["status"] == "redeemed" and look["redemption_id"] == r.json()["redemption_id"]
    assert [h["type"] for h in look["history"]] == [
        "coupon.issued", "coupon.redeemed", "coupon.redemption_reversed", "coupon.redeemed",
    ]
    assert look["history"][-1]["store"] == "BJ-001"


# --- catalogue ------------------------------------------------------------------------------


def test_merchant(client, merchant):
    r = client.get("/v1/merchant", headers=merchant.auth())
    assert r.status_code == 200
    assert r.json()["id"] == merchant.id
    assert r.json()["name"] == "Test Tea" and r.json()["timezone"] == "Asia/Shanghai"
    r = client.get("/v1/merchant", headers=merchant.auth(merchant.store_keys["BJ-001"]))
    assert r.status_code == 200 and r.json()["id"] == merchant.id
    assert client.get("/v1/merchant").status_code == 401


def test_stores_create_list_and_duplicates(client, merchant):
    r = client.post("/v1/stores", json={"code": "GZ-001", "name": "Guangzhou"},
                    headers=merchant.auth())
    assert r.status_code == 201, r.text
    assert r.json()["code"] == "GZ-001" and r.json()["name"] == "Guangzhou"
    r = client.post("/v1/stores", json={"code": "GZ-001", "name": "Again"},
                    headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (409, "already_exists")
    items = client.get("/v1/stores", headers=merchant.auth()).json()["items"]
    assert [s["code"] for s in items] == ["BJ-001", "GZ-001", "SH-001", "SH-002"]
    assert next(s for s in items if s["code"] == "GZ-001")["name"] == "Guangzhou"
    own = client.get("/v1/stores", headers=merchant.auth(merchant.store_keys["SH-002"]))
    assert [s["code"] for s in own.json()["items"]] == ["SH-002"]
    r = client.post("/v1/stores", json={"code": "XX-1", "name": "x"},
                    headers=merchant.auth(merchant.store_keys["SH-002"]))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")


def test_products_create_list_and_duplicates(client, merchant):
    for sku, cat, price in (("TEA-02", "drinks", 2200), ("BAK-01", "bakery", 900)):
        r = client.post("/v1/products", headers=merchant.auth(),
                        json={"sku": sku, "name": sku.lower(), "category": cat, "price": price})
        assert r.status_code == 201, r.text
    r = client.post("/v1/products", headers=merchant.auth(),
                    json={"sku": "TEA-02", "name": "dup", "category": "drinks", "price": 1})
    assert (r.status_code, r.json()["code"]) == (409, "already_exists")
    items = client.get("/v1/products", headers=merchant.auth()).json()["items"]
    assert items == [
        {"sku": "BAK-01", "name": "bak-01", "category": "bakery", "price": 900},
        {"sku": "TEA-02", "name": "tea-02", "category": "drinks", "price": 2200},
    ]
    r = client.post("/v1/products", headers=merchant.auth(),
                    json={"sku": "X", "name": "x", "category": "c", "price": -1})
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")


def test_customers_create_list_and_duplicates(client, merchant):
    r = client.post("/v1/customers", headers=merchant.auth(),
                    json={"external_id": "VIP-9", "name": "王芳", "phone": "13800000000"})
    assert r.status_code == 201, r.text
    assert r.json() == {"external_id": "VIP-9", "name": "王芳", "phone": "13800000000"}
    r = client.post("/v1/customers", headers=merchant.auth(), json={"external_id": "VIP-9"})
    assert (r.status_code, r.json()["code"]) == (409, "already_exists")
    items = client.get("/v1/customers", headers=merchant.auth()).json()["items"]
    assert [c["external_id"] for c in items] == ["M0001", "M0002", "M0003", "M0004", "M0005",
                                                 "VIP-9"]
    assert items[-1]["name"] == "王芳"
    page = client.get("/v1/customers?limit=2&after=M0002", headers=merchant.auth()).json()
    assert [c["external_id"] for c in page["items"]] == ["M0003", "M0004"]
    # a new customer can receive coupons at once
    tpl = create_template(client, merchant)["id"]
    r = issue_http(client, merchant, tpl, customers=["VIP-9"])
    assert r.status_code == 201 and r.json()["coupons"][0]["customer"] == "VIP-9"


def test_catalogue_is_scoped_by_merchant(client, db, merchant, clock):
    from tests.conftest import make_merchant

    other = make_merchant(db, clock.now, name="Other", stores=("SZ-001",), customers=1)
    tpl = create_template(client, merchant)["id"]
    [c] = issue_http(client, merchant, tpl, count=1).json()["coupons"]
    assert client.get("/v1/templates", headers=other.auth()).json()["items"] == []
    r = client.get(f"/v1/templates/{tpl}", headers=other.auth())
    assert r.status_code == 404
    r = client.get(f"/v1/coupons/{c['code']}", headers=other.auth())
    assert (r.status_code, r.json()["code"]) == (404, "coupon_not_found")
    assert [s["code"] for s in client.get("/v1/stores", headers=other.auth()).json()["items"]] == [
        "SZ-001"
    ]
    # the same store code may exist at two merchants
    r = client.post("/v1/stores", json={"code": "SH-001", "name": "x"}, headers=other.auth())
    assert r.status_code == 201
    with db.connect() as conn:
        n = conn.execute(select(func.count()).select_from(coupon_templates)).scalar_one()
    assert n == 1


def test_claim_refuses_coupons_that_cannot_be_used(client, merchant, clock):
    tpl = create_template(client, merchant)["id"]
    voided, redeemed, expiring = (c["code"] for c in
                                  issue_http(client, merchant, tpl, count=3).json()["coupons"])
    assert client.post(f"/v1/coupons/{voided}/void", headers=merchant.auth()).status_code == 200
    assert redeem_http(client, merchant, redeemed, "claim-r").status_code == 201
    for code, expected in ((voided, "coupon_voided"), (redeemed, "coupon_already_redeemed")):
        r = client.post(f"/v1/coupons/{code}/claim", json={"customer": "M0001"},
                        headers=merchant.auth())
        assert (r.status_code, r.json()["code"]) == (409, expected)
    clock.advance(days=31)
    r = client.post(f"/v1/coupons/{expiring}/claim", json={"customer": "M0001"},
                    headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (422, "coupon_expired")
    assert client.get(f"/v1/coupons/{expiring}", headers=merchant.auth()).json()["holder"] is None


def test_issue_needs_exactly_one_of_count_and_customers(client, merchant):
    tpl = create_template(client, merchant)["id"]
    for body in ({"count": 2, "customers": ["M0001"]}, {}, {"customers": []},
                 {"count": 1, "customers": []}):
        r = issue_http(client, merchant, tpl, **body)
        assert (r.status_code, r.json()["code"]) == (422, "invalid_request"), body
    assert issued_count(client, merchant, tpl) == 0

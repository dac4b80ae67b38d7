"""POST /v1/orders/quote: the customer's wallet or the codes sent as candidates, each
judged alone, and the best combination under the stacking rules (both backends)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar.testing import TestClient
from sqlalchemy import Engine, func, select

from hub.api.app import create_app
from hub.db.schema import (
    coupons,
    failed_attempts,
    idempotency_keys,
    outbox_events,
    redemptions,
    throttle_blocks,
)
from hub.domain.cart import Line, Order
from hub.domain.codes import generate_code
from hub.domain.combination import Candidate
from hub.domain.quote import best_combination
from hub.domain.redeeming import CouponFacts, RedeemContext
from hub.domain.state import CouponState
from hub.domain.template_codec import template_from_dict
from hub.domain.validity import Window
from hub.services import keys
from hub.services.guard import Guard, Limits
from hub.services.quote import MAX_CODES
from hub.services.settings import Settings
from tests.conftest import THRESHOLD_SPEC, issue, make_template, order

URL = "/v1/orders/quote"
DAYS_30 = {"type": "relative", "days": 30}
# 满100减20 that combines with a 折扣; 9折 that combines with a 满减; an exclusive 满100减30
COMBINING_THRESHOLD = {**THRESHOLD_SPEC, "stacking": {"combines_with": ["percentage"]}}
COMBINING_PERCENT = {
    "benefit": {"kind": "percentage", "percent_off": 10},
    "validity": DAYS_30,
    "stacking": {"combines_with": ["threshold"], "max_per_order": 2},
}
EXCLUSIVE_30 = {"benefit": {"kind": "threshold", "threshold": 10000, "discount": 3000},
                "validity": DAYS_30}
EXCLUSIVE_40 = {"benefit": {"kind": "threshold", "threshold": 10000, "discount": 4000},
                "validity": DAYS_30}


def quote(client: Any, auth: dict[str, str], **body: Any) -> Any:
    payload = {"store": "SH-001", "order": order(), **body}
    return client.post(URL, json={k: v for k, v in payload.items() if v is not None},
                       headers=auth)


def state_of(db: Engine) -> tuple[Any, ...]:
    """Everything a quote must leave alone (the guard's tables included: these quotes
    send no unknown code)."""
    with db.connect() as conn:
        return (
            conn.execute(select(coupons.c.code, coupons.c.status, coupons.c.version,
                                coupons.c.redemption_id).order_by(coupons.c.code)).all(),
            *(conn.execute(select(func.count()).select_from(t)).scalar()
              for t in (redemptions, outbox_events, idempotency_keys, failed_attempts,
                        throttle_blocks)),
        )


def key_failures(conn: Any) -> int:
    """Failures the guard counted against API keys (each is counted per address too)."""
    q = select(func.count()).where(failed_attempts.c.scope.startswith("key:"))
    return int(conn.execute(q).scalar_one())


def domain_best(
    specs: dict[str, dict[str, Any]], o: Order, now: Any
) -> tuple[tuple[str, ...], int]:
    """The domain's answer for ``specs`` (code -> template spec), for comparison."""
    cands = [
        Candidate(code, CouponFacts(CouponState.ISSUED, Window(now - timedelta(days=1),
                                                                now + timedelta(days=29)),
                                    template_from_dict(spec)))
        for code, spec in specs.items()
    ]
    got = best_combination(o, cands, RedeemContext("SH-001", "pos", now, ZoneInfo("Asia/Shanghai")))
    return got.best.codes, got.best.total


def test_the_wallet_quote_picks_the_best_allowed_combination(client, db, merchant, clock):
    now = clock.now
    thr = make_template(db, merchant, now, COMBINING_THRESHOLD)
    pct = make_template(db, merchant, now, COMBINING_PERCENT, name="9折")
    exc = make_template(db, merchant, now, EXCLUSIVE_30, name="满100减30")
    [c_thr] = issue(db, merchant, thr, now, customers=["M0001"])
    [c_pct] = issue(db, merchant, pct, now, customers=["M0001"])
    [c_exc] = issue(db, merchant, exc, now, customers=["M0001"])
    [c_used] = issue(db, merchant, exc, now, customers=["M0001"])
    [c_other] = issue(db, merchant, exc, now, customers=["M0002"])  # someone else's
    r = client.post("/v1/redemptions", json={"code": c_used, "store": "SH-001", "order": order()},
                    headers={**merchant.auth(), "Idempotency-Key": "used-1"})
    assert r.status_code == 201, r.text
    before = state_of(db)

    r = quote(client, merchant.auth(), customer="M0001")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["store"], body["channel"], body["customer"]) == ("SH-001", "pos", "M0001")
    assert {c["code"] for c in body["candidates"]} == {c_thr, c_pct, c_exc}  # usable, theirs
    alone = {c["code"]: c["discount"] for c in body["candidates"]}
    assert alone == {c_thr: 2000, c_pct: 1280, c_exc: 3000}
    assert all(c["usable"] and c["refusal"] is None for c in body["candidates"])
    best = body["best"]
    # 9折 first (12800 → 11520), then 满100减20 on what is left: 3280 beats 3000 alone
    assert best["codes"] == [c_pct, c_thr] and best["discount"] == 3280
    assert best["payable"] == 12800 - 3280 and best["exact"] is True
    assert [(s["code"], s["kind"], s["discount"]) for s in best["steps"]] == [
        (c_pct, "percentage", 1280), (c_thr, "threshold", 2000)]
    assert best["lines"] == []  # the order has no lines
    expected = domain_best({c_thr: COMBINING_THRESHOLD, c_pct: COMBINING_PERCENT,
                            c_exc: EXCLUSIVE_30}, Order("A-1001", 12800), now)
    assert (tuple(best["codes"]), best["discount"]) == expected
    assert c_other not in {c["code"] for c in body["candidates"]}
    assert state_of(db) == before  # a quote changes nothing


def test_explicit_codes_with_a_refusal_per_candidate_and_lines(client, db, merchant, clock):
    now = clock.now
    thr = make_template(db, merchant, now, COMBINING_THRESHOLD)
    pct = make_template(db, merchant, now, {**COMBINING_PERCENT, "usage": {"categories": ["tea"]}},
                        name="茶9折")
    far = make_template(db, merchant, now, {**THRESHOLD_SPEC, "usage": {"stores": ["SH-002"]}})
    [c_thr] = issue(db, merchant, thr, now)
    [c_pct] = issue(db, merchant, pct, now)
    [c_far] = issue(db, merchant, far, now)
    unknown, malformed = generate_code(), "NOT-A-CODE"
    lines = [{"sku": "TEA-01", "category": "tea", "qty": 2, "unit_price": 4000},
             {"sku": "CAKE-01", "category": "food", "qty": 1, "unit_price": 4800}]
    r = quote(client, merchant.auth(), order=order(12800, lines),
              codes=[c_far, unknown, c_pct, malformed, c_thr.lower()])
    assert r.status_code == 200, r.text
    body = r.json()
    got = [(c["code"], c["usable"], c["refusal"] and c["refusal"]["code"])
           for c in body["candidates"]]
    assert got == [
        (c_far, False, "store_not_allowed"),
        (unknown, False, "coupon_not_found"),
        (c_pct, True, None),
        (malformed, False, "code_malformed"),
        (c_thr, True, None),  # normalised
    ]
    by_code = {c["code"]: c for c in body["candidates"]}
    assert by_code[c_pct]["lines"] == [{"index": 0, "sku": "TEA-01", "discount": 800}]
    assert by_code[c_pct]["template"]["kind"] == "percentage"
    assert by_code[unknown]["template"] is None and by_code[unknown]["discount"] is None
    assert by_code[c_far]["refusal"]["message"]
    best = body["best"]
    assert best["codes"] == [c_pct, c_thr] and best["discount"] == 2800
    # the per-line breakdown: the 折扣 on the tea, the 满减 split over what was left
    tea, cake = best["lines"]
    assert tea["by_coupon"][0] == {"code": c_pct, "discount": 800}
    assert tea["discount"] + cake["discount"] == 2800
    assert [ln["payable"] for ln in best["lines"]] == [8000 - tea["discount"],
                                                      4800 - cake["discount"]]
    with db.connect() as conn:  # the two look-up failures are counted, as a validate's
        assert key_failures(conn) == 2


def test_exclusive_coupons_are_never_combined(client, db, merchant, clock):
    now = clock.now
    small = make_template(db, merchant, now, EXCLUSIVE_30, name="满100减30")
    big = make_template(db, merchant, now, EXCLUSIVE_40, name="满100减40")
    thr = make_template(db, merchant, now, COMBINING_THRESHOLD)
    pct = make_template(db, merchant, now, COMBINING_PERCENT, name="9折")
    codes = [issue(db, merchant, t, now)[0] for t in (small, big, thr, pct)]
    body = quote(client, merchant.auth(), codes=codes).json()
    # the exclusive 4000 alone beats 9折 + 满100减20 (3280); two exclusives never share
    assert body["best"]["codes"] == [codes[1]] and body["best"]["discount"] == 4000
    body = quote(client, merchant.auth(), codes=codes[:2]).json()
    assert body["best"]["codes"] == [codes[1]]
    # two combining 满减 coupons: 满减 is not in their own combines_with, so one only
    [other_thr] = issue(db, merchant, thr, now)
    body = quote(client, merchant.auth(), codes=[codes[2], other_thr]).json()
    assert len(body["best"]["codes"]) == 1 and body["best"]["discount"] == 2000


def test_a_store_key_quotes_at_its_own_store_only(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now, {**THRESHOLD_SPEC,
                                                  "usage": {"stores": ["SH-001"]}})
    [code] = issue(db, merchant, tpl, clock.now, customers=["M0003"])
    store = merchant.auth(merchant.store_keys["SH-001"])
    r = quote(client, store, store=None, customer="M0003")
    assert r.status_code == 200 and r.json()["store"] == "SH-001", r.text
    assert r.json()["best"]["codes"] == [code]
    r = quote(client, store, store="SH-002", codes=[code])
    assert r.status_code == 403 and r.json()["code"] == "store_forbidden", r.text
    other = merchant.auth(merchant.store_keys["SH-002"])
    r = quote(client, other, store=None, codes=[code])
    assert r.json()["candidates"][0]["refusal"]["code"] == "store_not_allowed"
    assert r.json()["best"]["codes"] == []


def test_an_app_key_quotes_on_its_channels_only(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now, customers=["M0004"])
    app = merchant.auth(keys.create_key(db, merchant.id, "app", clock.now,
                                        channels=["mini_program"]).token)
    r = quote(client, app, customer="M0004", channel="mini_program")
    assert r.status_code == 200 and r.json()["best"]["codes"] == [code], r.text
    r = quote(client, app, customer="M0004", channel="pos")
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    for role in ("analyst", "integrator"):
        key = merchant.auth(keys.create_key(db, merchant.id, role, clock.now).token)
        r = quote(client, key, customer="M0004")
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (role, r.text)


def test_refusals_of_the_request(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    admin = merchant.auth()

    def problem(r: Any) -> tuple[int, str]:
        return r.status_code, r.json()["code"]

    assert problem(quote(client, admin, codes=[code, code])) == (422, "duplicate_coupon")
    # the same code decorated two ways is the same coupon
    assert problem(quote(client, admin, codes=[code, code.lower()])) == (422, "duplicate_coupon")
    many = [generate_code() for _ in range(MAX_CODES + 1)]
    assert problem(quote(client, admin, codes=many)) == (422, "too_many_coupons")
    assert problem(quote(client, admin)) == (422, "invalid_request")  # no codes, no customer
    assert problem(quote(client, admin, customer="NOBODY")) == (404, "not_found")
    assert problem(quote(client, admin, customer="NOBODY", codes=[code])) == (404, "not_found")
    assert problem(quote(client, admin, store=None, codes=[code])) == (422, "store_required")
    assert problem(quote(client, admin, store="XX-9", codes=[code])) == (422, "store_not_found")
    assert problem(quote(client, admin, channel="fax", codes=[code])) == (422, "invalid_request")
    assert quote(client, admin, codes=[]).json()["best"]["discount"] == 0
    with db.connect() as conn:  # nothing looked up was unknown: nothing counted
        assert key_failures(conn) == 0


def test_each_unknown_code_counts_and_the_limit_blocks_the_whole_quote(db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [real] = issue(db, merchant, tpl, clock.now)
    guard = Guard(Limits(max_per_key=3, max_per_address=0))
    auth = merchant.auth(merchant.store_keys["SH-001"])
    with TestClient(create_app(db, Settings(guard=guard), clock=clock)) as client:
        r = quote(client, auth, store=None, codes=[generate_code(), real, generate_code()])
        assert r.status_code == 200, r.text
        assert [c["usable"] for c in r.json()["candidates"]] == [False, True, False]
        r = quote(client, auth, store=None, codes=[real, generate_code(), generate_code()])
        assert r.status_code == 429 and r.json()["code"] == "too_many_failed_attempts", r.text
        r = quote(client, auth, store=None, codes=[real])  # a real code is refused too
        assert r.status_code == 429, r.text
    with db.connect() as conn:
        assert key_failures(conn) == 3


def test_fifty_lines_and_an_exchange_first(client, db, merchant, clock):
    now = clock.now
    gift_spec = {"benefit": {"kind": "exchange", "sku": "SKU-07"}, "validity": DAYS_30,
                 "stacking": {"combines_with": ["threshold", "percentage"]}}
    thr_spec = {**THRESHOLD_SPEC, "stacking": {"combines_with": ["exchange", "percentage"]}}
    gift = make_template(db, merchant, now, gift_spec, name="送一杯")
    thr = make_template(db, merchant, now, thr_spec)
    codes = [issue(db, merchant, t, now, customers=["M0005"])[0] for t in (gift, thr)]
    lines = [{"sku": f"SKU-{i:02d}", "qty": 1, "unit_price": 1000} for i in range(50)]
    r = quote(client, merchant.auth(), customer="M0005", order=order(50000, lines))
    best = r.json()["best"]
    assert best["codes"] == codes  # exchange first, 满减 last
    assert best["discount"] == 1000 + 2000 and len(best["lines"]) == 50
    o = Order("A-1001", 50000, tuple(Line(ln["sku"], 1, 1000) for ln in lines))
    specs = {codes[0]: gift_spec, codes[1]: thr_spec}
    assert (tuple(best["codes"]), best["discount"]) == domain_best(specs, o, now)


def test_templates_say_their_stacking(client, merchant):
    base = {"name": "满100减20", "benefit": {"kind": "threshold", "threshold": 10000,
                                           "discount": 2000}, "validity": DAYS_30}
    r = client.post("/v1/templates", json=base, headers=merchant.auth())
    assert r.status_code == 201, r.text
    assert r.json()["stacking"] == {"combines_with": [], "max_per_order": 1}  # exclusive
    r = client.post("/v1/templates", headers=merchant.auth(), json={
        **base, "stacking": {"combines_with": ["threshold", "percentage"], "max_per_order": 3}})
    assert r.status_code == 201, r.text
    read = client.get(f"/v1/templates/{r.json()['id']}", headers=merchant.auth()).json()
    assert read["stacking"] == {"combines_with": ["threshold", "percentage"], "max_per_order": 3}
    r = client.post("/v1/templates", headers=merchant.auth(),
                    json={**base, "stacking": {"combines_with": ["voucher"]}})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
    r = client.post("/v1/templates", headers=merchant.auth(),
                    json={**base, "stacking": {"max_per_order": 2}})
    assert r.status_code == 422 and r.json()["code"] == "invalid_template", r.text

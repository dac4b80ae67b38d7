"""The synthetic history (hub.synthetic.history): deterministic by seed, consistent with
the hub's own rules, and the customers' habits show in it."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest

from hub.domain.codes import is_well_formed
from hub.domain.errors import DomainError
from hub.domain.redeeming import CouponFacts, RedeemContext, check_redeemable
from hub.domain.state import CouponState
from hub.domain.validity import Window
from hub.synthetic import History, generate
from hub.synthetic.seeds import from_seeds, seed_inputs

END = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)
DAYS = 42


@cache
def _history(seed: int = 7, customers: int = 400) -> History:
    return from_seeds(seed, customers=customers, days=DAYS, end=END)


def test_same_seed_same_history_other_seed_another():
    a, b = _history(), from_seeds(7, customers=400, days=DAYS, end=END)
    assert a == b
    c = from_seeds(8, customers=400, days=DAYS, end=END)
    assert c.redemptions != a.redemptions and c.coupons != a.coupons


def test_it_is_busy_enough_for_a_dashboard():
    h = _history()
    assert len(h.customers) == 400
    assert len(h.redemptions) > 200 and len(h.sales) > 1000 and len(h.coupons) > 600
    assert {r.store_code for r in h.redemptions} == set(seed_inputs().stores)
    assert {r.template_key for r in h.redemptions} == set(seed_inputs().templates)
    assert {c.campaign is None for c in h.coupons} == {True, False}  # pushed and claimed
    assert 0 < sum(r.reversed_at is not None for r in h.redemptions) < 0.05 * len(h.redemptions)
    assert any(c.churned_at for c in h.customers)


def test_known_customers_come_first_and_ids_are_unique():
    h = _history()
    known = seed_inputs().known
    assert [c.external_id for c in h.customers[: len(known)]] == [k[0] for k in known]
    assert all(c.seeded for c in h.customers[: len(known)])
    assert not any(c.seeded for c in h.customers[len(known):])
    assert len({c.external_id for c in h.customers}) == len(h.customers)
    orders = [r.order_id for r in h.redemptions] + [s.order_id for s in h.sales]
    assert len(set(orders)) == len(orders)
    codes = [c.code for c in h.coupons]
    assert len(set(codes)) == len(codes) and all(is_well_formed(c) for c in codes)


def test_every_redemption_is_one_the_hub_would_grant():
    h = _history()
    inp = seed_inputs()
    coupons = {c.code: c for c in h.coupons}
    used = Counter(r.code for r in h.redemptions)
    assert max(used.values()) == 1  # no coupon redeemed twice
    for r in h.redemptions:
        c = coupons[r.code]
        assert c.customer == r.customer and c.template_key == r.template_key
        assert h.start <= c.issued_at <= r.occurred_at < h.end
        assert c.valid_from <= r.occurred_at < c.valid_until
        if c.claimed_at is not None:
            assert c.claimed_at <= r.occurred_at
        assert isinstance(r.order_amount, int) and isinstance(r.discount, int)
        assert 0 < r.discount <= r.order_amount
        assert r.order_amount == sum(ln.amount for ln in r.order.lines or ())
        if r.reversed_at is not None:
            assert r.occurred_at < r.reversed_at < h.end
        # the discount is the one the redeem decision gives
        facts = CouponFacts(
            CouponState.ISSUED, Window(c.valid_from, c.valid_until), inp.templates[c.template_key]
        )
        d = check_redeemable(facts, RedeemContext(r.store_code, r.channel, r.occurred_at, inp.tz),
                             r.order)  # fmt: skip
        assert d == r.detail and d.total == r.discount


def test_sales_are_whole_fen_inside_the_period():
    h = _history()
    for s in h.sales:
        assert isinstance(s.amount, int) and s.amount > 0
        assert h.start <= s.occurred_at < h.end


def test_per_customer_limits_hold_with_what_is_already_held():
    inp = seed_inputs()
    held = {(k[0], name): 1 for k in inp.known[:20] for name in inp.templates}
    h = from_seeds(3, customers=200, days=DAYS, end=END, held=held)
    counts = Counter((c.customer, c.template_key) for c in h.coupons)
    for (cust, key), n in counts.items():
        limit = inp.templates[key].per_customer_limit
        if limit is not None:
            assert n + held.get((cust, key), 0) <= limit


def test_store_limited_templates_go_to_customers_who_can_use_them():
    h = _history()
    inp = seed_inputs()
    people = {c.external_id: c for c in h.customers}
    for c in h.coupons:
        allowed = inp.templates[c.template_key].usage.stores
        if allowed:
            p = people[c.customer]
            assert {p.home_store, p.second_store} & allowed


def test_habits_show_home_store_channel_and_kind():
    h = _history(11, 800)
    people = {c.external_id: c for c in h.customers}
    inp = seed_inputs()
    # in-store orders are mostly at the home store
    pos = [(s.customer, s.store_code) for s in h.sales if s.channel == "pos"] + [
        (r.customer, r.store_code) for r in h.redemptions if r.channel == "pos"]
    home = sum(people[c].home_store == st for c, st in pos)
    assert home / len(pos) > 0.6
    # a customer orders through their channels only, in-store-only ones at the till
    for s in h.sales:
        assert s.channel in people[s.customer].channels
    # coupons of the most liked kind are used more often than those of the least liked
    got: dict[int, list[bool]] = defaultdict(list)
    used = {r.code for r in h.redemptions}
    for c in h.coupons:
        kind = inp.templates[c.template_key].kind
        got[people[c.customer].kinds.index(kind)].append(c.code in used)
    rate = {rank: sum(v) / len(v) for rank, v in got.items()}
    assert rate[0] > rate[2] * 1.5


def test_weekends_are_busier_and_lagging_stores_redeem_less():
    h = _history(11, 800)
    inp = seed_inputs()
    per_day = Counter(s.occurred_at.astimezone(inp.tz).isoweekday() for s in h.sales)
    per_day.update(r.occurred_at.astimezone(inp.tz).isoweekday() for r in h.redemptions)
    assert per_day[6] > per_day[2] * 1.2 and per_day[7] > per_day[3] * 1.2
    # lunch and evening peaks
    hours = Counter(s.occurred_at.astimezone(inp.tz).hour for s in h.sales)
    assert hours[12] > hours[9] and hours[18] > hours[15]
    # coupons used per order at each store: the lagging one is clearly below the others
    orders = Counter(s.store_code for s in h.sales)
    reds = Counter(r.store_code for r in h.redemptions)
    orders.update(reds)
    share = {st: reds[st] / orders[st] for st in orders}
    [lagging] = h.lagging
    assert share[lagging] < 0.7 * min(v for st, v in share.items() if st != lagging)


def test_churned_customers_stop_ordering():
    h = _history(11, 800)
    people = {c.external_id: c for c in h.customers}
    for s in h.sales:
        p = people[s.customer]
        assert p.joined_at <= s.occurred_at
        assert p.churned_at is None or s.occurred_at < p.churned_at


def test_arguments_are_checked():
    inp = seed_inputs()
    kw = dict(customers=5, days=3, stores=inp.stores, templates=inp.templates,
              products=inp.products)  # fmt: skip
    with pytest.raises(ValueError):
        generate(1, end=datetime(2026, 1, 1), **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        generate(1, end=END, **{**kw, "stores": ()})  # type: ignore[arg-type]


def test_refused_redemptions_would_be_refused():
    """A sanity check of the check itself: the same order a day after the window fails."""
    h = _history()
    inp = seed_inputs()
    r = h.redemptions[0]
    c = next(c for c in h.coupons if c.code == r.code)
    facts = CouponFacts(
        CouponState.ISSUED, Window(c.valid_from, c.valid_until), inp.templates[c.template_key]
    )
    late = c.valid_until + timedelta(days=1)
    with pytest.raises(DomainError):
        check_redeemable(facts, RedeemContext(r.store_code, r.channel, late, inp.tz), r.order)

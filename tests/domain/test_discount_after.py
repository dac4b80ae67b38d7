"""The discount maths on what earlier coupons left: CartState, discount_after, step,
preview and the exchange bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.cart import Discount, Line, LineDiscount, Order
from hub.domain.discount import (
    CartState,
    compute_discount,
    covered_lines,
    discount_after,
    exchange_bound,
    preview,
    step,
)
from hub.domain.errors import DomainError
from hub.domain.templates import (
    ExchangeBenefit,
    PercentageBenefit,
    ThresholdBenefit,
    UsageRules,
)

from ._helpers import NO_DB, raises_code
from .support import order, template

TEA, CAKE = Line("TEA", 2, 500, "drinks"), Line("CAKE", 1, 2000, "food")


def test_fresh_state_is_the_order():
    assert CartState.of(order(TEA, CAKE)) == CartState((1000, 2000), (2, 1))
    assert CartState.of(order(TEA, CAKE)).payable == 3000
    assert CartState.of(Order("o", 700)) == CartState((700,), (0,))
    assert CartState.of(order(Line("X", 0, 100))).units == (0,)


def test_eligible_is_what_is_left_on_the_covered_lines():
    state = CartState((400, 0, 900), (1, 0, 3))
    assert state.eligible((0, 1, 2)) == 1300 == state.payable
    assert state.eligible((0, 2)) == 1300 and state.eligible((1,)) == 0
    assert state.eligible((0,)) == 400 and state.eligible(()) == 0


def test_covered_lines():
    o = order(TEA, CAKE, Line("COLA", 1, 300, "drinks"))
    assert covered_lines(o, UsageRules()) == (0, 1, 2)
    assert covered_lines(o, UsageRules(categories=frozenset({"drinks"}))) == (0, 2)
    assert covered_lines(o, UsageRules(skus=frozenset({"CAKE"}))) == (1,)
    assert covered_lines(Order("o", 5), UsageRules()) == ()


def test_discount_after_on_a_partly_discounted_cart_by_hand():
    # what is left: TEA 600, CAKE 1500 → 10 % of 2100 = 210 split 600 : 1500 = 60, 150
    o = order(TEA, CAKE)
    state = CartState((600, 1500), (2, 1))
    d, after = discount_after(template(PercentageBenefit(10)), o, state)
    assert d == Discount(210, 2100, (LineDiscount(0, "TEA", 60), LineDiscount(1, "CAKE", 150)))
    assert after == CartState((540, 1350), (2, 1))
    # 满 21.00 减 5.00 still applies (2100); 满 21.01 does not
    d, _ = discount_after(template(ThresholdBenefit(2100, 500)), o, state)
    assert d.total == 500
    with raises_code("threshold_not_met", threshold=2101, eligible_amount=2100):
        discount_after(template(ThresholdBenefit(2101, 500)), o, state)


def test_exchange_after_an_exchange_takes_the_units_left():
    o = order(TEA, CAKE)
    gift = template(ExchangeBenefit("TEA", qty=2))
    d, after = discount_after(gift, o, CartState((1000, 2000), (1, 1)))
    assert d == Discount(500, 3000, (LineDiscount(0, "TEA", 500),), units_given=1)
    assert after == CartState((500, 2000), (0, 1))
    with raises_code("exchange_item_missing", sku="TEA"):
        discount_after(gift, o, after)


def test_exchange_never_takes_more_than_is_left_of_the_line():
    # should an earlier coupon have discounted the line, the unit costs at most what is left
    o = order(TEA, CAKE)
    d, after = discount_after(template(ExchangeBenefit("TEA")), o, CartState((300, 2000), (2, 1)))
    assert d.lines == (LineDiscount(0, "TEA", 300),) and after.remaining == (0, 2000)


def test_exchange_bound_is_the_dearest_units():
    lines = (Line("TEA", 1, 100), Line("CAKE", 1, 50), Line("TEA", 3, 900))
    o = Order("o", sum(ln.amount for ln in lines), lines)
    assert exchange_bound(ExchangeBenefit("TEA"), UsageRules(), o) == 900
    assert exchange_bound(ExchangeBenefit("TEA", qty=2, price=100), UsageRules(), o) == 1600
    assert exchange_bound(ExchangeBenefit("TEA", qty=9), UsageRules(), o) == 2800
    assert exchange_bound(ExchangeBenefit("COLA"), UsageRules(), o) == 0
    assert exchange_bound(ExchangeBenefit("TEA"), UsageRules(skus=frozenset({"CAKE"})), o) == 0
    assert exchange_bound(ExchangeBenefit("TEA"), UsageRules(), Order("o", 5)) == 0
    # counted per line, not per unit: a billion units is no slower than one
    many = Order("o", 10**9 * 3, (Line("TEA", 10**9, 3),))
    assert exchange_bound(ExchangeBenefit("TEA", qty=10**9), UsageRules(), many) == 3 * 10**9


# --- properties ----------------------------------------------------------------------------

SKUS = ["A", "TEA"]
lines_st = st.lists(
    st.builds(Line, sku=st.sampled_from(SKUS), qty=st.integers(0, 4),
              unit_price=st.integers(0, 3000), category=st.sampled_from([None, "drinks"])),
    min_size=1, max_size=6,
)  # fmt: skip
benefits = st.one_of(
    st.builds(ThresholdBenefit, threshold=st.integers(0, 9000), discount=st.integers(1, 9000)),
    st.builds(PercentageBenefit, percent_off=st.integers(1, 99),
              threshold=st.integers(0, 9000), cap=st.none() | st.integers(1, 5000)),
    st.builds(ExchangeBenefit, sku=st.sampled_from(SKUS), qty=st.integers(1, 4),
              price=st.integers(0, 2000), threshold=st.integers(0, 9000)),
)  # fmt: skip
usages = st.sampled_from([{}, {"skus": frozenset({"TEA"})}, {"categories": frozenset({"drinks"})}])


@st.composite
def states(draw: st.DrawFn, lines: list[Line]) -> CartState:
    """Some state an order's lines may be in after earlier coupons."""
    remaining = tuple(draw(st.integers(0, ln.amount)) for ln in lines)
    units = tuple(draw(st.integers(0, max(0, ln.qty))) for ln in lines)
    return CartState(remaining, units)


@settings(NO_DB, max_examples=400, deadline=None)
@given(lines_st, benefits, usages, st.data())
def test_step_preview_and_discount_after_agree(lines, benefit, usage, data):
    o = order(*lines)
    t = template(benefit, **usage)
    state = data.draw(states(lines))
    idx = covered_lines(o, t.usage)
    try:
        d, after = discount_after(t, o, state)
    except DomainError as err:
        assert err.code in {"no_eligible_items", "threshold_not_met", "exchange_item_missing"}
        assert step(t, o, state, idx) is None and preview(t, o, state, idx) is None
        return
    assert step(t, o, state, idx) == (d.total, after)
    assert preview(t, o, state, idx) == d.total
    assert d.eligible_amount == state.eligible(idx)
    assert sum(ld.discount for ld in d.lines) == d.total
    for ld in d.lines:
        assert ld.index in idx and 0 <= ld.discount <= state.remaining[ld.index]
        assert after.remaining[ld.index] == state.remaining[ld.index] - ld.discount
    assert after.payable == state.payable - d.total
    assert all(u >= 0 for u in after.units) and all(r >= 0 for r in after.remaining)
    if isinstance(benefit, ExchangeBenefit):
        assert d.total <= exchange_bound(benefit, t.usage, o)
        assert sum(state.units) - sum(after.units) == d.units_given


@settings(NO_DB, max_examples=300, deadline=None)
@given(lines_st, benefits, usages)
def test_on_a_fresh_state_it_is_compute_discount(lines, benefit, usage):
    o, t = order(*lines), template(benefit, **usage)
    try:
        alone = compute_discount(t, o)
    except DomainError as err:
        with raises_code(err.code):
            discount_after(t, o, CartState.of(o))
        return
    assert discount_after(t, o, CartState.of(o))[0] == alone

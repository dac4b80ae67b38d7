"""Discount maths: allocation, rounding rule, product rules, exchange coupons."""

from __future__ import annotations

from datetime import time

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from hub.domain.cart import Discount, Line, LineDiscount, Order
from hub.domain.discount import allocate, check_order, compute_discount, covered
from hub.domain.errors import DomainError
from hub.domain.templates import (
    ExchangeBenefit,
    HourRange,
    PercentageBenefit,
    RelativeWindow,
    Template,
    ThresholdBenefit,
    UsageRules,
    check_template,
)

from ._helpers import NO_DB, raises_code

WINDOW = RelativeWindow(days=30)


def tpl(benefit, **usage) -> Template:
    return check_template(Template(benefit=benefit, validity=WINDOW, usage=UsageRules(**usage)))


def order(*lines: Line, amount: int | None = None) -> Order:
    total = sum(ln.amount for ln in lines) if amount is None else amount
    return Order(id="o-1", amount=total, lines=tuple(lines))


def shares(d: Discount) -> list[tuple[int, int]]:
    return [(ld.index, ld.discount) for ld in d.lines]


# --- cart ----------------------------------------------------------------------------------


def test_line_amount():
    assert Line("A", 3, 250).amount == 750
    assert Line("A", 1, 0).amount == 0
    assert Line("A", 2, 199, category="food").category == "food"
    assert Order("o", 10).lines is None
    assert Discount(total=0, eligible_amount=0).lines == ()


# --- allocate: hand-computed examples ------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "amounts", "expected"),
    [
        (0, [], []),
        (0, [0, 0], [0, 0]),
        (0, [100, 200], [0, 0]),
        (300, [100, 200], [100, 200]),  # total = sum: everyone gets all of their amount
        (5, [2, 3], [2, 3]),
        # 10 over 10,10,10: 3.33 each → floors 3,3,3, equal remainders → the earlier line gets it
        (10, [10, 10, 10], [4, 3, 3]),
        (1, [1, 1], [1, 0]),
        (2, [1, 1, 1], [1, 1, 0]),
        (2, [5, 5, 5, 5], [1, 1, 0, 0]),
        # 100 over 333,333,334 (of 1000): exact 33.3, 33.3, 33.4 → floors 33,33,33,
        # remainders 300,300,400 → the one fen left goes to the last line
        (100, [333, 333, 334], [33, 33, 34]),
        # 7 over 10,20,30 (of 60): exact 1.1667, 2.333, 3.5 → floors 1,2,3, one fen left,
        # remainders 10,20,30 → to the third line
        (7, [10, 20, 30], [1, 2, 4]),
        # 10 over 3,3,4 (of 10): exact → no remainder at all
        (10, [3, 3, 4], [3, 3, 4]),
        # 5 over 1,2,4 (of 7): exact 0.714, 1.429, 2.857 → floors 0,1,2, two fen left,
        # remainders 5,3,6 → the third, then the first line
        (5, [1, 2, 4], [1, 1, 3]),
        # zero-amount lines never get anything
        (3, [0, 4, 0, 2], [0, 2, 0, 1]),
        # 1 fen over 2,1: exact 0.667, 0.333 → goes to the larger remainder, the first line
        (1, [2, 1], [1, 0]),
        # 1 fen over 1,2: exact 0.333, 0.667 → goes to the second line (remainder wins over order)
        (1, [1, 2], [0, 1]),
    ],
)
def test_allocate_examples(total, amounts, expected):
    assert allocate(total, amounts) == expected


@pytest.mark.parametrize(("total", "amounts"), [(-1, [5]), (6, [5]), (1, []), (1, [0, 0])])
def test_allocate_rejects_total_out_of_range(total, amounts):
    with pytest.raises(ValueError, match="between 0 and the sum"):
        allocate(total, amounts)


def test_allocate_accepts_tuples():
    assert allocate(3, (1, 1, 1)) == [1, 1, 1]


amount_lists = st.lists(st.integers(0, 10**7), max_size=30)


@settings(NO_DB, max_examples=300)
@given(amount_lists, st.data())
def test_allocate_properties(amounts, data):
    total = data.draw(st.integers(0, sum(amounts)))
    result = allocate(total, amounts)
    assert len(result) == len(amounts)
    assert sum(result) == total
    whole = sum(amounts)
    for share, amount in zip(result, amounts, strict=True):
        assert 0 <= share <= amount
        if whole:
            # within one fen of the exact proportional share, rounded from the floor
            assert total * amount // whole <= share <= total * amount // whole + 1
    # larger amounts never get smaller shares
    for i, a in enumerate(amounts):
        for j, b in enumerate(amounts):
            if a < b:
                assert result[i] <= result[j]
            if a == b and i < j:
                assert result[i] >= result[j]


@NO_DB
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=20))
def test_allocate_full_total_gives_every_amount(amounts):
    assert allocate(sum(amounts), amounts) == amounts


# --- covered -------------------------------------------------------------------------------


def test_covered():
    none = UsageRules()
    by_sku = UsageRules(skus=frozenset({"TEA"}))
    by_cat = UsageRules(categories=frozenset({"drinks"}))
    both = UsageRules(skus=frozenset({"CAKE"}), categories=frozenset({"drinks"}))
    tea = Line("TEA", 1, 100, category="drinks")
    cola = Line("COLA", 1, 100, category="drinks")
    cake = Line("CAKE", 1, 100, category="food")
    bare = Line("BUN", 1, 100)
    assert all(covered(ln, none) for ln in (tea, cola, cake, bare))
    assert covered(tea, by_sku) and not covered(cola, by_sku) and not covered(bare, by_sku)
    assert covered(tea, by_cat) and covered(cola, by_cat)
    assert not covered(cake, by_cat) and not covered(bare, by_cat)
    assert covered(tea, both) and covered(cake, both) and not covered(bare, both)
    # store/channel/time rules are not product rules
    assert covered(bare, UsageRules(stores=frozenset({"S1"}), hours=(HourRange(time(1), time(2)),)))


# --- check_order ---------------------------------------------------------------------------


def test_lines_required_for_product_rules_and_exchange():
    no_lines = Order("o", 1000)
    for t in (
        tpl(ThresholdBenefit(0, 100), skus=frozenset({"A"})),
        tpl(PercentageBenefit(10), categories=frozenset({"c"})),
        tpl(ExchangeBenefit("A")),
    ):
        with raises_code("order_lines_required"):
            check_order(no_lines, t)
        with raises_code("order_lines_required"):
            compute_discount(t, no_lines)


def test_lines_optional_without_product_rules():
    check_order(Order("o", 1000), tpl(ThresholdBenefit(0, 100)))


def test_amount_mismatch():
    t = tpl(ThresholdBenefit(0, 100))
    bad = order(Line("A", 2, 300), Line("B", 1, 50), amount=700)
    with raises_code("order_amount_mismatch", amount=700, lines_total=650):
        compute_discount(t, bad)
    check_order(order(Line("A", 2, 300), Line("B", 1, 50), amount=650), t)


# --- threshold (满减) ------------------------------------------------------------------------


def test_threshold_without_lines():
    t = tpl(ThresholdBenefit(threshold=10000, discount=2000))
    assert compute_discount(t, Order("o", 10000)) == Discount(total=2000, eligible_amount=10000)
    assert compute_discount(t, Order("o", 25000)) == Discount(total=2000, eligible_amount=25000)


def test_threshold_boundary():
    t = tpl(ThresholdBenefit(threshold=10000, discount=2000))
    with raises_code("threshold_not_met", threshold=10000, eligible_amount=9999):
        compute_discount(t, Order("o", 9999))


def test_threshold_discount_never_above_eligible():
    t = tpl(ThresholdBenefit(threshold=0, discount=5000))
    assert compute_discount(t, Order("o", 1234)).total == 1234
    d = compute_discount(t, order(Line("A", 1, 1000), Line("B", 2, 117)))
    assert d.total == 1234
    assert shares(d) == [(0, 1000), (1, 234)]


def test_threshold_split_over_lines():
    # 满 100 减 20 over lines 60.00, 30.00, 15.00 (= 105.00): 2000 × (6000, 3000, 1500)/10500
    # = 1142.857, 571.428, 285.714 → floors 1142, 571, 285 (= 1998), 2 fen left,
    # remainders .857, .428, .714 → first line, then third line
    t = tpl(ThresholdBenefit(threshold=10000, discount=2000))
    d = compute_discount(t, order(Line("A", 1, 6000), Line("B", 2, 1500), Line("C", 1, 1500)))
    assert d.total == 2000 and d.eligible_amount == 10500
    assert shares(d) == [(0, 1143), (1, 571), (2, 286)]
    assert [ld.sku for ld in d.lines] == ["A", "B", "C"]


def test_threshold_tie_goes_to_earlier_line():
    t = tpl(ThresholdBenefit(threshold=0, discount=1))
    d = compute_discount(t, order(Line("A", 1, 100), Line("B", 1, 100)))
    assert shares(d) == [(0, 1), (1, 0)]
    t = tpl(ThresholdBenefit(threshold=0, discount=5))
    d = compute_discount(t, order(Line("A", 1, 100), Line("B", 1, 100), Line("C", 1, 100)))
    assert shares(d) == [(0, 2), (1, 2), (2, 1)]


def test_threshold_counts_only_eligible_lines():
    t = tpl(ThresholdBenefit(threshold=5000, discount=1000), categories=frozenset({"drinks"}))
    o = order(Line("CAKE", 1, 9000, "food"), Line("TEA", 1, 4000, "drinks"))
    with raises_code("threshold_not_met", threshold=5000, eligible_amount=4000):
        compute_discount(t, o)
    o = order(Line("CAKE", 1, 9000, "food"), Line("TEA", 2, 2500, "drinks"))
    d = compute_discount(t, o)
    assert d == Discount(1000, 5000, (LineDiscount(1, "TEA", 1000),))


# --- percentage (折扣) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "eligible", "expected"),
    [
        (15, 999, 149),  # 149.85 → 149 (floor, never more than 15%)
        (15, 1000, 150),
        (10, 9, 0),  # 0.9 → 0
        (33, 1, 0),
        (99, 1, 0),
        (99, 100, 99),
        (1, 199, 1),  # 1.99 → 1
        (50, 3, 1),  # 1.5 → 1
        (12, 12345, 1481),  # 1481.4 → 1481
    ],
)
def test_percentage_rounds_down(percent, eligible, expected):
    d = compute_discount(tpl(PercentageBenefit(percent)), Order("o", eligible))
    assert d == Discount(total=expected, eligible_amount=eligible)


def test_percentage_cap():
    t = tpl(PercentageBenefit(percent_off=20, cap=1500))
    assert compute_discount(t, Order("o", 10000)).total == 1500  # 2000 capped
    assert compute_discount(t, Order("o", 7500)).total == 1500  # exactly the cap
    assert compute_discount(t, Order("o", 7000)).total == 1400  # under the cap


def test_percentage_threshold():
    t = tpl(PercentageBenefit(percent_off=10, threshold=5000))
    with raises_code("threshold_not_met", threshold=5000, eligible_amount=4999):
        compute_discount(t, Order("o", 4999))
    assert compute_discount(t, Order("o", 5000)).total == 500


def test_percentage_split_over_lines_by_hand():
    # 10% of 1000 = 100 over 333, 333, 334 → 33.3, 33.3, 33.4 → 33, 33, 34
    t = tpl(PercentageBenefit(10))
    d = compute_discount(t, order(Line("A", 1, 333), Line("B", 1, 333), Line("C", 1, 334)))
    assert d.total == 100
    assert shares(d) == [(0, 33), (1, 33), (2, 34)]


def test_percentage_with_category_rules_by_hand():
    # 15% off drinks: TEA 2×450 = 900, COLA 3×300 = 900 → eligible 1800 → 270 → 135 + 135;
    # the CAKE line is not covered and gets nothing.
    t = tpl(PercentageBenefit(15), categories=frozenset({"drinks"}))
    o = order(Line("TEA", 2, 450, "drinks"), Line("CAKE", 1, 1200, "food"),
              Line("COLA", 3, 300, "drinks"))
    d = compute_discount(t, o)
    assert d == Discount(270, 1800, (LineDiscount(0, "TEA", 135), LineDiscount(2, "COLA", 135)))


def test_percentage_rounding_then_split_by_hand():
    # 8.5折 (15% off) of 3 × 3.33 + 1 × 0.01 = 1000 fen → 150, split 999 : 1
    # → 149.85, 0.15 → floors 149, 0; one fen left → first line (remainder .85 > .15)
    t = tpl(PercentageBenefit(15))
    d = compute_discount(t, order(Line("A", 3, 333), Line("B", 1, 1)))
    assert d.total == 150
    assert shares(d) == [(0, 150), (1, 0)]


def test_percentage_cap_then_split():
    # 50% of 30.00 = 15.00, capped at 10.00, split 1000 : 2000 → 333.3, 666.7 → 333, 667
    t = tpl(PercentageBenefit(50, cap=1000))
    d = compute_discount(t, order(Line("A", 1, 1000), Line("B", 1, 2000)))
    assert d.total == 1000
    assert shares(d) == [(0, 333), (1, 667)]


# --- eligibility ---------------------------------------------------------------------------


def test_no_eligible_items():
    t = tpl(ThresholdBenefit(0, 100), skus=frozenset({"TEA"}))
    with raises_code("no_eligible_items"):
        compute_discount(t, order(Line("CAKE", 1, 500)))
    # a covered line that costs nothing is not eligible either
    with raises_code("no_eligible_items"):
        compute_discount(t, order(Line("TEA", 1, 0), Line("CAKE", 1, 500)))
    # an empty list of lines has nothing eligible
    with raises_code("no_eligible_items"):
        compute_discount(tpl(ThresholdBenefit(0, 100)), Order("o", 0, ()))


def test_no_eligible_checked_before_threshold():
    t = tpl(ThresholdBenefit(threshold=100000, discount=100), skus=frozenset({"TEA"}))
    with raises_code("no_eligible_items"):
        compute_discount(t, order(Line("CAKE", 1, 500)))


def test_zero_amount_eligible_line_gets_zero():
    t = tpl(ThresholdBenefit(0, 100), skus=frozenset({"TEA"}))
    d = compute_discount(t, order(Line("TEA", 1, 0), Line("TEA", 1, 500)))
    assert shares(d) == [(0, 0), (1, 100)]


# --- exchange (兑换) -------------------------------------------------------------------------


def test_exchange_free_item():
    t = tpl(ExchangeBenefit("TEA"))
    o = order(Line("CAKE", 1, 1200), Line("TEA", 2, 450))
    d = compute_discount(t, o)
    assert d == Discount(450, 2100, (LineDiscount(1, "TEA", 450),), units_given=1)


def test_exchange_units_taken_from_lines_in_order_at_fixed_price():
    # 2 × TEA at 1.00: line 0 gives 1 unit (5.00 − 1.00), line 2 gives the 2nd unit
    # at its own price (6.00 − 1.00); line 3 is not touched
    t = tpl(ExchangeBenefit("TEA", qty=2, price=100))
    o = order(Line("TEA", 1, 500), Line("CAKE", 1, 1200), Line("TEA", 3, 600), Line("TEA", 1, 700))
    d = compute_discount(t, o)
    assert shares(d) == [(0, 400), (2, 500)]
    assert d.total == 900 and d.units_given == 2
    assert [ld.sku for ld in d.lines] == ["TEA", "TEA"]


def test_exchange_takes_what_is_there():
    t = tpl(ExchangeBenefit("TEA", qty=5))
    d = compute_discount(t, order(Line("TEA", 2, 450)))
    assert d.total == 900 and shares(d) == [(0, 900)]
    assert d.units_given == 2  # the event's gift says 2 units left the store, not 5


def test_exchange_price_above_unit_price_discounts_nothing():
    t = tpl(ExchangeBenefit("TEA", qty=1, price=800))
    d = compute_discount(t, order(Line("TEA", 1, 450), Line("CAKE", 1, 100)))
    assert d.total == 0
    assert shares(d) == [(0, 0)]


def test_exchange_skips_zero_quantity_lines():
    t = tpl(ExchangeBenefit("TEA"))
    d = compute_discount(t, order(Line("TEA", 0, 450), Line("CAKE", 1, 100), Line("TEA", 1, 500)))
    assert shares(d) == [(2, 500)]


def test_exchange_item_missing():
    t = tpl(ExchangeBenefit("TEA", qty=2))
    with raises_code("exchange_item_missing", sku="TEA") as info:
        compute_discount(t, order(Line("CAKE", 1, 1200), Line("COLA", 2, 300)))
    assert "TEA" in info.value.message
    with raises_code("exchange_item_missing", sku="TEA"):
        compute_discount(t, order(Line("TEA", 0, 450), Line("CAKE", 1, 100)))


def test_exchange_threshold_on_whole_order():
    t = tpl(ExchangeBenefit("TEA", threshold=3000))
    with raises_code("threshold_not_met", threshold=3000, eligible_amount=2999):
        compute_discount(t, order(Line("CAKE", 1, 2549), Line("TEA", 1, 450)))
    d = compute_discount(t, order(Line("CAKE", 1, 2550), Line("TEA", 1, 450)))
    assert d.total == 450 and d.eligible_amount == 3000


def test_exchange_with_sku_rules_covering_the_item():
    t = tpl(ExchangeBenefit("TEA"), skus=frozenset({"TEA"}))
    d = compute_discount(t, order(Line("CAKE", 1, 1200), Line("TEA", 1, 450)))
    assert d == Discount(450, 450, (LineDiscount(1, "TEA", 450),), units_given=1)


def test_exchange_never_discounts_a_line_outside_the_product_rules():
    # "buy a BURGER" rules, exchange gives a COLA: the COLA line is not covered
    t = tpl(ExchangeBenefit("COLA"), skus=frozenset({"BURGER"}))
    o = order(Line("BURGER", 1, 100), Line("COLA", 1, 500))
    try:
        d = compute_discount(t, o)
    except DomainError:
        return  # refusing the order is an acceptable outcome too
    assert d.total <= d.eligible_amount, d
    assert all(covered(o.lines[ld.index], t.usage) for ld in d.lines if ld.discount), d


# --- properties over random carts ----------------------------------------------------------

SKUS = ["A", "B", "C", "TEA"]
CATS = [None, "food", "drinks"]

lines_st = st.lists(
    st.builds(Line, sku=st.sampled_from(SKUS), qty=st.integers(1, 5),
              unit_price=st.integers(0, 20000), category=st.sampled_from(CATS)),
    min_size=1,
    max_size=8,
)
benefits = st.one_of(
    st.builds(ThresholdBenefit, threshold=st.integers(0, 50000), discount=st.integers(1, 80000)),
    st.builds(PercentageBenefit, percent_off=st.integers(1, 99),
              threshold=st.integers(0, 50000), cap=st.none() | st.integers(1, 30000)),
    st.builds(ExchangeBenefit, sku=st.sampled_from(SKUS), qty=st.integers(1, 6),
              price=st.integers(0, 20000), threshold=st.integers(0, 50000)),
)
usages = st.builds(
    UsageRules,
    skus=st.frozensets(st.sampled_from(SKUS)),
    categories=st.frozensets(st.sampled_from(["food", "drinks"])),
)
ALLOWED_REFUSALS = {"no_eligible_items", "threshold_not_met", "exchange_item_missing"}


def check_discount_invariants(t: Template, o: Order, d: Discount) -> None:
    assert o.lines is not None
    eligible = sum(ln.amount for ln in o.lines if covered(ln, t.usage))
    assert d.eligible_amount == eligible
    assert 0 <= d.total <= d.eligible_amount
    assert sum(ld.discount for ld in d.lines) == d.total
    indices = [ld.index for ld in d.lines]
    assert indices == sorted(set(indices))
    for ld in d.lines:
        line = o.lines[ld.index]
        assert ld.sku == line.sku
        assert 0 <= ld.discount <= line.amount
    b = t.benefit
    if isinstance(b, PercentageBenefit):
        expected = eligible * b.percent_off // 100
        assert d.total == (expected if b.cap is None else min(expected, b.cap))
        if b.cap is not None:
            assert d.total <= b.cap
        assert d.total * 100 <= eligible * b.percent_off
    elif isinstance(b, ThresholdBenefit):
        assert d.total == min(b.discount, eligible)
    else:
        assert all(ld.sku == b.sku for ld in d.lines)
        taken = 0
        for ld in d.lines:
            line = o.lines[ld.index]
            units = min(b.qty - taken, line.qty)
            taken += units
            assert ld.discount == units * max(0, line.unit_price - b.price)
        assert taken <= b.qty


def exchange_sku_is_covered(t: Template) -> bool:
    b = t.benefit
    if not isinstance(b, ExchangeBenefit) or not t.usage.has_product_rules:
        return True
    # rules cover the exchanged item (sku rule, or every line of it has a covered category)
    return b.sku in t.usage.skus


@settings(NO_DB, max_examples=300)
@given(benefits, usages, lines_st)
def test_discount_invariants(benefit, usage, lines):
    t = Template(benefit=benefit, validity=WINDOW, usage=usage)
    assume(exchange_sku_is_covered(t))
    o = order(*lines)
    try:
        d = compute_discount(t, o)
    except DomainError as exc:
        assert exc.code in ALLOWED_REFUSALS
        eligible = sum(ln.amount for ln in lines if covered(ln, usage))
        if exc.code == "no_eligible_items":
            assert eligible == 0
        elif exc.code == "threshold_not_met":
            assert eligible < benefit.threshold
        else:
            assert not any(ln.sku == getattr(benefit, "sku", None) for ln in lines)
        return
    check_discount_invariants(t, o, d)
    # lines outside the product rules are never discounted (not even by 0)
    for ld in d.lines:
        assert covered(lines[ld.index], usage)


@settings(NO_DB, max_examples=200)
@given(benefits.filter(lambda b: not isinstance(b, ExchangeBenefit)), st.integers(0, 10**9))
def test_discount_without_lines(benefit, amount):
    t = Template(benefit=benefit, validity=WINDOW)
    try:
        d = compute_discount(t, Order("o", amount))
    except DomainError as exc:
        assert exc.code == "threshold_not_met"
        assert amount < benefit.threshold
        return
    assert d.lines == ()
    assert d.eligible_amount == amount
    assert 0 <= d.total <= amount
    if isinstance(benefit, PercentageBenefit):
        assert d.total * 100 <= amount * benefit.percent_off
        assert d.total == min(amount * benefit.percent_off // 100, benefit.cap or 10**18)


@settings(NO_DB, max_examples=300)
@given(benefits, usages, lines_st)
@example(
    ExchangeBenefit("TEA"),
    UsageRules(skus=frozenset({"A"})),
    [Line("A", 1, 100), Line("TEA", 1, 500)],
)
def test_no_uncovered_line_is_ever_discounted(benefit, usage, lines):
    t = Template(benefit=benefit, validity=WINDOW, usage=usage)
    try:
        d = compute_discount(t, order(*lines))
    except DomainError:
        return
    assert d.total <= d.eligible_amount
    for ld in d.lines:
        assert covered(lines[ld.index], usage)

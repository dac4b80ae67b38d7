"""Several coupons on one order: the order of application and the arithmetic, by hand."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.cart import Line, LineDiscount, Order
from hub.domain.combination import (
    CONFLICT_CODES,
    LineOutcome,
    application_order,
    apply_combination,
    combine_given,
)
from hub.domain.errors import DomainError
from hub.domain.redeeming import check_redeemable
from hub.domain.state import CouponState
from hub.domain.templates import ExchangeBenefit, PercentageBenefit, Stacking, ThresholdBenefit

from ._helpers import NO_DB, raises_code
from .support import ALL, CTX, cand, order, stacks

TEA, CAKE = Line("TEA", 2, 500, "drinks"), Line("CAKE", 1, 2000, "food")


def shares(discount) -> list[tuple[int, int]]:
    return [(ld.index, ld.discount) for ld in discount.lines]


# --- order of application ------------------------------------------------------------------


def test_application_order_is_exchange_percentage_threshold_then_threshold_then_code():
    coupons = [
        cand("T-LOW", ThresholdBenefit(1000, 100)),
        cand("P-B", PercentageBenefit(10)),
        cand("T-HIGH", ThresholdBenefit(5000, 100)),
        cand("X", ExchangeBenefit("TEA")),
        cand("P-A", PercentageBenefit(20)),
        cand("P-C", PercentageBenefit(5, threshold=3000)),
    ]
    assert [c.code for c in application_order(coupons)] == [
        "X",  # exchange first
        "P-C",  # percentage: the higher threshold first,
        "P-A",  # then by code
        "P-B",
        "T-HIGH",  # threshold last, higher threshold first
        "T-LOW",
    ]


def test_the_given_order_does_not_matter():
    s = _stack()
    a = cand("A", ThresholdBenefit(2000, 300), s)
    b = cand("B", PercentageBenefit(10), s)
    c = cand("C", ExchangeBenefit("TEA"), s)
    o = order(TEA, CAKE)
    first = apply_combination(o, [a, b, c], CTX)
    assert first == apply_combination(o, [c, a, b], CTX) == apply_combination(o, [b, c, a], CTX)
    assert first.codes == ("C", "B", "A")


def _stack() -> Stacking:
    return stacks("threshold", "percentage", "exchange")


# --- the arithmetic, by hand ---------------------------------------------------------------


def test_exchange_then_percentage_on_the_same_line_then_threshold_on_what_is_left():
    # TEA 2 × 5.00 = 10.00, CAKE 20.00 (order 30.00)
    # 1. exchange: one TEA free → TEA line 1000 − 500 = 500 left
    # 2. 10 % off everything: eligible 500 + 2000 = 2500 → 250, split 500 : 2000 = 50, 200
    # 3. 满 20.00 减 3.00 judged on what is left: 450 + 1800 = 2250 ≥ 2000 → 300,
    #    split 450 : 1800 → 60, 240
    s = _stack()
    o = order(TEA, CAKE)
    combo = apply_combination(
        o,
        [
            cand("T", ThresholdBenefit(2000, 300), s),
            cand("P", PercentageBenefit(10), s),
            cand("X", ExchangeBenefit("TEA"), s),
        ],
        CTX,
    )
    x, p, t = combo.applied
    assert (x.code, x.kind, x.discount.total, shares(x.discount)) == (
        "X",
        "exchange",
        500,
        [(0, 500)],
    )
    assert x.discount.units_given == 1 and x.discount.eligible_amount == 3000
    assert (p.discount.total, p.discount.eligible_amount, shares(p.discount)) == (
        250,
        2500,
        [(0, 50), (1, 200)],
    )
    assert (t.discount.total, t.discount.eligible_amount, shares(t.discount)) == (
        300,
        2250,
        [(0, 60), (1, 240)],
    )
    assert combo.total == 1050 and combo.payable == 1950 and combo.amount == 3000
    assert combo.lines == (
        LineOutcome(0, "TEA", 1000, 610, 390, (("X", 500), ("P", 50), ("T", 60))),
        LineOutcome(1, "CAKE", 2000, 440, 1560, (("P", 200), ("T", 240))),
    )


def test_a_later_threshold_is_judged_on_the_amount_left():
    # 20 % off 100.00 leaves 80.00: 满 90.00 减 10.00 no longer applies
    s = _stack()
    pct = cand("P", PercentageBenefit(20), s)
    thr = cand("T", ThresholdBenefit(9000, 1000), s)
    o = Order("o", 10000)
    assert check_redeemable(thr.facts, CTX, o).total == 1000  # alone it does
    with raises_code("threshold_not_met", threshold=9000, eligible_amount=8000, coupon="T"):
        apply_combination(o, [pct, thr], CTX)
    # 满 80.00 减 10.00 does: 2000 + 1000 off, without lines
    ok = apply_combination(o, [cand("T2", ThresholdBenefit(8000, 1000), s), pct], CTX)
    assert ok.codes == ("P", "T2") and ok.total == 3000 and ok.payable == 7000
    assert ok.lines == () and all(a.discount.lines == () for a in ok.applied)


def test_thresholds_without_lines_higher_first():
    # 满 80.00 减 5.00 first (on 100.00), then 满 50.00 减 10.00 on 95.00
    s = _stack()
    combo = apply_combination(
        Order("o", 10000),
        [
            cand("LOW", ThresholdBenefit(5000, 1000), s),
            cand("HIGH", ThresholdBenefit(8000, 500), s),
        ],
        CTX,
    )
    assert combo.codes == ("HIGH", "LOW")
    assert [a.discount.eligible_amount for a in combo.applied] == [10000, 9500]
    assert combo.total == 1500


def test_percentage_caps_apply_on_what_is_left():
    # 50 % off capped at 5.00 after an exchange took the TEA: eligible 500 + 2000 → 1250 → 500
    s = _stack()
    combo = apply_combination(
        order(TEA, CAKE),
        [cand("X", ExchangeBenefit("TEA"), s), cand("P", PercentageBenefit(50, cap=500), s)],
        CTX,
    )
    p = combo.applied[1].discount
    assert (p.total, p.eligible_amount, shares(p)) == (500, 2500, [(0, 100), (1, 400)])


def test_lines_not_covered_are_never_touched():
    # 10 % off drinks only, then 满 20.00 减 2.00 on everything that is left
    s = _stack()
    combo = apply_combination(
        order(TEA, CAKE),
        [
            cand("P", PercentageBenefit(10), s, categories=frozenset({"drinks"})),
            cand("T", ThresholdBenefit(2000, 200), s),
        ],
        CTX,
    )
    p, t = combo.applied
    assert shares(p.discount) == [(0, 100)]  # CAKE is not in the drinks coupon's lines at all
    # 900 + 2000 = 2900 eligible → 200 split 900 : 2900 → 62.07, 137.93 → 62, 138
    assert (t.discount.eligible_amount, shares(t.discount)) == (2900, [(0, 62), (1, 138)])
    assert [ln.payable for ln in combo.lines] == [838, 1862]


def test_two_exchange_coupons_never_give_the_same_unit_twice():
    # TEA 2 × 5.00, CAKE, TEA 1 × 8.00: X1 (1 unit) takes the first TEA unit, X2 (2 units)
    # the second unit of line 0 and the unit of line 2
    s = _stack()
    dear = Line("TEA", 1, 800, "drinks")
    combo = apply_combination(
        order(TEA, CAKE, dear),
        [cand("X2", ExchangeBenefit("TEA", qty=2), s), cand("X1", ExchangeBenefit("TEA"), s)],
        CTX,
    )
    x1, x2 = combo.applied
    assert x1.discount.lines == (LineDiscount(0, "TEA", 500),)
    assert x2.discount.lines == (LineDiscount(0, "TEA", 500), LineDiscount(2, "TEA", 800))
    assert x2.discount.units_given == 2
    assert [ln.payable for ln in combo.lines] == [0, 2000, 0]
    # a third one finds no TEA left
    with raises_code("exchange_item_missing", sku="TEA", coupon="X3"):
        apply_combination(
            order(TEA, CAKE, dear),
            [*[cand(c, ExchangeBenefit("TEA", qty=2), s) for c in ("X1", "X2")],
             cand("X3", ExchangeBenefit("TEA"), s)],
        CTX)  # fmt: skip


def test_a_line_emptied_by_an_exchange_is_no_longer_eligible():
    s = _stack()
    one_tea = Line("TEA", 1, 500, "drinks")
    with raises_code("no_eligible_items", coupon="P"):
        apply_combination(
            order(one_tea, CAKE),
            [cand("X", ExchangeBenefit("TEA"), s),
             cand("P", PercentageBenefit(10), s, skus=frozenset({"TEA"}))],
            CTX,
        )  # fmt: skip
    # a coupon on every line takes its share of what is left: CAKE only
    combo = apply_combination(
        order(one_tea, CAKE),
        [cand("X", ExchangeBenefit("TEA"), s), cand("P", PercentageBenefit(10), s)],
        CTX,
    )
    assert shares(combo.applied[1].discount) == [(0, 0), (1, 200)]
    assert [ln.payable for ln in combo.lines] == [0, 1800]


def test_threshold_discounts_never_exceed_what_is_left():
    # 满 0 减 50.00 after 90 % off 30.00: only 3.00 is left, so 3.00 off; nothing below zero
    s = _stack()
    combo = apply_combination(
        order(TEA, CAKE),
        [cand("P", PercentageBenefit(90), s), cand("T", ThresholdBenefit(0, 5000), s)],
        CTX,
    )
    assert [a.discount.total for a in combo.applied] == [2700, 300]
    assert combo.payable == 0 and all(ln.payable == 0 for ln in combo.lines)


# --- refusals ------------------------------------------------------------------------------


def test_every_check_of_a_redeem_runs_and_names_the_coupon():
    s = _stack()
    expired = cand("OLD", PercentageBenefit(10), s, state=CouponState.EXPIRED, days=-1)
    with raises_code("coupon_expired", coupon="OLD"):
        apply_combination(order(TEA, CAKE), [cand("T", ThresholdBenefit(0, 100), s), expired], CTX)
    elsewhere = cand("S2", PercentageBenefit(10), s, stores=frozenset({"S002"}))
    with raises_code("store_not_allowed", coupon="S2"):
        apply_combination(order(TEA, CAKE), [elsewhere], CTX)
    with raises_code("order_lines_required", coupon="X"):
        apply_combination(Order("o", 3000), [cand("X", ExchangeBenefit("TEA"), s)], CTX)


def test_no_coupon_is_the_whole_order_payable():
    combo = apply_combination(order(TEA, CAKE), [], CTX)
    assert combo.applied == () and combo.total == 0 and combo.payable == 3000
    assert [ln.payable for ln in combo.lines] == [1000, 2000]


# --- properties ----------------------------------------------------------------------------

SKUS = ["A", "B", "TEA"]
lines_st = st.lists(
    st.builds(Line, sku=st.sampled_from(SKUS), qty=st.integers(0, 4),
              unit_price=st.integers(0, 5000), category=st.sampled_from([None, "drinks"])),
    min_size=1, max_size=6,
)  # fmt: skip
benefits = st.one_of(
    st.builds(ThresholdBenefit, threshold=st.integers(0, 20000), discount=st.integers(1, 20000)),
    st.builds(PercentageBenefit, percent_off=st.integers(1, 99),
              threshold=st.integers(0, 20000), cap=st.none() | st.integers(1, 10000)),
    st.builds(ExchangeBenefit, sku=st.sampled_from(SKUS), qty=st.integers(1, 4),
              price=st.integers(0, 3000), threshold=st.integers(0, 20000)),
)  # fmt: skip
rules = st.fixed_dictionaries(
    {}, optional={"skus": st.frozensets(st.sampled_from(SKUS), min_size=1),
                  "categories": st.just(frozenset({"drinks"}))},
)  # fmt: skip


@settings(NO_DB, max_examples=300, deadline=None)
@given(lines_st, st.lists(st.tuples(benefits, rules), min_size=1, max_size=5))
def test_combination_invariants(lines, specs):
    o = order(*lines)
    coupons = [cand(f"C{i}", b, _stack(), **u) for i, (b, u) in enumerate(specs)]
    try:
        combo = apply_combination(o, coupons, CTX)
    except DomainError as err:
        assert err.code in {"no_eligible_items", "threshold_not_met", "exchange_item_missing"}, (
            err.code
        )
        assert err.extra["coupon"] in {c.code for c in coupons}
        return
    assert 0 <= combo.total <= o.amount and combo.payable == o.amount - combo.total
    assert sum(a.discount.total for a in combo.applied) == combo.total
    for a in combo.applied:
        assert a.discount.total == sum(ld.discount for ld in a.discount.lines)
        assert a.discount.total >= 0
    assert sum(ln.payable for ln in combo.lines) == combo.payable
    for ln, line in zip(combo.lines, lines, strict=True):
        assert 0 <= ln.payable <= line.amount
        assert ln.discount == sum(d for _, d in ln.by_coupon) == line.amount - ln.payable
    kinds = [a.kind for a in combo.applied]
    assert kinds == sorted(kinds, key=["exchange", "percentage", "threshold"].index)


@settings(NO_DB, max_examples=300, deadline=None)
@given(lines_st, benefits, rules)
def test_one_coupon_is_exactly_the_single_redeem(lines, benefit, usage):
    o = order(*lines)
    c = cand("ONLY", benefit, None, **usage)
    try:
        alone = check_redeemable(c.facts, CTX, o)
    except DomainError as err:
        with raises_code(err.code):
            apply_combination(o, [c], CTX)
        return
    combo = apply_combination(o, [c], CTX)
    assert combo.applied[0].discount == alone
    assert combo.total == alone.total


def test_all_stack_helper_is_every_kind():
    assert _stack().combines_with == ALL and _stack().max_per_order is None


# --- a set given together: the stacking rules, then the set ------------------------------


def test_a_set_given_together_is_refused_for_its_stacking_naming_the_coupons():
    o = order(TEA, CAKE)
    alone = cand("ALONE", ThresholdBenefit(1000, 100))  # exclusive: shares with nothing
    other = cand("OTHER", PercentageBenefit(10), _stack())
    with raises_code("coupons_not_combinable", coupons=["ALONE", "OTHER"]):
        combine_given(o, [alone, other], CTX)
    with raises_code("duplicate_coupon", coupons=["OTHER"]):
        combine_given(o, [other, other], CTX)
    few = [cand(f"F{i}", PercentageBenefit(5), stacks("percentage", limit=2)) for i in range(3)]
    with raises_code("too_many_coupons", coupons=["F0", "F1", "F2"]):
        combine_given(o, few, CTX)
    assert set(CONFLICT_CODES) == {"duplicate", "not_combinable", "too_many"}


def test_the_stacking_rules_are_judged_before_any_coupon():
    o = order(TEA, CAKE)
    voided = cand("VOID", PercentageBenefit(10), state=CouponState.VOIDED)  # exclusive too
    with raises_code("coupons_not_combinable", coupons=["VOID", "T"]):
        combine_given(o, [voided, cand("T", ThresholdBenefit(1000, 100), _stack())], CTX)
    with raises_code("coupon_voided", coupon="VOID"):  # alone, its own refusal
        combine_given(o, [voided], CTX)


def test_a_set_that_may_stack_is_applied_as_apply_combination_applies_it():
    s = _stack()
    coupons = [cand("T", ThresholdBenefit(2000, 300), s), cand("X", ExchangeBenefit("TEA"), s)]
    o = order(TEA, CAKE)
    assert combine_given(o, coupons, CTX) == apply_combination(o, coupons, CTX)

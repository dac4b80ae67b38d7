"""The quote: every candidate alone, and the best combination (exact search, greedy)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.cart import Line, Order
from hub.domain.combination import apply_combination
from hub.domain.quote import EXACT_LIMIT, Refusal, best_combination, upper_bound
from hub.domain.redeeming import check_redeemable
from hub.domain.stacking import stacking_conflict
from hub.domain.state import CouponState
from hub.domain.templates import ExchangeBenefit, PercentageBenefit, ThresholdBenefit

from ._helpers import NO_DB
from .support import ALL, CTX, cand, order, stacks, tie_key, valid_combinations

TEA, CAKE = Line("TEA", 2, 500, "drinks"), Line("CAKE", 1, 2000, "food")
EVERY = stacks("threshold", "percentage", "exchange")


# --- each candidate alone ------------------------------------------------------------------


def test_every_candidate_is_judged_alone_in_the_order_given():
    o = order(TEA, CAKE)
    coupons = [
        cand("OK", ThresholdBenefit(2000, 300)),
        cand("USED", ThresholdBenefit(0, 100), state=CouponState.REDEEMED),
        cand("FAR", ThresholdBenefit(0, 100), stores=frozenset({"S009"})),
        cand("BIG", ThresholdBenefit(5000, 100)),
        cand("GIFT", ExchangeBenefit("COLA")),
        cand("OK", ThresholdBenefit(0, 9999)),  # the same code again: judged once
    ]
    quote = best_combination(o, coupons, CTX)
    assert [e.code for e in quote.evaluations] == ["OK", "USED", "FAR", "BIG", "GIFT"]
    ok, used, far, big, gift = quote.evaluations
    assert ok.usable and ok.discount == check_redeemable(coupons[0].facts, CTX, o)
    assert ok.refusal is None
    assert used.refusal == Refusal("coupon_already_redeemed", "The coupon was redeemed already.")
    assert far.refusal is not None and far.refusal.code == "store_not_allowed"
    assert big.refusal == Refusal(
        "threshold_not_met",
        "The coupon needs 5000 fen of eligible items; the order has 3000.",
        {"threshold": 5000, "eligible_amount": 3000},
    )
    assert gift.refusal is not None and gift.refusal.code == "exchange_item_missing"
    assert not any(e.usable for e in (used, far, big, gift))
    assert quote.best.codes == ("OK",) and quote.best.total == 300 and quote.exact


def test_nothing_usable_is_an_empty_best():
    o = order(TEA, CAKE)
    quote = best_combination(o, [cand("BIG", ThresholdBenefit(5000, 100))], CTX)
    assert quote.best.codes == () and quote.best.total == 0 and quote.best.payable == 3000
    assert [ln.payable for ln in quote.best.lines] == [1000, 2000]
    assert best_combination(o, [], CTX).best.total == 0


def test_a_coupon_worth_nothing_is_never_chosen():
    # an exchange at a fixed price above the unit price takes nothing off
    o = order(TEA, CAKE)
    quote = best_combination(o, [cand("X", ExchangeBenefit("TEA", price=900), EVERY)], CTX)
    assert quote.evaluations[0].usable and quote.evaluations[0].discount.total == 0
    assert quote.best.codes == ()


# --- stacking modes ------------------------------------------------------------------------


def test_an_exclusive_coupon_beats_a_weaker_pair():
    o = Order("o", 10000)
    quote = best_combination(
        o,
        [
            cand("SOLO", ThresholdBenefit(0, 3000)),  # exclusive
            cand("P", PercentageBenefit(10), EVERY),  # 1000
            cand("T", ThresholdBenefit(5000, 1500), EVERY),  # 1500 on what is left
        ],
        CTX,
    )
    assert quote.best.codes == ("SOLO",) and quote.best.total == 3000


def test_a_stronger_pair_beats_an_exclusive_coupon():
    o = Order("o", 10000)
    quote = best_combination(
        o,
        [
            cand("SOLO", ThresholdBenefit(0, 2000)),
            cand("P", PercentageBenefit(10), EVERY),
            cand("T", ThresholdBenefit(5000, 1500), EVERY),
        ],
        CTX,
    )
    assert quote.best.codes == ("P", "T") and quote.best.total == 2500
    assert quote.best.payable == 7500


def test_kinds_must_allow_each_other():
    # P combines with thresholds, but T2 refuses percentages: P + T1 (2500), not P + T2
    o = Order("o", 10000)
    quote = best_combination(
        o,
        [
            cand("P", PercentageBenefit(10), stacks("threshold")),
            cand("T1", ThresholdBenefit(0, 1500), stacks("percentage")),
            cand("T2", ThresholdBenefit(0, 1800), stacks("threshold")),
        ],
        CTX,
    )
    assert quote.best.codes == ("P", "T1") and quote.best.total == 2500


def test_two_of_the_same_kind_when_both_allow_it():
    o = Order("o", 10000)
    same = stacks("threshold")
    quote = best_combination(
        o, [cand("A", ThresholdBenefit(0, 1000), same), cand("B", ThresholdBenefit(0, 700), same)],
        CTX,
    )  # fmt: skip
    assert quote.best.codes == ("A", "B") and quote.best.total == 1700
    no_same = stacks("percentage")
    quote = best_combination(
        o,
        [cand("A", ThresholdBenefit(0, 1000), no_same), cand("B", ThresholdBenefit(0, 700), same)],
        CTX,
    )
    assert quote.best.codes == ("A",)


def test_max_per_order_keeps_the_best_ones():
    o = Order("o", 10000)
    coupons = [
        cand("T1", ThresholdBenefit(0, 500), stacks("threshold", limit=2)),
        cand("T2", ThresholdBenefit(0, 900), stacks("threshold")),
        cand("T3", ThresholdBenefit(0, 700), stacks("threshold")),
    ]
    quote = best_combination(o, coupons, CTX)
    assert quote.best.codes == ("T2", "T3") and quote.best.total == 1600  # T1's limit: 2
    # with T1 worth more, the best set holds T1 and so only one other
    coupons[0] = cand("T1", ThresholdBenefit(0, 1700), stacks("threshold", limit=2))
    quote = best_combination(o, coupons, CTX)
    assert quote.best.codes == ("T1", "T2") and quote.best.total == 2600


def test_a_threshold_judged_after_earlier_coupons_changes_the_choice():
    # alone: P 2000, T 1000 (满 90 减 10), Q 500; P + T fails (80.00 left < 90.00),
    # so the best is P + Q: 2000 + 5 % of 80.00 = 2400
    o = Order("o", 10000)
    quote = best_combination(
        o,
        [
            cand("P", PercentageBenefit(20), EVERY),
            cand("T", ThresholdBenefit(9000, 1000), EVERY),
            cand("Q", PercentageBenefit(5), EVERY),
        ],
        CTX,
    )
    assert quote.best.codes == ("P", "Q") and quote.best.total == 2400


def test_exchange_then_percentage_on_the_same_line():
    o = order(TEA, CAKE)
    quote = best_combination(
        o,
        [cand("P", PercentageBenefit(10), EVERY), cand("X", ExchangeBenefit("TEA"), EVERY)],
        CTX,
    )
    assert quote.best.codes == ("X", "P")
    assert [a.discount.total for a in quote.best.applied] == [500, 250]
    assert quote.best.lines[0].by_coupon == (("X", 500), ("P", 50))


def test_an_exchange_may_reach_dearer_units_after_another_exchange():
    # alone each takes the cheap TEA (1.00); together the second takes the dear one (9.00):
    # its stand-alone discount is no bound, and the search must not cut this set
    o = order(Line("TEA", 1, 100), Line("TEA", 1, 900))
    a, b = cand("A", ExchangeBenefit("TEA"), EVERY), cand("B", ExchangeBenefit("TEA"), EVERY)
    assert upper_bound(o, b, check_redeemable(b.facts, CTX, o)) == 900
    quote = best_combination(o, [a, b], CTX)
    assert quote.best.codes == ("A", "B") and quote.best.total == 1000


def test_caps_and_lines_not_covered():
    # drinks 20 % capped at 1.50 (TEA 10.00 → 150), cake 10 % (200); a 满减 on everything
    o = order(TEA, CAKE)
    quote = best_combination(
        o,
        [
            cand("D", PercentageBenefit(20, cap=150), EVERY, categories=frozenset({"drinks"})),
            cand("F", PercentageBenefit(10), EVERY, categories=frozenset({"food"})),
            cand("T", ThresholdBenefit(2500, 300), EVERY),
        ],
        CTX,
    )
    assert quote.best.codes == ("D", "F", "T") and quote.best.total == 650
    # T on 850 + 1800 = 2650: 300 × 850 / 2650 = 96.2, × 1800 / 2650 = 203.8 → 96, 204
    assert [ln.payable for ln in quote.best.lines] == [850 - 96, 1800 - 204]
    assert quote.best.lines[0].by_coupon[0] == ("D", 150)
    assert all(code != "F" for code, _ in quote.best.lines[0].by_coupon)


# --- tie-break -----------------------------------------------------------------------------


def test_tie_fewer_coupons_first():
    o = Order("o", 10000)
    quote = best_combination(
        o,
        [
            cand("A", ThresholdBenefit(0, 500), EVERY),
            cand("B", ThresholdBenefit(0, 500), EVERY),
            cand("C", ThresholdBenefit(0, 1000), EVERY, days=20),
            cand("D", PercentageBenefit(10)),  # exclusive, 1000, later expiry
        ],
        CTX,
    )
    # A + B + C = 2000 beats D alone (1000)
    assert quote.best.codes == ("A", "B", "C")
    quote = best_combination(
        o,
        [cand("A", ThresholdBenefit(0, 500), EVERY), cand("B", ThresholdBenefit(0, 500), EVERY),
         cand("C", ThresholdBenefit(0, 1000))],
        CTX,
    )  # fmt: skip
    assert quote.best.codes == ("C",)  # 1000 either way: one coupon rather than two


def test_tie_then_earliest_expiry_then_code():
    o = Order("o", 10000)
    late = cand("A", ThresholdBenefit(0, 1000), days=30)
    soon = cand("B", ThresholdBenefit(0, 1000), days=3)
    assert best_combination(o, [late, soon], CTX).best.codes == ("B",)
    same_a, same_b = cand("B", ThresholdBenefit(0, 1000)), cand("A", ThresholdBenefit(0, 1000))
    assert best_combination(o, [same_a, same_b], CTX).best.codes == ("A",)


# --- exact limit and greedy ----------------------------------------------------------------


def test_beyond_the_exact_limit_the_greedy_step_adds_what_raises_the_total():
    o = Order("o", 100000)
    coupons = [cand(f"T{i:02d}", ThresholdBenefit(0, 100 + i), EVERY) for i in range(8)]
    quote = best_combination(o, coupons, CTX, exact_limit=3)
    assert not quote.exact
    assert quote.best.total == sum(100 + i for i in range(8))  # every one raises it
    assert set(quote.best.codes) == {c.code for c in coupons}
    assert best_combination(o, coupons, CTX, exact_limit=8).exact
    assert EXACT_LIMIT >= 8


def test_greedy_respects_the_stacking_rules():
    o = Order("o", 100000)
    coupons = [
        cand("BIG", ThresholdBenefit(0, 5000)),  # exclusive: once chosen, nothing joins
        *[cand(f"S{i}", ThresholdBenefit(0, 1000), EVERY) for i in range(4)],
    ]
    quote = best_combination(o, coupons, CTX, exact_limit=1)
    assert quote.best.codes == ("BIG",) and not quote.exact
    limited = [cand(f"L{i}", ThresholdBenefit(0, 1000 + i), stacks("threshold", limit=2))
               for i in range(5)]  # fmt: skip
    quote = best_combination(o, limited, CTX, exact_limit=1)
    assert quote.best.codes == ("L3", "L4")  # the two largest, in the order of application


# --- properties: never beaten by any valid subset ------------------------------------------

SKUS = ["A", "B", "TEA"]
lines_st = st.lists(
    st.builds(Line, sku=st.sampled_from(SKUS), qty=st.integers(1, 3),
              unit_price=st.integers(0, 3000), category=st.sampled_from([None, "drinks"])),
    min_size=1, max_size=5,
)  # fmt: skip
benefits = st.one_of(
    st.builds(ThresholdBenefit, threshold=st.integers(0, 8000), discount=st.integers(1, 4000)),
    st.builds(PercentageBenefit, percent_off=st.integers(1, 60),
              threshold=st.integers(0, 8000), cap=st.none() | st.integers(1, 3000)),
    st.builds(ExchangeBenefit, sku=st.sampled_from(SKUS), qty=st.integers(1, 3),
              price=st.integers(0, 1500), threshold=st.integers(0, 8000)),
)  # fmt: skip
# mostly coupons that stack, so that the best sets are often of two, three or more
stackings = st.sampled_from([None, EVERY, EVERY, EVERY, stacks("threshold"),
                             stacks("percentage", "exchange"),
                             stacks("threshold", "percentage", limit=2),
                             stacks("threshold", "percentage", "exchange", limit=3)])  # fmt: skip
usages = st.sampled_from([{}, {}, {}, {"skus": frozenset({"TEA"})},
                          {"categories": frozenset({"drinks"})},
                          {"stores": frozenset({"S009"})}])  # fmt: skip
coupon_specs = st.lists(
    st.tuples(benefits, stackings, usages, st.integers(1, 5)), min_size=0, max_size=6
)


def _cands(specs):
    return [cand(f"C{i}", b, s, days=d, **u) for i, (b, s, u, d) in enumerate(specs)]


@settings(NO_DB, max_examples=250, deadline=None)
@given(lines_st, coupon_specs)
def test_best_is_never_beaten_by_any_valid_subset(lines, specs):
    o, coupons = order(*lines), _cands(specs)
    quote = best_combination(o, coupons, CTX)
    assert quote.exact
    every = valid_combinations(o, coupons)
    by_code = {c.code: c for c in coupons}
    assert quote.best.total == max(c.total for c in every)
    # and it is the one the documented tie-break picks among the valid subsets
    assert tie_key(quote.best, by_code) == min(tie_key(c, by_code) for c in every)
    assert quote.best in every


@settings(NO_DB, max_examples=250, deadline=None)
@given(lines_st, coupon_specs, st.randoms(use_true_random=False))
def test_best_is_consistent_bounded_and_deterministic(lines, specs, rnd: random.Random):
    o, coupons = order(*lines), _cands(specs)
    quote = best_combination(o, coupons, CTX)
    best = quote.best
    assert 0 <= best.total <= o.amount and best.payable == o.amount - best.total
    assert sum(a.discount.total for a in best.applied) == best.total
    for a in best.applied:
        assert a.discount.total == sum(ld.discount for ld in a.discount.lines)
    assert sum(ln.payable for ln in best.lines) == best.payable
    assert all(0 <= ln.payable <= ln.amount for ln in best.lines)
    assert stacking_conflict([(c, by.template) for c, by in _pick(coupons, best.codes)]) is None
    assert apply_combination(o, [by for _, by in _pick(coupons, best.codes)], CTX) == best
    usable = [e for e in quote.evaluations if e.usable]
    assert best.total >= max((e.discount.total for e in usable if e.discount), default=0)
    shuffled = list(coupons)
    rnd.shuffle(shuffled)
    again = best_combination(o, shuffled, CTX)
    assert again.best == best  # the same set, in the same order of application


@settings(NO_DB, max_examples=250, deadline=None)
@given(lines_st, coupon_specs, st.integers(0, 3))
def test_greedy_result_is_a_valid_combination(lines, specs, limit):
    o, coupons = order(*lines), _cands(specs)
    quote = best_combination(o, coupons, CTX, exact_limit=limit)
    best = quote.best
    picked = [by for _, by in _pick(coupons, best.codes)]
    assert stacking_conflict([(c.code, c.template) for c in picked]) is None
    assert apply_combination(o, picked, CTX) == best
    assert best.total <= best_combination(o, coupons, CTX).best.total  # never above exact
    usable = [e.discount.total for e in quote.evaluations if e.discount is not None]
    if limit >= 1:
        assert best.total >= max(usable, default=0)  # the best single one is searched


def _pick(coupons, codes):
    by_code = {c.code: c for c in coupons}
    return [(code, by_code[code]) for code in codes]


def test_all_stack_is_every_kind():
    assert EVERY.combines_with == ALL

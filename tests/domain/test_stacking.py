"""Stacking rules: which coupons may share an order (pairwise kinds, exclusive, limits)."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.stacking import Mix, can_share, stacking_conflict
from hub.domain.templates import (
    KINDS,
    MAX_PER_ORDER,
    ExchangeBenefit,
    PercentageBenefit,
    Stacking,
    Template,
    ThresholdBenefit,
)

from ._helpers import NO_DB
from .support import stacks, template

BENEFIT = {
    "threshold": ThresholdBenefit(0, 100),
    "percentage": PercentageBenefit(10),
    "exchange": ExchangeBenefit("TEA"),
}


def tpl(kind: str, stacking: Stacking | None = None) -> Template:
    return template(BENEFIT[kind], stacking)


def test_exclusive_is_the_default_and_shares_with_nothing():
    alone = tpl("threshold")
    assert alone.stacking == Stacking() and alone.stacking.exclusive
    for kind in KINDS:
        assert not can_share(alone, tpl(kind, stacks(*KINDS)))
        assert not can_share(tpl(kind, stacks(*KINDS)), alone)
    assert stacking_conflict([("A", alone)]) is None


def test_both_must_allow_each_other():
    pct = tpl("percentage", stacks("threshold"))
    thr_any = tpl("threshold", stacks(*KINDS))
    thr_no_pct = tpl("threshold", stacks("threshold", "exchange"))
    assert can_share(pct, thr_any) and can_share(thr_any, pct)
    assert not can_share(pct, thr_no_pct)  # the threshold coupon refuses percentages
    # two coupons of the same kind need that kind in both lists
    assert not can_share(pct, tpl("percentage", stacks("threshold", "percentage")))
    assert can_share(thr_any, tpl("threshold", stacks("threshold")))


@pytest.mark.parametrize(
    ("coupons", "reason", "codes"),
    [
        ([("A", "threshold", ()), ("B", "percentage", ("threshold",))], "not_combinable",
         ("A", "B")),
        ([("A", "percentage", ("threshold",)), ("B", "threshold", ("exchange",))],
         "not_combinable", ("A", "B")),
        ([("A", "threshold", KINDS), ("B", "percentage", KINDS), ("C", "exchange", KINDS),
          ("D", "threshold", ("percentage",))], "not_combinable", ("A", "D")),
        ([("A", "threshold", KINDS), ("A", "threshold", KINDS)], "duplicate", ("A",)),
    ],
)  # fmt: skip
def test_conflicts_name_the_coupons(coupons, reason, codes):
    conflict = stacking_conflict([(code, tpl(k, stacks(*ks))) for code, k, ks in coupons])
    assert conflict is not None
    assert (conflict.reason, conflict.codes) == (reason, codes)
    assert conflict.message


def test_the_smallest_max_per_order_applies():
    loose = [(f"L{i}", tpl("threshold", stacks(*KINDS))) for i in range(5)]
    assert stacking_conflict(loose) is None  # no limit of their own
    tight = ("T", tpl("percentage", stacks(*KINDS, limit=3)))
    assert stacking_conflict([*loose[:2], tight]) is None
    conflict = stacking_conflict([*loose[:3], tight])
    assert conflict is not None and conflict.reason == "too_many"
    assert conflict.codes == ("L0", "L1", "L2", "T") and "3" in conflict.message


def test_mix_room_and_limits():
    mix = Mix()
    assert mix.room is None and mix.admits("threshold", Stacking())
    one = mix.add("threshold", Stacking())
    assert one.room == 0 and not one.admits("threshold", stacks(*KINDS))
    two = mix.add("percentage", stacks(*KINDS, limit=MAX_PER_ORDER))
    assert two.room == MAX_PER_ORDER - 1


stackings = st.just(Stacking()) | st.builds(
    Stacking,
    combines_with=st.frozensets(st.sampled_from(KINDS), min_size=1),
    max_per_order=st.none() | st.integers(2, 5),
)
members = st.lists(st.tuples(st.sampled_from(KINDS), stackings), max_size=6)


@settings(NO_DB, max_examples=400, deadline=None)
@given(members)
def test_growing_a_mix_agrees_with_the_pairwise_rule(coupons):
    """Adding coupons one by one to a :class:`Mix` accepts exactly the sets that
    :func:`stacking_conflict` accepts, whatever the order."""
    templates = [(f"C{i}", tpl(kind, s)) for i, (kind, s) in enumerate(coupons)]
    mix, admitted = Mix(), True
    for _, t in templates:
        if not mix.admits(t.kind, t.stacking):
            admitted = False
            break
        mix = mix.add(t.kind, t.stacking)
    assert admitted == (stacking_conflict(templates) is None)
    if admitted:
        pairwise = all(can_share(a, b) for (_, a), (_, b) in combinations(templates, 2))
        assert pairwise
        limits = [t.stacking.max_per_order for _, t in templates]
        assert all(lim is None or len(templates) <= lim for lim in limits)

"""The recommender's rules (hub.domain.recommend): pure, deterministic, smoothed."""

from __future__ import annotations

import random
import typing
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.api.recommendations import ReasonCode
from hub.domain import recommend as rec
from hub.domain.recommend import CouponFact, Holding, OrderFact, TemplateInfo

T0 = datetime(2026, 9, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=60)
DAY = timedelta(days=1)

THR = TemplateInfo("tpl-thr", "满100减20", "threshold", T0)
PCT = TemplateInfo("tpl-pct", "8.5折", "percentage", T0 + timedelta(seconds=1))
PCT2 = TemplateInfo("tpl-pct2", "9折", "percentage", T0 + timedelta(seconds=2))
EXC = TemplateInfo("tpl-exc", "免费蛋挞", "exchange", T0 + timedelta(seconds=3))
ALL = (THR, PCT, PCT2, EXC)


def coupon(
    customer: str, t: TemplateInfo, day: int, redeemed: int | None = None,
    store: str = "SH-001", channel: str = "pos", amount: int = 8000,
) -> CouponFact:
    got = T0 + day * DAY
    return CouponFact(
        customer=customer, template_id=t.id, got_at=got, valid_from=got,
        valid_until=got + 14 * DAY,
        redeemed_at=None if redeemed is None else got + redeemed * DAY,
        store=None if redeemed is None else store,
        channel=None if redeemed is None else channel,
        order_id=None if redeemed is None else f"{customer}-{t.id}-{day}",
        order_amount=None if redeemed is None else amount,
    )  # fmt: skip


def history() -> list[CouponFact]:
    """C1 redeems percentage coupons; the crowd redeems threshold coupons at SH-001;
    BJ-001's customers redeem the exchange."""
    facts = []
    for d in range(0, 40, 5):
        facts.append(coupon("C1", PCT, d, redeemed=1, channel="mini_program"))
        facts.append(coupon("C1", THR, d))
    for i in range(2, 12):
        for d in range(0, 40, 10):
            facts.append(coupon(f"C{i}", THR, d, redeemed=2))
            facts.append(coupon(f"C{i}", PCT, d + 1))
    for i in range(20, 26):
        for d in range(0, 40, 10):
            facts.append(coupon(f"C{i}", EXC, d, redeemed=1, store="BJ-001"))
            facts.append(coupon(f"C{i}", THR, d + 1))
    return facts


def model(facts: list[CouponFact] | None = None, orders: list[OrderFact] | None = None):
    return rec.fit(ALL, history() if facts is None else facts, orders or [], NOW)


def test_reason_codes_are_the_apis():
    assert set(typing.get_args(ReasonCode)) == set(rec.REASON_CODES)


def test_a_customer_gets_the_kind_they_redeem_first():
    m = model()
    ranked = {r.template_id: r for r in rec.rank(m, "C1", ALL)}
    assert rec.rank(m, "C1", ALL)[0].template_id == PCT.id
    assert ranked[PCT.id].reason_code == "own_template"
    assert "(8 of 8)" in ranked[PCT.id].reason
    # a percentage template C1 never had beats the threshold C1 leaves unused: their habit
    assert ranked[PCT2.id].score > ranked[THR.id].score
    assert ranked[PCT2.id].reason_code == "own_kind"
    assert "percent-off" in ranked[PCT2.id].reason
    # and the threshold is ranked down by the coupons C1 left unused, which the reason says
    assert ranked[THR.id].reason_code == "own_unused"
    assert ranked[THR.id].reason == "left 满减 spend-and-save coupons unused (0 of 8 redeemed)"
    # for the crowd (who leave percentage coupons unused) it is the other way round
    crowd = {r.template_id: r for r in rec.rank(m, "C3", ALL)}
    assert crowd[THR.id].score > crowd[PCT.id].score


def test_the_crowd_and_the_store_segment():
    m = model()
    assert rec.rank(m, "C3", ALL)[0].template_id == THR.id
    top = rec.rank(m, "C21", ALL)[0]
    assert top.template_id == EXC.id
    assert top.reason_code in ("own_template", "segment_store", "segment_kind")
    # a new customer who shops at BJ-001 (orders only) is pointed at BJ-001's favourite
    orders = [OrderFact("NEW", "BJ-001", "pos", 3000, NOW - 2 * DAY, "o-1")]
    m2 = model(orders=orders)
    assert m2.profile("NEW").store == "BJ-001"
    ranked = rec.rank(m2, "NEW", ALL)
    assert ranked[0].template_id == EXC.id
    assert ranked[0].reason_code.startswith("segment_")


def test_cold_start_is_the_new_customers_ranking():
    m = model()
    ranked = rec.rank(m, "NOBODY", ALL)
    assert not m.knows("NOBODY")
    assert {r.reason_code for r in ranked} == {"cold_start"}
    assert all("no history" in r.reason for r in ranked)
    # what customers without history did with their first coupons: the exchange 6 of 6,
    # the threshold 10 of 17, the percentage 1 of 11; PCT2, never given, has its prior
    assert [r.template_id for r in ranked] == [EXC.id, THR.id, PCT2.id, PCT.id]
    assert "of new customers" in ranked[0].reason


def test_scores_are_decimal_strings_with_four_places_and_deterministic():
    facts = history()
    first = rec.rank(model(facts), "C1", ALL)
    shuffled = list(facts)
    random.Random(7).shuffle(shuffled)
    again = rec.rank(rec.fit(list(reversed(ALL)), shuffled, [], NOW), "C1", ALL)
    assert first == again  # the order of the facts changes nothing
    for r in first:
        assert isinstance(r.score, Decimal) and r.score.as_tuple().exponent == -4
        assert Decimal(0) < r.score < Decimal(1)


def test_a_template_never_redeemed_by_a_segment_keeps_a_prior_and_evidence_moves_it():
    m = model()
    # nobody at BJ-001 ever got the percentage template: its BJ-001 rate is its own rate
    assert ("tpl-pct", "store", "BJ-001") not in m.per_segment
    assert m.segment_rate(PCT.id, "store", "BJ-001") == pytest.approx(m.template_rate(PCT.id))
    assert m.template_rate(PCT.id) > 0
    # nobody ever got PCT2: its rate is the merchant's (smoothed), not zero
    assert m.template_rate(PCT2.id) == m.merchant_rate() > 0
    # evidence moves it: BJ-001 customers redeeming percentage coupons lift the segment
    more = [coupon(f"C{i}", PCT, 45, redeemed=1, store="BJ-001") for i in range(20, 26)]
    m2 = model(history() + more)
    assert m2.segment_rate(PCT.id, "store", "BJ-001") > m.segment_rate(PCT.id, "store", "BJ-001")
    # and failures push it down
    less = [coupon(f"C{i}", PCT, 30) for i in range(20, 26)]
    m3 = model(history() + less)
    assert m3.segment_rate(PCT.id, "store", "BJ-001") < m.segment_rate(PCT.id, "store", "BJ-001")


def test_open_coupons_count_for_the_elapsed_part_of_their_window():
    got = NOW - 7 * DAY
    fact = CouponFact("C", THR.id, got, got, got + 14 * DAY)
    assert rec._exposure(fact, NOW) == (0.5, 0.0)
    assert rec._exposure(fact, got) == (0.0, 0.0)
    assert rec._exposure(fact, got + 20 * DAY) == (1.0, 0.0)
    redeemed = CouponFact("C", THR.id, got, got, got + 14 * DAY, redeemed_at=got + DAY)
    assert rec._exposure(redeemed, NOW) == (1.0, 1.0)
    # a redemption after the model's clock is not known yet
    assert rec._exposure(redeemed, got + DAY / 2) == (1 / 28, 0.0)


def test_facts_after_the_clock_are_ignored():
    m = model()
    later = [coupon("C1", EXC, 70, redeemed=1)]  # after NOW
    assert rec.rank(model(history() + later), "C1", ALL) == rec.rank(m, "C1", ALL)


def test_ineligible_templates_are_excluded():
    m = model()
    limited = TemplateInfo("tpl-lim", "限量", "threshold", T0, per_customer_limit=2)
    paused = TemplateInfo("tpl-off", "停用", "threshold", T0, active=False)
    templates = (*ALL, limited, paused)
    holdings = {
        THR.id: Holding(count=1, unused=True),  # holds a usable one already
        PCT.id: Holding(count=5, unused=False),  # no limit: still eligible
        limited.id: Holding(count=2, unused=False),  # at its limit
    }
    got = {r.template_id for r in rec.recommend(m, "C1", templates, holdings, limit=10)}
    assert got == {PCT.id, PCT2.id, EXC.id}
    assert rec.eligible(limited, Holding(count=1))
    assert not rec.eligible(limited, Holding(count=2))
    assert not rec.eligible(paused, Holding())
    assert len(rec.recommend(m, "C1", templates, holdings, limit=2)) == 2
    assert rec.recommend(m, "C1", templates, holdings, limit=0) == []


def test_ties_are_broken_by_creation_time_then_id():
    m = rec.fit((), [], [], NOW)  # no data: every template scores the same prior
    a = TemplateInfo("tpl-b", "B", "threshold", T0)
    b = TemplateInfo("tpl-a", "A", "threshold", T0)
    c = TemplateInfo("tpl-0", "C", "threshold", T0 + DAY)
    ranked = rec.rank(m, "X", (c, a, b))
    assert [r.template_id for r in ranked] == ["tpl-a", "tpl-b", "tpl-0"]
    assert len({r.score for r in ranked}) == 1 and ranked[0].score == Decimal("0.5000")
    # with nothing learnt, the reason says the score is a prior, not a rate of anyone
    assert ranked[0].reason == (
        "no history yet, and no new customer has had it yet (a prior of 50%)"
    )
    assert rec.rank(model(), "C1", (PCT2,))[0].reason_code == "own_kind"
    [prior] = rec.rank(model(), "C21", (PCT2,))  # no record of the kind, no segment data
    assert (prior.reason_code, prior.reason) == (
        "popular", f"no one has had it yet (a prior of {round(prior.score * 100)}%)"
    )


def test_habits():
    facts = [coupon("C", PCT, 0, redeemed=1, channel="mini_program", amount=20000)]
    orders = [
        OrderFact("C", "SH-002", "mini_program", 20000, T0 + 2 * DAY, "o-1"),
        OrderFact("C", "SH-002", "app", 16000, T0 + 3 * DAY, "o-2"),
        # the redemption's order reported as a sale too: counted once
        OrderFact("C", "SH-001", "mini_program", 20000, T0 + DAY, "C-tpl-pct-0"),
    ]
    m = rec.fit(ALL, facts, orders, T0 + 20 * DAY)
    p = m.profile("C")
    assert (p.store, p.mode, p.kind, p.spend, p.recency) == (
        "SH-002", "online", "percentage", "high", "lapsing"
    )
    assert rec.fit(ALL, facts, orders, T0 + 4 * DAY).profile("C").recency == "active"
    assert rec.fit(ALL, facts, orders, T0 + 60 * DAY).profile("C").recency == "lapsed"


# --- invariants ---------------------------------------------------------------------------------

facts_st = st.lists(
    st.builds(
        coupon,
        customer=st.sampled_from(["C1", "C2", "C3", "C4"]),
        t=st.sampled_from(ALL),
        day=st.integers(0, 55),
        redeemed=st.one_of(st.none(), st.integers(0, 13)),
        store=st.sampled_from(["SH-001", "SH-002", "BJ-001"]),
        channel=st.sampled_from(["pos", "mini_program"]),
        amount=st.integers(100, 30000),
    ),
    max_size=40,
)


@given(facts_st, st.sampled_from(["C1", "C2", "NEW"]))
def test_every_score_is_a_probability_and_the_order_is_total(facts, customer):
    m = rec.fit(ALL, facts, [], NOW)
    ranked = rec.rank(m, customer, ALL)
    assert sorted(r.template_id for r in ranked) == sorted(t.id for t in ALL)
    assert all(Decimal(0) <= r.score <= Decimal(1) for r in ranked)
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert all(r.reason_code in rec.REASON_CODES and r.reason for r in ranked)
    assert rec.rank(rec.fit(ALL, list(reversed(facts)), [], NOW), customer, ALL) == ranked


@given(facts_st, st.sampled_from(ALL), st.integers(1, 5))
def test_a_redemption_never_lowers_its_templates_rate(facts, t, n):
    m = rec.fit(ALL, facts, [], NOW)
    more = [coupon("C9", t, 50, redeemed=0) for _ in range(n)]
    m2 = rec.fit(ALL, facts + more, [], NOW)
    assert m2.template_rate(t.id) >= m.template_rate(t.id)
    fewer = [coupon("C9", t, 10) for _ in range(n)]
    assert rec.fit(ALL, facts + fewer, [], NOW).template_rate(t.id) <= m.template_rate(t.id)

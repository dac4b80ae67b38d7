"""The redeem decision: order of checks, every refusal, effective_state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.cart import Discount, Line, LineDiscount, Order
from hub.domain.errors import DomainError
from hub.domain.redeeming import CouponFacts, RedeemContext, check_redeemable, effective_state
from hub.domain.state import CouponState
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
from hub.domain.validity import Window

from ._helpers import NO_DB, raises_code

SH = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


WINDOW = Window(sh(2024, 6, 1).astimezone(UTC), sh(2024, 7, 1).astimezone(UTC))
# Wednesday 12 June 2024, 12:00 in Shanghai
NOON_WED = sh(2024, 6, 12, 12, 0)
assert NOON_WED.isoweekday() == 3


def template(benefit=None, **usage) -> Template:
    return check_template(
        Template(
            benefit=benefit or ThresholdBenefit(threshold=5000, discount=1000),
            validity=RelativeWindow(days=30),
            usage=UsageRules(**usage),
        )
    )


def facts(t: Template | None = None, state: CouponState = CouponState.ISSUED,
          window: Window = WINDOW) -> CouponFacts:
    return CouponFacts(state=state, window=window, template=t or template())


def ctx(at: datetime = NOON_WED, store: str = "S001", channel: str = "pos") -> RedeemContext:
    return RedeemContext(store=store, channel=channel, at=at, tz=SH)


ORDER = Order("o-1", 6000, (Line("TEA", 2, 1000, "drinks"), Line("CAKE", 1, 4000, "food")))


# --- happy paths ---------------------------------------------------------------------------


def test_grants_discount_without_restrictions():
    d = check_redeemable(facts(), ctx(), ORDER)
    # 1000 over 2000 : 4000 → 333.3, 666.7 → 333, 667
    assert d == Discount(1000, 6000, (LineDiscount(0, "TEA", 333), LineDiscount(1, "CAKE", 667)))


def test_grants_discount_when_every_rule_matches():
    t = template(
        PercentageBenefit(percent_off=20, threshold=1000, cap=300),
        stores=frozenset({"S001", "S002"}),
        channels=frozenset({"pos", "app"}),
        weekdays=frozenset({3}),
        hours=(HourRange(time(11), time(14)),),
        categories=frozenset({"drinks"}),
    )
    d = check_redeemable(facts(t), ctx(store="S002", channel="app"), ORDER)
    # 20% of the 2000 fen of drinks = 400, capped at 300, all on the TEA line
    assert d == Discount(300, 2000, (LineDiscount(0, "TEA", 300),))


def test_order_without_lines_is_fine_without_product_rules():
    d = check_redeemable(facts(), ctx(), Order("o", 5000))
    assert d == Discount(1000, 5000)


# --- state ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (CouponState.REDEEMED, "coupon_already_redeemed"),
        (CouponState.VOIDED, "coupon_voided"),
    ],
)
def test_state_refusals(state, code):
    with raises_code(code):
        check_redeemable(facts(state=state), ctx(), ORDER)


def test_expired_by_the_sweep_is_judged_at_the_time_given():
    """Swept (``expired``) or not (``issued``), a coupon redeems the same way at a time
    inside its window and is refused the same way at a time after it."""
    inside, after = WINDOW.end - timedelta(microseconds=1), WINDOW.end
    for state in (CouponState.ISSUED, CouponState.EXPIRED):
        assert check_redeemable(facts(state=state), ctx(at=inside), ORDER).total == 1000
        with raises_code("coupon_expired", valid_until=WINDOW.end.isoformat()):
            check_redeemable(facts(state=state), ctx(at=after), ORDER)
    with raises_code("coupon_voided"):
        check_redeemable(facts(state=CouponState.VOIDED), ctx(at=inside), ORDER)


# --- validity window -----------------------------------------------------------------------


def test_not_yet_valid():
    at = WINDOW.start - timedelta(microseconds=1)
    with raises_code("coupon_not_yet_valid", valid_from=WINDOW.start.isoformat()):
        check_redeemable(facts(), ctx(at=at), ORDER)


def test_window_start_is_inclusive():
    assert check_redeemable(facts(), ctx(at=WINDOW.start), ORDER).total == 1000


def test_expired_at_window_end():
    with raises_code("coupon_expired", valid_until=WINDOW.end.isoformat()):
        check_redeemable(facts(), ctx(at=WINDOW.end), ORDER)
    with raises_code("coupon_expired"):
        check_redeemable(facts(), ctx(at=WINDOW.end + timedelta(days=400)), ORDER)
    last = WINDOW.end - timedelta(microseconds=1)
    assert check_redeemable(facts(), ctx(at=last), ORDER).total == 1000


def test_window_uses_instants_not_local_wall_time():
    # 30 June 23:59 in Shanghai is 15:59Z: still inside; 1 July 00:00 Shanghai is not
    assert check_redeemable(facts(), ctx(at=datetime(2024, 6, 30, 15, 59, tzinfo=UTC)), ORDER)
    with raises_code("coupon_expired"):
        check_redeemable(facts(), ctx(at=datetime(2024, 6, 30, 16, 0, tzinfo=UTC)), ORDER)


# --- store and channel ---------------------------------------------------------------------


def test_store_not_allowed():
    t = template(stores=frozenset({"S001"}))
    with raises_code("store_not_allowed") as info:
        check_redeemable(facts(t), ctx(store="S999"), ORDER)
    assert "S999" in info.value.message
    assert check_redeemable(facts(t), ctx(store="S001"), ORDER).total == 1000


def test_channel_not_allowed():
    t = template(channels=frozenset({"mini_program"}))
    with raises_code("channel_not_allowed") as info:
        check_redeemable(facts(t), ctx(channel="pos"), ORDER)
    assert "pos" in info.value.message
    assert check_redeemable(facts(t), ctx(channel="mini_program"), ORDER).total == 1000


# --- weekday and hour ----------------------------------------------------------------------


def test_weekday_not_allowed():
    t = template(weekdays=frozenset({6, 7}))
    with raises_code("outside_usable_time") as info:
        check_redeemable(facts(t), ctx(), ORDER)
    assert "weekday" in info.value.message
    saturday = sh(2024, 6, 15, 12)
    assert check_redeemable(facts(t), ctx(at=saturday), ORDER).total == 1000


def test_weekday_is_judged_in_merchant_local_time():
    # Sunday 9 June 20:00Z is Monday 10 June 04:00 in Shanghai
    at = datetime(2024, 6, 9, 20, 0, tzinfo=UTC)
    assert at.isoweekday() == 7
    monday_only = template(weekdays=frozenset({1}))
    assert check_redeemable(facts(monday_only), ctx(at=at), ORDER).total == 1000
    sunday_only = template(weekdays=frozenset({7}))
    with raises_code("outside_usable_time"):
        check_redeemable(facts(sunday_only), ctx(at=at), ORDER)


@pytest.mark.parametrize(
    ("hh", "mm", "ok"),
    [(10, 59, False), (11, 0, True), (13, 59, True), (14, 0, False), (0, 0, False)],
)
def test_hour_range(hh, mm, ok):
    t = template(hours=(HourRange(time(11), time(14)),))
    c = ctx(at=sh(2024, 6, 12, hh, mm))
    if ok:
        assert check_redeemable(facts(t), c, ORDER).total == 1000
    else:
        with raises_code("outside_usable_time") as info:
            check_redeemable(facts(t), c, ORDER)
        assert "hour" in info.value.message


@pytest.mark.parametrize(
    ("hh", "mm", "ok"),
    [
        (21, 59, False),
        (22, 0, True),
        (23, 30, True),
        (0, 0, True),
        (1, 59, True),
        (2, 0, False),
        (12, 0, False),
    ],
)
def test_hour_range_wrapping_midnight(hh, mm, ok):
    t = template(hours=(HourRange(time(22), time(2)),))
    c = ctx(at=sh(2024, 6, 12, hh, mm))
    if ok:
        assert check_redeemable(facts(t), c, ORDER).total == 1000
    else:
        with raises_code("outside_usable_time"):
            check_redeemable(facts(t), c, ORDER)


def test_any_hour_range_may_match():
    t = template(hours=(HourRange(time(7), time(9)), HourRange(time(17), time(19))))
    assert check_redeemable(facts(t), ctx(at=sh(2024, 6, 12, 8)), ORDER).total == 1000
    assert check_redeemable(facts(t), ctx(at=sh(2024, 6, 12, 18)), ORDER).total == 1000
    with raises_code("outside_usable_time"):
        check_redeemable(facts(t), ctx(at=sh(2024, 6, 12, 12)), ORDER)


def test_hours_are_judged_in_merchant_local_time():
    t = template(hours=(HourRange(time(11), time(14)),))
    # 04:00Z is 12:00 in Shanghai
    assert check_redeemable(facts(t), ctx(at=datetime(2024, 6, 12, 4, tzinfo=UTC)), ORDER)
    with raises_code("outside_usable_time"):
        check_redeemable(facts(t), ctx(at=datetime(2024, 6, 12, 12, tzinfo=UTC)), ORDER)


def test_weekday_and_hour_wrapping_midnight_use_the_local_day():
    # Friday-only, 22:00-02:00: Saturday 01:00 is outside (it is Saturday), Friday 23:00 is in
    t = template(weekdays=frozenset({5}), hours=(HourRange(time(22), time(2)),))
    assert check_redeemable(facts(t), ctx(at=sh(2024, 6, 14, 23)), ORDER).total == 1000
    with raises_code("outside_usable_time"):
        check_redeemable(facts(t), ctx(at=sh(2024, 6, 15, 1)), ORDER)


# --- order shape, product rules, threshold -------------------------------------------------


def test_order_lines_required():
    with raises_code("order_lines_required"):
        check_redeemable(facts(template(skus=frozenset({"TEA"}))), ctx(), Order("o", 6000))
    with raises_code("order_lines_required"):
        check_redeemable(facts(template(ExchangeBenefit("TEA"))), ctx(), Order("o", 6000))


def test_order_amount_mismatch():
    with raises_code("order_amount_mismatch", amount=6001, lines_total=6000):
        check_redeemable(facts(), ctx(), replace(ORDER, amount=6001))


def test_no_eligible_items():
    with raises_code("no_eligible_items"):
        check_redeemable(facts(template(skus=frozenset({"COFFEE"}))), ctx(), ORDER)


def test_threshold_not_met():
    t = template(ThresholdBenefit(threshold=6001, discount=100))
    with raises_code("threshold_not_met", threshold=6001, eligible_amount=6000):
        check_redeemable(facts(t), ctx(), ORDER)


def test_exchange_item_missing():
    with raises_code("exchange_item_missing", sku="COFFEE"):
        check_redeemable(facts(template(ExchangeBenefit("COFFEE"))), ctx(), ORDER)


# --- order of the checks -------------------------------------------------------------------


def test_checks_run_in_documented_order():
    """Start with a request that fails every check; fix one thing at a time."""
    t = template(
        ThresholdBenefit(threshold=100000, discount=100),
        stores=frozenset({"S001"}),
        channels=frozenset({"pos"}),
        weekdays=frozenset({3}),
        hours=(HourRange(time(11), time(14)),),
        skus=frozenset({"TEA"}),
    )
    # redeemed already, in a window that ended on 1 June, judged on Thursday 13 June at
    # 20:00 at the wrong store, on the wrong channel, without lines
    may = Window(sh(2024, 5, 1).astimezone(UTC), sh(2024, 6, 1).astimezone(UTC))
    f = facts(t, state=CouponState.REDEEMED, window=may)
    c = ctx(at=sh(2024, 6, 13, 20), store="S999", channel="web")
    o = Order("o", 999, None)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("coupon_already_redeemed", lambda: replace(f, state=CouponState.ISSUED)),
        ("coupon_expired", lambda: replace(f, window=WINDOW)),
        ("store_not_allowed", lambda: replace(c, store="S001")),
        ("channel_not_allowed", lambda: replace(c, channel="pos")),
        ("outside_usable_time", lambda: replace(c, at=sh(2024, 6, 12, 20))),  # weekday fixed
        ("outside_usable_time", lambda: replace(c, at=sh(2024, 6, 12, 12))),  # hour fixed
        ("order_lines_required", lambda: Order("o", 999, (Line("CAKE", 1, 1000),))),
        ("order_amount_mismatch", lambda: Order("o", 1000, (Line("CAKE", 1, 1000),))),
        ("no_eligible_items", lambda: Order("o", 3000, (Line("CAKE", 1, 1000),
                                                          Line("TEA", 1, 2000)))),
        ("threshold_not_met", lambda: replace(f, template=replace(
            t, benefit=ThresholdBenefit(threshold=2000, discount=100)))),
    ]
    for code, fix in steps:
        with raises_code(code):
            check_redeemable(f, c, o)
        fixed = fix()
        if isinstance(fixed, CouponFacts):
            f = fixed
        elif isinstance(fixed, RedeemContext):
            c = fixed
        else:
            o = fixed
    d = check_redeemable(f, c, o)
    assert d == Discount(100, 2000, (LineDiscount(1, "TEA", 100),))


def test_not_yet_valid_comes_after_state_and_before_store():
    f = facts(template(stores=frozenset({"S001"})), state=CouponState.VOIDED)
    before = ctx(at=WINDOW.start - timedelta(days=1), store="S999")
    with raises_code("coupon_voided"):
        check_redeemable(f, before, ORDER)
    with raises_code("coupon_not_yet_valid"):
        check_redeemable(replace(f, state=CouponState.ISSUED), before, ORDER)


def test_expired_state_wins_over_window_and_store():
    f = facts(template(stores=frozenset({"S001"})), state=CouponState.EXPIRED)
    with raises_code("coupon_expired"):
        check_redeemable(f, ctx(at=WINDOW.end + timedelta(days=1), store="S999"), ORDER)
    # judged inside the window, a swept coupon goes on to the other checks
    with raises_code("store_not_allowed"):
        check_redeemable(f, ctx(store="S999"), ORDER)


def test_store_before_channel_and_channel_before_time():
    t = template(stores=frozenset({"S001"}), channels=frozenset({"app"}),
                 weekdays=frozenset({1}))
    with raises_code("store_not_allowed"):
        check_redeemable(facts(t), ctx(store="X", channel="pos"), ORDER)
    with raises_code("channel_not_allowed"):
        check_redeemable(facts(t), ctx(store="S001", channel="pos"), ORDER)
    with raises_code("outside_usable_time"):
        check_redeemable(facts(t), ctx(store="S001", channel="app"), ORDER)


# --- effective_state -----------------------------------------------------------------------


def test_effective_state_issued():
    assert effective_state(CouponState.ISSUED, WINDOW, WINDOW.start) is CouponState.ISSUED
    before = WINDOW.start - timedelta(days=1)
    assert effective_state(CouponState.ISSUED, WINDOW, before) is CouponState.ISSUED
    last = WINDOW.end - timedelta(microseconds=1)
    assert effective_state(CouponState.ISSUED, WINDOW, last) is CouponState.ISSUED
    assert effective_state(CouponState.ISSUED, WINDOW, WINDOW.end) is CouponState.EXPIRED
    later = WINDOW.end + timedelta(days=1)
    assert effective_state(CouponState.ISSUED, WINDOW, later) is CouponState.EXPIRED


def test_effective_state_expired_reads_issued_inside_the_window():
    assert effective_state(CouponState.EXPIRED, WINDOW, NOON_WED) is CouponState.ISSUED
    for at in (WINDOW.end, WINDOW.end + timedelta(days=9)):
        assert effective_state(CouponState.EXPIRED, WINDOW, at) is CouponState.EXPIRED


@pytest.mark.parametrize("state", [CouponState.REDEEMED, CouponState.VOIDED])
def test_effective_state_of_other_states_is_unchanged(state):
    for at in (WINDOW.start - timedelta(days=1), NOON_WED, WINDOW.end,
               WINDOW.end + timedelta(days=9)):
        assert effective_state(state, WINDOW, at) is state


@NO_DB
@given(st.sampled_from(list(CouponState)),
       st.integers(-40 * 86400, 80 * 86400).map(lambda s: WINDOW.start + timedelta(seconds=s)))
def test_effective_state_matches_redeem_outcome(state, at):
    eff = effective_state(state, WINDOW, at)
    assert eff in (state, CouponState.EXPIRED, CouponState.ISSUED)
    if eff is CouponState.EXPIRED:
        with raises_code("coupon_expired"):
            check_redeemable(facts(state=state), ctx(at=at), Order("o", 9000))
    elif eff is CouponState.ISSUED:  # issued, or swept but judged inside the window
        try:
            check_redeemable(facts(state=state), ctx(at=at), Order("o", 9000))
        except DomainError as err:
            assert err.code != "coupon_expired"

"""Template rules: check_template, HourRange, UsageRules and Template properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from hub.domain.templates import (
    CHANNELS,
    KINDS,
    ExchangeBenefit,
    FixedWindow,
    HourRange,
    PercentageBenefit,
    RelativeWindow,
    Template,
    ThresholdBenefit,
    UsageRules,
    check_template,
)

from ._helpers import raises_code

START = datetime(2024, 6, 1, tzinfo=UTC)
END = datetime(2024, 7, 1, tzinfo=UTC)


def tpl(**kw) -> Template:
    base = Template(benefit=ThresholdBenefit(threshold=1000, discount=100),
                    validity=RelativeWindow(days=30))
    return replace(base, **kw)


# --- valid templates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        tpl(),
        tpl(benefit=ThresholdBenefit(threshold=0, discount=1)),
        tpl(benefit=PercentageBenefit(percent_off=1)),
        tpl(benefit=PercentageBenefit(percent_off=99, threshold=0, cap=1)),
        tpl(benefit=PercentageBenefit(percent_off=15, threshold=5000, cap=2000)),
        tpl(benefit=ExchangeBenefit(sku="TEA")),
        tpl(benefit=ExchangeBenefit(sku="TEA", qty=3, price=0, threshold=0)),
        tpl(benefit=ExchangeBenefit(sku="TEA", qty=1, price=990, threshold=3000)),
        tpl(validity=FixedWindow(START, END)),
        tpl(validity=FixedWindow(START, START + timedelta(microseconds=1))),
        tpl(validity=FixedWindow(datetime(2024, 6, 1, tzinfo=timezone(timedelta(hours=8))),
                                 datetime(2024, 6, 1, 0, 0, 1, tzinfo=UTC))),
        tpl(validity=RelativeWindow(days=1)),
        tpl(validity=RelativeWindow(days=1, start_after_days=0)),
        tpl(validity=RelativeWindow(days=7, start_after_days=3)),
        tpl(usage=UsageRules(weekdays=frozenset(range(1, 8)))),
        tpl(usage=UsageRules(hours=(HourRange(time(22), time(2)), HourRange(time(9), time(10))))),
        tpl(usage=UsageRules(channels=frozenset(CHANNELS))),
        tpl(usage=UsageRules(skus=frozenset({"A"}), categories=frozenset({"c"}),
                             stores=frozenset({"S001"}))),
        tpl(total_quantity=0),
        tpl(total_quantity=10),
        tpl(per_customer_limit=1),
        tpl(total_quantity=None, per_customer_limit=None),
    ],
)
def test_valid_templates_pass_unchanged(template):
    assert check_template(template) is template


# --- invalid templates ---------------------------------------------------------------------

NAIVE = datetime(2024, 6, 1)

INVALID = [
    (tpl(benefit=ThresholdBenefit(threshold=100, discount=0)), "benefit.discount"),
    (tpl(benefit=ThresholdBenefit(threshold=100, discount=-5)), "benefit.discount"),
    (tpl(benefit=ThresholdBenefit(threshold=-1, discount=5)), "benefit.threshold"),
    (tpl(benefit=PercentageBenefit(percent_off=0)), "benefit.percent_off"),
    (tpl(benefit=PercentageBenefit(percent_off=100)), "benefit.percent_off"),
    (tpl(benefit=PercentageBenefit(percent_off=-10)), "benefit.percent_off"),
    (tpl(benefit=PercentageBenefit(percent_off=10, threshold=-1)), "benefit.threshold"),
    (tpl(benefit=PercentageBenefit(percent_off=10, cap=0)), "benefit.cap"),
    (tpl(benefit=PercentageBenefit(percent_off=10, cap=-100)), "benefit.cap"),
    (tpl(benefit=ExchangeBenefit(sku="")), "benefit.sku"),
    (tpl(benefit=ExchangeBenefit(sku="TEA", qty=0)), "benefit.qty"),
    (tpl(benefit=ExchangeBenefit(sku="TEA", price=-1)), "benefit.price"),
    (tpl(benefit=ExchangeBenefit(sku="TEA", threshold=-1)), "benefit.threshold"),
    (tpl(validity=FixedWindow(NAIVE, END)), "validity"),
    (tpl(validity=FixedWindow(START, datetime(2024, 7, 1))), "validity"),
    (tpl(validity=FixedWindow(NAIVE, datetime(2024, 7, 1))), "validity"),
    (tpl(validity=FixedWindow(START, START)), "validity.end"),
    (tpl(validity=FixedWindow(END, START)), "validity.end"),
    # same instant written in two zones is still an empty window
    (tpl(validity=FixedWindow(datetime(2024, 6, 1, 8, tzinfo=timezone(timedelta(hours=8))),
                              datetime(2024, 6, 1, 0, tzinfo=UTC))), "validity.end"),
    (tpl(validity=RelativeWindow(days=0)), "validity.days"),
    (tpl(validity=RelativeWindow(days=-1)), "validity.days"),
    (tpl(validity=RelativeWindow(days=1, start_after_days=-1)), "validity.start_after_days"),
    (tpl(usage=UsageRules(weekdays=frozenset({0}))), "usage.weekdays"),
    (tpl(usage=UsageRules(weekdays=frozenset({1, 8}))), "usage.weekdays"),
    (tpl(usage=UsageRules(channels=frozenset({"pos", "fax"}))), "usage.channels"),
    (tpl(usage=UsageRules(channels=frozenset({"POS"}))), "usage.channels"),
    (tpl(usage=UsageRules(hours=(HourRange(time(9), time(9)),))), "usage.hours[0]"),
    (
        tpl(usage=UsageRules(hours=(HourRange(time(9), time(10)), HourRange(time(3), time(3))))),
        "usage.hours[1]",
    ),
    (tpl(total_quantity=-1), "total_quantity"),
    (tpl(per_customer_limit=0), "per_customer_limit"),
    (tpl(per_customer_limit=-3), "per_customer_limit"),
]


@pytest.mark.parametrize(("template", "field"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_templates_name_the_field(template, field):
    with raises_code("invalid_template", field=field) as info:
        check_template(template)
    assert info.value.extra == {"field": field}


def test_unknown_channel_message_lists_them():
    with raises_code("invalid_template", field="usage.channels") as info:
        check_template(tpl(usage=UsageRules(channels=frozenset({"fax", "telex", "pos"}))))
    assert "['fax', 'telex']" in info.value.message


# --- HourRange -----------------------------------------------------------------------------


def test_hour_range_plain():
    h = HourRange(time(11), time(14))
    assert not h.contains(time(10, 59, 59))
    assert h.contains(time(11))
    assert h.contains(time(13, 59, 59, 999999))
    assert not h.contains(time(14))
    assert not h.contains(time(0))


def test_hour_range_wrapping_midnight():
    h = HourRange(time(22), time(2))
    assert h.contains(time(22))
    assert h.contains(time(23, 59))
    assert h.contains(time(0))
    assert h.contains(time(1, 59, 59))
    assert not h.contains(time(2))
    assert not h.contains(time(12))
    assert not h.contains(time(21, 59, 59))


def test_hour_range_to_midnight():
    h = HourRange(time(18), time(0))  # 18:00 until midnight (wraps, end exclusive)
    assert h.contains(time(23, 59, 59))
    assert h.contains(time(18))
    assert not h.contains(time(0))
    assert not h.contains(time(17, 59))


# --- UsageRules / Template properties ------------------------------------------------------


def test_usage_rules_defaults_are_unrestricted():
    u = UsageRules()
    assert u.weekdays == u.skus == u.categories == u.stores == u.channels == frozenset()
    assert u.hours == ()
    assert not u.has_product_rules


def test_has_product_rules():
    assert UsageRules(skus=frozenset({"A"})).has_product_rules
    assert UsageRules(categories=frozenset({"c"})).has_product_rules
    assert not UsageRules(stores=frozenset({"S"}), channels=frozenset({"pos"})).has_product_rules


def test_template_kind_and_needs_lines():
    assert KINDS == ("threshold", "percentage", "exchange")
    assert tpl().kind == "threshold"
    assert tpl(benefit=PercentageBenefit(percent_off=5)).kind == "percentage"
    assert tpl(benefit=ExchangeBenefit(sku="A")).kind == "exchange"
    assert not tpl().needs_lines
    assert not tpl(benefit=PercentageBenefit(percent_off=5)).needs_lines
    assert tpl(benefit=ExchangeBenefit(sku="A")).needs_lines
    assert tpl(usage=UsageRules(skus=frozenset({"A"}))).needs_lines
    assert tpl(usage=UsageRules(categories=frozenset({"c"}))).needs_lines
    assert not tpl(usage=UsageRules(stores=frozenset({"S"}))).needs_lines


def test_template_defaults():
    t = Template(benefit=ThresholdBenefit(threshold=0, discount=1), validity=RelativeWindow(1))
    assert t.usage == UsageRules()
    assert t.total_quantity is None and t.per_customer_limit is None
    assert PercentageBenefit(percent_off=5) == PercentageBenefit(5, 0, None)
    assert ExchangeBenefit(sku="A") == ExchangeBenefit("A", 1, 0, 0)
    assert RelativeWindow(days=2).start_after_days == 0


def test_channels_catalogue():
    assert CHANNELS == ("pos", "mini_program", "h5", "app", "web")

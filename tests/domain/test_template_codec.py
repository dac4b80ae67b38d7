"""Templates to and from their plain-dict (JSON) form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.errors import DomainError
from hub.domain.template_codec import (
    benefit_from_dict,
    benefit_to_dict,
    stacking_from_dict,
    stacking_to_dict,
    template_from_dict,
    template_to_dict,
    usage_from_dict,
    usage_to_dict,
    validity_from_dict,
    validity_to_dict,
)
from hub.domain.templates import (
    CHANNELS,
    KINDS,
    MAX_PER_ORDER,
    ExchangeBenefit,
    FixedWindow,
    HourRange,
    PercentageBenefit,
    RelativeWindow,
    Stacking,
    Template,
    ThresholdBenefit,
    UsageRules,
    check_template,
)

from ._helpers import NO_DB, raises_code

# --- strategies for valid templates --------------------------------------------------------

fen = st.integers(0, 10**12)
benefits = st.one_of(
    st.builds(ThresholdBenefit, threshold=fen, discount=st.integers(1, 10**12)),
    st.builds(PercentageBenefit, percent_off=st.integers(1, 99), threshold=fen,
              cap=st.none() | st.integers(1, 10**12)),
    st.builds(ExchangeBenefit, sku=st.text(min_size=1, max_size=20), qty=st.integers(1, 1000),
              price=fen, threshold=fen),
)
zones = st.sampled_from(
    [UTC, ZoneInfo("Asia/Shanghai"), timezone(timedelta(hours=8)),
     timezone(timedelta(hours=-3, minutes=-30)), timezone(timedelta(hours=5, minutes=45))]
)


@st.composite
def fixed_windows(draw: st.DrawFn) -> FixedWindow:
    start = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                              timezones=zones))
    length = draw(st.timedeltas(min_value=timedelta(microseconds=1),
                                max_value=timedelta(days=3650)))
    end_zone = draw(zones)
    return FixedWindow(start, (start.astimezone(UTC) + length).astimezone(end_zone))


validities = st.one_of(
    fixed_windows(),
    st.builds(RelativeWindow, days=st.integers(1, 3650), start_after_days=st.integers(0, 3650)),
)
minute_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
hour_ranges = st.builds(HourRange, minute_times, minute_times).filter(lambda h: h.start != h.end)
names = st.text(min_size=1, max_size=12)
usages = st.builds(
    UsageRules,
    weekdays=st.frozensets(st.integers(1, 7)),
    hours=st.lists(hour_ranges, max_size=4).map(tuple),
    skus=st.frozensets(names, max_size=5),
    categories=st.frozensets(names, max_size=5),
    stores=st.frozensets(names, max_size=5),
    channels=st.frozensets(st.sampled_from(CHANNELS)),
)
stackings = st.just(Stacking()) | st.builds(
    Stacking,
    combines_with=st.frozensets(st.sampled_from(KINDS), min_size=1),
    max_per_order=st.none() | st.integers(2, MAX_PER_ORDER),
)
templates = st.builds(
    Template,
    benefit=benefits,
    validity=validities,
    usage=usages,
    total_quantity=st.none() | st.integers(0, 10**8),
    per_customer_limit=st.none() | st.integers(1, 10**4),
    stacking=stackings,
    transferable=st.booleans(),
    offline=st.booleans(),
    # kept largest first, as the codec reads them
    remind_days_before=st.lists(st.integers(1, 365), max_size=5, unique=True).map(
        lambda days: tuple(sorted(days, reverse=True))
    ),
).map(check_template)


# --- round trips ---------------------------------------------------------------------------


@settings(NO_DB, max_examples=300)
@given(templates)
def test_round_trip(t):
    d = template_to_dict(t)
    assert template_from_dict(d) == t
    # the dict form is plain JSON and survives serialisation
    assert template_from_dict(json.loads(json.dumps(d))) == t
    # and encoding is stable
    assert template_to_dict(template_from_dict(d)) == d


@NO_DB
@given(templates)
def test_dict_form_is_canonical(t):
    d = template_to_dict(t)
    assert set(d) == {
        "benefit", "validity", "usage", "total_quantity", "per_customer_limit", "stacking",
        "transferable", "offline", "remind_days_before",
    }
    assert d["remind_days_before"] == sorted(d["remind_days_before"], reverse=True)
    assert d["benefit"]["kind"] == t.kind
    # kinds in the catalogue's order; an exclusive template always says max_per_order 1
    combines_with = d["stacking"]["combines_with"]
    assert combines_with == [k for k in KINDS if k in combines_with]
    if not d["stacking"]["combines_with"]:
        assert d["stacking"]["max_per_order"] == 1
    u = d["usage"]
    for key in ("weekdays", "skus", "categories", "stores", "channels"):
        assert u[key] == sorted(u[key])
    for h in u["hours"]:
        assert len(h["start"]) == len(h["end"]) == 5  # HH:MM


def test_round_trip_keeps_the_instant_of_zoned_fixed_windows():
    ny = ZoneInfo("America/New_York")
    window = FixedWindow(datetime(2024, 3, 9, 12, tzinfo=ny), datetime(2024, 3, 11, 12, tzinfo=ny))
    t = check_template(Template(benefit=ThresholdBenefit(0, 1), validity=window))
    back = template_from_dict(template_to_dict(t))
    assert isinstance(back.validity, FixedWindow)
    assert back.validity.start.astimezone(UTC) == datetime(2024, 3, 9, 17, tzinfo=UTC)
    assert back.validity.end.astimezone(UTC) == datetime(2024, 3, 11, 16, tzinfo=UTC)


# --- concrete encodings --------------------------------------------------------------------


def test_to_dict_concrete():
    t = Template(
        benefit=PercentageBenefit(percent_off=15, threshold=5000, cap=2000),
        validity=FixedWindow(datetime(2024, 6, 1, tzinfo=UTC),
                             datetime(2024, 7, 1, tzinfo=timezone(timedelta(hours=8)))),
        usage=UsageRules(
            weekdays=frozenset({7, 1, 3}),
            hours=(HourRange(time(22, 0), time(2, 30)),),
            skus=frozenset({"b", "a"}),
            categories=frozenset({"drinks"}),
            stores=frozenset({"S002", "S001"}),
            channels=frozenset({"pos", "app"}),
        ),
        total_quantity=1000,
        per_customer_limit=2,
    )
    assert template_to_dict(t) == {
        "benefit": {"kind": "percentage", "percent_off": 15, "threshold": 5000, "cap": 2000},
        "validity": {
            "type": "fixed",
            "start": "2024-06-01T00:00:00+00:00",
            "end": "2024-07-01T00:00:00+08:00",
        },
        "usage": {
            "weekdays": [1, 3, 7],
            "hours": [{"start": "22:00", "end": "02:30"}],
            "skus": ["a", "b"],
            "categories": ["drinks"],
            "stores": ["S001", "S002"],
            "channels": ["app", "pos"],
        },
        "total_quantity": 1000,
        "per_customer_limit": 2,
        "stacking": {"combines_with": [], "max_per_order": 1},
        "transferable": False,
        "offline": True,
        "remind_days_before": [3],
    }


def test_transferable_round_trips_and_defaults_to_false():
    base = {"benefit": {"kind": "threshold", "threshold": 100, "discount": 10},
            "validity": {"type": "relative", "days": 3}}
    assert template_from_dict(base).transferable is False  # rules stored before the flag
    assert template_from_dict({**base, "transferable": None}).transferable is False
    t = template_from_dict({**base, "transferable": True})
    assert t.transferable is True
    assert template_to_dict(t)["transferable"] is True
    assert template_from_dict(template_to_dict(t)) == t
    for bad in ("yes", 1, 0, []):
        with pytest.raises(DomainError) as e:
            template_from_dict({**base, "transferable": bad})
        assert e.value.code == "invalid_template" and e.value.extra["field"] == "transferable"


def test_offline_round_trips_and_defaults_to_true():
    base = {"benefit": {"kind": "threshold", "threshold": 100, "discount": 10},
            "validity": {"type": "relative", "days": 3}}
    assert template_from_dict(base).offline is True  # rules stored before the flag
    assert template_from_dict({**base, "offline": None}).offline is True
    t = template_from_dict({**base, "offline": False})
    assert t.offline is False
    assert template_to_dict(t)["offline"] is False
    assert template_from_dict(template_to_dict(t)) == t
    for bad in ("no", 1, 0, []):
        with pytest.raises(DomainError) as e:
            template_from_dict({**base, "offline": bad})
        assert e.value.code == "invalid_template" and e.value.extra["field"] == "offline"


def test_benefit_and_validity_dicts():
    assert benefit_to_dict(ThresholdBenefit(10000, 2000)) == {
        "kind": "threshold", "threshold": 10000, "discount": 2000}
    assert benefit_to_dict(ExchangeBenefit("TEA", 2, 100, 0)) == {
        "kind": "exchange", "sku": "TEA", "qty": 2, "price": 100, "threshold": 0}
    assert validity_to_dict(RelativeWindow(7, 1)) == {
        "type": "relative", "days": 7, "start_after_days": 1}
    assert usage_to_dict(UsageRules()) == {
        "weekdays": [], "hours": [], "skus": [], "categories": [], "stores": [], "channels": []}


def test_from_dict_defaults():
    assert benefit_from_dict({"kind": "percentage", "percent_off": 12}) == PercentageBenefit(12)
    assert benefit_from_dict(
        {"kind": "percentage", "percent_off": 12, "threshold": None, "cap": None}
    ) == PercentageBenefit(12, 0, None)
    assert benefit_from_dict({"kind": "exchange", "sku": "TEA"}) == ExchangeBenefit("TEA", 1, 0, 0)
    assert validity_from_dict({"type": "relative", "days": 3}) == RelativeWindow(3, 0)
    assert usage_from_dict(None) == UsageRules()
    assert usage_from_dict({}) == UsageRules()
    t = template_from_dict({
        "benefit": {"kind": "threshold", "threshold": 0, "discount": 5},
        "validity": {"type": "relative", "days": 1},
    })
    assert t == Template(ThresholdBenefit(0, 5), RelativeWindow(1))


def test_from_dict_coerces_numbers_and_parses_times():
    b = benefit_from_dict({"kind": "threshold", "threshold": "100", "discount": "20"})
    assert b == ThresholdBenefit(100, 20)
    u = usage_from_dict({"weekdays": ["1", 2], "hours": [{"start": "09:00", "end": "17:30"}]})
    assert u.weekdays == frozenset({1, 2})
    assert u.hours == (HourRange(time(9), time(17, 30)),)
    v = validity_from_dict({"type": "fixed", "start": "2024-06-01T00:00:00+08:00",
                            "end": "2024-06-02T00:00:00Z"})
    assert isinstance(v, FixedWindow)
    assert v.start == datetime(2024, 5, 31, 16, tzinfo=UTC)
    assert v.end == datetime(2024, 6, 2, tzinfo=UTC)


# --- refusals ------------------------------------------------------------------------------


def base_dict() -> dict:
    return {
        "benefit": {"kind": "threshold", "threshold": 100, "discount": 10},
        "validity": {"type": "relative", "days": 1},
        "usage": {},
        "stacking": {},
    }


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("benefit", "kind"), "bogus", "benefit.kind"),
        (("benefit", "kind"), None, "benefit.kind"),
        (("benefit", "discount"), 0, "benefit.discount"),
        (("validity", "type"), "forever", "validity.type"),
        (("validity", "days"), 0, "validity.days"),
        (("usage", "hours"), [{"start": "25:00", "end": "02:00"}], "usage.hours[0].start"),
        (("usage", "hours"), [{"start": "09:00", "end": "9pm"}], "usage.hours[0].end"),
        (("usage", "hours"), [{"start": "09:00", "end": "10:00"}, {"start": "x", "end": "y"}],
         "usage.hours[1].start"),
        (("usage", "hours"), [{"start": "09:00", "end": "09:00"}], "usage.hours[0]"),
        (("usage", "weekdays"), [0], "usage.weekdays"),
        (("usage", "channels"), ["fax"], "usage.channels"),
        (("total_quantity",), -1, "total_quantity"),
        (("per_customer_limit",), 0, "per_customer_limit"),
        (("stacking",), "exclusive", "stacking"),
        (("stacking",), ["percentage"], "stacking"),
        (("stacking", "combines_with"), "percentage", "stacking.combines_with"),
        (("stacking", "combines_with"), [1], "stacking.combines_with"),
        (("stacking", "combines_with"), ["coupon"], "stacking.combines_with"),
        (("stacking", "max_per_order"), 2, "stacking.max_per_order"),  # exclusive
        (("stacking", "max_per_order"), 0, "stacking.max_per_order"),
        (("stacking", "max_per_order"), "3", "stacking.max_per_order"),
        (("stacking", "max_per_order"), True, "stacking.max_per_order"),
    ],
)
def test_from_dict_refusals_name_the_field(path, value, field):
    d = base_dict()
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with raises_code("invalid_template", field=field):
        template_from_dict(d)


def test_bad_benefit_kind_of_percentage():
    d = base_dict()
    d["benefit"] = {"kind": "percentage", "percent_off": 100}
    with raises_code("invalid_template", field="benefit.percent_off"):
        template_from_dict(d)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2024-06-01T00:00:00", "2024-07-01T00:00:00+08:00", "validity.start"),  # naive
        ("2024-06-01T00:00:00Z", "2024-07-01T00:00:00", "validity.end"),  # naive
        ("yesterday", "2024-07-01T00:00:00Z", "validity.start"),
        ("2024-06-01T00:00:00Z", "2024-13-01T00:00:00Z", "validity.end"),
        ("2024-07-01T00:00:00Z", "2024-06-01T00:00:00Z", "validity.end"),  # end before start
        ("2024-06-01T08:00:00+08:00", "2024-06-01T00:00:00Z", "validity.end"),  # same instant
    ],
)
def test_fixed_window_refusals(start, end, field):
    d = base_dict()
    d["validity"] = {"type": "fixed", "start": start, "end": end}
    with raises_code("invalid_template", field=field):
        template_from_dict(d)


def test_round_trip_of_hour_range_with_seconds():
    d = base_dict()
    d["usage"] = {"hours": [{"start": "09:00:30", "end": "09:00:45"}]}
    t = template_from_dict(d)  # accepted: a valid, non-empty range of 15 seconds
    assert t.usage.hours == (HourRange(time(9, 0, 30), time(9, 0, 45)),)
    assert template_to_dict(t)["usage"]["hours"] == [{"start": "09:00:30", "end": "09:00:45"}]


# --- stacking ------------------------------------------------------------------------------


def test_stacking_absent_or_empty_is_exclusive():
    # every template stored before the field existed reads as exclusive: a coupon alone,
    # which is what one code per redemption always meant
    assert stacking_from_dict(None) == Stacking() == stacking_from_dict({})
    assert stacking_from_dict({"combines_with": [], "max_per_order": None}) == Stacking()
    assert Stacking().exclusive and Stacking().max_per_order == 1
    assert stacking_to_dict(Stacking()) == {"combines_with": [], "max_per_order": 1}


def test_stacking_dicts():
    s = stacking_from_dict({"combines_with": ["exchange", "threshold", "exchange"]})
    assert s == Stacking(frozenset({"threshold", "exchange"}), None)
    assert not s.exclusive and s.allows("exchange") and not s.allows("percentage")
    assert stacking_to_dict(s) == {
        "combines_with": ["threshold", "exchange"], "max_per_order": None
    }
    s = stacking_from_dict({"combines_with": ["percentage"], "max_per_order": 3})
    assert stacking_to_dict(s) == {"combines_with": ["percentage"], "max_per_order": 3}


@pytest.mark.parametrize(
    ("stacking", "field"),
    [
        ({"combines_with": ["percentage"], "max_per_order": 1}, "stacking.max_per_order"),
        ({"combines_with": ["percentage"], "max_per_order": MAX_PER_ORDER + 1},
         "stacking.max_per_order"),
        ({"combines_with": [], "max_per_order": 0}, "stacking.max_per_order"),
        ({"combines_with": ["percent"]}, "stacking.combines_with"),
        ({"combines_with": None, "max_per_order": 5}, "stacking.max_per_order"),
    ],
)
def test_stacking_refusals(stacking, field):
    d = base_dict()
    d["stacking"] = stacking
    with raises_code("invalid_template", field=field):
        template_from_dict(d)


def test_stacking_limits_accepted():
    d = base_dict()
    for limit in (2, MAX_PER_ORDER, None):
        d["stacking"] = {"combines_with": ["threshold"], "max_per_order": limit}
        assert template_from_dict(d).stacking.max_per_order == limit

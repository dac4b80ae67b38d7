"""Validity windows: fixed windows in UTC, relative windows on local calendar days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.templates import MAX_DAYS, FixedWindow, RelativeWindow
from hub.domain.validity import Window, check_issuable, to_utc, window_for

from ._helpers import NO_DB, raises_code

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
CST = timezone(timedelta(hours=8))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def assert_utc(dt: datetime) -> None:
    assert dt.tzinfo is not None
    assert dt.utcoffset() == timedelta(0)


# --- Window --------------------------------------------------------------------------------


def test_window_contains_is_half_open():
    w = Window(utc(2024, 6, 1), utc(2024, 6, 2))
    assert w.contains(utc(2024, 6, 1))
    assert w.contains(utc(2024, 6, 1, 23, 59, 59, 999999))
    assert not w.contains(utc(2024, 6, 2))
    assert not w.contains(utc(2024, 5, 31, 23, 59, 59, 999999))
    # an aware time in another zone is compared by instant
    assert w.contains(datetime(2024, 6, 2, 7, 59, tzinfo=CST))
    assert not w.contains(datetime(2024, 6, 2, 8, 0, tzinfo=CST))


# --- fixed windows -------------------------------------------------------------------------


def test_fixed_window_is_converted_to_utc():
    v = FixedWindow(datetime(2024, 6, 1, 0, 0, tzinfo=CST), datetime(2024, 7, 1, 0, 0, tzinfo=SH))
    w = window_for(v, issued_at=utc(2020, 1, 1), tz=SH)
    assert w == Window(utc(2024, 5, 31, 16), utc(2024, 6, 30, 16))
    assert_utc(w.start)
    assert_utc(w.end)
    assert w.start.tzinfo is UTC and w.end.tzinfo is UTC


def test_fixed_window_ignores_issue_time_and_merchant_zone():
    v = FixedWindow(utc(2024, 6, 1), utc(2024, 6, 2))
    a = window_for(v, issued_at=utc(2024, 5, 1), tz=SH)
    b = window_for(v, issued_at=utc(2030, 1, 1), tz=NY)
    assert a == b == Window(utc(2024, 6, 1), utc(2024, 6, 2))


def test_fixed_window_with_negative_offset():
    v = FixedWindow(datetime(2024, 3, 9, 22, tzinfo=NY), datetime(2024, 3, 10, 22, tzinfo=NY))
    w = window_for(v, issued_at=utc(2024, 1, 1), tz=SH)
    # 22:00 EST = 03:00Z; the next day 22:00 is EDT (−4) = 02:00Z
    assert w == Window(utc(2024, 3, 10, 3), utc(2024, 3, 11, 2))


# --- relative windows, Asia/Shanghai -------------------------------------------------------


def test_issued_at_23h_local_with_one_day_ends_at_next_local_midnight():
    issued = sh(2024, 3, 10, 23, 0)
    w = window_for(RelativeWindow(days=1), issued, SH)
    assert w.start == issued == utc(2024, 3, 10, 15)
    assert w.end == sh(2024, 3, 11, 0, 0) == utc(2024, 3, 10, 16)
    assert w.end - w.start == timedelta(hours=1)
    assert_utc(w.start)
    assert_utc(w.end)


def test_issued_at_local_midnight_with_one_day_lasts_24_hours():
    issued = sh(2024, 3, 10, 0, 0)
    w = window_for(RelativeWindow(days=1), issued, SH)
    assert (w.start, w.end) == (utc(2024, 3, 9, 16), utc(2024, 3, 10, 16))


def test_local_date_is_used_not_the_utc_date():
    # 16:30Z on the 10th is already 00:30 on the 11th in Shanghai
    issued = utc(2024, 3, 10, 16, 30)
    w = window_for(RelativeWindow(days=1), issued, SH)
    assert w.start == issued
    assert w.end == sh(2024, 3, 12) == utc(2024, 3, 11, 16)
    # 15:59Z on the 10th is still the 10th in Shanghai
    w = window_for(RelativeWindow(days=1), utc(2024, 3, 10, 15, 59), SH)
    assert w.end == sh(2024, 3, 11)


def test_several_days():
    w = window_for(RelativeWindow(days=7), sh(2024, 2, 27, 9, 15), SH)
    # 27th is day 1 … 4 March is day 7 (2024 is a leap year), closing at midnight
    assert w.end == sh(2024, 3, 5) == utc(2024, 3, 4, 16)
    assert w.start == utc(2024, 2, 27, 1, 15)


def test_start_after_days():
    w = window_for(RelativeWindow(days=1, start_after_days=1), sh(2024, 3, 10, 23), SH)
    assert w.start == sh(2024, 3, 11) == utc(2024, 3, 10, 16)
    assert w.end == sh(2024, 3, 12) == utc(2024, 3, 11, 16)


def test_start_after_days_several():
    w = window_for(RelativeWindow(days=3, start_after_days=2), sh(2024, 12, 30, 8), SH)
    assert w.start == sh(2025, 1, 1)
    assert w.end == sh(2025, 1, 4)
    assert w.end - w.start == timedelta(days=3)


def test_issued_at_in_another_zone_uses_merchant_local_date():
    # 11:30 in New York on 10 March is 23:30 (EDT−4 → +8) in Shanghai on the same day
    issued = datetime(2024, 3, 10, 11, 30, tzinfo=NY)
    w = window_for(RelativeWindow(days=1), issued, SH)
    assert w.start == issued
    assert w.end == sh(2024, 3, 11)


def test_relative_window_across_dst_is_counted_in_local_days():
    # New York springs forward on 10 March 2024: that local day has 23 hours
    w = window_for(RelativeWindow(days=1, start_after_days=1), datetime(2024, 3, 9, 12, tzinfo=NY),
                   NY)
    assert w.start == utc(2024, 3, 10, 5)  # 00:00 EST
    assert w.end == utc(2024, 3, 11, 4)  # 00:00 EDT
    assert w.end - w.start == timedelta(hours=23)


@pytest.mark.parametrize("days", [1, 2, 30, 365])
def test_window_in_shanghai_is_whole_local_days(days):
    w = window_for(RelativeWindow(days=days, start_after_days=1), sh(2024, 5, 20, 13), SH)
    assert w.end - w.start == timedelta(days=days)


# --- properties ----------------------------------------------------------------------------

ZONES = [
    "Asia/Shanghai",
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Santiago",  # DST changes at local midnight
    "Asia/Beirut",  # DST changes at local midnight
    "Pacific/Kiritimati",  # +14
    "Pacific/Pago_Pago",  # −11
    "Asia/Kathmandu",  # +05:45
]

issue_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
)
relative = st.builds(RelativeWindow, days=st.integers(1, 400),
                     start_after_days=st.integers(0, 400))


@settings(NO_DB, max_examples=300)
@given(relative, issue_times, st.sampled_from(ZONES))
def test_relative_window_properties(validity, issued_at, zone):
    tz = ZoneInfo(zone)
    w = window_for(validity, issued_at, tz)
    assert_utc(w.start)
    assert_utc(w.end)
    assert w.end > w.start
    if validity.start_after_days == 0:
        assert w.start == issued_at
        assert w.contains(issued_at)
    else:
        assert w.start > issued_at
        assert not w.contains(issued_at)
    issue_day = issued_at.astimezone(tz).date()
    last_day = issue_day + timedelta(days=validity.start_after_days + validity.days)
    # the end is the first instant of the local calendar day after the last valid day
    assert w.end.astimezone(tz).date() == last_day
    assert (w.end - timedelta(microseconds=1)).astimezone(tz).date() < last_day
    if validity.start_after_days:
        first_day = issue_day + timedelta(days=validity.start_after_days)
        assert w.start.astimezone(tz).date() == first_day
        assert (w.start - timedelta(microseconds=1)).astimezone(tz).date() < first_day


@settings(NO_DB, max_examples=300)
@given(relative, issue_times, st.timezones())
def test_relative_window_end_after_start_in_any_zone(validity, issued_at, tz):
    w = window_for(validity, issued_at, tz)
    assert w.end > w.start
    if validity.start_after_days == 0:
        assert w.start >= issued_at


@NO_DB
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1),
                 timezones=st.sampled_from([UTC, SH, CST, NY])),
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)),
)
def test_fixed_window_properties(start, length):
    end = (start.astimezone(UTC) + length).astimezone(start.tzinfo)
    w = window_for(FixedWindow(start, end), issued_at=utc(2024, 1, 1), tz=SH)
    # compare in UTC: inter-zone == is always False for times in a DST gap or fold
    assert (w.start, w.end) == (start.astimezone(UTC), end.astimezone(UTC))
    assert_utc(w.start)
    assert_utc(w.end)
    assert w.end - w.start == length


# --- the ends of the UTC range (issue 9, item 9) ----------------------------------------------


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                  "0001-01-01T13:59:59+14:00"])
def test_a_time_with_no_utc_instant_is_out_of_range(text):
    with raises_code("datetime_out_of_range") as info:
        to_utc(datetime.fromisoformat(text), "occurred_at")
    assert info.value.extra["errors"][0]["field"] == "occurred_at"


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59+14:00",
                                  "0001-01-01T14:00:00+14:00"])
def test_the_extremes_that_exist_convert(text):
    value = datetime.fromisoformat(text)
    assert to_utc(value, "x") == value and to_utc(value, "x").tzinfo is UTC


def test_fixed_window_with_no_utc_instant_is_out_of_range():
    start = datetime.fromisoformat("0001-01-01T00:00:00+14:00")
    end = datetime(2030, 1, 1, tzinfo=UTC)
    with raises_code("datetime_out_of_range"):
        window_for(FixedWindow(start, end), datetime(2026, 1, 1, tzinfo=UTC), SH)


def test_relative_window_beyond_the_bounds_is_out_of_range():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window_for(RelativeWindow(MAX_DAYS, MAX_DAYS), now, SH)  # the longest one works
    for validity in (RelativeWindow(MAX_DAYS + 1), RelativeWindow(1, MAX_DAYS + 1),
                     RelativeWindow(10**9), RelativeWindow(0)):
        with raises_code("datetime_out_of_range"):
            window_for(validity, now, SH)
    near_the_end = datetime(9999, 12, 1, tzinfo=UTC)
    with raises_code("datetime_out_of_range"):
        window_for(RelativeWindow(365), near_the_end, SH)


def test_a_window_that_has_closed_could_never_issue():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    check_issuable(FixedWindow(now - timedelta(days=2), now + timedelta(seconds=1)), now)
    check_issuable(RelativeWindow(1), now)
    for end in (now, now - timedelta(days=1)):
        with raises_code("invalid_template"):
            check_issuable(FixedWindow(now - timedelta(days=2), end), now)

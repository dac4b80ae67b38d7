"""The pure parts of the exports: yuan text from integer fen, and the local date range."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.errors import DomainError
from hub.domain.export_range import DEFAULT_DAYS, MAX_DAYS, local_range
from hub.domain.money_text import yuan

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (1, "0.01"), (-1, "-0.01"), (99, "0.99"), (100, "1.00"), (-5, "-0.05"),
     (12800, "128.00"), (-12345, "-123.45"), (10**18 + 7, "10000000000000000.07")],
)  # fmt: skip
def test_yuan(fen: int, text: str) -> None:
    assert yuan(fen) == text


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_yuan_is_exact_for_every_amount(fen: int) -> None:
    text = yuan(fen)
    assert re.fullmatch(r"-?(0|[1-9]\d*)\.\d\d", text)
    assert int(text.replace(".", "")) == fen  # the digits are the fen, exactly
    assert text.startswith("-") == (fen < 0)


@pytest.mark.parametrize("bad", [1.5, Decimal("1"), True, "100"])
def test_yuan_takes_only_integers(bad: object) -> None:
    with pytest.raises(TypeError):
        yuan(bad)  # type: ignore[arg-type]


def test_the_default_range_is_the_last_30_local_days() -> None:
    # 2026-11-30T17:00Z is already 2026-12-01 01:00 in Shanghai
    r = local_range(None, None, SHANGHAI, datetime(2026, 11, 30, 17, tzinfo=UTC))
    assert (r.first, r.last, r.days) == (date(2026, 11, 2), date(2026, 12, 1), DEFAULT_DAYS)
    assert r.since == datetime(2026, 11, 1, 16, tzinfo=UTC)
    assert r.until == datetime(2026, 12, 1, 16, tzinfo=UTC)


def test_from_alone_ends_today_and_to_alone_starts_29_days_before() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert local_range("2026-11-20", None, SHANGHAI, now).last == date(2026, 12, 1)
    assert local_range(None, "2026-06-30", SHANGHAI, now).first == date(2026, 6, 1)


def test_a_day_of_a_daylight_saving_change_is_its_local_length() -> None:
    r = local_range("2026-03-08", "2026-03-08", NEW_YORK, datetime(2026, 4, 1, tzinfo=UTC))
    assert r.until - r.since == timedelta(hours=23)
    r = local_range("2026-11-01", "2026-11-01", NEW_YORK, datetime(2026, 12, 1, tzinfo=UTC))
    assert r.until - r.since == timedelta(hours=25)


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(min_value=1, max_value=MAX_DAYS + 5),
)
def test_ranges_up_to_the_maximum_are_accepted_and_longer_ones_refused(
    first: date, days: int
) -> None:
    last = first + timedelta(days=days - 1)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    if days <= MAX_DAYS:
        r = local_range(first.isoformat(), last.isoformat(), SHANGHAI, now)
        assert r.days == days
        assert r.until - r.since == timedelta(days=days)  # no DST in Shanghai
    else:
        with pytest.raises(DomainError) as e:
            local_range(first.isoformat(), last.isoformat(), SHANGHAI, now)
        assert e.value.code == "date_range_too_long"


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "code"),
    [("2026-1-01", None, "invalid_request"), ("20261101", None, "invalid_request"),
     ("2026-02-30", None, "invalid_request"), ("2026-11-01 ", None, "invalid_request"),
     ("２０２６-11-01", None, "invalid_request"), (None, "x", "invalid_request"),
     ("2026-11-02", "2026-11-01", "invalid_date_range"),
     ("0001-01-01", "0001-01-01", "datetime_out_of_range"),
     ("9999-12-31", "9999-12-31", "datetime_out_of_range"),
     (None, "0001-01-10", "datetime_out_of_range")],
)  # fmt: skip
def test_bad_ranges(raw_from: str | None, raw_to: str | None, code: str) -> None:
    with pytest.raises(DomainError) as e:
        local_range(raw_from, raw_to, SHANGHAI, datetime(2026, 12, 1, tzinfo=UTC))
    assert e.value.code == code

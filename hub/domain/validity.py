"""Validity windows (有效期): turning a template's rule into a coupon's window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hub.domain.errors import DomainError, refuse
from hub.domain.templates import MAX_DAYS, FixedWindow, Validity

UTC_RANGE = "0001-01-01T00:00:00Z … 9999-12-31T23:59:59Z"


def out_of_range(field: str, value: object = None) -> DomainError:
    """``datetime_out_of_range`` (422) naming ``field``."""
    shown = f" ({str(value)[:40]})" if value is not None else ""
    message = f"the time{shown} is outside the UTC range {UTC_RANGE}"
    return refuse(
        "datetime_out_of_range",
        f"{field}: {message}.",
        errors=[{"field": field, "message": message}],
    )


def to_utc(value: datetime, field: str) -> datetime:
    """``value`` (tz-aware) in UTC, or ``datetime_out_of_range`` naming ``field``: a time
    like ``0001-01-01T00:00:00+14:00`` or ``9999-12-31T23:59:59-14:00`` is a valid ISO
    8601 string whose UTC instant does not exist (it used to answer 500)."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise out_of_range(field, value.isoformat()) from None


def check_issuable(validity: Validity, now: datetime) -> None:
    """Refuse (``invalid_template``) a validity under which no coupon could ever be
    used: a fixed window that has already closed at ``now``. (An end before its start,
    and relative windows of 0 or more than :data:`MAX_DAYS` days, are refused by
    :func:`hub.domain.templates.check_template`.)"""
    if isinstance(validity, FixedWindow) and validity.end <= now:
        raise refuse(
            "invalid_template",
            "validity.end is in the past: no coupon of this template could ever be used.",
            field="validity.end",
        )


@dataclass(frozen=True)
class Window:
    """A coupon's concrete window: ``start`` inclusive, ``end`` exclusive, UTC-aware."""

    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def _local_midnight(day: datetime, tz: ZoneInfo) -> datetime:
    local = day.astimezone(tz)
    return datetime(local.year, local.month, local.day, tzinfo=tz)


def window_for(validity: Validity, issued_at: datetime, tz: ZoneInfo) -> Window:
    """The window of a coupon issued at ``issued_at`` by a merchant in time zone ``tz``.

    Day arithmetic is done on local calendar dates (so a window of 1 day issued at
    23:00 Shanghai time ends at the next local midnight), and the result is UTC.
    """
    if isinstance(validity, FixedWindow):
        start, end = to_utc(validity.start, "validity.start"), to_utc(validity.end, "validity.end")
        return Window(start, end)
    if not 1 <= validity.days <= MAX_DAYS or not 0 <= validity.start_after_days <= MAX_DAYS:
        raise out_of_range("validity.days")
    try:
        return _relative(validity.days, validity.start_after_days, issued_at, tz)
    except (OverflowError, ValueError):  # only near year 9999
        raise out_of_range("validity.days") from None


def _relative(days: int, start_after_days: int, issued_at: datetime, tz: ZoneInfo) -> Window:
    issue_day = _local_midnight(issued_at, tz).date()
    if start_after_days == 0:
        start = issued_at
    else:
        d = issue_day + timedelta(days=start_after_days)
        start = datetime(d.year, d.month, d.day, tzinfo=tz)
    last_day = issue_day + timedelta(days=start_after_days + days)
    end = datetime(last_day.year, last_day.month, last_day.day, tzinfo=tz)
    return Window(start.astimezone(UTC), end.astimezone(UTC))

"""Validity windows (有效期): turning a template's rule into a coupon's window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hub.domain.templates import FixedWindow, Validity


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
        return Window(validity.start.astimezone(UTC), validity.end.astimezone(UTC))
    issue_day = _local_midnight(issued_at, tz).date()
    if validity.start_after_days == 0:
        start = issued_at
    else:
        d = issue_day + timedelta(days=validity.start_after_days)
        start = datetime(d.year, d.month, d.day, tzinfo=tz)
    last_day = issue_day + timedelta(days=validity.start_after_days + validity.days)
    end = datetime(last_day.year, last_day.month, last_day.day, tzinfo=tz)
    return Window(start.astimezone(UTC), end.astimezone(UTC))

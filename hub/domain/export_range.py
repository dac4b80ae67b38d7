"""The local date range of a report: ``from``/``to`` as the merchant's calendar days.

Pure: parses the query's dates, fills the default (the last :data:`DEFAULT_DAYS` local
days ending today), refuses an inverted or too long range, and gives the UTC instants
that bound it (local midnight of ``from`` inclusive, local midnight after ``to``
exclusive; a day of a daylight-saving change is 23 or 25 hours long).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from hub.domain.errors import refuse
from hub.domain.validity import out_of_range

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "LocalRange", "local_range", "parse_day"]

DEFAULT_DAYS = 30
MAX_DAYS = 366
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class LocalRange:
    first: date  # inclusive
    last: date  # inclusive
    since: datetime  # UTC, inclusive: local midnight starting ``first``
    until: datetime  # UTC, exclusive: local midnight after ``last``

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def parse_day(field: str, raw: str) -> date:
    """``YYYY-MM-DD`` exactly (not ``20261125``, not a time), or ``invalid_request``."""
    if _DAY.fullmatch(raw) is None:
        raise _bad_day(field)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _bad_day(field) from None


def _bad_day(field: str) -> Exception:
    return refuse(
        "invalid_request",
        f"{field} must be a local date YYYY-MM-DD, e.g. 2026-11-25.",
        errors=[{"field": field, "message": "not a date YYYY-MM-DD"}],
    )


def local_range(
    raw_from: str | None,
    raw_to: str | None,
    tz: tzinfo,
    now: datetime,
    *,
    default_days: int = DEFAULT_DAYS,
    max_days: int = MAX_DAYS,
) -> LocalRange:
    """The range the query asks for. Missing ``to``: today (local); missing ``from``:
    ``default_days`` days ending at ``to``."""
    last = parse_day("to", raw_to) if raw_to is not None else now.astimezone(tz).date()
    if raw_from is not None:
        first = parse_day("from", raw_from)
    else:
        try:
            first = last - timedelta(days=default_days - 1)
        except OverflowError:
            raise out_of_range("from", raw_to) from None
    if first > last:
        raise refuse(
            "invalid_date_range",
            f"from ({first.isoformat()}) is after to ({last.isoformat()}).",
            errors=[{"field": "from", "message": "after to"}],
        )
    days = (last - first).days + 1
    if days > max_days:
        raise refuse(
            "date_range_too_long",
            f"The range has {days} days; at most {max_days} are allowed.",
            errors=[{"field": "to", "message": f"more than {max_days} days after from"}],
            max_days=max_days,
        )
    return LocalRange(first, last, _midnight(first, tz, "from"), _after(last, tz))


def _midnight(day: date, tz: tzinfo, field: str) -> datetime:
    try:
        return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    except (OverflowError, ValueError):
        raise out_of_range(field, day.isoformat()) from None


def _after(day: date, tz: tzinfo) -> datetime:
    try:
        return _midnight(day + timedelta(days=1), tz, "to")
    except OverflowError:  # 9999-12-31 + 1 day
        raise out_of_range("to", day.isoformat()) from None

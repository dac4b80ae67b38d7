"""The analytics figures' arithmetic, pure: rates, averages, percentiles of the time to
redemption, calendar buckets and the store league table.

* A rate is a :class:`~decimal.Decimal` quotient rounded half-up to 4 places, written
  as a string (``"0.4215"``); ``None`` when its denominator is zero (undefined).
* An average of fen is rounded half-up to whole fen; ``None`` over zero items.
* Percentiles of whole days are nearest-rank: the q-th percentile of n values sorted
  ascending is the value at rank ⌈q·n⌉ (1-based): median q = 1/2, p90 q = 9/10.
* Buckets of local dates: ``day`` ``2026-11-02``, ``week`` ISO 8601 ``2026-W45`` (weeks
  start on Monday; the year is the ISO week-numbering year), ``month`` ``2026-11``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal, TypeVar

K = TypeVar("K")
Group = Literal["day", "week", "month"]
GROUPS: tuple[Group, ...] = ("day", "week", "month")
PLACES = Decimal("0.0001")
MEDIAN = Fraction(1, 2)
P90 = Fraction(9, 10)


def rate(numerator: int, denominator: int) -> str | None:
    """``numerator / denominator`` to 4 places (half-up), or None when undefined."""
    if denominator == 0:
        return None
    return str((Decimal(numerator) / Decimal(denominator)).quantize(PLACES, ROUND_HALF_UP))


def average(total: int, count: int) -> int | None:
    """``total / count`` rounded half-up to a whole number (fen), or None over nothing."""
    if count <= 0:
        return None
    q = Fraction(total, count)
    return math.floor(q + Fraction(1, 2))


def nearest_rank(histogram: Mapping[int, int], q: Fraction) -> int | None:
    """The nearest-rank ``q`` percentile (0 < q ≤ 1) of values given as a histogram
    {value: how many}; None when it holds nothing. Non-positive counts are ignored."""
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    counts = sorted((v, n) for v, n in histogram.items() if n > 0)
    total = sum(n for _, n in counts)
    if total == 0:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for value, n in counts:
        seen += n
        if seen >= rank:
            return value
    raise AssertionError("unreachable")  # pragma: no cover


def period(day: date, group: Group) -> str:
    """The bucket a local date falls in."""
    if group == "day":
        return day.isoformat()
    if group == "week":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{day.year:04d}-{day.month:02d}"


def periods(start: date, end: date, group: Group) -> list[str]:
    """Every bucket from ``start`` to ``end`` (inclusive), in order, each once."""
    out: list[str] = []
    day = start
    while day <= end:
        key = period(day, group)
        if not out or out[-1] != key:
            out.append(key)
        day += timedelta(days=1)
    return out


def days(start: date, end: date) -> int:
    """Days in the inclusive range."""
    return (end - start).days + 1


# --- league table ------------------------------------------------------------------------

LEAGUE_FIGURES = ("net_redeemed", "discount", "redemption_rate")


@dataclass(frozen=True)
class StoreFigures:
    store: str
    net_redeemed: int
    discount: int
    redemption_rate: Decimal | None  # None: undefined (nothing issued)


@dataclass(frozen=True)
class LeagueRow:
    rank: int
    store: str
    lagging: bool
    reasons: tuple[str, ...]  # the figures below the average by more than the margin


@dataclass(frozen=True)
class League:
    averages: dict[str, Decimal | None]
    rows: list[LeagueRow]


def mean(values: Iterable[Decimal | int | None]) -> Decimal | None:
    """The arithmetic mean of the defined values (None when there are none)."""
    vs = [Decimal(v) for v in values if v is not None]
    if not vs:
        return None
    return sum(vs, Decimal(0)) / len(vs)


def below(value: Decimal | int | None, avg: Decimal | None, margin: Decimal) -> bool:
    """``value`` is below ``avg`` by more than ``margin`` of it: value < avg × (1 − margin).
    An undefined value or average never lags."""
    if value is None or avg is None:
        return False
    return Decimal(value) < avg * (1 - margin)


def league(stores: Sequence[StoreFigures], margin: Decimal) -> League:
    """Stores ranked by net redemptions (then discount, then store code), each flagged
    lagging when any of its figures is below the stores' average by more than
    ``margin`` (a fraction, e.g. 0.2)."""
    averages: dict[str, Decimal | None] = {
        "net_redeemed": mean(s.net_redeemed for s in stores),
        "discount": mean(s.discount for s in stores),
        "redemption_rate": mean(s.redemption_rate for s in stores),
    }
    ordered = sorted(stores, key=lambda s: (-s.net_redeemed, -s.discount, s.store))
    rows = []
    for i, s in enumerate(ordered, start=1):
        reasons = tuple(
            f for f in LEAGUE_FIGURES if below(getattr(s, f), averages[f], margin)
        )
        rows.append(LeagueRow(rank=i, store=s.store, lagging=bool(reasons), reasons=reasons))
    return League(averages=averages, rows=rows)


def fixed(value: Decimal | None, places: int = 4) -> str | None:
    """A decimal written with ``places`` places (half-up), or None."""
    if value is None:
        return None
    return str(value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))


# --- repeat purchase -----------------------------------------------------------------------

REPEAT_WINDOWS: tuple[int, ...] = (7, 14, 30)  # the repeat_days a caller may ask for
REPEAT_HORIZON = max(REPEAT_WINDOWS)


def repeat_counts(
    units: Iterable[tuple[date, K]], order_days: Iterable[date]
) -> dict[tuple[date, K], list[int]]:
    """One customer's coupon customer-days (``units``: a local day and what it is counted
    under, e.g. (store, channel)) and the days the customer ordered at all: per unit
    ``[1, r7, r14, r30]`` where ``rN`` is 1 when the customer's next order day after the
    unit's day is at most N days later. Additive: a customer's contribution is the sum
    of its units', so a change is applied as (new − old) of the days it can reach."""
    ordered = sorted(set(order_days))
    out: dict[tuple[date, K], list[int]] = {}
    for day, key in units:
        i = bisect.bisect_right(ordered, day)
        gap = (ordered[i] - day).days if i < len(ordered) else None
        row = out.setdefault((day, key), [0] * (1 + len(REPEAT_WINDOWS)))
        row[0] += 1
        for j, n in enumerate(REPEAT_WINDOWS, start=1):
            row[j] += int(gap is not None and gap <= n)
    return out


# --- long ranges -----------------------------------------------------------------------------


def month_spans(start: date, end: date) -> list[tuple[bool, date, date]]:
    """The inclusive range cut into (monthly, lo, hi) spans that cover each day once: the
    whole months inside it as one monthly span (lo, hi: the first days of its first and
    last months), and the cut edges before and after as daily spans (lo, hi: days)."""
    first_full = start if start.day == 1 else (start.replace(day=1) + timedelta(days=32)).replace(
        day=1
    )
    end_excl = (end + timedelta(days=1)).replace(day=1)  # months before it end by ``end``
    if first_full >= end_excl:
        return [(False, start, end)]
    out: list[tuple[bool, date, date]] = []
    if start < first_full:
        out.append((False, start, first_full - timedelta(days=1)))
    out.append((True, first_full, (end_excl - timedelta(days=1)).replace(day=1)))
    if end_excl <= end:
        out.append((False, end_excl, end))
    return out

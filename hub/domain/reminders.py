"""Expiry reminders (即将过期提醒): which reminder of a coupon is due at a given moment.

A template lists ``remind_days_before`` (e.g. ``(3, 1)``). The reminder for ``D`` days
is due from ``valid_until - D days`` on, but never before the coupon's window opens
(``valid_from``) and never once it has closed (``now >= valid_until``).

When several reminders are due at the same moment — a coupon claimed 2 days before
its end with ``(3, 1)``, or a job that did not run for a while — only the **nearest**
one is due: the smallest ``D`` whose moment has come. So each reminder owns a slot::

    [max(valid_until - D, valid_from),  max(valid_until - D_next, valid_from))

where ``D_next`` is the next smaller value (the last slot ends at ``valid_until``).
At any instant at most one reminder is due, a customer never gets two reminders at
once, and a reminder whose slot passed unsent (a job that did not run, a coupon
claimed late) is skipped for good, never sent late: the due ``D`` only shrinks as time
goes on. A reminder is sent at most once (the service records each one sent), so over
a coupon's life its reminders go out in decreasing ``D`` order, each at most once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Reminder", "due_reminder", "reminder_slots", "slot_bounds"]


@dataclass(frozen=True)
class Reminder:
    """The reminder ``days_before`` days before the end, due from ``due_at`` on."""

    days_before: int
    due_at: datetime


def _due_at(days: int, valid_from: datetime, valid_until: datetime) -> datetime:
    return max(valid_until - timedelta(days=days), valid_from)


def due_reminder(
    days_before: Iterable[int], valid_from: datetime, valid_until: datetime, now: datetime
) -> Reminder | None:
    """The reminder due at ``now`` (the nearest one whose moment has come), or None:
    none listed, the window not open yet, already closed, or no moment come yet."""
    if not valid_from <= now < valid_until:
        return None
    come = [d for d in days_before if valid_until - timedelta(days=d) <= now]
    if not come:
        return None
    d = min(come)
    return Reminder(d, _due_at(d, valid_from, valid_until))


def reminder_slots(
    days_before: Iterable[int], valid_from: datetime, valid_until: datetime
) -> list[tuple[int, datetime, datetime]]:
    """Every reminder with the time it is due in: ``(D, start, end)``, start inclusive,
    end exclusive, largest ``D`` first. A reminder whose slot is empty (its moment is
    not before the window opens past the next one's) never falls due and is left out."""
    out: list[tuple[int, datetime, datetime]] = []
    ordered = sorted(set(days_before), reverse=True)
    for i, d in enumerate(ordered):
        start = _due_at(d, valid_from, valid_until)
        end = _due_at(ordered[i + 1], valid_from, valid_until) if i + 1 < len(ordered) else None
        end = valid_until if end is None else end
        if start < end:
            out.append((d, start, end))
    return out


def slot_bounds(days_before: Iterable[int]) -> list[tuple[int, int]]:
    """``(D, D_next)`` for each reminder, largest first (``D_next`` 0 for the last): a
    coupon's reminder ``D`` is due at ``now`` when its window is open and
    ``now + D_next days < valid_until <= now + D days`` — how a database query finds
    the coupons due for ``D``."""
    ordered = sorted(set(days_before), reverse=True)
    return [(d, ordered[i + 1] if i + 1 < len(ordered) else 0) for i, d in enumerate(ordered)]

"""hub.domain.reminders: which reminder is due when (exhaustive properties)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.errors import DomainError
from hub.domain.reminders import Reminder, due_reminder, reminder_slots, slot_bounds
from hub.domain.template_codec import template_from_dict, template_to_dict
from hub.domain.templates import REMIND_DAYS_MAX, REMIND_MAX_COUNT

END = datetime(2026, 12, 25, 16, 0, tzinfo=UTC)
DAY = timedelta(days=1)

days_lists = st.lists(
    st.integers(1, REMIND_DAYS_MAX), min_size=0, max_size=REMIND_MAX_COUNT, unique=True
)
# offsets from END, in seconds, over a range that covers the longest reminder and more
offsets = st.integers(-(REMIND_DAYS_MAX + 5) * 86400, 2 * 86400)
starts = st.integers(1, (REMIND_DAYS_MAX + 5) * 86400)  # how long before END it opens


def at(seconds: int) -> datetime:
    return END + timedelta(seconds=seconds)


# --- examples ----------------------------------------------------------------------------


def test_three_and_one_day_reminders_in_turn() -> None:
    start = END - 30 * DAY
    assert due_reminder((3, 1), start, END, END - 3 * DAY - timedelta(seconds=1)) is None
    assert due_reminder((3, 1), start, END, END - 3 * DAY) == Reminder(3, END - 3 * DAY)
    assert due_reminder((3, 1), start, END, END - DAY - timedelta(seconds=1)) == Reminder(
        3, END - 3 * DAY
    )
    assert due_reminder((3, 1), start, END, END - DAY) == Reminder(1, END - DAY)
    assert due_reminder((3, 1), start, END, END - timedelta(microseconds=1)) == Reminder(
        1, END - DAY
    )
    assert due_reminder((3, 1), start, END, END) is None  # the window closed: never late


def test_claimed_two_days_before_the_end_gets_the_nearest_only() -> None:
    """Issued 2 days before the end with [3, 1]: the 3-day moment passed before the
    window opened, so the 3-day reminder is due at once (remind_at = the window's start),
    and the 1-day one later; never both at the same moment."""
    start = END - 2 * DAY
    assert due_reminder((3, 1), start, END, start) == Reminder(3, start)
    assert due_reminder((3, 1), start, END, END - DAY) == Reminder(1, END - DAY)


def test_a_job_that_wakes_late_sends_only_the_nearest() -> None:
    start = END - 30 * DAY
    assert due_reminder((7, 3, 1), start, END, END - 2 * DAY) == Reminder(3, END - 3 * DAY)


def test_window_not_open_yet_and_no_reminders() -> None:
    assert due_reminder((3,), END - DAY, END, END - 2 * DAY) is None
    assert due_reminder((3,), END - DAY, END, END - DAY) == Reminder(3, END - DAY)
    assert due_reminder((), END - 30 * DAY, END, END - DAY) is None


def test_slots_and_bounds() -> None:
    start = END - 30 * DAY
    assert reminder_slots((1, 3), start, END) == [
        (3, END - 3 * DAY, END - DAY),
        (1, END - DAY, END),
    ]
    assert reminder_slots((3, 1), END - DAY, END) == [(1, END - DAY, END)]  # 3's is empty
    assert slot_bounds((1, 7, 3)) == [(7, 3), (3, 1), (1, 0)]
    assert slot_bounds(()) == []


# --- properties --------------------------------------------------------------------------


@given(days_lists, starts, offsets)
def test_due_only_inside_the_window_and_after_its_moment(
    days: list[int], start_s: int, t: int
) -> None:
    start, now = END - timedelta(seconds=start_s), at(t)
    r = due_reminder(days, start, END, now)
    if r is None:
        # nothing listed, window not open or closed, or no moment come yet
        assert (
            not days
            or not start <= now < END
            or all(END - timedelta(days=d) > now for d in days)
        )
        return
    assert start <= now < END
    assert r.days_before in days
    assert r.due_at <= now
    assert r.due_at == max(END - timedelta(days=r.days_before), start)
    # the nearest: no smaller listed reminder's moment has come
    assert all(END - timedelta(days=d) > now for d in days if d < r.days_before)


@given(days_lists, starts, st.lists(offsets, min_size=1, max_size=40))
def test_a_job_running_at_any_times_sends_each_reminder_once_nearest_last(
    days: list[int], start_s: int, times: list[int]
) -> None:
    """Simulate the job: at each run the due reminder is sent unless sent already (the
    service's coupon_reminders row). Whatever the run times: each reminder at most once,
    in strictly decreasing days, never after the end, and all sent ones within their slot."""
    start = END - timedelta(seconds=start_s)
    slots = {d: (s, e) for d, s, e in reminder_slots(days, start, END)}
    sent: list[tuple[int, datetime]] = []
    for t in sorted(times):
        now = at(t)
        r = due_reminder(days, start, END, now)
        if r is not None and r.days_before not in {d for d, _ in sent}:
            sent.append((r.days_before, now))
    ds = [d for d, _ in sent]
    assert ds == sorted(set(ds), reverse=True)  # once each, largest first
    for d, when in sent:
        assert when < END
        s, e = slots[d]
        assert s <= when < e


@given(days_lists, starts)
def test_running_at_every_slot_start_sends_every_reminder_with_a_slot(
    days: list[int], start_s: int
) -> None:
    start = END - timedelta(seconds=start_s)
    slots = reminder_slots(days, start, END)
    sent = {}
    for d, s, e in slots:
        assert s < e <= END
        r = due_reminder(days, start, END, s)
        assert r == Reminder(d, s)
        sent[d] = r
        last = e - timedelta(microseconds=1)
        assert due_reminder(days, start, END, last) == Reminder(d, s)
    # a listed reminder without a slot is one whose moment is not before the window opens
    # past the next smaller one's
    for d in set(days) - set(sent):
        smaller = [x for x in days if x < d]
        assert smaller and END - timedelta(days=max(smaller)) <= start


@given(days_lists, starts)
def test_slots_tile_the_time_from_the_first_moment_to_the_end(
    days: list[int], start_s: int
) -> None:
    start = END - timedelta(seconds=start_s)
    slots = reminder_slots(days, start, END)
    for (_, _, e1), (_, s2, _) in pairwise(slots):
        assert e1 == s2
    if slots:
        assert slots[-1][2] == END
        assert [d for d, _, _ in slots] == sorted((d for d, _, _ in slots), reverse=True)


@given(days_lists, offsets)
def test_slot_bounds_are_the_query_of_the_domain_rule(days: list[int], t: int) -> None:
    """The service's SQL: reminder D is due when now + D_next < valid_until <= now + D
    (window open). Same answer as due_reminder."""
    start = END - 400 * DAY
    now = at(t)
    expected = due_reminder(days, start, END, now)
    hits = [
        d
        for d, d_next in slot_bounds(days)
        if now + timedelta(days=d_next) < END <= now + timedelta(days=d) and start <= now
    ]
    assert hits == ([] if expected is None else [expected.days_before])


# --- the template field ----------------------------------------------------------------------

SPEC = {
    "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
    "validity": {"type": "relative", "days": 30},
}


def test_template_field_default_empty_and_order() -> None:
    assert template_from_dict(SPEC).remind_days_before == (3,)
    assert template_from_dict({**SPEC, "remind_days_before": None}).remind_days_before == (3,)
    assert template_from_dict({**SPEC, "remind_days_before": []}).remind_days_before == ()
    t = template_from_dict({**SPEC, "remind_days_before": [1, 7, 3]})
    assert t.remind_days_before == (7, 3, 1)
    assert template_to_dict(t)["remind_days_before"] == [7, 3, 1]
    assert template_from_dict(template_to_dict(t)) == t


@pytest.mark.parametrize(
    "value",
    [[0], [366], [-1], [3, 3], [1, 2, 3, 4, 5, 6], "3", 3, [True], [1.5], [None], {"d": 3}],
)
def test_template_field_refused(value: object) -> None:
    with pytest.raises(DomainError) as exc:
        template_from_dict({**SPEC, "remind_days_before": value})
    assert exc.value.code == "invalid_template"
    assert exc.value.extra.get("field") == "remind_days_before"


@given(days_lists)
def test_template_field_round_trips(days: list[int]) -> None:
    t = template_from_dict({**SPEC, "remind_days_before": days})
    assert sorted(t.remind_days_before) == sorted(days)
    assert template_from_dict(template_to_dict(t)) == t

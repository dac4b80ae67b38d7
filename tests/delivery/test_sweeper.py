"""The sweeper rings a waiting delivery again with doubling waits, never every 10 s.

A backlog that is merely long (workers behind, nothing lost) was rung again every
``STALE`` seconds: 300 deliveries made 1,002 broker messages in 30 s, and the extra
messages made the backlog longer still."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from hub.delivery.sweeper import STALE, STALE_CAP, ring_again, sweep
from hub.services import outbox
from tests.conftest import issue, make_template
from tests.delivery.support import subscribe

T0_WAIT = timedelta(0)


def _ring_times(until_s: int, step_s: int = 1) -> list[int]:
    """Second marks at which one due delivery (due at 0, rung at 0) is rung."""
    rung_at, times = 0, [0]
    for t in range(step_s, until_s + 1, step_s):
        if ring_again(_at(0), _at(rung_at), _at(t), STALE):
            rung_at = t
            times.append(t)
    return times


def _at(seconds: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def test_waits_double_from_stale_up_to_the_cap() -> None:
    assert timedelta(seconds=10) == STALE and timedelta(minutes=5) == STALE_CAP
    assert _ring_times(1300) == [0, 10, 20, 40, 80, 160, 320, 620, 920, 1220]


def test_a_zero_stale_rings_everything_due() -> None:
    assert ring_again(_at(0), _at(100), _at(100), T0_WAIT)


def test_a_message_sent_before_the_delivery_was_due_does_not_count() -> None:
    """A retry whose wait is over is rung at once, whatever was sent before it."""
    # enqueued before the retry became due: the 'unrung' query takes it, not ring_again
    assert not ring_again(_at(50), _at(50), _at(55), STALE)


def test_the_sweep_rings_a_waiting_delivery_at_doubling_intervals(client, db, merchant, clock):
    subscribe(client, merchant, events=["coupon.issued"])
    outbox.announce_with(None)  # the commit's doorbell (rung at 0) is lost: nobody listens
    issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    t0 = clock.now
    rung = [
        s
        for s in range(0, 101, 5)
        if sweep(db, t0 + timedelta(seconds=s)) != []  # nobody takes it: it keeps waiting
    ]
    assert rung == [10, 20, 40, 80]


def test_a_backlog_of_many_is_rung_a_bounded_number_of_times(client, db, merchant, clock):
    subscribe(client, merchant, events=["coupon.issued"])
    outbox.announce_with(None)
    issue(db, merchant, make_template(db, merchant, clock.now), clock.now, count=30)
    t0 = clock.now
    messages = sum(len(sweep(db, t0 + timedelta(seconds=s))) for s in range(0, 61))
    assert messages == 30 * 3  # at 10, 20 and 40 s each (was 6 times: every 10 s)


def test_the_sweep_never_waits_for_rows_a_record_or_claim_holds(client, db, merchant, clock):
    """PostgreSQL: the sweep locks what it marks (and revives) in id order, skipping
    locked rows, so it never waits on a record's rows (which a record locks in id order
    too): the two once deadlocked, and the aborted record left its deliveries to their
    lease. A held row is left for the next sweep."""
    import pytest
    from sqlalchemy import select

    from hub.db.schema import deliveries

    if db.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite's writer lock serialises the two)")
    subscribe(client, merchant, events=["coupon.issued"])
    outbox.announce_with(None)
    issue(db, merchant, make_template(db, merchant, clock.now), clock.now, count=3)
    with db.connect() as conn:
        ids = sorted(conn.execute(select(deliveries.c.id)).scalars())
    later = clock.now + timedelta(seconds=11)  # every doorbell is stale
    pool = ThreadPoolExecutor(1)
    try:
        with db.connect() as holder, holder.begin():
            holder.execute(  # another transaction holds the middle row, as a record does
                select(deliveries.c.id).where(deliveries.c.id == ids[1]).with_for_update()
            ).all()
            # a sweep that waited for the row would time out here (then the lock goes)
            rung = pool.submit(sweep, db, later).result(timeout=20)
    finally:
        pool.shutdown(wait=True)
    assert sorted(rung) == [ids[0], ids[2]]
    assert sweep(db, later) == [ids[1]]  # released: rung now

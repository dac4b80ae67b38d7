"""The sweeper: the database says what is due; the broker is only a doorbell.

It re-enqueues every delivery whose time has come and that no message is known to
cover — a crash between commit and enqueue, a lost broker message, a broker restart,
a retry whose wait is over — and revives deliveries whose worker died (lease over).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, select, update

from hub.db.among import among
from hub.db.engine import write_conn
from hub.db.schema import deliveries
from hub.delivery.claim import claimable_condition

SWEEP_BATCH = 1000
# A delivery is rung again when no message was sent since it became due, or when the
# last message is this old and it is still waiting (the message was lost, or the broker
# was down). Without this, every sweeper would re-send the whole backlog every second.
STALE = timedelta(seconds=10)
# ... and, past that, only once it has waited since its last message at least as long
# as it had waited before that message: the waits double (10 s, 20 s, 40 s, ...). A
# backlog that is merely long (workers behind, nothing lost) would otherwise be rung
# again every 10 s, and the extra messages would make the backlog longer still. The
# wait stops doubling at STALE_CAP, so a message lost in a long outage waits no longer.
STALE_CAP = timedelta(minutes=5)
STALE_SCAN = 5  # stale candidates read per doorbell the sweep may ring

_LAPSED = deliveries.c.status == "delivering", deliveries.c.lease_until < bindparam("b_now")
# PostgreSQL: the rows to revive or mark are locked first, in id order, skipping rows a
# claim or a record holds. An UPDATE … WHERE id IN (…) locks in the order it finds the
# rows; a record locks its rows in id order: the two could wait on each other (a
# deadlock that aborted the record, leaving its deliveries to their lease).
_LAPSED_PG = (
    select(deliveries.c.id)
    .where(*_LAPSED)
    .order_by(deliveries.c.id)
    .with_for_update(skip_locked=True)
)
_LOCK_PG = (
    select(deliveries.c.id)
    .where(among(deliveries.c.id, "b_ids", pg=True))
    .order_by(deliveries.c.id)
    .with_for_update(skip_locked=True)
)
_REVIVE = (
    update(deliveries)
    .where(*_LAPSED)
    .values(
        status="retrying",
        next_attempt_at=bindparam("b_now"),
        lease_until=None,
        last_error="worker lost (lease expired)",
        updated_at=bindparam("b_now"),
    )
)
_UNRUNG = (  # due, and no message sent since it became due
    select(deliveries.c.id)
    .where(
        claimable_condition(),
        (deliveries.c.enqueued_at.is_(None))
        | (deliveries.c.enqueued_at < deliveries.c.next_attempt_at),
    )
    .order_by(deliveries.c.next_attempt_at)
    .limit(bindparam("b_limit"))
)
_STALE = (  # due, rung since, and that message is older than ``stale``
    select(deliveries.c.id, deliveries.c.next_attempt_at, deliveries.c.enqueued_at)
    .where(
        claimable_condition(),
        deliveries.c.enqueued_at >= deliveries.c.next_attempt_at,
        deliveries.c.enqueued_at <= bindparam("b_stale"),
    )
    .order_by(deliveries.c.enqueued_at)
    .limit(bindparam("b_limit"))
)
# (SQLite, PostgreSQL): on PostgreSQL one array parameter, not up to SWEEP_BATCH
_MARK_ENQUEUED = tuple(
    update(deliveries)
    .where(among(deliveries.c.id, "b_ids", pg))
    .values(enqueued_at=bindparam("b_now"))
    for pg in (False, True)
)
_REVIVE_PG = _REVIVE.where(among(deliveries.c.id, "b_ids", pg=True))


def sweep(
    engine: Engine,
    now: datetime,
    limit: int = SWEEP_BATCH,
    stale: timedelta = STALE,
) -> list[str]:
    """Revive lost leases; return the ids of due deliveries that no recent message
    covers (and mark them enqueued now). A ``stale`` of zero returns everything due
    (synchronous draining)."""
    pg = engine.dialect.name == "postgresql"
    with write_conn(engine) as conn:
        if pg:
            lapsed = list(conn.execute(_LAPSED_PG, {"b_now": now}).scalars())
            if lapsed:
                conn.execute(_REVIVE_PG, {"b_now": now, "b_ids": lapsed})
        else:  # SQLite: the transaction holds the writer lock
            conn.execute(_REVIVE, {"b_now": now})
        ids = list(conn.execute(_UNRUNG, {"b_now": now, "b_limit": limit}).scalars())
        if len(ids) < limit:
            stale_rows = conn.execute(
                _STALE,
                {"b_now": now, "b_stale": now - stale, "b_limit": (limit - len(ids)) * STALE_SCAN},
            )
            ids += [
                r.id for r in stale_rows if ring_again(r.next_attempt_at, r.enqueued_at, now, stale)
            ][: limit - len(ids)]
        if ids and pg:  # what a claim or a record holds now needs no doorbell
            locked = set(conn.execute(_LOCK_PG, {"b_ids": ids}).scalars())
            ids = [i for i in ids if i in locked]
        if ids:
            conn.execute(_MARK_ENQUEUED[pg], {"b_ids": ids, "b_now": now})
        return ids


def ring_again(due_at: datetime, rung_at: datetime, now: datetime, stale: timedelta) -> bool:
    """Whether a due delivery last rung at ``rung_at`` is rung again now: its last
    message is at least ``stale`` old and at least as old as the wait before it (at
    most :data:`STALE_CAP`). A ``stale`` of zero rings everything due."""
    if stale <= timedelta(0):
        return True
    return now - rung_at >= max(stale, min(rung_at - due_at, STALE_CAP))

"""The sweeper: the database says what is due; the broker is only a doorbell.

It re-enqueues every delivery whose time has come and that no message is known to
cover — a crash between commit and enqueue, a lost broker message, a broker restart,
a retry whose wait is over — and revives deliveries whose worker died (lease over).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, select, update

from hub.db.engine import write_conn
from hub.db.schema import deliveries
from hub.delivery.claim import claimable_condition

SWEEP_BATCH = 1000
# A delivery is re-sent when no message was sent since it became due, or when the last
# message is this old and it is still waiting (the message was lost, or the broker was
# down). Without this, every sweeper would re-send the whole backlog every second.
STALE = timedelta(seconds=10)

_REVIVE = (
    update(deliveries)
    .where(deliveries.c.status == "delivering", deliveries.c.lease_until < bindparam("b_now"))
    .values(
        status="retrying",
        next_attempt_at=bindparam("b_now"),
        lease_until=None,
        last_error="worker lost (lease expired)",
        updated_at=bindparam("b_now"),
    )
)
_DUE = (
    select(deliveries.c.id)
    .where(
        claimable_condition(),
        (deliveries.c.enqueued_at.is_(None))
        | (deliveries.c.enqueued_at < deliveries.c.next_attempt_at)
        | (deliveries.c.enqueued_at <= bindparam("b_stale")),
    )
    .order_by(deliveries.c.next_attempt_at)
    .limit(bindparam("b_limit"))
)
_MARK_ENQUEUED = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(enqueued_at=bindparam("b_now"))
)


def sweep(
    engine: Engine,
    now: datetime,
    limit: int = SWEEP_BATCH,
    stale: timedelta = STALE,
) -> list[str]:
    """Revive lost leases; return the ids of due deliveries that no recent message
    covers (and mark them enqueued now). A ``stale`` of zero returns everything due
    (synchronous draining)."""
    with write_conn(engine) as conn:
        conn.execute(_REVIVE, {"b_now": now})
        ids = list(
            conn.execute(_DUE, {"b_now": now, "b_stale": now - stale, "b_limit": limit}).scalars()
        )
        if ids:
            conn.execute(_MARK_ENQUEUED, {"b_ids": ids, "b_now": now})
        return ids

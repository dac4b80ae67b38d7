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
from hub.delivery.attempt import claimable_condition

SWEEP_BATCH = 1000
FRESH_GRACE = timedelta(seconds=2)  # new deliveries were enqueued by their writer

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
        (deliveries.c.status == "retrying")
        | (deliveries.c.next_attempt_at <= bindparam("b_fresh")),
    )
    .order_by(deliveries.c.next_attempt_at)
    .limit(bindparam("b_limit"))
)


def sweep(
    engine: Engine, now: datetime, limit: int = SWEEP_BATCH, grace: timedelta = FRESH_GRACE
) -> list[str]:
    """Revive lost leases; return the ids of deliveries due now (to enqueue). Pending
    deliveries younger than ``grace`` are left to the message their writer sent."""
    with write_conn(engine) as conn:
        conn.execute(_REVIVE, {"b_now": now})
        return list(
            conn.execute(_DUE, {"b_now": now, "b_fresh": now - grace, "b_limit": limit}).scalars()
        )

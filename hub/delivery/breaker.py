"""The circuit breaker of a subscription.

:data:`CIRCUIT_THRESHOLD <hub.delivery.policy.CIRCUIT_THRESHOLD>` failed attempts in a
row open the circuit: the subscription takes no deliveries and an ``alert.raised``
(``subscription_circuit_open``) is written through the alerts service. After the
cooldown the circuit is half-open: the first claimer takes the single probe; a success
closes the circuit, a failure keeps it open for another cooldown.

All of it runs inside the claim and record transactions of :mod:`hub.delivery.claim`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, and_, bindparam, case, update

from hub.db.schema import subscriptions
from hub.delivery import policy
from hub.services.alerts import raise_alert

log = structlog.get_logger("hub.delivery")

CIRCUIT_ALERT = "subscription_circuit_open"

_s = subscriptions


def accepting() -> Any:
    """The condition "this subscription takes deliveries now": active, or its circuit
    open and the cooldown over (the probe is due). Needs ``b_now``."""
    return (_s.c.status == "active") | and_(
        _s.c.status == "circuit_open", _s.c.circuit_retry_at <= bindparam("b_now")
    )


# Half-open circuit: the first claimer after the cooldown takes the single probe by
# moving the probe time on; everyone else finds the circuit still closed to them.
_TAKE_PROBE = (
    update(_s)
    .where(
        _s.c.id == bindparam("b_sub"),
        _s.c.status == "circuit_open",
        _s.c.circuit_retry_at <= bindparam("b_now"),
    )
    .values(circuit_retry_at=bindparam("b_next_probe"))
    .returning(_s.c.id)
)
# a success resets the failure count and closes an open circuit (a no-op row match
# otherwise, so the common case writes nothing)
_CLOSE = (
    update(_s)
    .where(
        _s.c.id == bindparam("b_id"),
        (_s.c.consecutive_failures != 0) | (_s.c.status == "circuit_open"),
    )
    .values(
        consecutive_failures=0,
        circuit_retry_at=None,
        updated_at=bindparam("b_now"),
        status=case((_s.c.status == "circuit_open", "active"), else_=_s.c.status),
    )
)
_COUNT_FAILURE = (
    update(_s)
    .where(_s.c.id == bindparam("b_id"))
    .values(consecutive_failures=_s.c.consecutive_failures + 1, updated_at=bindparam("b_now"))
    .returning(_s.c.consecutive_failures, _s.c.status)
)
_PROBE_LATER = (
    update(_s).where(_s.c.id == bindparam("b_id")).values(circuit_retry_at=bindparam("b_retry"))
)
_OPEN = (
    update(_s)
    .where(_s.c.id == bindparam("b_id"))
    .values(status="circuit_open", circuit_retry_at=bindparam("b_retry"))
)


def take_probe(conn: Connection, subscription_id: str, now: datetime) -> bool:
    """Take the half-open circuit's single probe (False: someone else has it)."""
    next_probe = now + timedelta(seconds=policy.CIRCUIT_COOLDOWN)
    taken = conn.execute(
        _TAKE_PROBE, {"b_sub": subscription_id, "b_now": now, "b_next_probe": next_probe}
    ).first()
    return taken is not None


def succeeded(conn: Connection, subscription_id: str, now: datetime) -> None:
    """An attempt succeeded: reset the failure count, close an open circuit."""
    conn.execute(_CLOSE, {"b_id": subscription_id, "b_now": now})


def failed(conn: Connection, subscription_id: str, merchant_id: str, now: datetime) -> None:
    """An attempt failed: count it; open the circuit at the threshold (and raise the
    alert), or keep an open one closed for another cooldown."""
    row = conn.execute(_COUNT_FAILURE, {"b_id": subscription_id, "b_now": now}).one()
    retry_at = now + timedelta(seconds=policy.CIRCUIT_COOLDOWN)
    if row.status == "circuit_open":
        conn.execute(_PROBE_LATER, {"b_id": subscription_id, "b_retry": retry_at})
    elif row.status == "active" and row.consecutive_failures >= policy.CIRCUIT_THRESHOLD:
        conn.execute(_OPEN, {"b_id": subscription_id, "b_retry": retry_at})
        raise_alert(
            conn,
            merchant_id=merchant_id,
            kind=CIRCUIT_ALERT,
            severity="warning",
            message=f"Subscription {subscription_id} failed {row.consecutive_failures} "
            "times in a row; deliveries are paused and probed again later.",
            details={
                "subscription_id": subscription_id,
                "consecutive_failures": row.consecutive_failures,
                "probe_at": retry_at.isoformat(),
            },
            now=now,
        )
        log.warning("subscription.circuit_open", subscription_id=subscription_id)

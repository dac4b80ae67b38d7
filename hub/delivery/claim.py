"""Claim a delivery record and record an attempt's outcome (:class:`Sent`): the two
short transactions around a delivery attempt (the HTTP call happens between them, with
no transaction open). A worker that dies mid-call leaves the record ``delivering`` with
a lease; when the lease runs out the sweeper makes it due again (at-least-once).

The statements are built once at import: constructing Core statements per call cost
~15 % of a worker's CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, and_, bindparam, exists, insert, select, update
from sqlalchemy.orm import aliased

from hub.connectors import Delivered, Outcome, Retry
from hub.db.engine import after_commit, write_conn
from hub.db.schema import deliveries, delivery_attempts, outbox_events, subscriptions
from hub.delivery import breaker, policy
from hub.secrets import SecretKeyError, UndecryptableSecret, decrypt_config, keyring
from hub.services import outbox

log = structlog.get_logger("hub.delivery")

CLAIMABLE = ("pending", "retrying")

_earlier = aliased(deliveries)
# An earlier event about the same coupon for the same subscription has not succeeded yet.
_BLOCKED = exists().where(
    _earlier.c.subscription_id == deliveries.c.subscription_id,
    _earlier.c.coupon_id == deliveries.c.coupon_id,
    _earlier.c.event_seq < deliveries.c.event_seq,
    _earlier.c.status != "succeeded",
)


def claimable_condition() -> Any:
    """Due, not blocked by order, and its subscription takes deliveries now."""
    return and_(
        deliveries.c.status.in_(CLAIMABLE),
        deliveries.c.next_attempt_at <= bindparam("b_now"),
        ~_BLOCKED,
        exists().where(subscriptions.c.id == deliveries.c.subscription_id, breaker.accepting()),
    )


@dataclass(frozen=True)
class Claimed:
    delivery_id: str
    attempt: int
    subscription_id: str
    merchant_id: str
    coupon_id: str | None
    connector: str
    config: dict[str, Any]
    schedule: list[int] | None
    event: dict[str, Any]
    # set when the config's secrets cannot be decrypted: the attempt retries, sends nothing
    config_error: str | None = None


@dataclass(frozen=True)
class Sent:
    """What an attempt's send did (:func:`hub.delivery.attempt.send`), as recorded."""

    outcome: Outcome
    http_status: int | None
    error: str | None
    body: str | None
    latency_ms: int


_CLAIM_SELECT = select(
    deliveries.c.id,
    deliveries.c.subscription_id,
    select(subscriptions.c.status)
    .where(subscriptions.c.id == deliveries.c.subscription_id)
    .scalar_subquery()
    .label("sub_status"),
).where(deliveries.c.id == bindparam("b_id"), claimable_condition())
_CLAIM_SELECT_PG = _CLAIM_SELECT.with_for_update(skip_locked=True, of=deliveries)
_CLAIM_UPDATE = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.status.in_(CLAIMABLE))
    .values(
        status="delivering",
        attempts=deliveries.c.attempts + 1,
        lease_until=bindparam("b_lease"),
        updated_at=bindparam("b_now"),
    )
    .returning(
        deliveries.c.attempts,
        deliveries.c.subscription_id,
        deliveries.c.event_id,
        deliveries.c.merchant_id,
        deliveries.c.coupon_id,
    )
)
_SUBSCRIPTION = select(
    subscriptions.c.connector, subscriptions.c.config, subscriptions.c.retry_schedule
).where(subscriptions.c.id == bindparam("b_id"))
_EVENT = select(outbox_events).where(outbox_events.c.id == bindparam("b_id"))


def claim(conn: Connection, delivery_id: str, now: datetime) -> Claimed | None:
    """Take the delivery for one attempt (``delivering``, with a lease) if it is
    claimable now; None if it is not (or another worker has it)."""
    q = _CLAIM_SELECT_PG if conn.dialect.name == "postgresql" else _CLAIM_SELECT
    found = conn.execute(q, {"b_id": delivery_id, "b_now": now}).first()
    if found is None:
        return None
    if found.sub_status == "circuit_open" and not breaker.take_probe(
        conn, found.subscription_id, now
    ):
        return None
    lease = now + timedelta(seconds=policy.LEASE_SECONDS)
    row = conn.execute(_CLAIM_UPDATE, {"b_id": delivery_id, "b_lease": lease, "b_now": now}).first()
    if row is None:
        return None
    sub = conn.execute(_SUBSCRIPTION, {"b_id": row.subscription_id}).one()
    ev = conn.execute(_EVENT, {"b_id": row.event_id}).one()
    event = outbox.envelope(
        id=ev.id,
        type=ev.type,
        merchant_id=ev.merchant_id,
        occurred_at=ev.occurred_at,
        recorded_at=ev.recorded_at,
        data=ev.data,
    )
    config, config_error = _plain_config(conn, row.subscription_id, sub.config)
    return Claimed(
        delivery_id=delivery_id,
        attempt=row.attempts,
        subscription_id=row.subscription_id,
        merchant_id=row.merchant_id,
        coupon_id=row.coupon_id,
        connector=sub.connector,
        config=config,
        schedule=sub.retry_schedule,
        event=event,
        config_error=config_error,
    )


def _plain_config(
    conn: Connection, sub_id: str, stored: dict[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """The subscription's config with its secrets decrypted, or why it cannot be (the
    message names the subscription and fields, never a value)."""
    try:
        return decrypt_config(keyring(conn.engine), stored), None
    except UndecryptableSecret as exc:
        fields = ", ".join(f"config.{f}" for f in exc.fields)
        error = (
            f"subscription {sub_id}: cannot decrypt {fields} with the configured "
            "HUB_SECRET_KEY (a wrong key, or the old key removed before `hub secrets "
            "rotate`); nothing was sent"
        )
    except SecretKeyError as exc:
        error = f"subscription {sub_id}: secret key unusable: {exc}; nothing was sent"
    log.error("delivery.secret_undecryptable", subscription_id=sub_id, error=error)
    return {}, error


_INSERT_ATTEMPT = insert(delivery_attempts)
_RECORD = (
    update(deliveries)
    .where(
        deliveries.c.id == bindparam("b_id"),
        deliveries.c.status == "delivering",
        deliveries.c.attempts == bindparam("b_attempt"),
    )
    .values(
        status=bindparam("b_status"),
        next_attempt_at=bindparam("b_next"),
        lease_until=None,
        last_status=bindparam("b_http"),
        last_error=bindparam("b_error"),
        updated_at=bindparam("b_now"),
        delivered_at=bindparam("b_delivered"),
    )
    .returning(deliveries.c.id)
)
_NEXT_OF_COUPON = (
    select(deliveries.c.id)
    .where(
        deliveries.c.subscription_id == bindparam("b_sub"),
        deliveries.c.coupon_id == bindparam("b_coupon"),
        deliveries.c.status.in_(CLAIMABLE),
    )
    .order_by(deliveries.c.event_seq)
    .limit(1)
)


def _next_status(claimed: Claimed, sent: Sent, now: datetime) -> tuple[str, datetime]:
    """The delivery's status after this attempt, and when it is due next."""
    outcome = sent.outcome
    if isinstance(outcome, Delivered):
        return "succeeded", now
    if isinstance(outcome, Retry):
        delay = policy.next_delay(claimed.attempt, claimed.schedule, outcome.after)
        status = "retrying" if delay is not None else "dead"
        return status, now + timedelta(seconds=delay or 0)
    return "dead", now


def record(
    engine: Engine,
    claimed: Claimed,
    sent: Sent,
    started: datetime,
    now: datetime,
    on_next: Callable[[list[str]], None],
) -> str:
    """Store the attempt and move the delivery on; returns its new status. ``on_next``
    is told (after commit) the coupon's next delivery a success unblocked."""
    status, next_at = _next_status(claimed, sent, now)
    with write_conn(engine) as conn:
        conn.execute(
            _INSERT_ATTEMPT,
            {
                "delivery_id": claimed.delivery_id,
                "attempt": claimed.attempt,
                "started_at": started,
                "latency_ms": sent.latency_ms,
                "outcome": type(sent.outcome).__name__.lower(),
                "http_status": sent.http_status,
                "error": sent.error,
                "response_body": sent.body,
            },
        )
        done = conn.execute(
            _RECORD,
            {
                "b_id": claimed.delivery_id,
                "b_attempt": claimed.attempt,
                "b_status": status,
                "b_next": next_at,
                "b_http": sent.http_status,
                "b_error": sent.error,
                "b_now": now,
                "b_delivered": now if status == "succeeded" else None,
            },
        ).first()
        if done is None:  # our lease ran out and someone else took over: theirs counts
            return "superseded"
        if status != "succeeded":
            breaker.failed(conn, claimed.subscription_id, claimed.merchant_id, now)
        else:
            breaker.succeeded(conn, claimed.subscription_id, now)
            if claimed.coupon_id is not None:
                nxt = list(
                    conn.execute(
                        _NEXT_OF_COUPON,
                        {"b_sub": claimed.subscription_id, "b_coupon": claimed.coupon_id},
                    ).scalars()
                )
                if nxt:
                    after_commit(conn, lambda: on_next(nxt))
    log.info(
        "delivery.attempted",
        delivery_id=claimed.delivery_id,
        attempt=claimed.attempt,
        status=status,
        http_status=sent.http_status,
        latency_ms=sent.latency_ms,
    )
    return status

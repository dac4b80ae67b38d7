"""Claim delivery records for an attempt: the short transaction before the HTTP calls
(:mod:`hub.delivery.record` is the one after; nothing is open during the calls). A
batch of due deliveries is claimed in one transaction; a worker that dies mid-call
leaves its records ``delivering`` with a lease, and when the lease runs out the sweeper
makes them due again (at-least-once).

The statements are built once at import: constructing Core statements per call cost
~15 % of a worker's CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, and_, bindparam, exists, select, update
from sqlalchemy.orm import aliased

from hub.connectors import Outcome
from hub.db.among import among
from hub.db.schema import deliveries, outbox_events, subscriptions
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
    # its status before the claim (``pending`` or ``retrying``): what a give-back restores
    prior_status: str = "pending"


@dataclass(frozen=True)
class Sent:
    """What an attempt's send did (:func:`hub.delivery.attempt.send`), as recorded."""

    outcome: Outcome
    http_status: int | None
    error: str | None
    body: str | None
    latency_ms: int


def _claim_select(pg: bool) -> Any:
    return (
        select(
            deliveries.c.id,
            deliveries.c.subscription_id,
            deliveries.c.status,
            select(subscriptions.c.status)
            .where(subscriptions.c.id == deliveries.c.subscription_id)
            .scalar_subquery()
            .label("sub_status"),
        )
        .where(among(deliveries.c.id, "b_ids", pg), claimable_condition())
        .order_by(deliveries.c.event_seq, deliveries.c.id)
    )


def _claim_update(pg: bool) -> Any:
    return (
        update(deliveries)
        .where(among(deliveries.c.id, "b_ids", pg), deliveries.c.status.in_(CLAIMABLE))
        .values(
            status="delivering",
            attempts=deliveries.c.attempts + 1,
            lease_until=bindparam("b_lease"),
            updated_at=bindparam("b_now"),
        )
        .returning(
            deliveries.c.id,
            deliveries.c.attempts,
            deliveries.c.subscription_id,
            deliveries.c.event_id,
            deliveries.c.merchant_id,
            deliveries.c.coupon_id,
        )
    )


def _subscriptions(pg: bool) -> Any:
    return select(
        subscriptions.c.id,
        subscriptions.c.connector,
        subscriptions.c.config,
        subscriptions.c.retry_schedule,
    ).where(among(subscriptions.c.id, "b_ids", pg))


def _events(pg: bool) -> Any:
    return select(outbox_events).where(among(outbox_events.c.id, "b_ids", pg))


# (SQLite, PostgreSQL); on PostgreSQL rows another worker is claiming are skipped, never
# waited for
_CLAIM_SELECT = (
    _claim_select(False),
    _claim_select(True).with_for_update(skip_locked=True, of=deliveries),
)
_CLAIM_UPDATE = (_claim_update(False), _claim_update(True))
_SUBSCRIPTIONS = (_subscriptions(False), _subscriptions(True))
_EVENTS = (_events(False), _events(True))


def claim(conn: Connection, delivery_id: str, now: datetime) -> Claimed | None:
    """Take the delivery for one attempt (``delivering``, with a lease) if it is
    claimable now; None if it is not (or another worker has it)."""
    found = claim_batch(conn, [delivery_id], now)
    return found[0] if found else None


def claim_batch(conn: Connection, ids: Sequence[str], now: datetime) -> list[Claimed]:
    """Take those of ``ids`` that are claimable now, in one transaction (``conn``'s):
    each moves to ``delivering`` with ``attempts + 1`` and one lease for the batch.

    A batch never holds two deliveries of one coupon to one subscription: a later one is
    claimable only once every earlier one has succeeded (the order condition is read
    for all rows before any moves). On PostgreSQL the rows are taken ``FOR UPDATE SKIP
    LOCKED`` (workers never wait on each other); on SQLite the transaction holds the
    writer lock. A subscription whose circuit is half-open lets one probe through:
    its first delivery here, if this worker takes the probe."""
    if not ids:
        return []
    pg = conn.dialect.name == "postgresql"
    found = conn.execute(_CLAIM_SELECT[pg], {"b_ids": list(dict.fromkeys(ids)), "b_now": now}).all()
    # half-open subscriptions (in id order: claimers never lock them in opposite orders)
    # → whether we took the probe; one delivery each goes out if we did
    probes = {
        sub: breaker.take_probe(conn, sub, now)
        for sub in sorted({r.subscription_id for r in found if r.sub_status == "circuit_open"})
    }
    take: list[str] = []
    prior: dict[str, str] = {}
    for row in found:
        if row.sub_status == "circuit_open" and not probes.pop(row.subscription_id, False):
            continue  # not ours, or its one probe is already in this batch
        take.append(row.id)
        prior[row.id] = row.status
    if not take:
        return []
    lease = now + timedelta(seconds=policy.LEASE_SECONDS)
    rows = {
        r.id: r
        for r in conn.execute(_CLAIM_UPDATE[pg], {"b_ids": take, "b_lease": lease, "b_now": now})
    }
    if not rows:
        return []
    sub_ids = sorted({r.subscription_id for r in rows.values()})
    subs = {s.id: s for s in conn.execute(_SUBSCRIPTIONS[pg], {"b_ids": sub_ids})}
    event_ids = sorted({r.event_id for r in rows.values()})
    events = {e.id: e for e in conn.execute(_EVENTS[pg], {"b_ids": event_ids})}
    configs = {s.id: _plain_config(conn, s.id, s.config) for s in subs.values()}
    claimed = []
    for delivery_id in take:  # the order of the selection: event sequence
        got = rows.get(delivery_id)
        if got is None:
            continue
        sub, ev = subs[got.subscription_id], events[got.event_id]
        config, config_error = configs[got.subscription_id]
        claimed.append(
            Claimed(
                delivery_id=delivery_id,
                attempt=got.attempts,
                subscription_id=got.subscription_id,
                merchant_id=got.merchant_id,
                coupon_id=got.coupon_id,
                connector=sub.connector,
                config=config,
                schedule=sub.retry_schedule,
                event=outbox.envelope(
                    id=ev.id,
                    type=ev.type,
                    merchant_id=ev.merchant_id,
                    occurred_at=ev.occurred_at,
                    recorded_at=ev.recorded_at,
                    data=ev.data,
                ),
                config_error=config_error,
                prior_status=prior[delivery_id],
            )
        )
    return claimed


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

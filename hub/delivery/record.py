"""Record the outcomes of a batch of delivery attempts in one short transaction: the
attempt rows (one multi-row insert), each delivery moved to ``succeeded``, ``retrying``
(next attempt on the subscription's schedule) or ``dead``, the circuit breaker, and the
coupons' next deliveries a success unblocked (rung after the commit).

An outcome only applies if its worker still holds the attempt (``delivering`` with the
same attempt number): if the lease ran out and another worker took over, the other
one's result counts and this one is ``superseded`` (its attempt row is still kept).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from hub.connectors import Delivered, Retry
from hub.db.among import among
from hub.db.engine import after_commit, write_conn
from hub.db.schema import deliveries, delivery_attempts
from hub.delivery import breaker, policy
from hub.delivery.claim import CLAIMABLE, Claimed, Sent

log = structlog.get_logger("hub.delivery")


@dataclass(frozen=True)
class Attempted:
    """A claimed delivery, what its send did, and when the attempt started."""

    claimed: Claimed
    sent: Sent
    started: datetime


_INSERT_ATTEMPT = insert(delivery_attempts)
# (SQLite, PostgreSQL). PostgreSQL: lock the rows (in id order) so no sweeper revives
# one between the check and the update
_HELD = (
    select(deliveries.c.id, deliveries.c.attempts).where(
        among(deliveries.c.id, "b_ids", False), deliveries.c.status == "delivering"
    ),
    select(deliveries.c.id, deliveries.c.attempts)
    .where(among(deliveries.c.id, "b_ids", True), deliveries.c.status == "delivering")
    .order_by(deliveries.c.id)
    .with_for_update(of=deliveries),
)
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
)
_NEXT_OF_COUPONS = tuple(
    select(deliveries.c.id, deliveries.c.subscription_id, deliveries.c.coupon_id)
    .where(among(deliveries.c.coupon_id, "b_coupons", pg), deliveries.c.status.in_(CLAIMABLE))
    .order_by(deliveries.c.event_seq)
    for pg in (False, True)
)


# a claim undone: the delivery is as it was before (no attempt made, due as it was)
_GIVE_BACK = (
    update(deliveries)
    .where(
        deliveries.c.id == bindparam("b_id"),
        deliveries.c.status == "delivering",
        deliveries.c.attempts == bindparam("b_attempt"),
    )
    .values(
        status=bindparam("b_status"),
        attempts=deliveries.c.attempts - 1,
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)


def give_back(engine: Engine, claimed: Sequence[Claimed], now: datetime) -> list[str]:
    """Undo the claims of deliveries that were not sent (in one transaction): each one
    this worker still holds goes back to its status before the claim with its attempt
    count as it was; returns their ids."""
    if not claimed:
        return []
    with write_conn(engine) as conn:
        held = _held_pairs(conn, [c.delivery_id for c in claimed])
        mine = [c for c in claimed if (c.delivery_id, c.attempt) in held]
        if mine:
            conn.execute(
                _GIVE_BACK,
                [
                    {
                        "b_id": c.delivery_id,
                        "b_attempt": c.attempt,
                        "b_status": c.prior_status,
                        "b_now": now,
                    }
                    for c in mine
                ],
            )
    return [c.delivery_id for c in mine]


def next_status(claimed: Claimed, sent: Sent, now: datetime) -> tuple[str, datetime]:
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
    """Store one attempt and move its delivery on; returns its new status."""
    return record_batch(engine, [Attempted(claimed, sent, started)], now, on_next)[0]


def record_batch(
    engine: Engine,
    done: Sequence[Attempted],
    now: datetime,
    on_next: Callable[[list[str]], None],
) -> list[str]:
    """Store the attempts and move their deliveries on, in one transaction; returns each
    one's new status (``superseded`` where another worker took over). ``on_next`` is
    told (after commit) the coupons' next deliveries the successes unblocked."""
    if not done:
        return []
    plans = [next_status(a.claimed, a.sent, now) for a in done]
    with write_conn(engine) as conn:
        conn.execute(_INSERT_ATTEMPT, [_attempt_row(a) for a in done])
        held = _held(conn, done)
        updates = [
            {
                "b_id": a.claimed.delivery_id,
                "b_attempt": a.claimed.attempt,
                "b_status": status,
                "b_next": next_at,
                "b_http": a.sent.http_status,
                "b_error": a.sent.error,
                "b_now": now,
                "b_delivered": now if status == "succeeded" else None,
            }
            for a, (status, next_at) in zip(done, plans, strict=True)
            if (a.claimed.delivery_id, a.claimed.attempt) in held
        ]
        if updates:
            conn.execute(_RECORD, updates)
        statuses = [
            status if (a.claimed.delivery_id, a.claimed.attempt) in held else "superseded"
            for a, (status, _) in zip(done, plans, strict=True)
        ]
        _breaker(conn, done, statuses, now)
        nxt = _next_of_coupons(conn, done, statuses)
        if nxt:
            after_commit(conn, lambda: on_next(nxt))
    for a, status in zip(done, statuses, strict=True):
        log.info(
            "delivery.attempted",
            delivery_id=a.claimed.delivery_id,
            attempt=a.claimed.attempt,
            status=status,
            http_status=a.sent.http_status,
            latency_ms=a.sent.latency_ms,
        )
    return statuses


def _attempt_row(a: Attempted) -> dict[str, object]:
    return {
        "delivery_id": a.claimed.delivery_id,
        "attempt": a.claimed.attempt,
        "started_at": a.started,
        "latency_ms": a.sent.latency_ms,
        "outcome": type(a.sent.outcome).__name__.lower(),
        "http_status": a.sent.http_status,
        "error": a.sent.error,
        "response_body": a.sent.body,
    }


def _held(conn: Connection, done: Sequence[Attempted]) -> set[tuple[str, int]]:
    """The (delivery, attempt) pairs this worker still holds."""
    return _held_pairs(conn, [a.claimed.delivery_id for a in done])


def _held_pairs(conn: Connection, ids: Sequence[str]) -> set[tuple[str, int]]:
    q = _HELD[conn.dialect.name == "postgresql"]
    return {(r.id, r.attempts) for r in conn.execute(q, {"b_ids": sorted(set(ids))})}


def _breaker(
    conn: Connection, done: Sequence[Attempted], statuses: list[str], now: datetime
) -> None:
    """Count the outcomes on each subscription's circuit, each subscription's in the
    batch's order (as if recorded one by one; a run of successes closes it once). The
    subscriptions are taken in id order, so two workers' records never wait on each
    other's subscription rows in opposite orders (a deadlock)."""
    by_sub: dict[str, list[tuple[Attempted, str]]] = {}
    for a, status in zip(done, statuses, strict=True):
        if status != "superseded":
            by_sub.setdefault(a.claimed.subscription_id, []).append((a, status))
    for sub in sorted(by_sub):
        last = None
        for a, status in by_sub[sub]:
            if status == "succeeded":
                if last != "succeeded":
                    breaker.succeeded(conn, sub, now)
            else:
                breaker.failed(conn, sub, a.claimed.merchant_id, now)
            last = status


def _next_of_coupons(conn: Connection, done: Sequence[Attempted], statuses: list[str]) -> list[str]:
    """For each success about a coupon: that coupon's next waiting delivery to the same
    subscription (now unblocked), if any."""
    pairs = {
        (a.claimed.subscription_id, a.claimed.coupon_id)
        for a, status in zip(done, statuses, strict=True)
        if status == "succeeded" and a.claimed.coupon_id is not None
    }
    if not pairs:
        return []
    first: dict[tuple[str, str], str] = {}
    coupons = sorted({coupon for _, coupon in pairs if coupon is not None})
    q = _NEXT_OF_COUPONS[conn.dialect.name == "postgresql"]
    for row in conn.execute(q, {"b_coupons": coupons}):
        key = (row.subscription_id, row.coupon_id)
        if key in pairs and key not in first:
            first[key] = row.id
    return list(first.values())

"""One delivery attempt: claim the record, send, classify, record the outcome.

Claim and record are two short transactions; the HTTP call happens between them, with
no transaction open. A worker that dies mid-call leaves the record ``delivering`` with a
lease; when the lease runs out the sweeper makes it due again (at-least-once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
import tenacity
from sqlalchemy import Connection, Engine, and_, bindparam, exists, insert, select, update
from sqlalchemy.orm import aliased

from hub import egress
from hub.connectors import (
    Delivered,
    Failed,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
    get_connector,
)
from hub.db.engine import after_commit, write_conn
from hub.db.schema import deliveries, delivery_attempts, outbox_events, subscriptions
from hub.delivery import policy
from hub.delivery.exchange import SessionCache, Trace, Transport, run_exchange
from hub.domain.errors import DomainError
from hub.secrets import (
    SecretKeyError,
    UndecryptableSecret,
    decrypt_config,
    hidden_strings,
    keyring,
    scrub,
    secret_strings,
)
from hub.services import outbox

log = structlog.get_logger("hub.delivery")

# what the attempt log keeps of a receiver's answer (and of an error): enough to see
# why, not a channel to read internal services through
MAX_BODY_LOGGED = 512
# what is read of an answer at all (connectors parse it); the rest is not fetched
MAX_RESPONSE_BYTES = 1024 * 1024
CLAIMABLE = ("pending", "retrying")

_earlier = aliased(deliveries)
# An earlier event about the same coupon for the same subscription has not succeeded yet.
_BLOCKED = exists().where(
    _earlier.c.subscription_id == deliveries.c.subscription_id,
    _earlier.c.coupon_id == deliveries.c.coupon_id,
    _earlier.c.event_seq < deliveries.c.event_seq,
    _earlier.c.status != "succeeded",
)
_SUB_OPEN = (subscriptions.c.status == "active") | and_(
    subscriptions.c.status == "circuit_open",
    subscriptions.c.circuit_retry_at <= bindparam("b_now"),
)


def claimable_condition() -> Any:
    """Due, not blocked by order, and its subscription takes deliveries now."""
    return and_(
        deliveries.c.status.in_(CLAIMABLE),
        deliveries.c.next_attempt_at <= bindparam("b_now"),
        ~_BLOCKED,
        exists().where(subscriptions.c.id == deliveries.c.subscription_id, _SUB_OPEN),
    )


_CLAIM_SELECT = select(
    deliveries.c.id,
    deliveries.c.subscription_id,
    select(subscriptions.c.status)
    .where(subscriptions.c.id == deliveries.c.subscription_id)
    .scalar_subquery()
    .label("sub_status"),
).where(deliveries.c.id == bindparam("b_id"), claimable_condition())
# Half-open circuit: the first claimer after the cooldown takes the single probe by
# moving the probe time on; everyone else finds the circuit still closed to them.
_TAKE_PROBE = (
    update(subscriptions)
    .where(
        subscriptions.c.id == bindparam("b_sub"),
        subscriptions.c.status == "circuit_open",
        subscriptions.c.circuit_retry_at <= bindparam("b_now"),
    )
    .values(circuit_retry_at=bindparam("b_next_probe"))
    .returning(subscriptions.c.id)
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


# Built once: constructing Core statements per call cost ~15 % of a worker's CPU.
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
    q = _CLAIM_SELECT_PG if conn.dialect.name == "postgresql" else _CLAIM_SELECT
    found = conn.execute(q, {"b_id": delivery_id, "b_now": now}).first()
    if found is None:
        return None
    if found.sub_status == "circuit_open":
        next_probe = now + timedelta(seconds=policy.CIRCUIT_COOLDOWN)
        taken = conn.execute(
            _TAKE_PROBE, {"b_sub": found.subscription_id, "b_now": now, "b_next_probe": next_probe}
        ).first()
        if taken is None:
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


@dataclass(frozen=True)
class Sent:
    outcome: Outcome
    http_status: int | None
    error: str | None
    body: str | None
    latency_ms: int


_TRANSIENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.PoolTimeout,
)


def _send_one(client: httpx.Client, req: OutboundRequest) -> OutboundResponse:
    """The short, in-attempt retries: connection errors and timeouts, three tries. The
    URL passes the egress policy first; redirects are never followed; at most
    :data:`MAX_RESPONSE_BYTES` of the answer are read."""
    egress.check_request_url(req.url)
    for attempt in tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.1, max=1.0),
        retry=tenacity.retry_if_exception_type(_TRANSIENT),
        reraise=True,
    ):
        with (
            attempt,
            client.stream(
                req.method,
                req.url,
                headers=dict(req.headers),
                content=req.body,
                timeout=req.timeout,
                follow_redirects=False,
            ) as r,
        ):
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) >= MAX_RESPONSE_BYTES:
                    break
            return OutboundResponse(
                r.status_code,
                dict(r.headers),
                bytes(body[:MAX_RESPONSE_BYTES]),
                tuple(r.headers.multi_items()),
            )
    raise AssertionError("unreachable")  # pragma: no cover


SESSIONS = SessionCache()  # connector sessions (OAuth, CSRF tokens) of this process


def http_transport(client: httpx.Client) -> Transport:
    """Send a connector's requests with ``client`` (short in-attempt retries included)."""

    def transport(req: OutboundRequest) -> OutboundResponse:
        return _send_one(client, req)

    return transport


def send(client: httpx.Client, claimed: Claimed, now: datetime) -> Sent:
    t0 = time.perf_counter()
    transport = http_transport(client)

    hidden: list[str] = []  # the config's secrets: never into the attempt log
    try:
        connector = get_connector(claimed.connector)
    except DomainError as exc:  # uninstalled since the subscription was made: retry later
        outcome: Outcome = Retry(f"connector unavailable: {exc.message}")
        trace = Trace()
    else:
        hidden = secret_strings(claimed.config, connector.secret_fields)
        if claimed.config_error is not None:  # secrets unreadable: retried, nothing sent
            outcome, trace = Retry(claimed.config_error), Trace()
        else:
            outcome, trace = run_exchange(
                connector,
                claimed.event,
                claimed.config,
                now=now,
                transport=transport,
                sessions=SESSIONS,
                session_owner=claimed.subscription_id,
            )
    latency = int((time.perf_counter() - t0) * 1000)
    # and the credentials the requests carried (sessions, Basic auth, cookies …)
    hidden += hidden_strings({}, (), (req for req, _ in trace.steps))
    error = scrub(trace.error, hidden, MAX_BODY_LOGGED) if trace.error else None
    if isinstance(outcome, (Retry, Failed)) and error is None:
        error = scrub(outcome.reason, hidden, MAX_BODY_LOGGED)
    body = None
    if trace.body is not None:
        body = scrub(trace.body.decode("utf-8", "replace"), hidden, MAX_BODY_LOGGED)
    return Sent(
        outcome=outcome, http_status=trace.status, error=error, body=body, latency_ms=latency
    )


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


def record(
    engine: Engine,
    claimed: Claimed,
    sent: Sent,
    started: datetime,
    now: datetime,
    on_next: Callable[[list[str]], None],
) -> str:
    """Store the attempt and move the delivery on; returns its new status."""
    outcome = sent.outcome
    if isinstance(outcome, Delivered):
        status, next_at = "succeeded", now
    elif isinstance(outcome, Retry):
        delay = policy.next_delay(claimed.attempt, claimed.schedule, outcome.after)
        status = "retrying" if delay is not None else "dead"
        next_at = now + timedelta(seconds=delay or 0)
    else:
        status, next_at = "dead", now
    with write_conn(engine) as conn:
        conn.execute(
            _INSERT_ATTEMPT,
            {
                "delivery_id": claimed.delivery_id,
                "attempt": claimed.attempt,
                "started_at": started,
                "latency_ms": sent.latency_ms,
                "outcome": type(outcome).__name__.lower(),
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
        _circuit(conn, claimed, ok=status == "succeeded", now=now)
        if status == "succeeded" and claimed.coupon_id is not None:
            nxt = (
                conn.execute(
                    _NEXT_OF_COUPON,
                    {"b_sub": claimed.subscription_id, "b_coupon": claimed.coupon_id},
                )
                .scalars()
                .all()
            )
            if nxt:
                after_commit(conn, lambda: on_next(list(nxt)))
    log.info(
        "delivery.attempted",
        delivery_id=claimed.delivery_id,
        attempt=claimed.attempt,
        status=status,
        http_status=sent.http_status,
        latency_ms=sent.latency_ms,
    )
    return status


def _case_reopen() -> Any:
    from sqlalchemy import case

    return case((subscriptions.c.status == "circuit_open", "active"), else_=subscriptions.c.status)


# a success resets the failure count and closes an open circuit (a no-op row match
# otherwise, so the common case writes nothing)
_CLOSE_CIRCUIT = (
    update(subscriptions)
    .where(
        subscriptions.c.id == bindparam("b_id"),
        (subscriptions.c.consecutive_failures != 0) | (subscriptions.c.status == "circuit_open"),
    )
    .values(
        consecutive_failures=0,
        circuit_retry_at=None,
        updated_at=bindparam("b_now"),
        status=_case_reopen(),
    )
)


def _circuit(conn: Connection, claimed: Claimed, *, ok: bool, now: datetime) -> None:
    s = subscriptions
    if ok:
        conn.execute(_CLOSE_CIRCUIT, {"b_id": claimed.subscription_id, "b_now": now})
        return
    row = conn.execute(
        update(s)
        .where(s.c.id == claimed.subscription_id)
        .values(consecutive_failures=s.c.consecutive_failures + 1, updated_at=now)
        .returning(s.c.consecutive_failures, s.c.status)
    ).one()
    retry_at = now + timedelta(seconds=policy.CIRCUIT_COOLDOWN)
    if row.status == "circuit_open":
        conn.execute(
            update(s).where(s.c.id == claimed.subscription_id).values(circuit_retry_at=retry_at)
        )
    elif row.status == "active" and row.consecutive_failures >= policy.CIRCUIT_THRESHOLD:
        conn.execute(
            update(s)
            .where(s.c.id == claimed.subscription_id)
            .values(status="circuit_open", circuit_retry_at=retry_at)
        )
        outbox.append(
            conn,
            [
                outbox.event_row(
                    type="alert.raised",
                    merchant_id=claimed.merchant_id,
                    occurred_at=now,
                    recorded_at=now,
                    data={
                        "alert": "subscription_circuit_open",
                        "severity": "warning",
                        "message": f"Subscription {claimed.subscription_id} failed "
                        f"{row.consecutive_failures} times in a row; deliveries are "
                        "paused and probed again later.",
                        "details": {
                            "subscription_id": claimed.subscription_id,
                            "consecutive_failures": row.consecutive_failures,
                            "probe_at": retry_at.isoformat(),
                        },
                    },
                )
            ],
        )
        log.warning("subscription.circuit_open", subscription_id=claimed.subscription_id)

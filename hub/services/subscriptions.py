"""Subscriptions (a connector instance with its config) and their delivery records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

from hub.connectors import OutboundConnector, get_connector
from hub.db.engine import read_conn, write_conn
from hub.db.schema import (
    coupon_templates,
    deliveries,
    delivery_attempts,
    stores,
    subscriptions,
)
from hub.domain.errors import refuse
from hub.domain.ids import new_id
from hub.egress import check_config_urls
from hub.secrets import decrypt_fields, encrypt_config, keyring
from hub.services import audit
from hub.services.jsonio import iso
from hub.services.outbox import EVENT_TYPES, announce_after_commit
from hub.services.paging import newest_first, split_page
from hub.services.principal import Principal

DELIVERY_STATUSES = ("pending", "delivering", "succeeded", "retrying", "dead", "cancelled")
# what the attempt log keeps of a receiver's answer (and of an error): enough to see
# why, not a channel to read internal services through (hub/delivery/attempt.py caps to it)
MAX_BODY_LOGGED = 512


def _view(row: Any) -> dict[str, Any]:
    connector = get_connector(row.connector)
    return {
        "id": row.id,
        "connector": row.connector,
        "config": connector.redact(dict(row.config)),
        "events": list(row.events),
        "filter": dict(row.filter),
        "retry_schedule": row.retry_schedule,
        "status": row.status,
        "consecutive_failures": row.consecutive_failures,
        "circuit_retry_at": iso(row.circuit_retry_at),
        "description": row.description,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _check_events(connector_name: str, events: list[str]) -> list[str]:
    if not events:
        raise refuse(
            "invalid_request",
            "events must name at least one event type (or *).",
            errors=[{"field": "events", "message": "empty"}],
        )
    connector = get_connector(connector_name)
    if not isinstance(connector, OutboundConnector) or not connector.consumes:
        raise refuse(
            "invalid_request",
            f"Connector {connector_name} takes no events (it is an inbound {connector.kind} "
            "connector).",
            errors=[{"field": "connector", "message": "not an outbound connector"}],
        )
    if "*" not in connector.consumes and "*" in events:  # "*": all the connector takes
        events = [e for e in events if e != "*"] + list(connector.consumes)
    for ev in events:
        if ev != "*" and ev not in EVENT_TYPES:
            raise refuse(
                "unknown_event_type", f"Unknown event type {ev!r}.", known=list(EVENT_TYPES)
            )
        if "*" not in connector.consumes and ev != "*" and ev not in connector.consumes:
            raise refuse(
                "unknown_event_type",
                f"Connector {connector_name} does not consume {ev!r}.",
                known=list(connector.consumes),
            )
    return sorted(set(events))


def _check_filter(engine: Engine, p: Principal, flt: dict[str, Any]) -> dict[str, Any]:
    store_codes = sorted(set(flt.get("stores") or []))
    template_ids = sorted(set(flt.get("templates") or []))
    with read_conn(engine) as conn:
        if store_codes:
            known = set(
                conn.execute(
                    select(stores.c.code).where(
                        stores.c.merchant_id == p.merchant_id, stores.c.code.in_(store_codes)
                    )
                ).scalars()
            )
            missing = [c for c in store_codes if c not in known]
            if missing:
                raise refuse("store_not_found", f"Unknown store(s) {missing}.", stores=missing)
        if template_ids:
            known = set(
                conn.execute(
                    select(coupon_templates.c.id).where(
                        coupon_templates.c.merchant_id == p.merchant_id,
                        coupon_templates.c.id.in_(template_ids),
                    )
                ).scalars()
            )
            missing = [t for t in template_ids if t not in known]
            if missing:
                raise refuse("template_not_found", f"Unknown template(s) {missing}.")
    return {"stores": store_codes, "templates": template_ids}


def _check_schedule(schedule: list[int] | None) -> list[int] | None:
    if schedule is None:
        return None
    if not 1 <= len(schedule) <= 30 or any(s < 0 or s > 7 * 86400 for s in schedule):
        raise refuse(
            "invalid_request",
            "retry_schedule: 1–30 waits of 0–604800 seconds.",
            errors=[{"field": "retry_schedule", "message": "out of range"}],
        )
    return list(schedule)


def create(
    engine: Engine,
    p: Principal,
    *,
    connector: str,
    config: dict[str, Any],
    events: list[str],
    flt: dict[str, Any] | None,
    retry_schedule: list[int] | None,
    description: str | None,
    now: datetime,
) -> dict[str, Any]:
    p.require("admin", "integrator")
    conn_impl = get_connector(connector)
    check_config_urls(conn_impl, config)  # first: a bad URL is url_not_allowed, always
    conn_impl.check_config(config)
    sub_id = new_id("sub")
    values: dict[str, Any] = {
        "id": sub_id,
        "merchant_id": p.merchant_id,
        "connector": connector,
        "config": encrypt_config(keyring(engine), config, conn_impl.secret_fields),
        "events": _check_events(connector, events),
        "filter": _check_filter(engine, p, flt or {}),
        "retry_schedule": _check_schedule(retry_schedule),
        "status": "active",
        "consecutive_failures": 0,
        "description": description,
        "created_at": now,
        "updated_at": now,
    }
    with write_conn(engine) as conn:
        conn.execute(insert(subscriptions).values(**values))
        row = _get_row(conn, p, sub_id)
        audit.record(
            conn,
            p,
            "subscription.created",
            "subscription",
            sub_id,
            now,
            connector=connector,
            events=values["events"],
        )
    return _view(row)


def _get_row(conn: Any, p: Principal, sub_id: str) -> Any:
    row = conn.execute(
        select(subscriptions).where(
            subscriptions.c.id == sub_id,
            subscriptions.c.merchant_id == p.merchant_id,
            subscriptions.c.status != "deleted",
        )
    ).first()
    if row is None:
        raise refuse("subscription_not_found", f"No subscription {sub_id}.")
    return row


def get(engine: Engine, p: Principal, sub_id: str) -> dict[str, Any]:
    p.require("admin", "integrator")
    with read_conn(engine) as conn:
        return _view(_get_row(conn, p, sub_id))


def list_all(engine: Engine, p: Principal) -> list[dict[str, Any]]:
    p.require("admin", "integrator")
    with read_conn(engine) as conn:
        rows = conn.execute(
            select(subscriptions)
            .where(
                subscriptions.c.merchant_id == p.merchant_id, subscriptions.c.status != "deleted"
            )
            .order_by(subscriptions.c.created_at, subscriptions.c.id)
        ).all()
    return [_view(r) for r in rows]


def update_subscription(
    engine: Engine,
    p: Principal,
    sub_id: str,
    *,
    config: dict[str, Any] | None,
    events: list[str] | None,
    flt: dict[str, Any] | None,
    retry_schedule: list[int] | None,
    description: str | None,
    now: datetime,
    fields_set: set[str],
) -> dict[str, Any]:
    """Change the given fields. A config update may leave secrets out: they are kept."""
    p.require("admin", "integrator")
    with read_conn(engine) as conn:
        current = _get_row(conn, p, sub_id)
    changes: dict[str, Any] = {"updated_at": now}
    if config is not None:
        connector = get_connector(current.connector)
        ring = keyring(engine)
        kept = [s for s in connector.secret_fields if s not in config and s in current.config]
        plain, lost = decrypt_fields(ring, current.config, kept)
        if lost:  # the stored secret is unreadable with today's keys: ask for it again
            field_name = f"config.{lost[0]}"
            message = (
                "the stored secret cannot be decrypted with the configured HUB_SECRET_KEY; "
                "send it again"
            )
            raise refuse(
                "invalid_config",
                f"{field_name}: {message}",
                errors=[{"field": f"config.{name}", "message": message} for name in lost],
            )
        merged = {**config, **plain}
        check_config_urls(connector, merged)
        connector.check_config(merged)  # on plaintext: the schema sees the real values
        changes["config"] = encrypt_config(ring, merged, connector.secret_fields)
    if events is not None:
        changes["events"] = _check_events(current.connector, events)
    if flt is not None:
        changes["filter"] = _check_filter(engine, p, flt)
    if "retry_schedule" in fields_set:
        changes["retry_schedule"] = _check_schedule(retry_schedule)
    if "description" in fields_set:
        changes["description"] = description
    with write_conn(engine) as conn:
        conn.execute(
            update(subscriptions).where(subscriptions.c.id == current.id).values(**changes)
        )
        # which fields changed, never their values (a config holds secrets)
        changed = sorted(k for k in changes if k != "updated_at")
        audit.record(conn, p, "subscription.updated", "subscription", sub_id, now, fields=changed)
        return _view(_get_row(conn, p, sub_id))


def set_status(
    engine: Engine, p: Principal, sub_id: str, status: str, now: datetime
) -> dict[str, Any]:
    """pause | active (resume; also closes an open circuit) | deleted."""
    p.require("admin", "integrator")
    with write_conn(engine) as conn:
        row = _get_row(conn, p, sub_id)
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status == "active":
            values.update(consecutive_failures=0, circuit_retry_at=None)
        conn.execute(update(subscriptions).where(subscriptions.c.id == row.id).values(**values))
        action = {"deleted": "subscription.deleted", "paused": "subscription.paused"}.get(
            status, "subscription.resumed"
        )
        audit.record(conn, p, action, "subscription", sub_id, now, was=row.status)
        if status == "deleted":
            # nothing will ever send them: close them so they neither count as waiting
            # nor age in the metrics
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.subscription_id == row.id,
                    deliveries.c.status.in_(("pending", "retrying", "delivering")),
                )
                .values(
                    status="cancelled",
                    updated_at=now,
                    lease_until=None,
                    last_error="subscription deleted",
                )
            )
            return {"id": sub_id, "status": "deleted"}
        if status == "active":
            _enqueue_due_later(conn, sub_id)
        return _view(_get_row(conn, p, sub_id))


def _enqueue_due_later(conn: Any, sub_id: str) -> None:
    ids = list(
        conn.execute(
            select(deliveries.c.id).where(
                deliveries.c.subscription_id == sub_id,
                deliveries.c.status.in_(("pending", "retrying")),
            )
        ).scalars()
    )
    announce_after_commit(conn, ids)


# --- deliveries --------------------------------------------------------------------------


def _delivery_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "subscription_id": row.subscription_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "last_status": row.last_status,
        "last_error": _capped(row.last_error),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "delivered_at": iso(row.delivered_at),
    }


def list_deliveries(
    engine: Engine,
    p: Principal,
    *,
    subscription: str | None,
    status: str | None,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    p.require("admin", "integrator")
    d = deliveries
    q = select(d).where(d.c.merchant_id == p.merchant_id)
    if subscription is not None:
        q = q.where(d.c.subscription_id == subscription)
    if status is not None:
        if status not in DELIVERY_STATUSES:
            raise refuse(
                "invalid_request",
                f"status must be one of {list(DELIVERY_STATUSES)}",
                errors=[{"field": "status", "message": "unknown status"}],
            )
        q = q.where(d.c.status == status)
    if event_type is not None:
        q = q.where(d.c.event_type == event_type)
    if since is not None:
        q = q.where(d.c.created_at >= since)
    if until is not None:
        q = q.where(d.c.created_at < until)
    q = newest_first(q, d.c.created_at, d.c.id, limit, cursor)
    with read_conn(engine) as conn:
        rows = conn.execute(q).all()
    page, nxt = split_page(rows, limit, "created_at")
    return {"items": [_delivery_view(r) for r in page], "next_cursor": nxt}


def get_delivery(engine: Engine, p: Principal, delivery_id: str) -> dict[str, Any]:
    p.require("admin", "integrator")
    with read_conn(engine) as conn:
        row = conn.execute(
            select(deliveries).where(
                deliveries.c.id == delivery_id, deliveries.c.merchant_id == p.merchant_id
            )
        ).first()
        if row is None:
            raise refuse("delivery_not_found", f"No delivery {delivery_id}.")
        attempts = conn.execute(
            select(delivery_attempts)
            .where(delivery_attempts.c.delivery_id == delivery_id)
            .order_by(delivery_attempts.c.id)
        ).all()
    return {
        **_delivery_view(row),
        "attempt_log": [
            {
                "attempt": a.attempt,
                "started_at": iso(a.started_at),
                "latency_ms": a.latency_ms,
                "outcome": a.outcome,
                "http_status": a.http_status,
                "error": _capped(a.error),
                "response_body": _capped(a.response_body),
            }
            for a in attempts
        ],
    }


def _capped(text: str | None) -> str | None:
    """An attempt's stored answer or error, no longer than the attempt log keeps now
    (rows written before the cap was lowered included)."""
    return text if text is None else text[:MAX_BODY_LOGGED]


_REPLAY = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.status.in_(("dead", "succeeded")))
    .values(
        status="pending",
        attempts=0,
        next_attempt_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
        lease_until=None,
        delivered_at=None,
        enqueued_at=bindparam("b_now"),
    )
    .returning(deliveries.c.id)
)


def replay(engine: Engine, p: Principal, delivery_id: str, now: datetime) -> dict[str, Any]:
    """Send a dead (or delivered) delivery again, with the same event id."""
    p.require("admin", "integrator")
    with write_conn(engine) as conn:
        row = conn.execute(
            select(deliveries.c.id, deliveries.c.status).where(
                deliveries.c.id == delivery_id, deliveries.c.merchant_id == p.merchant_id
            )
        ).first()
        if row is None:
            raise refuse("delivery_not_found", f"No delivery {delivery_id}.")
        if conn.execute(_REPLAY, {"b_id": delivery_id, "b_now": now}).first() is None:
            raise refuse(
                "delivery_in_progress",
                f"The delivery is {row.status}; only dead or succeeded deliveries are replayed.",
                delivery_status=row.status,
            )
        announce_after_commit(conn, [delivery_id])
        audit.record(conn, p, "deliveries.replayed", "delivery", delivery_id, now, count=1)
    return get_delivery(engine, p, delivery_id)


def replay_dead(engine: Engine, p: Principal, sub_id: str, now: datetime) -> dict[str, Any]:
    """Replay every dead delivery of a subscription (e.g. after the receiver is fixed)."""
    p.require("admin", "integrator")
    with write_conn(engine) as conn:
        _get_row(conn, p, sub_id)
        ids = list(
            conn.execute(
                update(deliveries)
                .where(deliveries.c.subscription_id == sub_id, deliveries.c.status == "dead")
                .values(
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    updated_at=now,
                    lease_until=None,
                    enqueued_at=now,
                )
                .returning(deliveries.c.id)
            ).scalars()
        )
        announce_after_commit(conn, ids)
        audit.record(conn, p, "deliveries.replayed", "subscription", sub_id, now, count=len(ids))
    return {"subscription_id": sub_id, "replayed": len(ids)}

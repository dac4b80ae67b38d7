"""Fan-out: one delivery record per (event, matching subscription), in the event's
transaction, so an event can never exist without its deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from hub.db.schema import deliveries, outbox_events, subscriptions
from hub.delivery.queue import enqueue_after_commit
from hub.domain.ids import new_id

LIVE_STATUSES = ("active", "paused", "circuit_open")

_SUBSCRIPTIONS = select(subscriptions.c.id, subscriptions.c.events, subscriptions.c.filter).where(
    subscriptions.c.merchant_id == bindparam("b_merchant"),
    subscriptions.c.status.in_(LIVE_STATUSES),
)
_INSERT_EVENTS_RETURNING = insert(outbox_events).returning(
    outbox_events.c.seq, sort_by_parameter_order=True
)
_INSERT_EVENTS = insert(outbox_events)
_INSERT_DELIVERIES = insert(deliveries)


def template_of_event(data: dict[str, Any]) -> str | None:
    tid = data.get("template_id")
    if tid is None and isinstance(data.get("template"), dict):
        tid = data["template"].get("id")
    return tid if isinstance(tid, str) else None


def matches(sub_events: list[str], sub_filter: dict[str, Any], row: dict[str, Any]) -> bool:
    """Does a subscription want this event? Event types (``*`` = all); a store filter
    keeps only events at those stores (events with no store never match it); a template
    filter keeps only events about those templates."""
    if "*" not in sub_events and row["type"] not in sub_events:
        return False
    stores = sub_filter.get("stores") or []
    if stores and row.get("store_code") not in stores:
        return False
    templates = sub_filter.get("templates") or []
    return not templates or template_of_event(row["data"]) in templates


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows and their delivery records; enqueue the deliveries on commit."""
    merchants = {r["merchant_id"] for r in rows}
    subs: list[Any] = []
    for merchant_id in merchants:
        subs += conn.execute(_SUBSCRIPTIONS, {"b_merchant": merchant_id}).all()
    if not subs:
        conn.execute(_INSERT_EVENTS, list(rows))
        return
    seqs = conn.execute(_INSERT_EVENTS_RETURNING, list(rows)).scalars().all()
    created: list[dict[str, Any]] = []
    for row, seq in zip(rows, seqs, strict=True):
        now: datetime = row["recorded_at"]
        for sub in subs:
            if matches(sub.events, sub.filter, row):
                created.append(
                    {
                        "id": new_id("dlv"),
                        "merchant_id": row["merchant_id"],
                        "subscription_id": sub.id,
                        "event_id": row["id"],
                        "event_seq": seq,
                        "event_type": row["type"],
                        "coupon_id": row.get("coupon_id"),
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "enqueued_at": now,  # enqueued right after the commit
                        "created_at": now,
                        "updated_at": now,
                    }
                )
    if created:
        conn.execute(_INSERT_DELIVERIES, created)
        enqueue_after_commit(conn, [d["id"] for d in created])

"""The transactional outbox: event rows written in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from hub.domain.ids import new_id

EVENT_TYPES = (
    "coupon.issued",
    "coupon.claimed",
    "coupon.redeemed",
    "coupon.redemption_reversed",
    "coupon.voided",
    "coupon.expired",
    "template.created",
    "template.paused",
    "template.resumed",
    "alert.raised",
)

# alert.raised data: {"alert": <kind>, "severity": "warning"|"critical", "message": str,
#                     "details": {...}}; kinds so far: "subscription_circuit_open",
#                     "code_enumeration_suspected", "repeat_redemption_attempt"
#                     (hub/services/alerts.py lists them and explains each).


def event_row(
    *,
    type: str,
    merchant_id: str,
    occurred_at: datetime,
    recorded_at: datetime,
    data: dict[str, Any],
    coupon_id: str | None = None,
    store_code: str | None = None,
) -> dict[str, Any]:
    assert type in EVENT_TYPES, type
    return {
        "id": new_id("evt"),
        "merchant_id": merchant_id,
        "type": type,
        "coupon_id": coupon_id,
        "store_code": store_code,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "data": data,
    }


def append(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert event rows in the current transaction (commit makes them visible)."""
    if rows:
        from hub.delivery.fanout import insert_events

        insert_events(conn, rows)


def envelope(
    *,
    id: str,
    type: str,
    merchant_id: str,
    occurred_at: datetime,
    recorded_at: datetime,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The published form of an event (docs/architecture.md, "The outbox and delivery");
    ``id`` is the dedupe key."""
    from hub.services.jsonio import iso

    return {
        "id": id,
        "type": type,
        "occurred_at": iso(occurred_at),
        "recorded_at": iso(recorded_at),
        "merchant_id": merchant_id,
        "data": data,
    }

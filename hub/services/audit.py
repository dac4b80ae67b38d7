"""The audit log: who (API key, and the staff member of a staff session), what, when
and from where, for every administrative change — written in the same transaction as
the change, so there is no change without its entry and no entry without its change.
Append-only (database triggers refuse UPDATE and DELETE); admins read it through ``GET /v1/audit``.

The client's address reaches the services through a context variable set by the API's
authentication middleware, so service signatures need not carry it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from hub.db.engine import read_conn
from hub.db.schema import audit_log
from hub.domain.ids import new_id
from hub.services.jsonio import iso
from hub.services.paging import newest_first, split_page
from hub.services.principal import Principal

CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("hub_client_address", default=None)

ACTIONS = (
    "template.created",
    "campaign.created",
    "template.paused",
    "template.resumed",
    "coupons.issued",
    "coupon.claimed",
    "coupon.voided",
    "redemption.reversed",
    "order.reversed",
    "key.created",
    "key.revoked",
    "subscription.created",
    "subscription.updated",
    "subscription.paused",
    "subscription.resumed",
    "subscription.deleted",
    "deliveries.replayed",
    "secrets.rotated",
    "offline_key.rotated",
    "offline_rules.updated",
    "conflict.settled",
    "staff.created",
    "staff.disabled",
    "staff.enabled",
    "staff.sign_in_code_created",
    "staff.signed_in",
    "staff.signed_out",
)


def record(
    conn: Connection,
    p: Principal,
    action: str,
    target_type: str,
    target_id: str,
    now: datetime,
    **details: Any,
) -> None:
    """Append one entry, inside the caller's transaction."""
    assert action in ACTIONS, action
    conn.execute(
        insert(audit_log).values(
            id=new_id("aud"),
            merchant_id=p.merchant_id,
            at=now,
            actor_key_id=p.key_id,
            actor_role=p.role,
            address=CLIENT_ADDRESS.get(),
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
            staff_id=p.staff_id,
        )
    )


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": iso(row.at),
        "actor": {
            "key_id": row.actor_key_id,
            "role": row.actor_role,
            "address": row.address,
            "staff_id": row.staff_id,
        },
        "action": row.action,
        "target": {"type": row.target_type, "id": row.target_id},
        "details": row.details,
    }


def list_entries(
    engine: Engine, p: Principal, f: AuditFilter, limit: int, cursor: str | None
) -> dict[str, Any]:
    """Newest first, with a cursor (the time and id of the last entry shown)."""
    p.require("admin")
    a = audit_log.c
    q = select(audit_log).where(a.merchant_id == p.merchant_id)
    if f.action:
        q = q.where(a.action == f.action)
    if f.actor:
        q = q.where(a.actor_key_id == f.actor)
    if f.target:
        q = q.where(a.target_id == f.target)
    if f.since:
        q = q.where(a.at >= f.since)
    if f.until:
        q = q.where(a.at < f.until)
    with read_conn(engine) as conn:
        rows = conn.execute(newest_first(q, a.at, a.id, limit, cursor)).all()
    page, next_cursor = split_page(rows, limit, "at")
    return {"items": [_view(r) for r in page], "next_cursor": next_cursor}

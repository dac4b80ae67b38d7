"""Read models: a coupon with its history, and the redemption list (cursor paginated)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select

from hub.db.engine import read_conn
from hub.db.fastexec import FastStatement
from hub.db.schema import (
    coupon_templates,
    coupons,
    customers,
    outbox_events,
    redemptions,
    staff,
)
from hub.domain.codes import display
from hub.domain.redeeming import effective_state
from hub.domain.state import CouponState
from hub.domain.validity import Window
from hub.services.guard import Guard
from hub.services.jsonio import iso
from hub.services.lookup import CodeLookup, default_guard
from hub.services.paging import newest_first, split_page
from hub.services.principal import Principal

_HISTORY_FIELDS = (
    "redemption_id",
    "store",
    "channel",
    "order_id",
    "discount",
    "customer",
    "reason",
    "coupon_status",
    # transfers to a friend: the chain of holders (who gave to whom; ``at`` says when)
    "transfer_id",
    "from_customer",
    "to_customer",
    "expires_at",
)
# What a key limited to some stores still sees of another store's event: that it
# happened, and when (the coupon's status says as much); not where, which redemption,
# which order, how much or by whom.
_OTHER_STORE_FIELDS = ("coupon_status",)


def _visible(scope: tuple[str, ...] | None, store: str | None) -> bool:
    """Whether a key limited to ``scope`` (None: every store) may see an event at
    ``store`` in full. Events without a store (issued, claimed, voided) are merchant-wide."""
    return scope is None or store is None or store in scope


_COUPON_DETAIL = (
    select(
        coupons,
        coupon_templates.c.name.label("template_name"),
        coupon_templates.c.kind,
        customers.c.external_id.label("holder"),
    )
    .select_from(
        coupons.join(coupon_templates, coupon_templates.c.id == coupons.c.template_id).outerjoin(
            customers, customers.c.id == coupons.c.customer_id
        )
    )
    .where(coupons.c.code == bindparam("b_code"), coupons.c.merchant_id == bindparam("b_merchant"))
)
# the look-up's statements, built once and run on the DBAPI cursor (hub/db/fastexec.py)
_FAST_COUPON_DETAIL = FastStatement(_COUPON_DETAIL)
_COUPON_EVENTS = FastStatement(
    select(
        outbox_events.c.id,
        outbox_events.c.type,
        outbox_events.c.occurred_at,
        outbox_events.c.recorded_at,
        outbox_events.c.store_code,
        outbox_events.c.data,
    )
    .where(
        outbox_events.c.coupon_id == bindparam("b_coupon"),
        outbox_events.c.merchant_id == bindparam("b_merchant"),
    )
    .order_by(outbox_events.c.seq)
)
_REDEMPTION_STORE = FastStatement(
    select(redemptions.c.store_code).where(redemptions.c.id == bindparam("b_id"))
)


def coupon_status(
    engine: Engine,
    p: Principal,
    raw_code: str,
    now: datetime,
    *,
    guard: Guard | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """A coupon with its history, behind the guessing guard (``client``: the caller's
    address)."""
    with CodeLookup(engine, default_guard(guard), p, now, client, read=True) as lookup:
        code = lookup.parse(raw_code)
        with read_conn(engine) as conn:
            row = lookup.find(conn, _FAST_COUPON_DETAIL, code)
            return _coupon_view(conn, p, code, row, now)


def _coupon_view(
    conn: Connection, p: Principal, code: str, row: Any, now: datetime
) -> dict[str, Any]:
    events = _COUPON_EVENTS.all(conn, {"b_coupon": row.id, "b_merchant": p.merchant_id})
    current_store = None
    if row.redemption_id is not None:
        found = _REDEMPTION_STORE.first(conn, {"b_id": row.redemption_id})
        current_store = None if found is None else found.store_code
    scope = p.store_scope
    state = effective_state(CouponState(row.status), Window(row.valid_from, row.valid_until), now)
    history = []
    for e in events:
        item: dict[str, Any] = {
            "event_id": e.id,
            "type": e.type,
            "at": iso(e.occurred_at),
            "recorded_at": iso(e.recorded_at),
        }
        store = e.store_code if e.store_code is not None else e.data.get("store")
        fields = _HISTORY_FIELDS if _visible(scope, store) else _OTHER_STORE_FIELDS
        item.update({k: e.data[k] for k in fields if k in e.data})
        history.append(item)
    return {
        "code": code,
        "display_code": display(code),
        "status": state.value,
        "template": {"id": row.template_id, "name": row.template_name, "kind": row.kind},
        "holder": row.holder,
        "channel": row.channel,
        "issued_at": iso(row.issued_at),
        "valid_from": iso(row.valid_from),
        "valid_until": iso(row.valid_until),
        # another store's redemption is not this key's business (a store key, or an
        # analyst limited to some stores): the status says "redeemed", nothing more
        "redemption_id": row.redemption_id if _visible(scope, current_store) else None,
        "history": history,
    }


@dataclass(frozen=True)
class RedemptionFilter:
    store: str | None = None
    since: datetime | None = None  # occurred_at >= since
    until: datetime | None = None  # occurred_at < until
    template: str | None = None
    channel: str | None = None
    status: str | None = None
    staff: str | None = None  # a staff member's id: the redemptions they made


def list_redemptions(
    engine: Engine, p: Principal, f: RedemptionFilter, limit: int, cursor: str | None
) -> dict[str, Any]:
    """Newest first by ``occurred_at`` then id; store keys see only their store."""
    r = redemptions
    q = (
        select(r, staff.c.name.label("staff_name"))
        .select_from(r.outerjoin(staff, staff.c.id == r.c.staff_id))
        .where(r.c.merchant_id == p.merchant_id)
    )
    if p.store_id is not None:
        q = q.where(r.c.store_id == p.store_id)
    elif p.stores is not None:  # an analyst key limited to some stores
        q = q.where(r.c.store_code.in_(p.stores))
    if f.store is not None:
        q = q.where(r.c.store_code == f.store)
    if f.since is not None:
        q = q.where(r.c.occurred_at >= f.since)
    if f.until is not None:
        q = q.where(r.c.occurred_at < f.until)
    if f.template is not None:
        q = q.where(r.c.template_id == f.template)
    if f.channel is not None:
        q = q.where(r.c.channel == f.channel)
    if f.status is not None:
        q = q.where(r.c.status == f.status)
    if f.staff is not None:
        q = q.where(r.c.staff_id == f.staff)
    q = newest_first(q, r.c.occurred_at, r.c.id, limit, cursor)
    with read_conn(engine) as conn:
        rows = conn.execute(q).all()
        codes = {}
        ids = [row.coupon_id for row in rows]
        if ids:
            codes = dict(
                conn.execute(
                    select(coupons.c.id, coupons.c.code).where(coupons.c.id.in_(ids))
                ).all()
            )
    page, next_cursor = split_page(rows, limit, "occurred_at")
    items = [
        {
            "redemption_id": row.id,
            "status": row.status,
            "code": codes.get(row.coupon_id),
            "template_id": row.template_id,
            "store": row.store_code,
            "channel": row.channel,
            "order_id": row.order_id,
            "order_amount": row.order_amount,
            "discount": row.discount,
            "redeemed_at": iso(row.occurred_at),
            "recorded_at": iso(row.recorded_at),
            "reversed_at": iso(row.reversed_at),
            "staff": (
                {"id": row.staff_id, "name": row.staff_name} if row.staff_id is not None else None
            ),
        }
        for row in page
    ]
    return {"items": items, "next_cursor": next_cursor}

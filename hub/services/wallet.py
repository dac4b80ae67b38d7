"""A customer's wallet: their coupons, soonest expiry first, each saying whether it can
be used now and, when not, why (the refusal code a redeem would give: a coupon held for
an online order reads ``coupon_reserved`` until the hold ends)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    or_,
    select,
)

from hub.db.engine import read_conn
from hub.db.schema import coupon_templates, coupon_transfers, coupons, customers
from hub.domain import holds
from hub.domain.errors import refuse
from hub.domain.redeeming import effective_state
from hub.domain.state import CouponState
from hub.domain.validity import Window
from hub.services.jsonio import iso
from hub.services.paging import decode_cursor, encode_cursor
from hub.services.principal import Principal

WalletStatus = Literal["usable", "used", "expired", "all"]
STATUSES: tuple[WalletStatus, ...] = ("usable", "used", "expired", "all")
_REASONS = {
    CouponState.REDEEMED: "coupon_already_redeemed",
    CouponState.EXPIRED: "coupon_expired",
    CouponState.VOIDED: "coupon_voided",
}

# the open offer to pass the coupon to a friend, if any (at most one: a unique index)
_OFFERED_UNTIL = (
    select(coupon_transfers.c.expires_at)
    .where(
        coupon_transfers.c.coupon_id == coupons.c.id,
        coupon_transfers.c.status == "offered",
        coupon_transfers.c.expires_at > bindparam("b_now"),
    )
    .scalar_subquery()
    .label("transfer_offered_until")
)

# A customer's coupons with their template (the quote adds the template's rules).
WALLET_COUPONS = select(
    coupons.c.id,
    coupons.c.code,
    coupons.c.status,
    coupons.c.template_id,
    coupons.c.valid_from,
    coupons.c.valid_until,
    coupons.c.channel,
    coupons.c.reservation_id,
    coupons.c.reserved_until,
    coupon_templates.c.name.label("template_name"),
    coupon_templates.c.kind,
    _OFFERED_UNTIL,
).select_from(coupons.join(coupon_templates, coupon_templates.c.id == coupons.c.template_id))
_UNUSED = coupons.c.status.in_(("issued", "expired"))


def _view(row: Any, customer: str, now: datetime) -> dict[str, Any]:
    state = effective_state(CouponState(row.status), Window(row.valid_from, row.valid_until), now)
    reason = _REASONS.get(state)
    if reason is None and now < row.valid_from:
        reason = "coupon_not_yet_valid"
    if reason is None and holds.is_live(row.reservation_id, row.reserved_until, now):
        reason = "coupon_reserved"  # held for an online order until the hold ends
    return {
        "code": row.code,
        "customer": customer,
        "template_id": row.template_id,
        "template_name": row.template_name,
        "kind": row.kind,
        "status": state.value,
        "channel": row.channel,
        "valid_from": iso(row.valid_from),
        "valid_until": iso(row.valid_until),
        "usable_now": reason is None,
        "reason": reason,
        "transfer_offered_until": iso(row.transfer_offered_until),
        **_qr_links(row.code, customer, state),
    }


def _qr_links(code: str, customer: str, state: CouponState) -> dict[str, str | None]:
    """Where the coupon's QR code (its signed token, for offline tills) is fetched: a
    coupon that can no longer be redeemed has none. The links name the customer, as an
    app key must (GET /v1/coupons/{code}/qr.svg)."""
    if state is not CouponState.ISSUED:
        return {"qr_svg": None, "qr_png": None}
    query = "?customer=" + quote(customer, safe="")
    return {
        "qr_svg": f"/v1/coupons/{code}/qr.svg{query}",
        "qr_png": f"/v1/coupons/{code}/qr.png{query}",
    }


def find_customer(conn: Connection, p: Principal, customer: str) -> str | None:
    """The id of the merchant's customer with external id ``customer``, or None."""
    found = conn.execute(
        select(customers.c.id).where(
            customers.c.merchant_id == p.merchant_id, customers.c.external_id == customer
        )
    ).scalar()
    return None if found is None else str(found)


def customer_id(conn: Connection, p: Principal, customer: str) -> str:
    """The merchant's customer with external id ``customer``, or ``not_found``."""
    found = find_customer(conn, p, customer)
    if found is None:
        raise refuse("not_found", f"No customer {customer} for this merchant.")
    return found


def usable_where(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """The wallet's ``usable`` coupons: neither used, voided nor past their window
    (``now`` may be a bound parameter, for a statement built once)."""
    return and_(_UNUSED, coupons.c.valid_until > now)


def list_wallet(
    engine: Engine,
    p: Principal,
    customer: str,
    now: datetime,
    *,
    status: WalletStatus = "usable",
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One customer's coupons by ``status`` (usable: neither used, voided nor expired;
    used: redeemed; expired: past their window unused), soonest expiry first."""
    p.require("admin", "analyst", "app")
    c = coupons.c
    q = WALLET_COUPONS.where(c.merchant_id == p.merchant_id)
    if status == "usable":
        q = q.where(usable_where(now))
    elif status == "used":
        q = q.where(c.status == "redeemed")
    elif status == "expired":
        q = q.where(_UNUSED, c.valid_until <= now)
    if cursor is not None:
        at = decode_cursor(cursor)
        q = q.where(or_(c.valid_until > at.at, and_(c.valid_until == at.at, c.id > at.id)))
    with read_conn(engine) as conn:
        holder = customer_id(conn, p, customer)
        rows = conn.execute(
            q.where(c.customer_id == holder)
            .order_by(c.valid_until, c.id)
            .limit(limit + 1),
            {"b_now": now},
        ).all()
    page = rows[:limit]
    more = len(rows) > limit and page
    return {
        "items": [_view(r, customer, now) for r in page],
        "next_cursor": encode_cursor(page[-1].valid_until, page[-1].id) if more else None,
    }

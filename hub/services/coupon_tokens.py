"""A coupon's token (the offline QR): ``GET /v1/coupons/{code}/token`` and its QR code.

The token is signed with the merchant's active offline key
(:mod:`hub.services.offline_keys`); its claims come from the coupon's row: the code,
the template, the holder's external customer id, the validity window, ``issued_at``
now, and ``x`` from the template's ``offline`` flag.

Who may have one: the roles that look a coupon up (admin, store, analyst) and ``app``
keys, which act for one customer at a time: an app key must name the customer
(``?customer=``) and gets the token of that customer's coupons only; any other code
is ``coupon_not_found``, counted by the guessing guard as a wrong code is. Every query
is the caller's merchant's. Only a coupon that can still be redeemed gets a token
(an already redeemed, voided or expired one is refused with that code).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import segno
from sqlalchemy import Engine, bindparam, select

from hub.db.engine import read_conn
from hub.db.schema import coupon_templates, coupons, customers
from hub.domain.errors import DomainError, refuse
from hub.domain.state import Action, CouponState, transition
from hub.services.guard import Guard
from hub.services.jsonio import iso
from hub.services.lookup import CodeLookup, default_guard
from hub.services.offline_keys import sign_token
from hub.services.principal import Principal
from hub.services.template_cache import template_of

_COUPON_FOR_TOKEN = (
    select(
        coupons.c.code,
        coupons.c.status,
        coupons.c.template_id,
        coupons.c.valid_from,
        coupons.c.valid_until,
        coupon_templates.c.rules,
        customers.c.external_id.label("holder"),
    )
    .select_from(
        coupons.join(coupon_templates, coupon_templates.c.id == coupons.c.template_id).outerjoin(
            customers, customers.c.id == coupons.c.customer_id
        )
    )
    .where(coupons.c.code == bindparam("b_code"), coupons.c.merchant_id == bindparam("b_merchant"))
)
# an app key's look-up: the customer it names must hold the coupon
_HELD_COUPON_FOR_TOKEN = _COUPON_FOR_TOKEN.where(customers.c.external_id == bindparam("b_customer"))


def coupon_token(
    engine: Engine,
    p: Principal,
    raw_code: str,
    now: datetime,
    *,
    customer: str | None = None,
    guard: Guard | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """``{"token", "kid", "code", "expires_at"}`` for the coupon (see the module)."""
    p.require("admin", "store", "analyst", "app")
    if p.role == "app" and customer is None:
        raise refuse(
            "invalid_request",
            "An app key names the customer whose coupon it shows (?customer=).",
            field="customer",
        )
    with CodeLookup(engine, default_guard(guard), p, now, client, read=True) as lookup:
        code = lookup.parse(raw_code)
        with read_conn(engine) as conn:
            if customer is None:
                row = lookup.find(conn, _COUPON_FOR_TOKEN, code)
            else:
                row = lookup.find(conn, _HELD_COUPON_FOR_TOKEN, code, b_customer=customer)
    try:
        transition(CouponState(row.status), Action.REDEEM, window_open=now < row.valid_until)
    except DomainError as err:
        if err.code == "coupon_expired":
            raise refuse(
                "coupon_expired", "The coupon has expired.", valid_until=iso(row.valid_until)
            ) from None
        raise
    token, kid = sign_token(
        engine,
        p.merchant_id,
        code=row.code,
        template_id=row.template_id,
        holder=row.holder,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        offline_allowed=template_of(row.template_id, dict(row.rules)).offline,
        now=now,
    )
    return {"token": token, "kid": kid, "code": row.code, "expires_at": iso(row.valid_until)}


# --- the QR code ------------------------------------------------------------------------

ERROR_LEVELS = ("L", "M", "Q", "H")
SCALE_RANGE = (1, 40)
BORDER_RANGE = (0, 10)
DEFAULT_SCALE = {"png": 8, "svg": 4}
DEFAULT_BORDER = 4  # the quiet zone the QR standard asks for
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


@dataclass(frozen=True)
class QrOptions:
    kind: str  # png | svg
    scale: int
    error: str
    border: int


def qr_options(kind: str, scale: str | None, error: str | None, border: str | None) -> QrOptions:
    """The QR parameters from the query string, or ``invalid_request`` naming the one
    that is wrong."""

    def whole(name: str, raw: str | None, default: int, bounds: tuple[int, int]) -> int:
        if raw is None:
            return default
        low, high = bounds
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not low <= int(raw) <= high:
            raise refuse(
                "invalid_request", f"{name} must be a whole number from {low} to {high}",
                field=name,
            )  # fmt: skip
        return int(raw)

    level = "M" if error is None else error.upper()
    if level not in ERROR_LEVELS:
        raise refuse("invalid_request", "error must be one of L, M, Q, H", field="error")
    return QrOptions(
        kind=kind,
        scale=whole("scale", scale, DEFAULT_SCALE[kind], SCALE_RANGE),
        error=level,
        border=whole("border", border, DEFAULT_BORDER, BORDER_RANGE),
    )


def qr_image(token: str, options: QrOptions) -> bytes:
    """The QR code carrying ``token`` (byte mode: the token's ASCII), as PNG or SVG."""
    qr = segno.make_qr(token, error=options.error.lower(), boost_error=False, mode="byte")
    out = io.BytesIO()
    if options.kind == "png":
        qr.save(out, kind="png", scale=options.scale, border=options.border)
    else:
        qr.save(out, kind="svg", scale=options.scale, border=options.border, xmldecl=True)
    return out.getvalue()

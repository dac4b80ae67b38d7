"""Transfers to a friend (转赠): the holder offers a coupon, a friend accepts it.

* **Offer** (``POST /v1/coupons/{code}/transfers``): the code goes through
  :class:`hub.services.lookup.CodeLookup`; the customer named must hold the coupon, its
  template must be ``transferable``, and the coupon must be usable (not redeemed,
  voided, expired, held for an online order, or offered already). The offer gets an
  unguessable token (``secrets.token_urlsafe(24)``: 192 bits) the holder shares with
  the friend, and expires after ``ttl_seconds`` (never after the coupon's window). At
  most one open offer per coupon (a partial unique index on ``status = 'offered'``);
  an offer past its time is marked ``expired`` when the next one is made. Carries an
  Idempotency-Key like a claim: a retry replays the first answer (with the token).
* **Accept** (``POST /v1/transfers/{token}/accept``): in one transaction, under the
  template's row lock (so the recipient's per-customer limit holds however many
  accepts race), the offer moves ``offered → accepted`` and the coupon
  ``holder → recipient`` with conditional UPDATEs on the offer's status and the
  coupon's holder, status, window and hold: of recipients racing for one offer exactly
  one wins, the others get ``transfer_closed``. Idempotent by token and recipient: the
  same recipient accepting again gets the same answer (200) — a retry after a lost
  reply is safe without an Idempotency-Key, and works from any key.
* **Cancel** (``POST /v1/transfers/{token}/cancel``): by the customer who offered it,
  while open; cancelling a cancelled offer answers the same again.
* **Read** (``GET /v1/transfers/{token}``): the offer, with the code masked.

A token is a secret like a coupon code: a wrong one (``transfer_not_found``) counts for
the guessing guard (:mod:`hub.services.guard`) as an unknown code does, and a blocked
key or address gets 429 before any token is looked up.

Each change writes its event (``coupon.transfer_offered``, ``coupon.transferred``,
``coupon.transfer_cancelled``) for the coupon, so the coupon's history shows the chain
of holders. The token never leaves in an event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from hub.db.engine import read_conn, write_conn
from hub.db.schema import coupon_templates, coupon_transfers, coupons, customers
from hub.domain.codes import mask
from hub.domain.errors import DomainError, refuse
from hub.domain.ids import new_id
from hub.domain.redeeming import effective_state
from hub.domain.state import CouponState
from hub.domain.validity import Window
from hub.services import idempotency, issuing, outbox, wallet
from hub.services.commands import HttpResult
from hub.services.guard import Guard
from hub.services.jsonio import dumps, iso
from hub.services.lookup import CodeLookup, default_guard
from hub.services.principal import Principal
from hub.services.template_cache import template_of
from hub.services.tokens import guarded_look_up, new_token, well_formed
from hub.services.views import template_view

DEFAULT_TTL_SECONDS = 86_400
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 7 * 86_400

_COUPON_FOR_OFFER = (
    select(
        coupons.c.id,
        coupons.c.template_id,
        coupons.c.customer_id,
        coupons.c.status,
        coupons.c.valid_from,
        coupons.c.valid_until,
        coupons.c.reserved_until,
        coupon_templates.c.rules,
        coupon_templates.c.name.label("template_name"),
        coupon_templates.c.kind,
    )
    .select_from(coupons.join(coupon_templates, coupon_templates.c.id == coupons.c.template_id))
    .where(coupons.c.code == bindparam("b_code"), coupons.c.merchant_id == bindparam("b_merchant"))
)

_giver = customers.alias("giver")
_taker = customers.alias("taker")
_BY_TOKEN = (
    select(
        coupon_transfers.c.id,
        coupon_transfers.c.coupon_id,
        coupon_transfers.c.from_customer_id,
        coupon_transfers.c.to_customer_id,
        coupon_transfers.c.status,
        coupon_transfers.c.offered_at,
        coupon_transfers.c.expires_at,
        coupon_transfers.c.ended_at,
        coupons.c.code,
        coupons.c.template_id,
        coupons.c.valid_from,
        coupons.c.valid_until,
        coupon_templates.c.name.label("template_name"),
        coupon_templates.c.kind,
        _giver.c.external_id.label("from_customer"),
        _taker.c.external_id.label("to_customer"),
    )
    .select_from(
        coupon_transfers.join(coupons, coupons.c.id == coupon_transfers.c.coupon_id)
        .join(coupon_templates, coupon_templates.c.id == coupons.c.template_id)
        .join(_giver, _giver.c.id == coupon_transfers.c.from_customer_id)
        .outerjoin(_taker, _taker.c.id == coupon_transfers.c.to_customer_id)
    )
    .where(
        coupon_transfers.c.token == bindparam("b_token"),
        coupon_transfers.c.merchant_id == bindparam("b_merchant"),
    )
)

_REASONS = {
    CouponState.REDEEMED: "redeemed",
    CouponState.VOIDED: "voided",
    CouponState.EXPIRED: "expired",
}


# --- reading -----------------------------------------------------------------------------


def _status(row: Any, now: datetime) -> str:
    """The offer's status as of ``now``: an open offer past its time is ``expired``."""
    if row.status == "offered" and row.expires_at <= now:
        return "expired"
    return str(row.status)


def _view(row: Any, now: datetime, *, full_code: bool = False) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": _status(row, now),
        "code": row.code if full_code else mask(row.code),
        "template": template_view(row),
        "from_customer": row.from_customer,
        "to_customer": row.to_customer,
        "offered_at": iso(row.offered_at),
        "expires_at": iso(row.expires_at),
        "ended_at": iso(row.ended_at),
        "valid_from": iso(row.valid_from),
        "valid_until": iso(row.valid_until),
    }


def _find(conn: Connection, p: Principal, token: str) -> Any:
    """The merchant's offer with this token, or ``transfer_not_found`` (counted by the
    guard as it leaves :func:`hub.services.tokens.guarded_look_up`)."""
    row = None
    if well_formed(token):
        row = conn.execute(_BY_TOKEN, {"b_token": token, "b_merchant": p.merchant_id}).first()
    if row is None:
        raise refuse("transfer_not_found", "No transfer offer with this token.")
    return row


def get_transfer(
    engine: Engine,
    p: Principal,
    token: str,
    now: datetime,
    *,
    guard: Guard | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """The offer behind ``token`` (the code masked), for the friend deciding to accept."""
    p.require("admin", "app")
    with (
        guarded_look_up(engine, default_guard(guard), p, now, client, read=True),
        read_conn(engine) as conn,
    ):
        return _view(_find(conn, p, token), now)


# --- offering ----------------------------------------------------------------------------


def _ttl(ttl_seconds: int) -> timedelta:
    if not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
        message = f"ttl_seconds is {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS} (7 days)."
        raise refuse("invalid_request", message,
                     errors=[{"field": "ttl_seconds", "message": message}])
    return timedelta(seconds=ttl_seconds)


def _not_now(reason: str, message: str, **extra: Any) -> DomainError:
    return refuse("coupon_not_transferable_now", message, reason=reason, **extra)


def _why_not_now(c: Any, now: datetime) -> DomainError | None:
    """Why the coupon cannot change hands now (redeemed, voided, expired, reserved)."""
    state = effective_state(CouponState(c.status), Window(c.valid_from, c.valid_until), now)
    reason = _REASONS.get(state)
    if reason is not None:
        return _not_now(reason, f"The coupon is {reason}: it cannot be passed on.")
    if c.reserved_until is not None and c.reserved_until > now:
        return _not_now(
            "reserved",
            f"The coupon is held for an online order until {iso(c.reserved_until)}.",
            reserved_until=iso(c.reserved_until),
        )
    return None


def offer(
    engine: Engine,
    p: Principal,
    raw_code: str,
    customer: str,
    ttl_seconds: int,
    idempotency_key: str | None,
    now: datetime,
    *,
    operation: str,
    guard: Guard | None = None,
    client: str | None = None,
) -> HttpResult:
    """The offer's answer (201, or the first one replayed); refusals raise (nothing is
    stored).

    ``operation`` is the request as the transport names it (stored with the
    Idempotency-Key: the same key for another operation is refused)."""
    p.require("admin", "app")
    key = idempotency.check_key(idempotency_key)
    ttl = _ttl(ttl_seconds)
    with CodeLookup(engine, default_guard(guard), p, now, client) as lookup:
        code = lookup.parse(raw_code)
        return idempotency.create_once(
            engine, scope=p.key_id, key=key, endpoint=operation,
            canonical_body=dumps({"code": code, "customer": customer, "ttl_seconds": ttl_seconds}),
            now=now, make=lambda conn: _offer(conn, p, lookup, code, customer, ttl, now),
        )  # fmt: skip


def _offer(
    conn: Connection,
    p: Principal,
    lookup: CodeLookup,
    code: str,
    customer: str,
    ttl: timedelta,
    now: datetime,
) -> dict[str, Any]:
    c = lookup.find(conn, _COUPON_FOR_OFFER, code)
    if not template_of(c.template_id, c.rules).transferable:
        raise refuse("coupon_not_transferable",
                     "Coupons of this template cannot be passed on to someone else.",
                     template_id=c.template_id)
    giver = wallet.find_customer(conn, p, customer)
    if giver is None or c.customer_id != giver:
        raise refuse("not_coupon_holder", f"Customer {customer} does not hold this coupon.")
    refusal = _why_not_now(c, now)
    if refusal is not None:
        raise refusal
    # an offer left open past its time no longer blocks (the unique index is on 'offered')
    conn.execute(
        update(coupon_transfers)
        .where(
            coupon_transfers.c.coupon_id == c.id,
            coupon_transfers.c.status == "offered",
            coupon_transfers.c.expires_at <= now,
        )
        .values(status="expired", ended_at=coupon_transfers.c.expires_at)
    )
    transfer_id = new_id("trf")
    token = new_token()
    expires_at = min(now + ttl, c.valid_until)
    try:
        with conn.begin_nested():
            conn.execute(insert(coupon_transfers).values(
                id=transfer_id, merchant_id=p.merchant_id, coupon_id=c.id, token=token,
                from_customer_id=giver, to_customer_id=None, status="offered",
                offered_at=now, expires_at=expires_at, ended_at=None, api_key_id=p.key_id,
            ))
    except IntegrityError:  # an open offer exists (made just now by a racing request too)
        until = conn.execute(
            select(coupon_transfers.c.expires_at).where(
                coupon_transfers.c.coupon_id == c.id, coupon_transfers.c.status == "offered"
            )
        ).scalar()
        raise _not_now("offered", "The coupon is offered to someone already"
                       + (f" until {iso(until)}." if until is not None else "."),
                       offered_until=iso(until)) from None
    outbox.append(conn, [outbox.event_row(
        type="coupon.transfer_offered", merchant_id=p.merchant_id, coupon_id=c.id,
        occurred_at=now, recorded_at=now,
        data={"code": code, "transfer_id": transfer_id, "from_customer": customer,
              "template_id": c.template_id, "expires_at": iso(expires_at)},
    )])
    return {
        "id": transfer_id,
        "token": token,
        "status": "offered",
        "code": mask(code),
        "template": template_view(c),
        "from_customer": customer,
        "offered_at": iso(now),
        "expires_at": iso(expires_at),
    }


# --- accepting and cancelling --------------------------------------------------------------


def _closed(row: Any, now: datetime) -> DomainError | None:
    """The refusal for an offer that is no longer open, or None while it is."""
    status = _status(row, now)
    if status == "expired":
        return refuse("transfer_expired", f"The offer expired at {iso(row.expires_at)}.",
                      expires_at=iso(row.expires_at))
    if status in ("accepted", "cancelled"):
        return refuse("transfer_closed", f"The offer was {status} already.", offer_status=status)
    return None


def _changed_meanwhile(fresh: Any, now: datetime) -> DomainError:
    """The refusal for an offer (read afresh) that another request closed meanwhile."""
    return _closed(fresh, now) or refuse("transfer_closed", "The offer changed meanwhile.",
                                         offer_status=str(fresh.status))


def _close(conn: Connection, t: Any, now: datetime, **values: Any) -> bool:
    """Close the open offer ``t`` with ``values`` (its status among them) if it is still
    open now; False when another request closed it first."""
    closed = conn.execute(
        update(coupon_transfers)
        .where(
            coupon_transfers.c.id == t.id,
            coupon_transfers.c.status == "offered",
            coupon_transfers.c.expires_at > now,
        )
        .values(ended_at=now, **values)
        .returning(coupon_transfers.c.id)
    ).first()
    return closed is not None


def _by_token(
    engine: Engine,
    p: Principal,
    now: datetime,
    guard: Guard | None,
    client: str | None,
    change: Callable[[Connection], dict[str, Any]],
) -> dict[str, Any]:
    """``change`` to an offer found by its token, in one write transaction behind the
    guessing guard (a wrong token counts as it leaves :func:`guarded_look_up`)."""
    p.require("admin", "app")
    with (
        guarded_look_up(engine, default_guard(guard), p, now, client),
        write_conn(engine) as conn,
    ):
        return change(conn)


def accept(
    engine: Engine,
    p: Principal,
    token: str,
    customer: str,
    now: datetime,
    *,
    guard: Guard | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """``customer`` becomes the coupon's holder; the same recipient again gets the same
    answer (idempotent by token and recipient)."""
    return _by_token(engine, p, now, guard, client,
                     lambda conn: _accept(conn, p, token, customer, now))  # fmt: skip


def _accept(
    conn: Connection, p: Principal, token: str, customer: str, now: datetime
) -> dict[str, Any]:
    first = _find(conn, p, token)
    taker = wallet.find_customer(conn, p, customer)
    if taker is None:
        raise refuse("customer_not_found", f"No customer {customer} for this merchant.",
                     customers=[customer])
    # accepts of coupons of one template queue here, so the recipient's holdings are
    # counted after any accept that committed first; then the offer is read afresh
    tpl = issuing.get_template_row(conn, p, first.template_id, lock=True)
    t = _find(conn, p, token)
    if t.status == "accepted" and t.to_customer_id == taker:
        return _view(t, now, full_code=True)  # a retry of the recipient's accept
    closed = _closed(t, now)
    if closed is not None:
        raise closed
    if taker == t.from_customer_id:
        raise refuse("transfer_to_self", "The customer who offered the coupon cannot accept it.")
    issuing.check_holding_limit(conn, t.template_id, tpl.per_customer_limit, taker)
    if not _close(conn, t, now, status="accepted", to_customer_id=taker):
        # cancelled in between (accepts of the template queue on its lock)
        raise _changed_meanwhile(_find(conn, p, token), now)
    moved = conn.execute(
        update(coupons)
        .where(
            coupons.c.id == t.coupon_id,
            coupons.c.customer_id == t.from_customer_id,
            coupons.c.status == CouponState.ISSUED.value,
            coupons.c.valid_until > now,
            or_(coupons.c.reserved_until.is_(None), coupons.c.reserved_until <= now),
        )
        .values(customer_id=taker, version=coupons.c.version + 1)
        .returning(coupons.c.id)
    ).first()
    if moved is None:  # used, voided, expired or held since it was offered
        raise _coupon_changed(conn, t, now)
    outbox.append(conn, [outbox.event_row(
        type="coupon.transferred", merchant_id=p.merchant_id, coupon_id=t.coupon_id,
        occurred_at=now, recorded_at=now,
        data={"code": t.code, "transfer_id": t.id, "from_customer": t.from_customer,
              "to_customer": customer, "template_id": t.template_id},
    )])
    return _view(_find(conn, p, token), now, full_code=True)


def _coupon_changed(conn: Connection, t: Any, now: datetime) -> DomainError:
    c = conn.execute(
        select(coupons.c.status, coupons.c.valid_from, coupons.c.valid_until,
               coupons.c.reserved_until, coupons.c.customer_id)
        .where(coupons.c.id == t.coupon_id)
    ).one()
    refusal = _why_not_now(c, now)
    if refusal is not None:
        return refusal
    return _not_now("holder_changed", "The coupon changed hands since it was offered.")


def cancel(
    engine: Engine,
    p: Principal,
    token: str,
    customer: str,
    now: datetime,
    *,
    guard: Guard | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """Withdraw an open offer (only the customer who made it); cancelling a cancelled
    offer answers the same again."""
    return _by_token(engine, p, now, guard, client,
                     lambda conn: _cancel(conn, p, token, customer, now))  # fmt: skip


def _cancel(
    conn: Connection, p: Principal, token: str, customer: str, now: datetime
) -> dict[str, Any]:
    t = _find(conn, p, token)
    if wallet.find_customer(conn, p, customer) != t.from_customer_id:
        raise refuse("not_coupon_holder",
                     f"Only the customer who offered the coupon can cancel; not {customer}.")
    if t.status == "cancelled":
        return _view(t, now)
    closed = _closed(t, now)
    if closed is not None:
        raise closed
    if not _close(conn, t, now, status="cancelled"):  # accepted or cancelled in between
        fresh = _find(conn, p, token)
        if fresh.status == "cancelled":
            return _view(fresh, now)
        raise _changed_meanwhile(fresh, now)
    outbox.append(conn, [outbox.event_row(
        type="coupon.transfer_cancelled", merchant_id=p.merchant_id, coupon_id=t.coupon_id,
        occurred_at=now, recorded_at=now,
        data={"code": t.code, "transfer_id": t.id, "from_customer": t.from_customer,
              "template_id": t.template_id},
    )])
    return _view(_find(conn, p, token), now)

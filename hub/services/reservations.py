"""Reservations: coupons held for an online order while the customer pays.

A reservation looks every code up through :class:`~hub.services.lookup.CodeLookup`,
judges the set now exactly as a multi-coupon redeem would (each coupon usable, the
stacking rules, the combination's discount), then *holds* every coupon with one
conditional ``UPDATE`` each — issued, inside its window, no live hold on it — all or
nothing (a savepoint). The hold is on the coupon row (``reservation_id``,
``reserved_until``), so every redeem path sees it in the read it makes anyway and
refuses ``coupon_reserved`` naming when the hold ends (:mod:`hub.domain.holds`).

A reservation ends exactly once, by a conditional ``UPDATE`` of its status from
``held``: confirmed (the hold becomes the redemption), released (the coupons are free
again) or expired — lazily, by the first confirm or release after ``expires_at``, or by
:func:`expire_reservations`, the periodic job of every delivery runtime. Only the
transition that wins writes the ``reservation.*`` event, so each is emitted once.

Create, confirm and release carry an Idempotency-Key with the redeem's contract
(:func:`hub.services.redeem.run_once`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import structlog
from sqlalchemy import Connection, Engine, Row, bindparam, insert, or_, select, update

from hub.db.engine import read_conn, write_conn
from hub.db.schema import coupon_templates, coupons, reservations
from hub.domain import holds
from hub.domain.cart import Line, Order
from hub.domain.codes import mask
from hub.domain.combination import Candidate, Combination, combine_given
from hub.domain.errors import DomainError, refuse
from hub.domain.ids import new_id
from hub.domain.redeeming import RedeemContext
from hub.domain.state import Action, CouponState, redeemable_states, transition
from hub.services import idempotency, orders, outbox
from hub.services import redeem as rd
from hub.services.commands import HttpResult
from hub.services.jsonio import dumps, iso
from hub.services.lookup import CodeLookup
from hub.services.principal import Principal
from hub.services.settings import Settings
from hub.services.views import discount_lines, template_view

log = structlog.get_logger("hub.reservations")

HELD, CONFIRMED, RELEASED, EXPIRED = "held", "confirmed", "released", "expired"
EXPIRE_BATCH = 500
ID_MAX = 40  # longer than any id (and than the idempotency record's endpoint allows)

_ENDED = {
    CONFIRMED: ("reservation_confirmed", "The reservation was confirmed already."),
    RELEASED: ("reservation_released", "The reservation was released."),
    EXPIRED: ("reservation_expired", "The reservation's hold ended before it was confirmed."),
}

_COUPON_FOR_HOLD = (
    select(*rd.COUPON_AND_TEMPLATE)
    .join_from(coupons, coupon_templates, coupon_templates.c.id == coupons.c.template_id)
    .where(coupons.c.code == bindparam("b_code"), coupons.c.merchant_id == bindparam("b_merchant"))
)
# The hold: only an unused coupon (issued, or marked expired but inside its window, as
# the redeem's update) inside its window with no live hold on it now.
_HOLD = (
    update(coupons)
    .where(
        coupons.c.id == bindparam("b_id"),
        or_(*(coupons.c.status == s.value for s in redeemable_states())),
        coupons.c.valid_until > bindparam("b_now"),
        or_(coupons.c.reservation_id.is_(None), coupons.c.reserved_until <= bindparam("b_now")),
    )
    .values(
        reservation_id=bindparam("b_rid"),
        reserved_until=bindparam("b_until"),
        version=coupons.c.version + 1,
    )
    .returning(coupons.c.id)
)
# Ends a hold (release, expiry): only the reservation's own, never one taken over since.
_UNHOLD = (
    update(coupons)
    .where(coupons.c.id == bindparam("b_id"), coupons.c.reservation_id == bindparam("b_rid"))
    .values(reservation_id=None, reserved_until=None, version=coupons.c.version + 1)
)
_RESERVATION = select(reservations).where(
    reservations.c.id == bindparam("b_id"), reservations.c.merchant_id == bindparam("b_merchant")
)
# Ends a reservation exactly once: from held only (the winner writes the event).
_END = (
    update(reservations)
    .where(reservations.c.id == bindparam("b_id"), reservations.c.status == HELD)
    .values(status=bindparam("b_status"), ended_at=bindparam("b_at"))
    .returning(reservations.c.id)
)
_EXPIRE = (
    update(reservations)
    .where(
        reservations.c.id == bindparam("b_id"),
        reservations.c.status == HELD,
        reservations.c.expires_at <= bindparam("b_now"),
    )
    .values(status=EXPIRED, ended_at=reservations.c.expires_at)
    .returning(reservations.c.id)
)
_DUE = (
    select(reservations)
    .where(reservations.c.status == HELD, reservations.c.expires_at <= bindparam("b_now"))
    .order_by(reservations.c.expires_at, reservations.c.id)
    .limit(bindparam("b_limit"))
)


@dataclass(frozen=True)
class ReservationCommand:
    """Hold ``codes`` for ``order`` at ``store`` through ``channel`` for ``ttl``."""

    codes: tuple[str, ...]  # as presented; normalised and checked by the service
    store: str | None
    channel: str
    order: Order
    ttl: timedelta = holds.DEFAULT_TTL


@dataclass(frozen=True)
class Operations:
    """How the transport names the reservation operations (stored with the
    Idempotency-Key, and as the problem documents' ``instance``)."""

    create: rd.Operation
    confirm: Callable[[str], rd.Operation]  # the reservation id -> the operation
    release: Callable[[str], rd.Operation]


# --- views ----------------------------------------------------------------------------


def _status(row: Any, now: datetime) -> str:
    """The reservation's status as of ``now``: a hold past ``expires_at`` reads as expired
    before the job (or a confirm/release) has recorded it."""
    if row.status == HELD and row.expires_at <= now:
        return EXPIRED
    return str(row.status)


def _codes(row: Any) -> list[str]:
    return [c["code"] for c in row.codes]


def _view(row: Any, now: datetime) -> dict[str, Any]:
    status = _status(row, now)
    ended = row.ended_at if row.ended_at is not None or status != EXPIRED else row.expires_at
    return {
        "id": row.id,
        "status": status,
        "codes": _codes(row),
        "store": row.store_code,
        "channel": row.channel,
        "order": row.order,
        "held_at": iso(row.held_at),
        "expires_at": iso(row.expires_at),
        "ended_at": iso(ended),
        "order_redemption_id": row.order_redemption_id,
    }


def _event_data(row: Any, status: str, ended_at: datetime | None) -> dict[str, Any]:
    return {
        "reservation_id": row.id,
        "status": status,
        "codes": _codes(row),
        "store": row.store_code,
        "channel": row.channel,
        "order_id": row.order_id,
        "held_at": iso(row.held_at),
        "expires_at": iso(row.expires_at),
        "ended_at": iso(ended_at),
    }


_EVENT_OF = {HELD: "reservation.created", RELEASED: "reservation.released",
             EXPIRED: "reservation.expired"}  # fmt: skip


def _event(row: Any, status: str, at: datetime, now: datetime) -> dict[str, Any]:
    """The event of the reservation entering ``status`` at ``at``."""
    return outbox.event_row(
        type=_EVENT_OF[status],
        merchant_id=row.merchant_id,
        store_code=row.store_code,
        occurred_at=at,
        recorded_at=now,
        data=_event_data(row, status, None if status == HELD else at),
    )


def _combination_view(combo: Combination, rows: dict[str, Any]) -> dict[str, Any]:
    return {
        "amount": combo.amount,
        "discount": combo.total,
        "payable": combo.payable,
        "coupons": [
            {
                "code": a.code,
                "template": template_view(rows[a.code]),
                "discount": a.discount.total,
                "lines": discount_lines(a.discount),
            }
            for a in combo.applied
        ],
    }


# --- create -----------------------------------------------------------------------------


def _parse_all(lookup: CodeLookup, raw: Sequence[str]) -> list[str]:
    if not raw:
        raise refuse(
            "invalid_request",
            "codes lists at least one coupon code.",
            errors=[{"field": "codes", "message": "empty"}],
        )
    if len(raw) > orders.MAX_CODES:  # what it holds is redeemed as one order
        raise refuse(
            "too_many_coupons",
            f"A reservation holds at most {orders.MAX_CODES} coupons.",
            limit=orders.MAX_CODES,
        )
    return [lookup.parse(c) for c in raw]


def _refusal_now(
    conn: Connection, lookup: CodeLookup, code: str, now: datetime
) -> DomainError:
    """Why ``code`` could not be held after all (a racing redeem, void or hold)."""
    row = lookup.find(conn, _COUPON_FOR_HOLD, code)
    try:
        holds.check_not_held(row.reservation_id, row.reserved_until, now)
        transition(CouponState(row.status), Action.REDEEM, window_open=now < row.valid_until)
    except DomainError as err:
        return DomainError(err.message, code=err.code, **err.extra, coupon=code)
    return refuse("coupon_reserved", "The coupon was taken meanwhile.", coupon=code)


def _create_in_txn(
    conn: Connection,
    p: Principal,
    cmd: ReservationCommand,
    codes: list[str],
    now: datetime,
    lookup: CodeLookup,
) -> tuple[int, bytes]:
    store_id, store_code = rd.resolve_store(conn, p, cmd.store)
    rows: dict[str, Any] = {}
    for code in codes:
        row = lookup.find(conn, _COUPON_FOR_HOLD, code)
        orders.check_hold(row, code, now)
        rows.setdefault(code, row)
    # judged now exactly as the order redeem judges the set (its confirm will)
    candidates = [Candidate(c, rd.facts_of(rows[c])) for c in codes]
    combo = combine_given(cmd.order, candidates, RedeemContext(store_code, cmd.channel, now, p.tz))
    reservation_id = new_id("rsv")
    until = now + cmd.ttl
    with conn.begin_nested():  # all or nothing: a lost race undoes the holds made so far
        for code in sorted(rows, key=lambda c: rows[c].id):  # one lock order: no deadlock
            params = {"b_id": rows[code].id, "b_rid": reservation_id, "b_until": until,
                      "b_now": now}  # fmt: skip
            if conn.execute(_HOLD, params).first() is None:
                raise _refusal_now(conn, lookup, code, now)
    order_doc = rd.order_view(cmd.order)
    held = {
        "id": reservation_id,
        "merchant_id": p.merchant_id,
        "order_id": cmd.order.id,
        "order": order_doc,
        "store_id": store_id,
        "store_code": store_code,
        "channel": cmd.channel,
        "codes": [{"code": c, "coupon_id": rows[c].id} for c in combo.codes],
        "status": HELD,
        "held_at": now,
        "expires_at": until,
        "ended_at": None,
        "order_redemption_id": None,
        "api_key_id": p.key_id,
    }
    conn.execute(insert(reservations).values(held))
    made = _Row(held)
    outbox.append(conn, [_event(made, HELD, now, now)])
    body = {**_view(made, now), **_combination_view(combo, rows)}
    log.info("reservation.created", reservation_id=reservation_id,
             codes=[mask(c) for c in combo.codes], until=iso(until))  # fmt: skip
    return 201, dumps(body)


class _Row:
    """A reservation given as a dict, read like a row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def create(
    engine: Engine,
    p: Principal,
    cmd: ReservationCommand,
    *,
    idempotency_key: str | None,
    canonical_body: bytes,
    now: datetime,
    operation: rd.Operation,
    settings: Settings = Settings(),
    client: str | None = None,
) -> HttpResult:
    """Hold ``cmd.codes`` for the order, all or nothing, once per Idempotency-Key."""
    p.require("admin", "store", "app")
    with CodeLookup(engine, settings.guard, p, now, client) as lookup:
        key = idempotency.check_key(idempotency_key)
        codes = _parse_all(lookup, cmd.codes)
        rd.check_channel(cmd.channel)
        p.require_channel(cmd.channel)
        holds.check_ttl(cmd.ttl)

        def work(conn: Connection) -> tuple[int, bytes]:
            try:
                return _create_in_txn(conn, p, cmd, codes, now, lookup)
            except DomainError as err:
                lookup.settle_refusal(conn, err)  # counted with the stored refusal, or 429
                raise

        return rd.run_once(
            engine, p, key, operation, canonical_body, now, settings, work=work,
            on_refusal=lambda err: log.info("reservation.refused", reason=err.code),
        )  # fmt: skip


# --- read, release, expiry ----------------------------------------------------------------


def _not_found() -> DomainError:
    return refuse("reservation_not_found", "No reservation with this id.")


def _scoped(conn: Connection, p: Principal, reservation_id: str) -> Row[Any]:
    """The caller's reservation, or ``reservation_not_found``: another merchant's, another
    store's (a store key, an analyst limited to stores) or another channel's (an app key)
    is not told apart from none."""
    if len(reservation_id) > ID_MAX or "\x00" in reservation_id:
        raise _not_found()
    row = conn.execute(
        _RESERVATION, {"b_id": reservation_id, "b_merchant": p.merchant_id}
    ).first()
    if row is None:
        raise _not_found()
    scope = p.store_scope
    if scope is not None and row.store_code not in scope:
        raise _not_found()
    if p.channels is not None and row.channel not in p.channels:
        raise _not_found()
    return row


def _ended(status: str) -> DomainError:
    code, message = _ENDED[status]
    return refuse(code, message)


def _end(conn: Connection, row: Any, status: str, at: datetime, now: datetime) -> bool:
    """End reservation ``row`` as ``status`` (released, expired) if it is still held:
    its coupons' holds are cleared and its event written. False: it had ended already
    (a racing confirm, release or expiry won)."""
    if status == EXPIRED:
        won = conn.execute(_EXPIRE, {"b_id": row.id, "b_now": now}).first()
    else:
        won = conn.execute(_END, {"b_id": row.id, "b_status": status, "b_at": at}).first()
    if won is None:
        return False
    conn.execute(_UNHOLD, [{"b_id": c["coupon_id"], "b_rid": row.id} for c in row.codes])
    outbox.append(conn, [_event(row, status, at, now)])
    log.info(f"reservation.{status}", reservation_id=row.id)
    return True


def _check_held(conn: Connection, row: Any, now: datetime) -> None:
    """Refuse a reservation that has ended; a hold found past ``expires_at`` is recorded
    as expired here (lazily; its event once, whoever records it)."""
    if row.status == HELD and row.expires_at <= now:
        _end(conn, row, EXPIRED, row.expires_at, now)
        raise _ended(EXPIRED)
    if row.status != HELD:
        raise _ended(str(row.status))


def _current_status(conn: Connection, reservation_id: str) -> str:
    return str(
        conn.execute(
            select(reservations.c.status).where(reservations.c.id == reservation_id)
        ).scalar_one()
    )


def get(engine: Engine, p: Principal, reservation_id: str, now: datetime) -> dict[str, Any]:
    """The reservation as of ``now`` (a lapsed hold reads as expired)."""
    with read_conn(engine) as conn:
        return _view(_scoped(conn, p, reservation_id), now)


def _release_in_txn(
    conn: Connection, p: Principal, reservation_id: str, now: datetime
) -> tuple[int, bytes]:
    row = _scoped(conn, p, reservation_id)
    _check_held(conn, row, now)
    if not _end(conn, row, RELEASED, now, now):
        raise _ended(_current_status(conn, reservation_id))
    return 200, dumps(_view(_scoped(conn, p, reservation_id), now))


def release(
    engine: Engine,
    p: Principal,
    reservation_id: str,
    *,
    idempotency_key: str | None,
    now: datetime,
    operation: rd.Operation,
    settings: Settings = Settings(),
) -> HttpResult:
    """End the hold: the coupons are free again. Once per Idempotency-Key."""
    key = idempotency.check_key(idempotency_key)
    if len(reservation_id) > ID_MAX:  # would not fit the idempotency record's endpoint
        raise _not_found()
    return rd.run_once(
        engine, p, key, operation, b"", now, settings,
        work=lambda conn: _release_in_txn(conn, p, reservation_id, now),
    )  # fmt: skip


def expire_reservations(engine: Engine, now: datetime, batch: int = EXPIRE_BATCH) -> int:
    """Record every held reservation past ``expires_at`` as expired: its coupons' holds
    cleared and one ``reservation.expired`` event each, in batches of ``batch`` per
    transaction. A reservation confirmed, released or expired meanwhile (by a request or
    another process's job) is skipped by the conditional update. Returns how many."""
    total = 0
    while True:
        with write_conn(engine) as conn:
            due = conn.execute(_DUE, {"b_now": now, "b_limit": batch}).all()
            total += sum(_end(conn, row, EXPIRED, row.expires_at, now) for row in due)
        if len(due) < batch:
            break
    if total:
        log.info("reservations.expired", count=total)
    return total


# --- confirm ------------------------------------------------------------------------------

_LINK_ORDER = (
    update(reservations)
    .where(reservations.c.id == bindparam("b_id"))
    .values(order_redemption_id=bindparam("b_order"))
)


def _confirm_in_txn(
    conn: Connection, p: Principal, reservation_id: str, now: datetime, lookup: CodeLookup
) -> tuple[int, bytes]:
    row = _scoped(conn, p, reservation_id)
    _check_held(conn, row, now)
    # the reservation ends confirmed together with its redemption, or not at all
    with conn.begin_nested():
        if conn.execute(_END, {"b_id": row.id, "b_status": CONFIRMED, "b_at": now}).first() is None:
            raise _ended(_current_status(conn, row.id))  # a racing release or expiry won
        spec = orders.OrderRedeemSpec(
            codes=tuple(_codes(row)),
            store=row.store_code,
            channel=row.channel,
            order=_order_of(row.order),
        )
        # judged at the hold: a window that closed during the hold does not refuse it
        status, body = orders.redeem_order_in_txn(
            conn, p, spec, at=row.held_at, now=now, lookup=lookup, reservation_id=row.id
        )
        done = msgspec.json.decode(body)
        conn.execute(_LINK_ORDER, {"b_id": row.id, "b_order": done["order_redemption_id"]})
    log.info("reservation.confirmed", reservation_id=row.id,
             order_redemption_id=done["order_redemption_id"])  # fmt: skip
    return status, body


def _order_of(doc: dict[str, Any]) -> Order:
    lines = None
    if doc.get("lines") is not None:
        lines = tuple(
            Line(
                sku=ln["sku"],
                qty=ln["qty"],
                unit_price=ln["unit_price"],
                category=ln.get("category"),
            )
            for ln in doc["lines"]
        )
    return Order(id=doc["id"], amount=doc["amount"], lines=lines)


def confirm(
    engine: Engine,
    p: Principal,
    reservation_id: str,
    *,
    idempotency_key: str | None,
    now: datetime,
    operation: rd.Operation,
    settings: Settings = Settings(),
    client: str | None = None,
) -> HttpResult:
    """Turn the hold into the redemption of its coupons as one order (the multi-coupon
    redeem's answer and events), judged at the moment of the hold. Once per
    Idempotency-Key; an ended reservation is refused with how it ended."""
    key = idempotency.check_key(idempotency_key)
    if len(reservation_id) > ID_MAX:  # would not fit the idempotency record's endpoint
        raise _not_found()
    with CodeLookup(engine, settings.guard, p, now, client) as lookup:

        def work(conn: Connection) -> tuple[int, bytes]:
            try:
                return _confirm_in_txn(conn, p, reservation_id, now, lookup)
            except DomainError as err:
                lookup.settle_refusal(conn, err)
                raise

        return rd.run_once(
            engine, p, key, operation, b"", now, settings, work=work,
            on_refusal=lambda err: log.info("reservation.confirm_refused", reason=err.code),
        )  # fmt: skip

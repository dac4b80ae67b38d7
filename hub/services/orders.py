"""Several coupons on one order, all or nothing: redeem, read back, reverse.

A multi-coupon redeem (``POST /v1/orders/redeem``) is one transaction, like the single
redeem (:mod:`hub.services.redeem`) and under the same Idempotency-Key contract:

1. every code goes through the guessing guard's look-up (:class:`CodeLookup`);
2. the set is judged by the domain (:func:`hub.domain.combination.combine_given`, as a
   reservation judges it): the stacking rules, then each coupon in the fixed order of
   application (a later threshold is judged on what the earlier coupons left); a
   refusal names the coupon (``coupon``);
3. only then are the coupons marked redeemed, each with the single redeem's
   conditional update (``redeem.MARK_REDEEMED``), in the order of their ids (two
   orders sharing coupons lock them in the same order, so they cannot deadlock), inside
   a savepoint: a coupon lost to a concurrent redeem rolls every mark back and the
   order is refused — nothing of it is redeemed;
4. one ``redemptions`` row per coupon (``order_redemption_id`` set), one
   ``order_redemptions`` row, a ``coupon.redeemed`` event per coupon and one
   ``order.redeemed``.

:func:`redeem_order_in_txn` is that core, for any caller with a write transaction (a
reservation's confirm judges it at the hold's time and names the reservation).

A reversal reverses every coupon of the order in one transaction. A single
``POST /v1/redemptions/{id}/reversal`` of one of its coupons is refused
(``illegal_transition``, naming the order): the order was paid as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, Row, insert, select, update

from hub.db.engine import read_conn
from hub.db.schema import order_redemptions, redemptions
from hub.domain import holds
from hub.domain.cart import Order
from hub.domain.codes import mask
from hub.domain.combination import AppliedCoupon, Candidate, Combination, combine_given
from hub.domain.errors import DomainError, refuse
from hub.domain.ids import new_id
from hub.domain.redeeming import RedeemContext, check_usable
from hub.services import alerts, audit, idempotency, outbox
from hub.services.commands import HttpResult
from hub.services.jsonio import dumps, iso
from hub.services.lookup import CodeLookup
from hub.services.principal import Principal, Role
from hub.services.redeem import (
    COUPON_BY_CODE,
    HOLDABLE,
    INSERT_REDEMPTION,
    MARK_REDEEMED,
    Operation,
    already_redeemed,
    check_channel,
    facts_of,
    gift_of,
    judged_at,
    order_view,
    redemptions_to_reverse,
    resolve_store,
    reverse_redemption,
    run_once,
)
from hub.services.settings import Settings
from hub.services.views import combination_lines, discount_lines, template_view

log = structlog.get_logger("hub.orders")

MAX_CODES = 10  # the hub's own limit of coupons on one order (too_many_coupons)
ROLES: tuple[Role, ...] = ("admin", "store", "app")


@dataclass(frozen=True)
class OrderRedeemSpec:
    """Redeem ``codes`` (as presented) together on ``order`` at ``store`` through
    ``channel``; ``occurred_at`` is when the sale happened (``None``: now)."""

    codes: tuple[str, ...]
    store: str | None
    channel: str
    order: Order
    occurred_at: datetime | None = None


@dataclass
class OrderAttempts:
    """What an order's look-ups saw of each coupon, for the repeat-attempt alerts
    (:mod:`hub.services.alerts`): ``since`` is now − the repeat window."""

    since: datetime
    by_code: dict[str, alerts.Attempt] = field(default_factory=dict)

    def saw(self, code: str, row: Row[Any], store: str) -> None:
        seen = alerts.Attempt(since=self.since)
        seen.saw(row, store)
        self.by_code[code] = seen


@dataclass(frozen=True)
class _Found:
    code: str
    row: Row[Any]
    candidate: Candidate


def _not_found() -> DomainError:
    return refuse("order_redemption_not_found", "No order redemption with this id.")


def _check_count(codes: Sequence[str]) -> None:
    if len(codes) > MAX_CODES:
        raise refuse(
            "too_many_coupons",
            f"At most {MAX_CODES} coupons may be redeemed on one order.",
            limit=MAX_CODES,
        )


def _check_duplicates(codes: Sequence[str]) -> None:
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            raise refuse(
                "duplicate_coupon", "A coupon is given more than once.", coupons=[code]
            )
        seen.add(code)


def _judge(
    conn: Connection, found: Sequence[_Found], order: Order, ctx: RedeemContext
) -> Combination:
    """The domain's decision on the whole set (a reservation's is the same), a refusal
    naming its coupon; one already redeemed says when and where."""
    try:
        return combine_given(order, [f.candidate for f in found], ctx)
    except DomainError as err:
        if err.code != "coupon_already_redeemed":
            raise
        culprit = next(f for f in found if f.code == err.extra.get("coupon"))
        known = already_redeemed(conn, culprit.row.redemption_id)
        raise refuse(known.code, known.message, **known.extra, coupon=culprit.code) from None


def check_hold(
    row: Row[Any], code: str, now: datetime, reservation_id: str | None = None
) -> None:
    """``coupon_reserved`` (naming the coupon) for a live hold on coupon ``row`` other
    than the one of the reservation being confirmed (hub/domain/holds.py)."""
    try:
        holds.check_not_held(row.reservation_id, row.reserved_until, now, mine=reservation_id)
    except DomainError as err:
        raise refuse(err.code, err.message, **err.extra, coupon=code) from None


def _lost_race(
    conn: Connection,
    lookup: CodeLookup,
    lost: _Found,
    ctx: RedeemContext,
    now: datetime,
    attempts: OrderAttempts | None,
    reservation_id: str | None = None,
) -> DomainError:
    """The refusal a coupon marked (or held) meanwhile by someone else gives now."""
    current = lookup.find(conn, COUPON_BY_CODE, lost.code, b_since=now)
    if attempts is not None and lost.code in attempts.by_code:
        attempts.by_code[lost.code].redemption_id = current.redemption_id
    try:
        check_hold(current, lost.code, now, reservation_id)
    except DomainError as err:
        return err
    try:
        check_usable(facts_of(current), ctx)
    except DomainError as err:
        if err.code == "coupon_already_redeemed":
            err = already_redeemed(conn, current.redemption_id)
        return refuse(err.code, err.message, **err.extra, coupon=lost.code)
    return refuse(
        "coupon_already_redeemed", "The coupon was redeemed already.", coupon=lost.code
    )


def _mark_all(
    conn: Connection,
    found: Sequence[_Found],
    ids: dict[str, str],
    at: datetime,
    now: datetime,
    reservation_id: str | None,
) -> _Found | None:
    """Mark every coupon redeemed (the single redeem's conditional update), or none:
    returns the first coupon lost to a concurrent change, with every mark rolled back.
    (``b_now``/``b_reservation``: a hold on the coupon lets only its own reservation's
    confirm through, when the update judges holds.)"""
    savepoint = conn.begin_nested()
    for f in sorted(found, key=lambda f: f.row.id):
        params = {
            "b_id": f.row.id,
            "b_redemption_id": ids[f.code],
            "b_at": at,
            "b_now": now,
            "b_reservation": reservation_id,
        }
        if conn.execute(MARK_REDEEMED, params).first() is None:
            savepoint.rollback()
            return f
    savepoint.commit()
    return None


def _coupon_view(f: _Found, applied: AppliedCoupon, redemption_id: str) -> dict[str, Any]:
    d = applied.discount
    return {
        "redemption_id": redemption_id,
        "code": f.code,
        "template": template_view(f.row),
        "customer": f.row.customer,
        "discount": d.total,
        "eligible_amount": d.eligible_amount,
        "lines": discount_lines(d),
        "gift": gift_of(f.row.kind, f.row.rules, d.units_given),
    }


def redeem_order_in_txn(
    conn: Connection,
    p: Principal,
    spec: OrderRedeemSpec,
    *,
    at: datetime,
    now: datetime,
    lookup: CodeLookup,
    reservation_id: str | None = None,
    attempts: OrderAttempts | None = None,
) -> tuple[int, bytes]:
    """Redeem every coupon of ``spec`` on its order in ``conn``'s write transaction, or
    none: raises the first refusal (a :class:`DomainError`, ``coupon`` naming the coupon
    when one is at fault) with nothing written. Judged at ``at`` (``occurred_at``, now,
    or a reservation's hold time); ``reservation_id`` is recorded on the order.

    ``lookup`` must be entered (``with CodeLookup(...)``); its failures are the caller's
    to settle; ``attempts`` (optional) collects what was seen of each coupon for the
    repeat-attempt alerts. Returns the 201 answer (status, body) as :func:`redeem_order`
    stores it."""
    p.require(*ROLES)
    check_channel(spec.channel)
    p.require_channel(spec.channel)
    _check_count(spec.codes)
    codes = [lookup.parse(c, at) for c in spec.codes]
    store_id, store_code = resolve_store(conn, p, spec.store)
    _check_duplicates(codes)  # before any look-up
    ctx = RedeemContext(store_code, spec.channel, at, p.tz)
    since = attempts.since if attempts is not None else now
    found: list[_Found] = []
    for code in codes:
        row = lookup.find(conn, COUPON_BY_CODE, code, b_since=since)
        if attempts is not None:
            attempts.saw(code, row, store_code)
        if row.status in HOLDABLE:  # a used coupon holds nothing: its own refusal follows
            check_hold(row, code, now, reservation_id)
        found.append(_Found(code, row, Candidate(code, facts_of(row))))
    combo = _judge(conn, found, spec.order, ctx)

    by_code = {f.code: f for f in found}
    ids = {f.code: new_id("rdm") for f in found}
    lost = _mark_all(conn, found, ids, at, now, reservation_id)
    if lost is not None:
        raise _lost_race(conn, lookup, lost, ctx, now, attempts, reservation_id)
    for code, seen in (attempts.by_code if attempts is not None else {}).items():
        seen.redemption_id, seen.redeemed_now = ids[code], True

    order_redemption_id = new_id("ord")
    order_doc = order_view(spec.order)
    views = [_coupon_view(by_code[a.code], a, ids[a.code]) for a in combo.applied]
    body: dict[str, Any] = {
        "order_redemption_id": order_redemption_id,
        "status": "redeemed",
        "order_id": spec.order.id,
        "store": store_code,
        "channel": spec.channel,
        "coupons": views,
        "order_amount": spec.order.amount,
        "discount": combo.total,
        "payable": combo.payable,
        "lines": combination_lines(combo),
        "reservation_id": reservation_id,
        "redeemed_at": iso(at),
        "recorded_at": iso(now),
        "staff": p.staff,
    }
    conn.execute(
        insert(order_redemptions).values(
            id=order_redemption_id,
            merchant_id=p.merchant_id,
            order_id=spec.order.id,
            store_id=store_id,
            store_code=store_code,
            channel=spec.channel,
            order_amount=spec.order.amount,
            discount=combo.total,
            detail={**body, "order": order_doc},
            status="redeemed",
            occurred_at=at,
            recorded_at=now,
            reservation_id=reservation_id,
            api_key_id=p.key_id,
            staff_id=p.staff_id,
        )
    )
    rows, events = [], []
    for a, view in zip(combo.applied, views, strict=True):
        f = by_code[a.code]
        detail: dict[str, Any] = {
            "order": order_doc,
            "discount": view["discount"],
            "eligible_amount": view["eligible_amount"],
            "payable": combo.payable,
            "lines": view["lines"],
        }
        if view["gift"] is not None:
            detail["gift"] = view["gift"]
        rows.append(
            {
                "id": view["redemption_id"],
                "merchant_id": p.merchant_id,
                "coupon_id": f.row.id,
                "template_id": f.row.template_id,
                "store_id": store_id,
                "store_code": store_code,
                "channel": spec.channel,
                "order_id": spec.order.id,
                "order_amount": spec.order.amount,
                "discount": view["discount"],
                "detail": detail,
                "status": "redeemed",
                "occurred_at": at,
                "recorded_at": now,
                "api_key_id": p.key_id,
                "staff_id": p.staff_id,
                "order_redemption_id": order_redemption_id,
            }
        )
        events.append(
            outbox.event_row(
                type="coupon.redeemed",
                merchant_id=p.merchant_id,
                coupon_id=f.row.id,
                store_code=store_code,
                occurred_at=at,
                recorded_at=now,
                data={
                    "redemption_id": view["redemption_id"],
                    "status": "redeemed",
                    "code": f.code,
                    "store": store_code,
                    "channel": spec.channel,
                    "order_id": spec.order.id,
                    "template": view["template"],
                    "customer": view["customer"],
                    "discount": view["discount"],
                    "eligible_amount": view["eligible_amount"],
                    "payable": combo.payable,
                    "lines": view["lines"],
                    "redeemed_at": iso(at),
                    "recorded_at": iso(now),
                    "order": order_doc,
                    "gift": view["gift"],
                    "order_redemption_id": order_redemption_id,
                    "staff": p.staff,
                },
            )
        )
    conn.execute(INSERT_REDEMPTION, rows)
    events.append(
        outbox.event_row(
            type="order.redeemed",
            merchant_id=p.merchant_id,
            store_code=store_code,
            occurred_at=at,
            recorded_at=now,
            data={**body, "order": order_doc},
        )
    )
    outbox.append(conn, events)
    log.info(
        "order.redeemed",
        order_redemption_id=order_redemption_id,
        codes=[mask(c) for c in combo.codes],
        store=store_code,
        discount=combo.total,
    )
    return 201, dumps(body)


def redeem_order(
    engine: Engine,
    p: Principal,
    spec: OrderRedeemSpec,
    *,
    idempotency_key: str | None,
    canonical_body: bytes,
    now: datetime,
    operation: Operation,
    settings: Settings = Settings(),
    client: str | None = None,
) -> HttpResult:
    """Redeem several coupons on one order, all or nothing, exactly once per
    Idempotency-Key (the single redeem's contract: refusals are stored and replayed,
    except the guard's 429)."""
    with CodeLookup(engine, settings.guard, p, now, client) as lookup:
        key = idempotency.check_key(idempotency_key)
        check_channel(spec.channel)
        p.require_channel(spec.channel)
        _check_count(spec.codes)
        at = judged_at(spec.occurred_at, now, settings)
        codes = tuple(lookup.parse(c, at) for c in spec.codes)  # malformed: counted, not stored
        parsed = OrderRedeemSpec(codes, spec.store, spec.channel, spec.order, spec.occurred_at)

        window = settings.guard.limits.repeat_window
        attempts = OrderAttempts(since=now - window)

        def work(conn: Connection) -> tuple[int, bytes]:
            try:
                result = redeem_order_in_txn(
                    conn, p, parsed, at=at, now=now, lookup=lookup, attempts=attempts
                )
            except DomainError as err:
                lookup.settle_refusal(conn, err)  # counted with the stored refusal, or 429
                refused = attempts.by_code.get(str(err.extra.get("coupon", "")))
                if refused is not None:  # the coupon at fault, as a redeem of it would
                    alerts.note_attempt(conn, window, p, refused, err.code, now)
                raise
            for seen in attempts.by_code.values():
                if seen.refused_recently:  # redeemed after recent refusals elsewhere
                    alerts.note_attempt(conn, window, p, seen, None, now)
            return result

        return run_once(
            engine,
            p,
            key,
            operation,
            canonical_body,
            now,
            settings,
            work=work,
            on_refusal=lambda err: log.info(
                "order.refused", reason=err.code, coupon=mask(str(err.extra.get("coupon", "")))
            ),
        )


# --- read back -------------------------------------------------------------------------------


def _scope(p: Principal, order_redemption_id: str) -> list[Any]:
    o = order_redemptions.c
    where = [o.id == order_redemption_id, o.merchant_id == p.merchant_id]
    if p.store_id is not None:
        where.append(o.store_id == p.store_id)
    if p.channels is not None:  # an app key sees its own channels' orders only
        where.append(o.channel.in_(p.channels))
    return where


def _view(row: Row[Any]) -> dict[str, Any]:
    detail = dict(row.detail)
    detail.pop("order", None)
    return {
        **detail,
        "status": row.status,
        "reversed_at": iso(row.reversed_at),
        "reversal_reason": row.reversal_reason,
    }


def get_order_redemption(engine: Engine, p: Principal, order_redemption_id: str) -> dict[str, Any]:
    """An order redemption as its redeem answered, with its current status."""
    p.require(*ROLES)
    if len(order_redemption_id) > 40:
        raise _not_found()
    with read_conn(engine) as conn:
        row = conn.execute(select(order_redemptions).where(*_scope(p, order_redemption_id))).first()
    if row is None:
        raise _not_found()
    return _view(row)


# --- reversal --------------------------------------------------------------------------------


def _reverse_order_in_txn(
    conn: Connection, p: Principal, order_redemption_id: str, reason: str | None, now: datetime
) -> tuple[int, bytes]:
    o = order_redemptions.c
    row = conn.execute(select(order_redemptions).where(*_scope(p, order_redemption_id))).first()
    if row is None:
        raise _not_found()
    changed = conn.execute(
        update(order_redemptions)
        .where(o.id == order_redemption_id, o.status == "redeemed")
        .values(status="reversed", reversed_at=now, reversal_reason=reason)
        .returning(o.id)
    ).first()
    if changed is None:
        when = conn.execute(select(o.reversed_at).where(o.id == order_redemption_id)).scalar()
        raise refuse(
            "order_already_reversed",
            f"This order's redemption was reversed at {iso(when)}.",
            reversed_at=iso(when),
        )
    reds = redemptions_to_reverse(conn, redemptions.c.order_redemption_id == order_redemption_id)
    bodies, events = [], []
    for red in reds:
        body, event = reverse_redemption(conn, p, red, reason, now)
        bodies.append(body)
        events.append(event)
    result = {
        "order_redemption_id": order_redemption_id,
        "status": "reversed",
        "order_id": row.order_id,
        "store": row.store_code,
        "channel": row.channel,
        "discount": row.discount,
        "reason": reason,
        "reversed_at": iso(now),
        "coupons": [
            {k: b[k] for k in ("redemption_id", "code", "discount", "coupon_status")}
            for b in bodies
        ],
        "staff": p.staff,  # who reversed it, when a staff session did
    }
    events.append(
        outbox.event_row(
            type="order.reversed",
            merchant_id=p.merchant_id,
            store_code=row.store_code,
            occurred_at=now,
            recorded_at=now,
            data={**result, "order": row.detail.get("order")},
        )
    )
    outbox.append(conn, events)
    audit.record(
        conn,
        p,
        "order.reversed",
        "order_redemption",
        order_redemption_id,
        now,
        reason=reason,
        store=row.store_code,
        redemptions=[b["redemption_id"] for b in bodies],
    )
    log.info("order.reversed", order_redemption_id=order_redemption_id, coupons=len(bodies))
    return 201, dumps(result)


def reverse_order(
    engine: Engine,
    p: Principal,
    order_redemption_id: str,
    reason: str | None,
    *,
    idempotency_key: str | None,
    canonical_body: bytes,
    now: datetime,
    operation: Operation,
    settings: Settings = Settings(),
) -> HttpResult:
    """Reverse every coupon of an order redemption in one transaction; idempotent."""
    p.require(*ROLES)
    key = idempotency.check_key(idempotency_key)
    if len(order_redemption_id) > 40:  # longer than any id; would not fit the endpoint column
        raise _not_found()
    return run_once(
        engine,
        p,
        key,
        operation,
        canonical_body,
        now,
        settings,
        work=lambda conn: _reverse_order_in_txn(conn, p, order_redemption_id, reason, now),
    )

"""The hot path: validate (dry run), redeem and reverse.

Written with SQLAlchemy Core in the fewest round trips (docs/architecture.md, "Why
the hot path is Core, not the ORM"). A redeem is one transaction: idempotency claim →
coupon read → conditional ``UPDATE … WHERE status = 'issued'`` → redemption insert →
outbox insert → idempotency completion (docs/architecture.md, "The redeem, step by
step"). The conditional update is what makes a coupon redeemable at most once under
any race; the domain decides everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, Row, Select, bindparam, insert, or_, select, update

from hub.db.engine import read_conn, write_conn
from hub.db.fastexec import FastStatement
from hub.db.schema import (
    code_attempts,
    coupon_templates,
    coupons,
    customers,
    outbox_events,
    redemptions,
    stores,
)
from hub.domain import holds
from hub.domain.cart import Discount, Order
from hub.domain.codes import mask
from hub.domain.errors import DomainError, refuse
from hub.domain.ids import new_id
from hub.domain.redeeming import CouponFacts, RedeemContext, check_redeemable
from hub.domain.state import Action, CouponState, redeemable_states, transition
from hub.domain.templates import CHANNELS
from hub.domain.validity import Window, to_utc
from hub.services import alerts, audit, idempotency, outbox
from hub.services.commands import HttpResult, RedeemCommand
from hub.services.jsonio import dumps, iso
from hub.services.lookup import CodeLookup
from hub.services.principal import Principal
from hub.services.problems import problem_bytes, status_for
from hub.services.settings import Settings
from hub.services.template_cache import template_of
from hub.services.views import discount_lines, template_view

log = structlog.get_logger("hub.redeem")

CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Operation:
    """A request as the transport names it; the edge owns the spelling (the services
    build no HTTP strings). ``name`` is stored with the Idempotency-Key (the same key
    for another operation is ``idempotency_key_reused``); ``instance`` goes into the
    stored problem documents."""

    name: str
    instance: str


@dataclass(frozen=True)
class Operations:
    """The operations a transport runs redeems and reversals as (see :class:`Operation`):
    the POS route runs them under the native API's names (one idempotency contract)."""

    redeem: Operation
    reverse: Callable[[str], Operation]  # the redemption id -> the reversal's operation


# A coupon with what the decision (facts_of) and the answers (template_view) need of it
# and its template: every checkout read of a coupon by code (redeem, reservation).
COUPON_AND_TEMPLATE = (
    coupons.c.id,
    coupons.c.code,
    coupons.c.status,
    coupons.c.valid_from,
    coupons.c.valid_until,
    coupons.c.redemption_id,
    coupons.c.template_id,
    # a hold for an online order (hub/domain/holds.py): read here, no round trip
    coupons.c.reservation_id,
    coupons.c.reserved_until,
    coupon_templates.c.name.label("template_name"),
    coupon_templates.c.kind,
    coupon_templates.c.rules,
)
_COUPON_COLUMNS = (
    *COUPON_AND_TEMPLATE,
    customers.c.external_id.label("customer"),
    # recent refused attempts (alerts.py): an index probe inside this read, no round trip
    select(code_attempts.c.id)
    .where(code_attempts.c.coupon_id == coupons.c.id, code_attempts.c.at > bindparam("b_since"))
    .exists()
    .label("refused_recently"),
)


# Hot-path statements, built once: building a Core statement costs more than running it.
COUPON_BY_CODE = (
    select(*_COUPON_COLUMNS)
    .select_from(
        coupons.join(coupon_templates, coupon_templates.c.id == coupons.c.template_id).outerjoin(
            customers, customers.c.id == coupons.c.customer_id
        )
    )
    .where(coupons.c.code == bindparam("b_code"), coupons.c.merchant_id == bindparam("b_merchant"))
)


def _with_subscriptions(dialect: str) -> Select[Any]:
    return COUPON_BY_CODE.add_columns(
        outbox.live_subscriptions_column(dialect).label("subscriptions")
    )


# The redeem's coupon read also brings the merchant's live subscriptions (the outbox's
# fan-out needs them): one round trip less than reading them at the outbox insert.
_COUPON_FOR_REDEEM = {d: _with_subscriptions(d) for d in ("postgresql", "sqlite")}
# ... and run with hub/db/fastexec.py: compiled once, executed on the DBAPI cursor
_FAST_COUPON_FOR_REDEEM = {d: FastStatement(s) for d, s in _COUPON_FOR_REDEEM.items()}
_FAST_COUPON_BY_CODE = FastStatement(COUPON_BY_CODE)
_STORE_ID = FastStatement(
    select(stores.c.id).where(
        stores.c.merchant_id == bindparam("b_merchant"), stores.c.code == bindparam("b_code")
    )
)
_REDEMPTION_WHERE = select(redemptions.c.store_code, redemptions.c.occurred_at).where(
    redemptions.c.id == bindparam("b_id")
)
# Exactly once: only from a state the machine lets a redemption start from (issued, or
# expired by the sweep/a late reversal), only inside the window at the judged time, and
# only with no live hold on it now (a reservation's, hub/domain/holds.py) but the one of
# the reservation ``b_reservation`` being confirmed (None for every other redeem).
MARK_REDEEMED = (
    update(coupons)
    .where(
        coupons.c.id == bindparam("b_id"),
        # ORs of plain parameters, not an IN list (re-rendered on every execution)
        or_(*(coupons.c.status == s.value for s in redeemable_states())),
        coupons.c.valid_until > bindparam("b_at"),
        or_(
            coupons.c.reservation_id.is_(None),
            coupons.c.reserved_until <= bindparam("b_now"),
            coupons.c.reservation_id == bindparam("b_reservation"),
        ),
    )
    .values(
        status=transition(CouponState.ISSUED, Action.REDEEM).value,
        redemption_id=bindparam("b_redemption_id"),
        reservation_id=None,  # a lapsed hold goes with the redemption
        reserved_until=None,
        version=coupons.c.version + 1,
    )
    .returning(coupons.c.id)
)
_FAST_MARK_REDEEMED = FastStatement(MARK_REDEEMED)
# the states a coupon can be held in (a used one holds nothing, whatever it says)
HOLDABLE = frozenset(s.value for s in redeemable_states())
INSERT_REDEMPTION = insert(redemptions)
_REDEMPTION_COLUMNS = (
    "id", "merchant_id", "coupon_id", "template_id", "store_id", "store_code", "channel",
    "order_id", "order_amount", "discount", "detail", "status", "occurred_at", "recorded_at",
    "api_key_id", "staff_id",
)  # fmt: skip
_EVENT_COLUMNS = outbox.EVENT_COLUMNS
# SQLite: the redemption's own insert, every column a parameter (one compiled form)
_FAST_INSERT_REDEMPTION = FastStatement(
    insert(redemptions).values(
        {c: bindparam(c, type_=redemptions.c[c].type) for c in _REDEMPTION_COLUMNS}
    )
)
# PostgreSQL: the redemption (and its event, when it makes no delivery record) are
# inserted by the Idempotency-Key's completion, in data-modifying CTEs of that one
# statement — two round trips fewer while the coupon's row lock is held.
_NEW_REDEMPTION = (
    insert(redemptions)
    .values({c: bindparam(f"r_{c}", type_=redemptions.c[c].type) for c in _REDEMPTION_COLUMNS})
    .cte("hub_redemption")
)
_NEW_EVENT = (
    insert(outbox_events)
    .values({c: bindparam(f"e_{c}", type_=outbox_events.c[c].type) for c in _EVENT_COLUMNS})
    .cte("hub_event")
)
_COMPLETE_WITH_REDEMPTION = FastStatement(idempotency.completion_with(_NEW_REDEMPTION))
_COMPLETE_WITH_REDEMPTION_AND_EVENT = FastStatement(
    idempotency.completion_with(_NEW_REDEMPTION, _NEW_EVENT)
)
_PENDING_KEY = "hub_redeem_pending"


def judged_at(occurred_at: datetime | None, now: datetime, settings: Settings) -> datetime:
    """When a sale that happened at ``occurred_at`` (``None``: now) is judged: refuses a
    time in the future (beyond the clock skew) or older than the offline limit."""
    if occurred_at is None:
        return now
    occurred_at = to_utc(occurred_at, "occurred_at")  # year 1 at +14:00: no such instant
    if occurred_at > now + CLOCK_SKEW:
        raise refuse(
            "occurred_at_in_future",
            "occurred_at is in the future; check the terminal's clock.",
            occurred_at=iso(occurred_at),
        )
    if occurred_at < now - settings.max_offline_age:
        raise refuse(
            "occurred_at_too_old",
            f"occurred_at is older than {settings.max_offline_age.days} days.",
            occurred_at=iso(occurred_at),
        )
    return occurred_at


def check_channel(channel: str) -> None:
    """``invalid_request`` for a channel the hub does not know (every checkout path
    judges the channel as the redeem does)."""
    if channel not in CHANNELS:
        raise refuse(
            "invalid_request",
            f"channel must be one of {list(CHANNELS)}",
            errors=[{"field": "channel", "message": "unknown channel"}],
        )


def resolve_store(conn: Connection, p: Principal, requested: str | None) -> tuple[str, str]:
    """(store_id, store_code) the redemption happens at: a store key's own store, else
    the merchant's store ``requested`` names."""
    if p.store_id is not None and p.store_code is not None:
        if requested is not None and requested != p.store_code:
            raise refuse(
                "store_forbidden",
                f"This key belongs to store {p.store_code}; it cannot act at {requested}.",
            )
        return p.store_id, p.store_code
    if requested is None:
        raise refuse("store_required", "Name the store (store code) this redemption is at.")
    found = _STORE_ID.first(conn, {"b_merchant": p.merchant_id, "b_code": requested})
    store_id = None if found is None else found[0]
    if store_id is None:
        raise refuse("store_not_found", f"No store with code {requested}.", store=requested)
    return store_id, requested


def already_redeemed(conn: Connection, redemption_id: str | None) -> DomainError:
    """``coupon_already_redeemed`` saying when and where, when the redemption is known."""
    row = None
    if redemption_id is not None:
        row = conn.execute(_REDEMPTION_WHERE, {"b_id": redemption_id}).first()
    if row is None:
        return refuse("coupon_already_redeemed", "The coupon was redeemed already.")
    return refuse(
        "coupon_already_redeemed",
        f"The coupon was redeemed at store {row.store_code} at {iso(row.occurred_at)}.",
        redeemed_at=iso(row.occurred_at),
        redeemed_store=row.store_code,
    )


def facts_of(row: Row[Any]) -> CouponFacts:
    """What the redeem decision needs of a coupon row read with its template's rules."""
    return CouponFacts(
        state=CouponState(row.status),
        window=Window(row.valid_from, row.valid_until),
        template=template_of(row.template_id, row.rules),
    )


def _decide(
    conn: Connection,
    row: Row[Any],
    store_code: str,
    cmd: RedeemCommand,
    at: datetime,
    p: Principal,
    now: datetime,
) -> Discount:
    if row.reservation_id is not None and row.status in HOLDABLE:  # used ones hold nothing
        holds.check_not_held(row.reservation_id, row.reserved_until, now)
    ctx = RedeemContext(store_code, cmd.channel, at, p.tz)
    try:
        return check_redeemable(facts_of(row), ctx, cmd.order)
    except DomainError as err:
        if err.code == "coupon_already_redeemed":
            raise already_redeemed(conn, row.redemption_id) from None
        raise


def _find_coupon(
    conn: Connection,
    lookup: CodeLookup,
    code: str,
    since: datetime,
    statement: Select[Any] | FastStatement = _FAST_COUPON_BY_CODE,
) -> Any:
    return lookup.find(conn, statement, code, b_since=since)


def _batched(conn: Connection) -> bool:
    """PostgreSQL: the redemption and its event go in with the key's completion."""
    return conn.dialect.name == "postgresql"


def _flush_pending(conn: Connection) -> None:
    """Insert what the redeem kept for its completion statement now (before anything
    reads it or writes after it in this transaction, or when no completion follows)."""
    values = conn.info.pop(_PENDING_KEY, None)
    if values is not None:
        conn.execute(INSERT_REDEMPTION, values)
    outbox.insert_events(conn, outbox.take_held(conn))


def _complete(conn: Connection, scope: str, key: str, status: int, body: bytes) -> None:
    """Store the outcome under the Idempotency-Key — with the kept redemption and event
    in the same statement when there are any (PostgreSQL)."""
    values = conn.info.pop(_PENDING_KEY, None)
    held = outbox.take_held(conn)
    if values is None:
        outbox.insert_events(conn, held)
        idempotency.complete(conn, scope=scope, key=key, status=status, body=body)
        return
    params = idempotency.completion_params(scope=scope, key=key, status=status, body=body)
    params.update({f"r_{c}": values[c] for c in _REDEMPTION_COLUMNS})
    if len(held) == 1:
        params.update({f"e_{c}": held[0][c] for c in _EVENT_COLUMNS})
        _COMPLETE_WITH_REDEMPTION_AND_EVENT.run(conn, params)
        return
    outbox.insert_events(conn, held)
    _COMPLETE_WITH_REDEMPTION.run(conn, params)


def _discount_view(d: Discount, order: Order) -> dict[str, Any]:
    return {
        "discount": d.total,
        "eligible_amount": d.eligible_amount,
        "payable": order.amount - d.total,
        "lines": discount_lines(d),
    }


def gift_of(kind: str, rules: dict[str, Any], units: int | None) -> dict[str, Any] | None:
    """What an exchange coupon handed over (stock-moving connectors use it), else None:
    its SKU and the units the order actually got (fewer than the coupon gives when the
    order has fewer)."""
    if kind != "exchange":
        return None
    benefit = rules.get("benefit", {})
    qty = int(benefit.get("qty", 1)) if units is None else units
    return {"sku": benefit.get("sku"), "qty": qty}


def order_view(order: Order) -> dict[str, Any]:
    """The order as the redemption's detail and its event carry it."""
    view: dict[str, Any] = {"id": order.id, "amount": order.amount}
    if order.lines is not None:
        view["lines"] = [
            {"sku": ln.sku, "category": ln.category, "qty": ln.qty, "unit_price": ln.unit_price}
            for ln in order.lines
        ]
    return view


def validate(
    engine: Engine,
    p: Principal,
    cmd: RedeemCommand,
    now: datetime,
    settings: Settings = Settings(),
    client: str | None = None,
) -> dict[str, Any]:
    """The dry run: every redeem check, no change. Returns the would-be discount.

    ``client`` is the caller's address (the guessing defence counts per key and per
    address); a refusal is noted for the guard and the repeat-attempt alerts in a short
    write transaction of its own, so the successful dry run stays read-only."""
    guard = settings.guard
    seen = alerts.Attempt(since=now - guard.limits.repeat_window)
    with CodeLookup(engine, guard, p, now, client) as lookup:
        try:
            body = _validate(engine, p, cmd, now, settings, seen, lookup)
        except DomainError as err:
            if lookup.failed or seen.coupon_id is not None:
                with write_conn(engine) as conn:
                    answer = lookup.settle(conn) or err
                    alerts.note_attempt(conn, guard.limits.repeat_window, p, seen, err.code, now)
                if answer is not err:
                    raise answer from None
            raise
    if seen.refused_recently:
        with write_conn(engine) as conn:
            alerts.note_attempt(conn, guard.limits.repeat_window, p, seen, None, now)
    return body


def _validate(
    engine: Engine,
    p: Principal,
    cmd: RedeemCommand,
    now: datetime,
    settings: Settings,
    seen: alerts.Attempt,
    lookup: CodeLookup,
) -> dict[str, Any]:
    at = judged_at(cmd.occurred_at, now, settings)
    code = lookup.parse(cmd.code, at)  # a coupon token is judged at the sale's time
    check_channel(cmd.channel)
    with read_conn(engine) as conn:
        _store_id, store_code = resolve_store(conn, p, cmd.store)
        row = _find_coupon(conn, lookup, code, seen.since)
        seen.saw(row, store_code)
        discount = _decide(conn, row, store_code, cmd, at, p, now)
    return {
        "status": "valid",
        "code": code,
        "store": store_code,
        "channel": cmd.channel,
        "template": template_view(row),
        **_discount_view(discount, cmd.order),
    }


def _redeem_in_txn(
    conn: Connection,
    p: Principal,
    cmd: RedeemCommand,
    code: str,
    at: datetime,
    now: datetime,
    seen: alerts.Attempt,
    lookup: CodeLookup,
) -> tuple[int, bytes]:
    store_id, store_code = resolve_store(conn, p, cmd.store)
    statement = _FAST_COUPON_FOR_REDEEM.get(conn.dialect.name, _FAST_COUPON_BY_CODE)
    row = _find_coupon(conn, lookup, code, seen.since, statement)
    if statement is not _FAST_COUPON_BY_CODE:
        outbox.know_subscriptions(conn, p.merchant_id, row.subscriptions)
    seen.saw(row, store_code)
    discount = _decide(conn, row, store_code, cmd, at, p, now)
    redemption_id = new_id("rdm")
    changed = _FAST_MARK_REDEEMED.first(
        conn,
        {
            "b_id": row.id,
            "b_redemption_id": redemption_id,
            "b_at": at,
            "b_now": now,
            "b_reservation": None,  # no reservation's hold is this redeem's
        },
    )
    if changed is None:  # lost a race: someone else redeemed (or voided) it meanwhile
        current = _find_coupon(conn, lookup, code, seen.since)
        seen.redemption_id = current.redemption_id
        _decide(conn, current, store_code, cmd, at, p, now)  # the refusal its state gives now
        raise refuse("coupon_already_redeemed", "The coupon was redeemed already.")
    seen.redemption_id, seen.redeemed_now = redemption_id, True
    gift = gift_of(row.kind, row.rules, discount.units_given)
    detail = {"order": order_view(cmd.order), **_discount_view(discount, cmd.order)}
    if gift is not None:
        detail["gift"] = gift  # kept for the reversal's event
    values = {
        "id": redemption_id,
        "merchant_id": p.merchant_id,
        "coupon_id": row.id,
        "template_id": row.template_id,
        "store_id": store_id,
        "store_code": store_code,
        "channel": cmd.channel,
        "order_id": cmd.order.id,
        "order_amount": cmd.order.amount,
        "discount": discount.total,
        "detail": detail,
        "status": "redeemed",
        "occurred_at": at,
        "recorded_at": now,
        "api_key_id": p.key_id,
        "staff_id": p.staff_id,  # a staff session's staff member (None: an API key)
    }
    if _batched(conn):
        conn.info[_PENDING_KEY] = values  # inserted by the completion (_complete)
        outbox.hold_next(conn)
    else:
        _FAST_INSERT_REDEMPTION.run(conn, values)
    body = {
        "redemption_id": redemption_id,
        "status": "redeemed",
        "code": code,
        "store": store_code,
        "channel": cmd.channel,
        "order_id": cmd.order.id,
        "template": template_view(row),
        "customer": row.customer,
        **_discount_view(discount, cmd.order),
        "redeemed_at": iso(at),
        "recorded_at": iso(now),
        "staff": p.staff,
    }
    outbox.append(
        conn,
        [
            outbox.event_row(
                type="coupon.redeemed",
                merchant_id=p.merchant_id,
                coupon_id=row.id,
                store_code=store_code,
                occurred_at=at,
                recorded_at=now,
                data={**body, "order": detail["order"], "gift": gift},
            )
        ],
    )
    log.info(
        "coupon.redeemed",
        redemption_id=redemption_id,
        code=mask(code),
        store=store_code,
        discount=discount.total,
    )
    return 201, dumps(body)


def redeem(
    engine: Engine,
    p: Principal,
    cmd: RedeemCommand,
    *,
    idempotency_key: str | None,
    canonical_body: bytes,
    now: datetime,
    operation: Operation,
    settings: Settings = Settings(),
    client: str | None = None,
    on_refused: Callable[[Connection, DomainError, alerts.Attempt], DomainError] | None = None,
) -> HttpResult:
    """Redeem a coupon exactly once for this idempotency key (see idempotency.py).

    ``on_refused`` (the offline sync's conflicts, hub/services/sync.py) sees each refusal
    in the redeem's transaction and may answer another one instead (stored as the
    answer, with whatever it wrote in that transaction; it is not noted as an attempt).

    ``client`` is the caller's address for the guessing defence. A blocked key or
    address gets 429 before anything else (never stored under the Idempotency-Key);
    refusals are counted and noted in the redeem's own transaction, so a replayed
    stored refusal is not a new failure."""
    guard = settings.guard
    with CodeLookup(engine, guard, p, now, client) as lookup:  # a blocked key: 429 first
        key = idempotency.check_key(idempotency_key)
        at = judged_at(cmd.occurred_at, now, settings)
        code = lookup.parse(cmd.code, at)  # malformed: counted as the refusal leaves the block
        check_channel(cmd.channel)
        seen = alerts.Attempt(since=now - guard.limits.repeat_window)

        def work(conn: Connection) -> tuple[int, bytes]:
            try:
                result = _redeem_in_txn(conn, p, cmd, code, at, now, seen, lookup)
            except DomainError as err:
                lookup.settle_refusal(conn, err)  # counted with the stored refusal, or 429
                answer = err if on_refused is None else on_refused(conn, err, seen)
                if answer is not err:
                    raise answer from None
                alerts.note_attempt(conn, guard.limits.repeat_window, p, seen, err.code, now)
                raise
            if seen.refused_recently:
                _flush_pending(conn)  # the alert reads the redemption; its event comes first
                alerts.note_attempt(conn, guard.limits.repeat_window, p, seen, None, now)
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
            on_refusal=lambda err: log.info("redeem.refused", code=mask(code), reason=err.code),
        )


def run_once(
    engine: Engine,
    p: Principal,
    key: str,
    operation: Operation,
    canonical_body: bytes,
    now: datetime,
    settings: Settings,
    *,
    work: Callable[[Connection], tuple[int, bytes]],
    on_refusal: Callable[[DomainError], None] | None = None,
) -> HttpResult:
    """Run ``work`` once per (API key, Idempotency-Key), in one transaction with its record.

    A refusal (:class:`DomainError`) is an outcome like a success: it is stored and
    replayed — except ``too_many_failed_attempts``, which is answered but never stored
    (the key is released and the guard's counts commit), so the retry after the block
    runs afresh. Any other exception rolls everything back, the key included.
    """
    req_hash = idempotency.request_hash(operation.name, canonical_body)
    blocked: DomainError | None = None
    with write_conn(engine) as conn:
        try:
            stored = idempotency.claim(
                conn,
                scope=p.key_id,
                key=key,
                endpoint=operation.name,
                req_hash=req_hash,
                now=now,
                ttl=settings.idempotency_ttl,
            )
            if stored is not None:
                return _result(stored.status, stored.body, replayed=True)
            try:
                status, body = work(conn)
            except DomainError as err:
                _flush_pending(conn)  # (nothing is kept past a refusal; never lose a write)
                if err.code == "too_many_failed_attempts":
                    blocked = err
                    idempotency.release(conn, scope=p.key_id, key=key)
                status = status_for(err.code)
                body = problem_bytes(err, instance=operation.instance)
                if on_refusal is not None:
                    on_refusal(err)
            if blocked is None:
                _complete(conn, p.key_id, key, status, body)
            else:
                _flush_pending(conn)
        finally:  # the connection's info outlives this checkout: leave nothing on it
            conn.info.pop(_PENDING_KEY, None)
            outbox.forget(conn)
    if blocked is not None:
        raise blocked
    return _result(status, body)


def _result(status: int, body: bytes, replayed: bool = False) -> HttpResult:
    media = "application/json" if status < 400 else "application/problem+json"
    return HttpResult(status=status, body=body, replayed=replayed, media_type=media)


_REVERSAL_READ: Select[Any] = select(
    redemptions.c.id,
    redemptions.c.coupon_id,
    redemptions.c.status,
    redemptions.c.reversed_at,
    redemptions.c.store_code,
    redemptions.c.discount,
    redemptions.c.order_id,
    redemptions.c.order_redemption_id,
    redemptions.c.detail,
    redemptions.c.channel,
    redemptions.c.template_id,
    coupon_templates.c.name.label("template_name"),
    coupon_templates.c.kind,
    coupon_templates.c.rules,
).join_from(redemptions, coupon_templates, coupon_templates.c.id == redemptions.c.template_id)


def redemptions_to_reverse(conn: Connection, *where: Any) -> list[Row[Any]]:
    """The redemptions ``where`` selects, with what :func:`reverse_redemption` needs."""
    return list(conn.execute(_REVERSAL_READ.where(*where).order_by(redemptions.c.id)).all())


def reverse_redemption(
    conn: Connection, p: Principal, red: Row[Any], reason: str | None, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reverse one redemption read by :func:`redemptions_to_reverse` in the caller's
    transaction: the redemption and its coupon change; returns the reversal's body and
    its ``coupon.redemption_reversed`` event row (the caller appends it to the outbox).
    Refuses ``redemption_already_reversed``."""
    redemption_id = red.id
    reversed_now = conn.execute(
        update(redemptions)
        .where(redemptions.c.id == redemption_id, redemptions.c.status == "redeemed")
        .values(
            status="reversed", reversed_at=now, reversal_reason=reason, reversed_staff_id=p.staff_id
        )
        .returning(redemptions.c.id)
    ).first()
    if reversed_now is None:
        when = conn.execute(
            select(redemptions.c.reversed_at).where(redemptions.c.id == redemption_id)
        ).scalar()
        raise refuse(
            "redemption_already_reversed",
            f"This redemption was reversed at {iso(when)}.",
            reversed_at=iso(when),
        )
    coupon = conn.execute(
        select(
            coupons.c.code,
            coupons.c.status,
            coupons.c.valid_until,
            customers.c.external_id.label("customer"),
        )
        .select_from(coupons.outerjoin(customers, customers.c.id == coupons.c.customer_id))
        .where(coupons.c.id == red.coupon_id)
    ).one()
    new_state = transition(
        CouponState(coupon.status), Action.REVERSE, window_open=now < coupon.valid_until
    )
    conn.execute(
        update(coupons)
        .where(coupons.c.id == red.coupon_id, coupons.c.redemption_id == redemption_id)
        .values(status=new_state.value, redemption_id=None, version=coupons.c.version + 1)
    )
    body = {
        "redemption_id": redemption_id,
        "status": "reversed",
        "code": coupon.code,
        "store": red.store_code,
        "order_id": red.order_id,
        "discount": red.discount,
        "reason": reason,
        "reversed_at": iso(now),
        "coupon_status": new_state.value,
        "staff": p.staff,  # who reversed it, when a staff session did
    }
    data = {
        **body,
        "channel": red.channel,
        "template_id": red.template_id,
        "template": template_view(red),
        "customer": coupon.customer,
        "order": red.detail.get("order"),
        "gift": red.detail.get("gift") or gift_of(red.kind, red.rules, None),
    }
    if red.order_redemption_id is not None:
        data["order_redemption_id"] = red.order_redemption_id
    event = outbox.event_row(
        type="coupon.redemption_reversed",
        merchant_id=p.merchant_id,
        coupon_id=red.coupon_id,
        store_code=red.store_code,
        occurred_at=now,
        recorded_at=now,
        data=data,
    )
    log.info(
        "coupon.redemption_reversed",
        redemption_id=redemption_id,
        code=mask(coupon.code),
        coupon_status=new_state.value,
    )
    return body, event


def _reverse_in_txn(
    conn: Connection, p: Principal, redemption_id: str, reason: str | None, now: datetime
) -> tuple[int, bytes]:
    where = [redemptions.c.id == redemption_id, redemptions.c.merchant_id == p.merchant_id]
    if p.store_id is not None:
        where.append(redemptions.c.store_id == p.store_id)
    found = redemptions_to_reverse(conn, *where)
    if not found:
        raise refuse("redemption_not_found", "No redemption with this id.")
    red = found[0]
    if red.order_redemption_id is not None and red.status == "redeemed":
        # one coupon of a multi-coupon order: the order was paid as one, so it is
        # reversed as one (its discounts depend on each other)
        raise refuse(
            "illegal_transition",
            "This redemption is one coupon of a multi-coupon order redemption; "
            "reverse the whole order instead.",
            state="redeemed",
            action="reverse",
            order_redemption_id=red.order_redemption_id,
        )
    body, event = reverse_redemption(conn, p, red, reason, now)
    outbox.append(conn, [event])
    audit.record(
        conn,
        p,
        "redemption.reversed",
        "redemption",
        redemption_id,
        now,
        reason=reason,
        store=red.store_code,
    )
    return 201, dumps(body)


def reverse(
    engine: Engine,
    p: Principal,
    redemption_id: str,
    reason: str | None,
    *,
    idempotency_key: str | None,
    canonical_body: bytes,
    now: datetime,
    operation: Operation,
    settings: Settings = Settings(),
) -> HttpResult:
    """Reverse (refund/void) a redemption; idempotent like :func:`redeem`."""
    key = idempotency.check_key(idempotency_key)
    if len(redemption_id) > 40:  # longer than any id; would not fit the endpoint column either
        raise refuse("redemption_not_found", "No redemption with this id.")
    return run_once(
        engine,
        p,
        key,
        operation,
        canonical_body,
        now,
        settings,
        work=lambda conn: _reverse_in_txn(conn, p, redemption_id, reason, now),
    )

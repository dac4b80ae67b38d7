"""Offline sync (``POST /v1/redemptions/sync``) and the conflicts it records.

A till that lost the network keeps redeeming against its offline rules and queues
each sale with the Idempotency-Key it would have sent online. When it is back it sends
the queue here, up to :data:`MAX_ITEMS` items a call. Each item is judged exactly as
``POST /v1/redemptions`` judges it (:func:`hub.services.redeem.redeem`, under the redeem
route's own operation name, so the item and an online attempt with the same key are one
request: whichever came first, the other replays its answer), at the item's
``occurred_at`` (within the offline age limit of the settings), in its own transaction,
in order.

**Conflicts.** An item whose redeem would be refused ``coupon_already_redeemed`` — the
coupon was redeemed meanwhile by another redemption (another Idempotency-Key: another
till, store or channel, or the same till under another key) — is not a plain refusal:
the sale happened offline, the customer left with the discount. In the item's own
transaction (the one that stores its answer under its key) the hub

* records an ``offline_conflicts`` row (status ``open``),
* raises an ``alert.raised`` of kind ``offline_conflict``,
* emits ``redemption.offline_conflict``,
* and stores the 409 ``offline_conflict`` problem (``conflict_id``, ``redeemed_at``,
  ``redeemed_store``, and ``redemption_id`` when the caller may see the other
  redemption) as the item's answer.

So a crash leaves all of it or none of it, and a second sync of the item replays the
answer and creates nothing. The same coupon sent again under the *same* key is a replay,
never a conflict. An admin settles a conflict (``POST /v1/conflicts/{id}/settle``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import structlog
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy import exc as sa_exc

from hub.db.engine import busy_reason, read_conn, write_conn
from hub.db.schema import coupons, offline_conflicts, redemptions, stores
from hub.db.upsert import InsertIfAbsent
from hub.domain.codes import mask
from hub.domain.commands import RedeemCommand
from hub.domain.errors import DomainError, refuse
from hub.domain.ids import new_id
from hub.services import alerts, audit, idempotency, outbox
from hub.services import redeem as svc
from hub.services.commands import HttpResult
from hub.services.jsonio import dumps, iso
from hub.services.paging import newest_first, split_page
from hub.services.principal import Principal
from hub.services.problems import problem_for, status_for
from hub.services.settings import Settings

log = structlog.get_logger("hub.sync")

MAX_ITEMS = 100
OUTCOMES = ("redeemed", "replayed", "refused", "conflict")
CONFLICT_ALERT = "offline_conflict"


@dataclass(frozen=True)
class SyncItem:
    """One queued sale, shape-checked by the transport."""

    key: str  # its Idempotency-Key (checked by the redeem, as the header is)
    command: RedeemCommand
    canonical_body: bytes  # what the redeem route would hash for the same request
    offline_discount: int | None = None  # what the offline receipt granted


@dataclass(frozen=True)
class BadItem:
    """An item the transport could not read: refused with ``problem`` (nothing runs)."""

    key: str | None
    problem: DomainError


def check_count(n: int) -> None:
    if n > MAX_ITEMS:
        raise refuse(
            "too_many_items",
            f"A sync call takes at most {MAX_ITEMS} items; this one has {n}. "
            "Send the rest in another call.",
            max_items=MAX_ITEMS,
            items=n,
        )


# --- the sync ----------------------------------------------------------------------------


def sync(
    engine: Engine,
    p: Principal,
    terminal_id: str | None,
    items: Sequence[SyncItem | BadItem],
    *,
    now: datetime,
    operation: svc.Operation,
    settings: Settings = Settings(),
    client: str | None = None,
) -> dict[str, Any]:
    """Judge each item as the redeem route would, in order, each in its own transaction;
    the answer lists each item's outcome and the counts.

    A database that fails before any item is done raises (the transport answers 503,
    nothing changed); once some are done, the rest are answered ``refused`` with the
    503 problem (not processed: send them again, done items replay)."""
    check_count(len(items))
    out: list[dict[str, Any]] = []
    stopped: DomainError | None = None
    for item in items:
        if stopped is not None:
            out.append(_refused(item.key, stopped, operation))
            continue
        if isinstance(item, BadItem):
            out.append(_refused(item.key, item.problem, operation))
            continue
        try:
            result = _settled(engine, p, terminal_id, item, now, operation, settings, client)
        except DomainError as err:
            out.append(_refused(item.key, err, operation))
            continue
        except sa_exc.DataError:  # a value the database cannot hold (PostgreSQL: a NUL)
            bad = refuse("invalid_request", "A value of this item cannot be stored.")
            out.append(_refused(item.key, bad, operation))
            continue
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            reason = busy_reason(exc)
            if reason is None or not out:
                raise  # nothing done yet: the transport's 503 (or 500) for the whole call
            log.warning("sync.stopped", reason=reason, done=len(out), error=type(exc).__name__)
            stopped = refuse(
                reason,
                "The database failed before this item was processed; nothing of it was "
                "changed. Send it again (with the same idempotency_key).",
                retry_after=1,
            )
            out.append(_refused(item.key, stopped, operation))
            continue
        out.append(_answer(item.key, result))
    counts = dict.fromkeys(OUTCOMES, 0)
    for o in out:
        counts[o["outcome"]] += 1
    log.info("sync.done", terminal=terminal_id, items=len(out), **counts)
    return {"items": out, "counts": counts}


IN_FLIGHT_WAIT = 0.05  # seconds between looks at a key another request is running
IN_FLIGHT_TRIES = 40  # about two seconds: then the item is answered in flight


def _settled(
    engine: Engine,
    p: Principal,
    terminal_id: str | None,
    item: SyncItem,
    now: datetime,
    operation: svc.Operation,
    settings: Settings,
    client: str | None,
) -> HttpResult:
    """:func:`_one`, waiting a little while the item's key is in flight elsewhere (the
    same batch sent twice at once, or its online attempt still running): then the item
    replays the answer the other request stores."""
    for _ in range(IN_FLIGHT_TRIES - 1):
        try:
            return _one(engine, p, terminal_id, item, now, operation, settings, client)
        except DomainError as err:
            if err.code != "idempotency_key_in_flight":
                raise
        time.sleep(IN_FLIGHT_WAIT)
    return _one(engine, p, terminal_id, item, now, operation, settings, client)


def _one(
    engine: Engine,
    p: Principal,
    terminal_id: str | None,
    item: SyncItem,
    now: datetime,
    operation: svc.Operation,
    settings: Settings,
    client: str | None,
) -> HttpResult:
    if item.command.occurred_at is None:  # the transport requires it; never judged at now
        raise refuse(
            "invalid_request",
            "occurred_at: required for a synced item",
            errors=[{"field": "occurred_at", "message": "required"}],
        )

    def on_refused(conn: Connection, err: DomainError, seen: alerts.Attempt) -> DomainError:
        if err.code != "coupon_already_redeemed":
            return err
        return record_conflict(conn, p, terminal_id, item, seen, now, operation)

    return svc.redeem(
        engine,
        p,
        item.command,
        idempotency_key=item.key,
        canonical_body=item.canonical_body,
        now=now,
        operation=operation,
        settings=settings,
        client=client,
        on_refused=on_refused,
    )


def _answer(key: str, result: HttpResult) -> dict[str, Any]:
    body = msgspec.json.decode(result.body)
    success = result.status < 400
    code = None if success else body.get("code")
    if result.replayed:
        outcome = "replayed"
    elif success:
        outcome = "redeemed"
    elif code == "offline_conflict":
        outcome = "conflict"
    else:
        outcome = "refused"
    return {
        "idempotency_key": key,
        "outcome": outcome,
        "status": result.status,
        "redemption": body if success else None,
        "problem": None if success else body,
        "conflict_id": body.get("conflict_id") if code == "offline_conflict" else None,
    }


def _refused(key: str | None, err: DomainError, operation: svc.Operation) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "outcome": "refused",
        "status": status_for(err.code),
        "redemption": None,
        "problem": problem_for(err, instance=operation.instance),
        "conflict_id": None,
    }


# --- recording a conflict ----------------------------------------------------------------

_INSERT_CONFLICT = InsertIfAbsent(offline_conflicts, offline_conflicts.c.id)


def _sees_store(p: Principal, store: str | None) -> bool:
    scope = p.store_scope
    return scope is None or (store is not None and store in scope)


def record_conflict(
    conn: Connection,
    p: Principal,
    terminal_id: str | None,
    item: SyncItem,
    seen: alerts.Attempt,
    now: datetime,
    operation: svc.Operation,
) -> DomainError:
    """In the item's transaction: the conflict row, its alert and its event; returns the
    ``offline_conflict`` refusal to store as the item's answer. A row recorded earlier
    under the same key (an Idempotency-Key record purged after its time, the key sent
    again) is the same conflict: nothing new is made."""
    assert seen.coupon_id is not None and seen.store is not None
    occurred_at = item.command.occurred_at or now
    won = None
    if seen.redemption_id is not None:
        won = conn.execute(
            select(redemptions.c.id, redemptions.c.store_code, redemptions.c.occurred_at).where(
                redemptions.c.id == seen.redemption_id
            )
        ).first()
    existing = conn.execute(
        select(offline_conflicts.c.id).where(
            offline_conflicts.c.idempotency_scope == p.key_id,
            offline_conflicts.c.idempotency_key == item.key,
        )
    ).scalar()
    conflict_id = existing or new_id("cfl")
    if existing is None:
        store_id = conn.execute(
            select(stores.c.id).where(
                stores.c.merchant_id == p.merchant_id, stores.c.code == seen.store
            )
        ).scalar_one()
        _INSERT_CONFLICT.inserted(
            conn,
            {
                "id": conflict_id,
                "merchant_id": p.merchant_id,
                "coupon_id": seen.coupon_id,
                "store_id": store_id,
                "store_code": seen.store,
                "channel": item.command.channel,
                "terminal_id": terminal_id,
                "api_key_id": p.key_id,
                "idempotency_scope": p.key_id,
                "idempotency_key": item.key,
                "order": svc.order_view(item.command.order),
                "discount": item.offline_discount,
                "occurred_at": occurred_at,
                "recorded_at": now,
                "existing_redemption_id": won.id if won is not None else None,
                "status": "open",
                "settled_at": None,
                "settlement": None,
            },
        )
        _announce(conn, p, terminal_id, item, seen, won, conflict_id, occurred_at, now)
    redeemed_at = iso(won.occurred_at) if won is not None else None
    redeemed_store = won.store_code if won is not None else None
    extra: dict[str, Any] = {
        "conflict_id": conflict_id,
        "redeemed_at": redeemed_at,
        "redeemed_store": redeemed_store,
    }
    if won is not None and _sees_store(p, won.store_code):
        extra["redemption_id"] = won.id
    where = f" at store {redeemed_store} at {redeemed_at}" if won is not None else ""
    return refuse(
        "offline_conflict",
        f"The coupon was redeemed{where} before this offline sale reached the hub; "
        f"recorded as conflict {conflict_id} for the merchant to settle.",
        **extra,
    )


def _announce(
    conn: Connection,
    p: Principal,
    terminal_id: str | None,
    item: SyncItem,
    seen: alerts.Attempt,
    won: Any,
    conflict_id: str,
    occurred_at: datetime,
    now: datetime,
) -> None:
    redeemed = {
        "redemption_id": won.id if won is not None else None,
        "redeemed_at": iso(won.occurred_at) if won is not None else None,
        "redeemed_store": won.store_code if won is not None else None,
    }
    masked = mask(seen.code)
    where = f"at store {won.store_code} at {iso(won.occurred_at)}" if won is not None else ""
    alerts.raise_alert(
        conn,
        merchant_id=p.merchant_id,
        kind=CONFLICT_ALERT,
        severity="warning",
        message=f"Coupon {masked}, redeemed {where or 'already'}, was also redeemed offline "
        f"at store {seen.store} at {iso(occurred_at)} (conflict {conflict_id}).",
        details={
            "conflict_id": conflict_id,
            "code": masked,
            "coupon_id": seen.coupon_id,
            "store": seen.store,
            "terminal_id": terminal_id,
            "occurred_at": iso(occurred_at),
            "offline_discount": item.offline_discount,
            **redeemed,
            "key_id": p.key_id,
        },
        now=now,
        store_code=seen.store,
    )
    outbox.append(
        conn,
        [
            outbox.event_row(
                type="redemption.offline_conflict",
                merchant_id=p.merchant_id,
                coupon_id=seen.coupon_id,
                store_code=seen.store,
                occurred_at=occurred_at,
                recorded_at=now,
                data={
                    "conflict_id": conflict_id,
                    "code": seen.code,
                    "store": seen.store,
                    "channel": item.command.channel,
                    "terminal_id": terminal_id,
                    "order": svc.order_view(item.command.order),
                    "offline_discount": item.offline_discount,
                    "occurred_at": iso(occurred_at),
                    **redeemed,
                },
            )
        ],
    )
    log.warning(
        "redemption.offline_conflict",
        conflict_id=conflict_id,
        code=masked,
        store=seen.store,
        redeemed_store=redeemed["redeemed_store"],
    )


# --- reading and settling conflicts ------------------------------------------------------

_COLUMNS = (
    offline_conflicts.c.id,
    offline_conflicts.c.coupon_id,
    offline_conflicts.c.status,
    offline_conflicts.c.store_code,
    offline_conflicts.c.channel,
    offline_conflicts.c.terminal_id,
    offline_conflicts.c.idempotency_key,
    offline_conflicts.c.order,
    offline_conflicts.c.discount,
    offline_conflicts.c.occurred_at,
    offline_conflicts.c.recorded_at,
    offline_conflicts.c.existing_redemption_id,
    offline_conflicts.c.settled_at,
    offline_conflicts.c.settlement,
    coupons.c.code,
    redemptions.c.store_code.label("redeemed_store"),
    redemptions.c.occurred_at.label("redeemed_at"),
)
_READ = select(*_COLUMNS).select_from(
    offline_conflicts.join(coupons, coupons.c.id == offline_conflicts.c.coupon_id).outerjoin(
        redemptions, redemptions.c.id == offline_conflicts.c.existing_redemption_id
    )
)


@dataclass(frozen=True)
class ConflictFilter:
    status: str | None = None
    store: str | None = None
    since: datetime | None = None  # recorded_at >= since
    until: datetime | None = None  # recorded_at < until


def _view(row: Any, p: Principal) -> dict[str, Any]:
    visible = _sees_store(p, row.redeemed_store)
    return {
        "id": row.id,
        "status": row.status,
        "code": row.code,
        "store": row.store_code,
        "channel": row.channel,
        "terminal_id": row.terminal_id,
        "idempotency_key": row.idempotency_key,
        "order": row.order,
        "offline_discount": row.discount,
        "occurred_at": iso(row.occurred_at),
        "recorded_at": iso(row.recorded_at),
        "redemption_id": row.existing_redemption_id if visible else None,
        "redeemed_store": row.redeemed_store,
        "redeemed_at": iso(row.redeemed_at),
        "settled_at": iso(row.settled_at),
        "settlement": row.settlement,
    }


def _scoped(p: Principal) -> Any:
    q = _READ.where(offline_conflicts.c.merchant_id == p.merchant_id)
    scope = p.store_scope
    if scope is not None:
        q = q.where(offline_conflicts.c.store_code.in_(scope))
    return q


def list_conflicts(
    engine: Engine, p: Principal, f: ConflictFilter, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The merchant's conflicts, newest first (cursor pagination as the redemption list);
    keys limited to stores see their stores' conflicts."""
    c = offline_conflicts.c
    q = _scoped(p)
    if f.status is not None:
        q = q.where(c.status == f.status)
    if f.store is not None:
        q = q.where(c.store_code == f.store)
    if f.since is not None:
        q = q.where(c.recorded_at >= f.since)
    if f.until is not None:
        q = q.where(c.recorded_at < f.until)
    q = newest_first(q, c.recorded_at, c.id, limit, cursor)
    with read_conn(engine) as conn:
        rows = conn.execute(q).all()
    page, next_cursor = split_page(rows, limit, "recorded_at")
    return {"items": [_view(r, p) for r in page], "next_cursor": next_cursor}


def _find(conn: Connection, p: Principal, conflict_id: str) -> Any:
    row = None
    if len(conflict_id) <= 40:
        row = conn.execute(_scoped(p).where(offline_conflicts.c.id == conflict_id)).first()
    if row is None:
        raise refuse("conflict_not_found", "No offline conflict with this id.")
    return row


def get_conflict(engine: Engine, p: Principal, conflict_id: str) -> dict[str, Any]:
    with read_conn(engine) as conn:
        return _view(_find(conn, p, conflict_id), p)


MAX_SETTLEMENT = 500


def settle(
    engine: Engine,
    p: Principal,
    conflict_id: str,
    settlement: str,
    idempotency_key: str | None,
    now: datetime,
    *,
    operation: str,
) -> HttpResult:
    """Settle an open conflict (admin): 200 with the conflict, or the first answer
    replayed under the same Idempotency-Key; ``conflict_settled`` when it was settled
    already (a refusal, not stored)."""
    p.require_admin()
    key = idempotency.check_key(idempotency_key)
    if not 1 <= len(settlement) <= MAX_SETTLEMENT or not settlement.strip():
        message = f"settlement is 1 to {MAX_SETTLEMENT} characters of text."
        raise refuse(
            "invalid_request", message, errors=[{"field": "settlement", "message": message}]
        )
    req_hash = idempotency.request_hash(operation, dumps({"id": conflict_id, "s": settlement}))
    with write_conn(engine) as conn:
        stored = idempotency.claim(
            conn, scope=p.key_id, key=key, endpoint=operation, req_hash=req_hash, now=now
        )
        if stored is not None:
            return HttpResult(stored.status, stored.body, replayed=True)
        row = _find(conn, p, conflict_id)
        changed = conn.execute(
            update(offline_conflicts)
            .where(offline_conflicts.c.id == row.id, offline_conflicts.c.status == "open")
            .values(status="settled", settled_at=now, settlement=settlement)
            .returning(offline_conflicts.c.id)
        ).first()
        if changed is None:
            settled_at = iso(row.settled_at) if row.settled_at is not None else None
            raise refuse(
                "conflict_settled",
                f"Conflict {row.id} was settled already"
                + (f" at {settled_at}." if settled_at else "."),
                settled_at=settled_at,
            )
        outbox.append(
            conn,
            [
                outbox.event_row(
                    type="redemption.offline_conflict_settled",
                    merchant_id=p.merchant_id,
                    coupon_id=row.coupon_id,
                    store_code=row.store_code,
                    occurred_at=now,
                    recorded_at=now,
                    data={
                        "conflict_id": row.id,
                        "code": row.code,
                        "store": row.store_code,
                        "redemption_id": row.existing_redemption_id,
                        "settlement": settlement,
                        "settled_at": iso(now),
                    },
                )
            ],
        )
        audit.record(conn, p, "conflict.settled", "conflict", row.id, now, store=row.store_code)
        body = dumps(_view(_find(conn, p, conflict_id), p))
        idempotency.complete(conn, scope=p.key_id, key=key, status=200, body=body)
    log.info("conflict.settled", conflict_id=conflict_id)
    return HttpResult(200, body)


__all__ = [
    "MAX_ITEMS",
    "BadItem",
    "ConflictFilter",
    "SyncItem",
    "check_count",
    "get_conflict",
    "list_conflicts",
    "settle",
    "sync",
]

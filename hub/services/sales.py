"""Orders reported to the hub (``POST /v1/sales``), with or without a coupon: what
analytics needs for the average order without a coupon and for repeat purchases.

Idempotent per order id: an order reported again with the same content is answered
``replayed`` and changes nothing; with different content the whole call is refused
(``sale_conflict``) and nothing of it is stored. Each new order writes one
``sale.recorded`` event in the same transaction (the analytics consumer reads sales
through the outbox like everything else, in one order, exactly once).

A reported order is a *coupon order* when a redemption with the same order id was made
at the merchant within a day of it when it is reported: analytics then counts that order
through its redemption and not a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from hub.db.engine import write_conn
from hub.db.schema import customers, redemptions, sales, stores
from hub.db.upsert import InsertIfAbsent
from hub.domain.errors import DomainError, refuse
from hub.domain.ids import new_id
from hub.domain.templates import CHANNELS
from hub.services import outbox
from hub.services.jsonio import iso
from hub.services.principal import Principal
from hub.services.redeem import judged_at
from hub.services.settings import Settings

MAX_ORDERS = 500
COUPON_ORDER_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class SaleSpec:
    order_id: str
    store: str | None
    channel: str
    customer: str | None
    amount: int
    occurred_at: datetime


_INSERT = InsertIfAbsent(sales, sales.c.order_id)


def _stores(
    conn: Connection, p: Principal, specs: list[SaleSpec]
) -> dict[str | None, tuple[str, str]]:
    """(store id, code) of each store the orders name; a store key's orders are at its
    own store (named or not)."""
    if p.store_id is not None and p.store_code is not None:
        for s in specs:
            if s.store is not None and s.store != p.store_code:
                raise refuse(
                    "store_forbidden",
                    f"This key belongs to store {p.store_code}; it cannot report orders of "
                    f"{s.store}.",
                )
        return {None: (p.store_id, p.store_code), p.store_code: (p.store_id, p.store_code)}
    if any(s.store is None for s in specs):
        raise refuse("store_required", "Name the store (store code) of every order.")
    wanted = sorted({s.store for s in specs if s.store is not None})
    found = {
        r.code: (r.id, r.code)
        for r in conn.execute(
            select(stores.c.id, stores.c.code).where(
                stores.c.merchant_id == p.merchant_id, stores.c.code.in_(wanted)
            )
        )
    }
    for code in wanted:
        if code not in found:
            raise refuse("store_not_found", f"No store with code {code}.", store=code)
    return dict(found)


def _holders(conn: Connection, p: Principal, external_ids: set[str]) -> dict[str, str]:
    """Customer ids by external id; an unknown one is refused."""
    found: dict[str, str] = {}
    wanted = sorted(external_ids)
    c = customers.c
    for i in range(0, len(wanted), 500):
        rows = conn.execute(
            select(c.external_id, c.id).where(
                c.merchant_id == p.merchant_id, c.external_id.in_(wanted[i : i + 500])
            )
        )
        found.update({r.external_id: r.id for r in rows})
    missing = [x for x in wanted if x not in found]
    if missing:
        raise refuse(
            "customer_not_found", f"Unknown customer(s): {missing[:10]}", customers=missing[:100]
        )
    return found


def _coupon_orders(conn: Connection, p: Principal, specs: list[SaleSpec]) -> set[str]:
    """Order ids of ``specs`` redeemed with a coupon within a day of the order."""
    if not specs:
        return set()
    r = redemptions.c
    lo = min(s.occurred_at for s in specs) - COUPON_ORDER_WINDOW
    hi = max(s.occurred_at for s in specs) + COUPON_ORDER_WINDOW
    at: dict[str, datetime] = {s.order_id: s.occurred_at for s in specs}
    found: set[str] = set()
    ids = sorted(at)
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(r.order_id, r.occurred_at).where(
                r.merchant_id == p.merchant_id,
                r.occurred_at >= lo,
                r.occurred_at <= hi,
                r.order_id.in_(ids[i : i + 500]),
            )
        )
        for row in rows:
            if abs(row.occurred_at - at[row.order_id]) <= COUPON_ORDER_WINDOW:
                found.add(row.order_id)
    return found


def _same(row: Any, values: dict[str, Any]) -> bool:
    keys = ("store_code", "channel", "customer_id", "amount", "occurred_at")
    return all(getattr(row, k) == values[k] for k in keys)


# how old a reported order may be (a year: an ERP reporting its backlog)
MAX_SALE_AGE = timedelta(days=366)


def _conflict(order_id: str) -> DomainError:
    return refuse(
        "sale_conflict",
        f"Order {order_id} was reported already with other content.",
        order_id=order_id,
    )


def record_sales(
    engine: Engine,
    p: Principal,
    specs: list[SaleSpec],
    now: datetime,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Record the orders (all or nothing); each one's status: ``recorded`` or
    ``replayed``. An order's time with no instant in UTC, in the future beyond the
    clock skew or older than :data:`MAX_SALE_AGE` (orders are reported late, e.g. an
    ERP's backlog: a year, not a till's offline window) is refused
    (``datetime_out_of_range``, ``occurred_at_in_future``, ``occurred_at_too_old``)
    before anything is stored."""
    p.require("admin", "store")
    if not specs or len(specs) > MAX_ORDERS:
        raise refuse(
            "invalid_request",
            f"Report 1 to {MAX_ORDERS} orders per call.",
            errors=[{"field": "orders", "message": f"1 to {MAX_ORDERS} items"}],
        )
    limits = replace(settings or Settings(), max_offline_age=MAX_SALE_AGE)
    specs = [replace(s, occurred_at=judged_at(s.occurred_at, now, limits)) for s in specs]
    for s in specs:
        if s.channel not in CHANNELS:
            raise refuse(
                "invalid_request",
                f"channel must be one of {list(CHANNELS)}",
                errors=[{"field": "channel", "message": "unknown channel"}],
            )
    with write_conn(engine) as conn:
        where = _stores(conn, p, specs)
        holders = _holders(conn, p, {s.customer for s in specs if s.customer is not None})
        values: dict[str, dict[str, Any]] = {}
        for s in specs:
            store_id, store_code = where[s.store]
            v: dict[str, Any] = {
                "id": new_id("sal"),
                "merchant_id": p.merchant_id,
                "order_id": s.order_id,
                "store_id": store_id,
                "store_code": store_code,
                "channel": s.channel,
                "customer_id": holders[s.customer] if s.customer is not None else None,
                "amount": s.amount,
                "occurred_at": s.occurred_at,
                "recorded_at": now,
                "api_key_id": p.key_id,
            }
            before = values.get(s.order_id)
            if before is not None:
                if not _same(_Row(before), v):
                    raise _conflict(s.order_id)
                continue
            values[s.order_id] = v
        existing = {
            r.order_id: r
            for r in conn.execute(
                select(sales).where(
                    sales.c.merchant_id == p.merchant_id, sales.c.order_id.in_(sorted(values))
                )
            )
        }
        for oid, row in existing.items():
            if not _same(row, values[oid]):
                raise _conflict(oid)
        new = [v for oid, v in values.items() if oid not in existing]
        coupon = _coupon_orders(conn, p, [s for s in specs if s.order_id not in existing])
        status: dict[str, str] = {oid: "replayed" for oid in existing}
        events = []
        for v in new:
            at: datetime = v["occurred_at"]
            v["coupon_order"] = v["order_id"] in coupon
            if not _INSERT.inserted(conn, v):  # reported meanwhile by another call
                row = conn.execute(
                    select(sales).where(
                        sales.c.merchant_id == p.merchant_id, sales.c.order_id == v["order_id"]
                    )
                ).one()
                if not _same(row, v):
                    raise _conflict(v["order_id"])
                status[v["order_id"]] = "replayed"
                continue
            status[v["order_id"]] = "recorded"
            events.append(
                outbox.event_row(
                    type="sale.recorded",
                    merchant_id=p.merchant_id,
                    store_code=v["store_code"],
                    occurred_at=at,
                    recorded_at=now,
                    data={
                        "sale_id": v["id"],
                        "order_id": v["order_id"],
                        "store": v["store_code"],
                        "channel": v["channel"],
                        "customer": next(
                            (s.customer for s in specs if s.order_id == v["order_id"]), None
                        ),
                        "amount": v["amount"],
                        "coupon_order": v["coupon_order"],
                        "occurred_at": iso(at),
                        "recorded_at": iso(now),
                    },
                )
            )
        outbox.append(conn, events)
    return {
        "orders": [
            {"order_id": oid, "status": status[oid]}
            for oid in dict.fromkeys(s.order_id for s in specs)
        ],
        "recorded": sum(1 for x in status.values() if x == "recorded"),
        "replayed": sum(1 for x in status.values() if x == "replayed"),
    }


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

"""Merchants, stores, products and customers (admin CRUD, off the hot path)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

from hub.db.engine import read_conn, write_conn
from hub.db.schema import customers, merchants, products, stores
from hub.domain.errors import refuse
from hub.domain.ids import new_id
from hub.services.jsonio import iso
from hub.services.principal import Principal


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise refuse(
            "invalid_request",
            f"Unknown time zone {name!r}",
            errors=[{"field": "timezone", "message": "unknown IANA time zone"}],
        ) from None


def create_merchant(engine: Engine, name: str, timezone: str, now: datetime) -> str:
    check_timezone(timezone)
    merchant_id = new_id("mch")
    with write_conn(engine) as conn:
        conn.execute(
            insert(merchants).values(id=merchant_id, name=name, timezone=timezone, created_at=now)
        )
    return merchant_id


def get_merchant(engine: Engine, p: Principal) -> dict[str, Any]:
    with read_conn(engine) as conn:
        row = conn.execute(select(merchants).where(merchants.c.id == p.merchant_id)).one()
    return {
        "id": row.id,
        "name": row.name,
        "timezone": row.timezone,
        "created_at": iso(row.created_at),
    }


# --- stores, products, customers ------------------------------------------------------


def _insert_unique(conn: Connection, table: Table, values: dict[str, Any], what: str) -> None:
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(**values))
    except IntegrityError:
        raise refuse("already_exists", f"{what} exists already.") from None


def create_store(
    engine: Engine, p: Principal, code: str, name: str, now: datetime
) -> dict[str, Any]:
    p.require_admin()
    values = {
        "id": new_id("sto"),
        "merchant_id": p.merchant_id,
        "code": code,
        "name": name,
        "created_at": now,
    }
    with write_conn(engine) as conn:
        _insert_unique(conn, stores, values, f"Store {code}")
    return {"code": code, "name": name, "created_at": iso(now)}


def list_stores(engine: Engine, p: Principal) -> list[dict[str, Any]]:
    q = (
        select(stores.c.code, stores.c.name, stores.c.created_at)
        .where(stores.c.merchant_id == p.merchant_id)
        .order_by(stores.c.code)
    )
    if p.store_id is not None:
        q = q.where(stores.c.id == p.store_id)
    elif p.stores is not None:
        q = q.where(stores.c.code.in_(p.stores))
    with read_conn(engine) as conn:
        return [
            {"code": r.code, "name": r.name, "created_at": iso(r.created_at)}
            for r in conn.execute(q)
        ]


def create_product(
    engine: Engine, p: Principal, sku: str, name: str, category: str, price: int, now: datetime
) -> dict[str, Any]:
    p.require_admin()
    values = {
        "id": new_id("prd"),
        "merchant_id": p.merchant_id,
        "sku": sku,
        "name": name,
        "category": category,
        "price": price,
        "created_at": now,
    }
    with write_conn(engine) as conn:
        _insert_unique(conn, products, values, f"Product {sku}")
    return {"sku": sku, "name": name, "category": category, "price": price}


def list_products(engine: Engine, p: Principal) -> list[dict[str, Any]]:
    q = (
        select(products.c.sku, products.c.name, products.c.category, products.c.price)
        .where(products.c.merchant_id == p.merchant_id)
        .order_by(products.c.sku)
    )
    with read_conn(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def create_customer(
    engine: Engine,
    p: Principal,
    external_id: str,
    name: str | None,
    phone: str | None,
    now: datetime,
) -> dict[str, Any]:
    p.require_admin()
    values = {
        "id": new_id("cus"),
        "merchant_id": p.merchant_id,
        "external_id": external_id,
        "name": name,
        "phone": phone,
        "created_at": now,
    }
    with write_conn(engine) as conn:
        _insert_unique(conn, customers, values, f"Customer {external_id}")
    return {"external_id": external_id, "name": name, "phone": phone}


def list_customers(
    engine: Engine, p: Principal, limit: int = 200, after: str | None = None
) -> list[dict[str, Any]]:
    p.require("admin", "analyst")
    q = (
        select(customers.c.external_id, customers.c.name, customers.c.phone)
        .where(customers.c.merchant_id == p.merchant_id)
        .order_by(customers.c.external_id)
        .limit(limit)
    )
    if after is not None:
        q = q.where(customers.c.external_id > after)
    with read_conn(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


"""Merchants, stores, products, customers and API keys (admin CRUD, off the hot path)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

from hub.db.engine import read_conn, write_conn
from hub.db.schema import api_keys, customers, merchants, products, stores
from hub.domain.errors import refuse
from hub.domain.ids import new_id
from hub.services.jsonio import iso
from hub.services.principal import ROLES, Principal

TOKEN_PREFIX = "hk"


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


# --- API keys ---------------------------------------------------------------------


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    id: str
    token: str  # shown once; only its hash is stored
    role: str
    store: str | None


def create_key(
    engine: Engine,
    merchant_id: str,
    role: str,
    now: datetime,
    store_code: str | None = None,
    name: str = "",
) -> NewKey:
    if role not in ROLES:
        raise refuse(
            "invalid_request",
            f"role must be one of {list(ROLES)}",
            errors=[{"field": "role", "message": "unknown role"}],
        )
    if (role == "store") != (store_code is not None):
        raise refuse(
            "invalid_request",
            "A store key names exactly one store; an admin key names none.",
            errors=[{"field": "store", "message": "store required for role store"}],
        )
    key_id = new_id("key")
    secret = secrets.token_urlsafe(32)
    with write_conn(engine) as conn:
        if (
            conn.execute(select(merchants.c.id).where(merchants.c.id == merchant_id)).first()
            is None
        ):
            raise refuse("not_found", f"No merchant {merchant_id}", status=404)
        store_id = None
        if store_code is not None:
            store_id = conn.execute(
                select(stores.c.id).where(
                    stores.c.merchant_id == merchant_id, stores.c.code == store_code
                )
            ).scalar()
            if store_id is None:
                raise refuse("store_not_found", f"No store with code {store_code}.")
        conn.execute(
            insert(api_keys).values(
                id=key_id,
                merchant_id=merchant_id,
                role=role,
                store_id=store_id,
                name=name or f"{role} key",
                secret_hash=_hash_secret(secret),
                created_at=now,
            )
        )
    return NewKey(id=key_id, token=f"{TOKEN_PREFIX}.{key_id}.{secret}", role=role, store=store_code)


def authenticate(engine: Engine, token: str) -> Principal | None:
    """The principal for a bearer token, or ``None`` if unknown/revoked/malformed."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    _prefix, key_id, secret = parts
    with engine.connect() as conn:
        row = conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.merchant_id,
                api_keys.c.role,
                api_keys.c.store_id,
                api_keys.c.secret_hash,
                api_keys.c.revoked_at,
                stores.c.code,
                merchants.c.timezone,
            )
            .select_from(
                api_keys.join(merchants, merchants.c.id == api_keys.c.merchant_id).outerjoin(
                    stores, stores.c.id == api_keys.c.store_id
                )
            )
            .where(api_keys.c.id == key_id)
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash_secret(secret)):
        return None
    return Principal(
        key_id=row.id,
        merchant_id=row.merchant_id,
        role=row.role,
        tz=ZoneInfo(row.timezone),
        store_id=row.store_id,
        store_code=row.code,
    )


# --- stores, products, customers ------------------------------------------------------


def _insert_unique(conn: Connection, table: Table, values: dict[str, Any], what: str) -> None:
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(**values))
    except IntegrityError:
        raise refuse("already_exists", f"{what} exists already.", status=409) from None


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
    p.require_admin()
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

"""API keys: create (the token is shown once; only its SHA-256 is stored), list,
revoke, expire, and authenticate (recording when a key was last used)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, insert, or_, select, update

from hub.db.engine import read_conn, write_conn
from hub.db.schema import api_keys, merchants, stores
from hub.domain.errors import refuse
from hub.domain.ids import new_id
from hub.domain.templates import CHANNELS
from hub.domain.validity import to_utc
from hub.services import audit
from hub.services.jsonio import iso
from hub.services.principal import ROLES, Principal

TOKEN_PREFIX = "hk"
LAST_USED_RESOLUTION = timedelta(seconds=60)  # last_used_at is written at most this often


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    id: str
    token: str  # shown once; only its hash is stored
    role: str
    store: str | None
    stores: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    channels: tuple[str, ...] | None = None


def _invalid(field: str, message: str) -> Exception:
    return refuse("invalid_request", message, errors=[{"field": field, "message": message}])


def _check_shape(
    role: str,
    store_code: str | None,
    store_codes: list[str] | None,
    expires_at: datetime | None,
    now: datetime,
    channels: Sequence[str] | None = None,
) -> None:
    if role not in ROLES:
        raise _invalid("role", f"role must be one of {list(ROLES)}")
    if (role == "store") != (store_code is not None):
        raise _invalid("store", "A store key names exactly one store; other roles name none.")
    if store_codes is not None and role != "analyst":
        raise _invalid("stores", "Only analyst keys are limited to a list of stores.")
    if store_codes is not None and not store_codes:
        raise _invalid("stores", "stores, when given, lists at least one store code.")
    if channels is not None and role != "app":
        raise _invalid("channels", "Only app keys are limited to a list of channels.")
    if channels is not None and (not channels or set(channels) - set(CHANNELS)):
        raise _invalid("channels", f"channels lists at least one of {list(CHANNELS)}.")
    if expires_at is not None and expires_at.tzinfo is not None:
        to_utc(expires_at, "expires_at")  # 9999-12-31T23:59:59-14:00 has no UTC instant
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise _invalid("expires_at", "expires_at must be a future time with a time zone.")


def create_key(
    engine: Engine,
    merchant_id: str,
    role: str,
    now: datetime,
    store_code: str | None = None,
    name: str = "",
    *,
    store_codes: list[str] | None = None,
    expires_at: datetime | None = None,
    created_by: Principal | None = None,
    channels: Sequence[str] | None = None,
) -> NewKey:
    """A new key; ``created_by`` (the admin making it through the API or CLI) is
    recorded and audited. ``channels`` limits an app key (None: every channel)."""
    _check_shape(role, store_code, store_codes, expires_at, now, channels)
    chans = sorted(set(channels)) if channels is not None else None
    key_id = new_id("key")
    secret = secrets.token_urlsafe(32)
    with write_conn(engine) as conn:
        if (
            conn.execute(select(merchants.c.id).where(merchants.c.id == merchant_id)).first()
            is None
        ):
            raise refuse("not_found", f"No merchant {merchant_id}")
        known = set(
            conn.execute(select(stores.c.code).where(stores.c.merchant_id == merchant_id))
            .scalars()
            .all()
        )
        for code in [*([store_code] if store_code else []), *(store_codes or [])]:
            if code not in known:
                raise refuse("store_not_found", f"No store with code {code}.")
        store_id = None
        if store_code is not None:
            store_id = conn.execute(
                select(stores.c.id).where(
                    stores.c.merchant_id == merchant_id, stores.c.code == store_code
                )
            ).scalar()
        conn.execute(
            insert(api_keys).values(
                id=key_id,
                merchant_id=merchant_id,
                role=role,
                store_id=store_id,
                stores=sorted(set(store_codes)) if store_codes is not None else None,
                channels=chans,
                name=name or f"{role} key",
                secret_hash=_hash_secret(secret),
                created_at=now,
                expires_at=expires_at,
                created_by=created_by.key_id if created_by else None,
            )
        )
        if created_by is not None:
            audit.record(
                conn,
                created_by,
                "key.created",
                "api_key",
                key_id,
                now,
                role=role,
                store=store_code,
                stores=store_codes,
                channels=chans,
                expires_at=iso(expires_at) if expires_at else None,
            )
    return NewKey(
        id=key_id,
        token=f"{TOKEN_PREFIX}.{key_id}.{secret}",
        role=role,
        store=store_code,
        stores=tuple(sorted(set(store_codes))) if store_codes is not None else None,
        expires_at=expires_at,
        channels=tuple(chans) if chans is not None else None,
    )


_AUTH = select(
    api_keys.c.id,
    api_keys.c.merchant_id,
    api_keys.c.role,
    api_keys.c.store_id,
    api_keys.c.stores,
    api_keys.c.channels,
    api_keys.c.secret_hash,
    api_keys.c.revoked_at,
    api_keys.c.expires_at,
    api_keys.c.last_used_at,
    stores.c.code,
    merchants.c.timezone,
).select_from(
    api_keys.join(merchants, merchants.c.id == api_keys.c.merchant_id).outerjoin(
        stores, stores.c.id == api_keys.c.store_id
    )
)


def authenticate(engine: Engine, token: str, now: datetime | None = None) -> Principal | None:
    """The principal for a bearer token, or ``None`` if unknown, revoked, expired or
    malformed. Records the key's last use (at most once a minute)."""
    found = authenticate_key(engine, token, now)
    return found[0] if found is not None else None


def authenticate_key(
    engine: Engine, token: str, now: datetime | None = None
) -> tuple[Principal, datetime | None] | None:
    """As :func:`authenticate`, with the key's ``expires_at`` (for a cache of verified
    keys, which must not outlive it)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    _prefix, key_id, secret = parts
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(_AUTH.where(api_keys.c.id == key_id)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash_secret(secret)):
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
        with write_conn(engine) as conn:
            conn.execute(
                update(api_keys)
                .where(
                    api_keys.c.id == key_id,
                    or_(
                        api_keys.c.last_used_at.is_(None),
                        api_keys.c.last_used_at < now - LAST_USED_RESOLUTION,
                    ),
                )
                .values(last_used_at=now)
            )
    principal = Principal(
        key_id=row.id,
        merchant_id=row.merchant_id,
        role=row.role,
        tz=ZoneInfo(row.timezone),
        store_id=row.store_id,
        store_code=row.code,
        stores=tuple(row.stores) if row.stores is not None else None,
        channels=tuple(row.channels) if row.channels is not None else None,
    )
    return principal, row.expires_at


def _view(row: Any, now: datetime) -> dict[str, Any]:
    if row.revoked_at is not None:
        state = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "store": row.code,
        "stores": row.stores,
        "channels": row.channels,
        "status": state,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at) if row.expires_at else None,
        "revoked_at": iso(row.revoked_at) if row.revoked_at else None,
        "last_used_at": iso(row.last_used_at) if row.last_used_at else None,
    }


_LIST = select(
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.role,
    api_keys.c.stores,
    api_keys.c.channels,
    api_keys.c.created_at,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
    api_keys.c.last_used_at,
    stores.c.code,
).select_from(api_keys.outerjoin(stores, stores.c.id == api_keys.c.store_id))


def list_keys(engine: Engine, p: Principal, now: datetime) -> list[dict[str, Any]]:
    p.require("admin")
    with read_conn(engine) as conn:
        rows = conn.execute(
            _LIST.where(api_keys.c.merchant_id == p.merchant_id).order_by(api_keys.c.created_at)
        ).all()
    return [_view(r, now) for r in rows]


def revoke_key(engine: Engine, p: Principal, key_id: str, now: datetime) -> dict[str, Any]:
    """Revoke a key of the caller's merchant (idempotent: a revoked key stays revoked at
    its first revocation time). Takes effect in every process within the principal
    cache's few seconds."""
    p.require("admin")
    with write_conn(engine) as conn:
        revoked = conn.execute(
            update(api_keys)
            .where(
                and_(
                    api_keys.c.id == key_id,
                    api_keys.c.merchant_id == p.merchant_id,
                    api_keys.c.revoked_at.is_(None),
                )
            )
            .values(revoked_at=now)
            .returning(api_keys.c.id)
        ).first()
        if revoked is not None:
            audit.record(conn, p, "key.revoked", "api_key", key_id, now)
        row = conn.execute(
            _LIST.where(api_keys.c.id == key_id, api_keys.c.merchant_id == p.merchant_id)
        ).first()
    if row is None:
        raise refuse("not_found", "No such API key for this merchant.")
    return _view(row, now)

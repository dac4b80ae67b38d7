"""Staff members of a store: create, list, read, disable, enable, and hand out
single-use sign-in codes (admin CRUD, off the hot path).

A staff member signs in on a phone with a sign-in code (:mod:`hub.services.staff_sessions`)
and then acts with the ``store`` role's rights for their store only. Disabling a staff
member ends every session of theirs and voids their unused codes in the same
transaction: the API forgets the sessions in its process's cache at once, and other
processes stop within the cache's few seconds (``hub.api.auth.CACHE_SECONDS``).

Who may do what: an admin manages the staff of every store; a store key lists and
reads its own store's staff and hands them sign-in codes (the manager's till); a staff
session reads but hands out no codes (a lost phone must not mint sign-ins for others).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.db.engine import read_conn, write_conn
from hub.db.schema import staff, staff_sessions, staff_sign_in_codes, stores
from hub.domain.errors import refuse
from hub.domain.ids import new_id
from hub.domain.staff import SIGN_IN_CODE_TTL, display_sign_in_code, new_sign_in_code
from hub.services import audit
from hub.services.jsonio import iso
from hub.services.principal import Principal

STAFF_ID_MAX = 40


def code_hash(code: str) -> str:
    """What is stored of a sign-in code (normal form): its SHA-256."""
    return hashlib.sha256(f"hub.staff.sign-in\0{code}".encode()).hexdigest()


_VIEW = select(
    staff.c.id,
    staff.c.merchant_id,
    staff.c.store_id,
    staff.c.name,
    staff.c.external_id,
    staff.c.status,
    staff.c.created_at,
    staff.c.disabled_at,
    stores.c.code.label("store_code"),
).select_from(staff.join(stores, stores.c.id == staff.c.store_id))


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "store": row.store_code,
        "name": row.name,
        "external_id": row.external_id,
        "status": row.status,
        "created_at": iso(row.created_at),
        "disabled_at": iso(row.disabled_at) if row.disabled_at else None,
    }


def _not_found(staff_id: str) -> Exception:
    return refuse("staff_not_found", f"No staff member {staff_id[:STAFF_ID_MAX]}.")


def _store_of(conn: Connection, p: Principal, store_code: str) -> str:
    """The id of the caller's merchant's store ``store_code``; a store key (or staff
    session) names only its own store."""
    if p.store_code is not None and store_code != p.store_code:
        raise refuse(
            "store_forbidden",
            f"This key belongs to store {p.store_code}; it cannot act at {store_code}.",
        )
    found = conn.execute(
        select(stores.c.id).where(
            stores.c.merchant_id == p.merchant_id, stores.c.code == store_code
        )
    ).scalar()
    if found is None:
        raise refuse("store_not_found", f"No store with code {store_code}.", store=store_code)
    return str(found)


def _read(conn: Connection, p: Principal, staff_id: str) -> Any:
    """The staff member of the caller's merchant (and store, for a store key)."""
    if len(staff_id) > STAFF_ID_MAX:
        raise _not_found(staff_id)
    q = _VIEW.where(staff.c.id == staff_id, staff.c.merchant_id == p.merchant_id)
    if p.store_id is not None:
        q = q.where(staff.c.store_id == p.store_id)
    row = conn.execute(q).first()
    if row is None:
        raise _not_found(staff_id)
    return row


def create_staff(
    engine: Engine,
    p: Principal,
    store_code: str,
    name: str,
    now: datetime,
    external_id: str | None = None,
) -> dict[str, Any]:
    """A new active staff member of ``store_code`` (admin). ``external_id`` (the
    merchant's own id for them) is unique per merchant when given."""
    p.require("admin")
    staff_id = new_id("stf")
    with write_conn(engine) as conn:
        store_id = _store_of(conn, p, store_code)
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(staff).values(
                        id=staff_id,
                        merchant_id=p.merchant_id,
                        store_id=store_id,
                        name=name,
                        external_id=external_id,
                        status="active",
                        created_at=now,
                    )
                )
        except IntegrityError:
            raise refuse(
                "already_exists", f"A staff member with external_id {external_id} exists."
            ) from None
        audit.record(
            conn, p, "staff.created", "staff", staff_id, now,
            store=store_code, name=name, external_id=external_id,
        )  # fmt: skip
        row = _read(conn, p, staff_id)
    return _view(row)


def list_staff(engine: Engine, p: Principal, store_code: str) -> list[dict[str, Any]]:
    """The staff of one store, oldest first (a store key: its own store only)."""
    with read_conn(engine) as conn:
        store_id = _store_of(conn, p, store_code)
        rows = conn.execute(
            _VIEW.where(staff.c.store_id == store_id).order_by(staff.c.created_at, staff.c.id)
        ).all()
    return [_view(r) for r in rows]


def get_staff(engine: Engine, p: Principal, staff_id: str) -> dict[str, Any]:
    with read_conn(engine) as conn:
        return _view(_read(conn, p, staff_id))


def disable_staff(engine: Engine, p: Principal, staff_id: str, now: datetime) -> dict[str, Any]:
    """Disable a staff member (admin; idempotent): their sessions end and their unused
    sign-in codes are void, in this transaction. The caller forgets the sessions in its
    process's principal cache (``hub.api.auth.forget_staff``)."""
    p.require("admin")
    with write_conn(engine) as conn:
        _read(conn, p, staff_id)
        changed = conn.execute(
            update(staff)
            .where(staff.c.id == staff_id, staff.c.status == "active")
            .values(status="disabled", disabled_at=now)
            .returning(staff.c.id)
        ).first()
        ended = conn.execute(
            update(staff_sessions)
            .where(staff_sessions.c.staff_id == staff_id, staff_sessions.c.ended_at.is_(None))
            .values(ended_at=now)
            .returning(staff_sessions.c.id)
        ).all()
        conn.execute(
            update(staff_sign_in_codes)
            .where(
                staff_sign_in_codes.c.staff_id == staff_id,
                staff_sign_in_codes.c.used_at.is_(None),
            )
            .values(used_at=now)
        )
        if changed is not None:
            audit.record(
                conn, p, "staff.disabled", "staff", staff_id, now, sessions_ended=len(ended)
            )
        row = _read(conn, p, staff_id)
    return _view(row)


def enable_staff(engine: Engine, p: Principal, staff_id: str, now: datetime) -> dict[str, Any]:
    """Enable a disabled staff member again (admin; idempotent). Their old sessions stay
    ended: they sign in again with a new code."""
    p.require("admin")
    with write_conn(engine) as conn:
        _read(conn, p, staff_id)
        changed = conn.execute(
            update(staff)
            .where(staff.c.id == staff_id, staff.c.status == "disabled")
            .values(status="active", disabled_at=None)
            .returning(staff.c.id)
        ).first()
        if changed is not None:
            audit.record(conn, p, "staff.enabled", "staff", staff_id, now)
        row = _read(conn, p, staff_id)
    return _view(row)


def create_sign_in_code(
    engine: Engine, p: Principal, staff_id: str, now: datetime
) -> dict[str, Any]:
    """A single-use sign-in code for an active staff member, valid 10 minutes (admin,
    or a store key for its own store's staff; never a staff session). Only its hash is
    stored: the code is in this answer only."""
    if p.staff_id is not None:
        raise refuse(
            "forbidden",
            "A staff session cannot hand out sign-in codes; the store's key or an admin does.",
        )
    p.require("admin", "store")
    code = new_sign_in_code()
    expires_at = now + SIGN_IN_CODE_TTL
    with write_conn(engine) as conn:
        row = _read(conn, p, staff_id)
        if row.status != "active":
            raise refuse(
                "staff_inactive",
                f"Staff member {staff_id} is disabled; enable them before handing out a code.",
            )
        conn.execute(
            insert(staff_sign_in_codes).values(
                code_hash=code_hash(code),
                staff_id=staff_id,
                merchant_id=p.merchant_id,
                created_at=now,
                expires_at=expires_at,
            )
        )
        audit.record(
            conn, p, "staff.sign_in_code_created", "staff", staff_id, now,
            expires_at=iso(expires_at),
        )  # fmt: skip
    return {
        "code": display_sign_in_code(code),
        "expires_at": iso(expires_at),
        "staff": {"id": row.id, "name": row.name},
        "store": row.store_code,
    }

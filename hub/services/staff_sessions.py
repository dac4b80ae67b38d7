"""Shift sessions: a staff member's single-use sign-in code exchanged for a bearer token
that lasts until the end of the shift (:func:`hub.domain.staff.shift_end`).

* :func:`sign_in` needs no API key: the code is the credential. It is behind the
  guessing guard like a coupon code (a blocked client address gets 429 before any look-up;
  a wrong, used, expired or malformed code is one failure of ``signin:<address>``,
  answered 401 ``sign_in_code_invalid`` — the same answer for each, so a guesser learns
  nothing). The token (``hs_`` + 256 random bits) is in the answer only; the database
  keeps its SHA-256.
* :func:`authenticate_session` turns ``Authorization: Bearer hs_…`` into a
  :class:`Principal` with role ``store``, the staff member's store, ``key_id`` the
  session's id and ``staff_id``/``staff_name``; a session past its end answers 401
  ``session_expired``, one of a disabled staff member 401 ``staff_disabled``, an unknown
  or signed-out one 401 ``unauthorized``.
* :func:`sign_out` ends the caller's own session; :func:`me` describes it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select, update

from hub.db.engine import read_conn, write_conn
from hub.db.schema import merchants, staff, staff_sessions, staff_sign_in_codes, stores
from hub.domain.errors import DomainError, refuse
from hub.domain.ids import new_id
from hub.domain.staff import parse_sign_in_code, shift_end
from hub.services import audit
from hub.services.guard import Guard
from hub.services.jsonio import iso
from hub.services.principal import Principal
from hub.services.staff import code_hash

TOKEN_PREFIX: Final = "hs_"


def token_hash(token: str) -> str:
    """What is stored of a session token: its SHA-256 (hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_session_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


def _invalid() -> DomainError:
    return refuse(
        "sign_in_code_invalid",
        "This sign-in code is unknown, used or expired; ask for a new one.",
    )


_SESSION = select(
    staff_sessions.c.id,
    staff_sessions.c.staff_id,
    staff_sessions.c.merchant_id,
    staff_sessions.c.store_id,
    staff_sessions.c.created_at,
    staff_sessions.c.expires_at,
    staff_sessions.c.ended_at,
    staff.c.name.label("staff_name"),
    staff.c.status.label("staff_status"),
    stores.c.code.label("store_code"),
    stores.c.name.label("store_name"),
    merchants.c.name.label("merchant_name"),
    merchants.c.timezone,
).select_from(
    staff_sessions.join(staff, staff.c.id == staff_sessions.c.staff_id)
    .join(stores, stores.c.id == staff_sessions.c.store_id)
    .join(merchants, merchants.c.id == staff_sessions.c.merchant_id)
)


def _describe(row: Any) -> dict[str, Any]:
    return {
        "expires_at": iso(row.expires_at),
        "staff": {"id": row.staff_id, "name": row.staff_name},
        "store": {"code": row.store_code, "name": row.store_name},
        "merchant": {"name": row.merchant_name, "timezone": row.timezone},
    }


def sign_in(
    engine: Engine, guard: Guard, raw_code: str, now: datetime, client: str | None
) -> dict[str, Any]:
    """Exchange a sign-in code for a session: ``{"token", "expires_at", "staff",
    "store", "merchant"}`` (201). The code is used up whatever follows."""
    scope = guard.sign_in_scope(client)
    guard.check_scope(engine, scope, now)  # a blocked address: 429 before any look-up
    try:
        return _sign_in(engine, raw_code, now)
    except DomainError as err:
        answer = guard.count_scope(engine, scope, err, now)
        if answer is err:
            raise
        raise answer from None


def _sign_in(engine: Engine, raw_code: str, now: datetime) -> dict[str, Any]:
    code = parse_sign_in_code(raw_code)
    if code is None:
        raise _invalid()
    c = staff_sign_in_codes.c
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session_id = new_id("sss")
    with write_conn(engine) as conn:
        used = conn.execute(
            update(staff_sign_in_codes)
            .where(c.code_hash == code_hash(code), c.used_at.is_(None), c.expires_at > now)
            .values(used_at=now)
            .returning(c.staff_id, c.merchant_id)
        ).first()
        if used is None:
            raise _invalid()
        who = conn.execute(
            select(
                staff.c.name,
                staff.c.status,
                staff.c.store_id,
                stores.c.code,
                merchants.c.timezone,
            )
            .select_from(
                staff.join(stores, stores.c.id == staff.c.store_id).join(
                    merchants, merchants.c.id == staff.c.merchant_id
                )
            )
            .where(staff.c.id == used.staff_id, staff.c.merchant_id == used.merchant_id)
        ).one()
        if who.status != "active":
            raise refuse("staff_disabled", "This staff member is disabled.")
        expires_at = shift_end(now, ZoneInfo(who.timezone))
        conn.execute(
            insert(staff_sessions).values(
                id=session_id,
                token_hash=token_hash(token),
                staff_id=used.staff_id,
                merchant_id=used.merchant_id,
                store_id=who.store_id,
                created_at=now,
                expires_at=expires_at,
            )
        )
        p = Principal(
            key_id=session_id,
            merchant_id=used.merchant_id,
            role="store",
            tz=ZoneInfo(who.timezone),
            store_id=who.store_id,
            store_code=who.code,
            staff_id=used.staff_id,
            staff_name=who.name,
        )
        audit.record(
            conn, p, "staff.signed_in", "staff_session", session_id, now,
            expires_at=iso(expires_at),
        )  # fmt: skip
        row = conn.execute(_SESSION.where(staff_sessions.c.id == session_id)).one()
    return {"token": token, **_describe(row)}


def authenticate_session(
    engine: Engine, token: str, now: datetime
) -> tuple[Principal, datetime] | None:
    """The principal of a live session token and the session's end (a cache of verified
    tokens must not outlive it); ``None`` when unknown or signed out. Raises 401
    ``session_expired`` past the shift's end and ``staff_disabled`` for a disabled staff
    member's session."""
    with engine.connect() as conn:
        row = conn.execute(
            _SESSION.where(staff_sessions.c.token_hash == token_hash(token))
        ).first()
    if row is None:
        return None
    if row.staff_status != "active":
        raise refuse(
            "staff_disabled", "This staff member is disabled; their sessions have ended."
        )
    if row.ended_at is not None:
        return None  # signed out
    if row.expires_at <= now:
        raise refuse(
            "session_expired",
            f"This session ended with the shift at {iso(row.expires_at)}; sign in again.",
            expired_at=iso(row.expires_at),
        )
    principal = Principal(
        key_id=row.id,
        merchant_id=row.merchant_id,
        role="store",
        tz=ZoneInfo(row.timezone),
        store_id=row.store_id,
        store_code=row.store_code,
        staff_id=row.staff_id,
        staff_name=row.staff_name,
    )
    return principal, row.expires_at


def _require_session(p: Principal) -> None:
    if p.staff_id is None:
        raise refuse("not_found", "This key is not a staff session; there is no session here.")


def me(engine: Engine, p: Principal) -> dict[str, Any]:
    """The caller's session: its end, the staff member, store and merchant."""
    _require_session(p)
    with read_conn(engine) as conn:
        row = conn.execute(_SESSION.where(staff_sessions.c.id == p.key_id)).one()
    return _describe(row)


def sign_out(engine: Engine, p: Principal, now: datetime) -> None:
    """End the caller's own session (idempotent while the token still authenticates).
    The caller forgets it in its process's principal cache."""
    _require_session(p)
    with write_conn(engine) as conn:
        ended = conn.execute(
            update(staff_sessions)
            .where(staff_sessions.c.id == p.key_id, staff_sessions.c.ended_at.is_(None))
            .values(ended_at=now)
            .returning(staff_sessions.c.id)
        ).first()
        if ended is not None:
            audit.record(conn, p, "staff.signed_out", "staff_session", p.key_id, now)

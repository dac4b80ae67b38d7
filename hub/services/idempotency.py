"""Idempotency-Key handling (docs/architecture.md, "The redeem, step by step").

A key is scoped to the API key that sent it. The record is inserted in the *same*
transaction as the work it protects and updated with the response before commit,
so a crash leaves either nothing (the retry runs afresh) or the finished response
(the retry replays it). A record is never visible half-done.

* Same key, same request → the stored response, replayed byte for byte.
* Same key, different request (other body or endpoint) → 422 ``idempotency_key_reused``.
* Same key while the first request is still running → 409 ``idempotency_key_in_flight``.
  On PostgreSQL the running request holds a transaction-scoped advisory lock on the
  key; a second request that cannot take the lock and sees no committed record is
  in flight. On SQLite, writers are serialised (``BEGIN IMMEDIATE``), so the second
  request waits and then replays.
* Records live ``ttl`` (24 h by default); :func:`purge_expired` deletes older ones and
  an expired record found by a new request is replaced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CTE, Connection, Engine, Update, and_, bindparam, delete, select, update

from hub.db.engine import write_conn
from hub.db.fastexec import FastStatement
from hub.db.schema import idempotency_keys as t
from hub.db.upsert import InsertIfAbsent
from hub.domain.errors import refuse
from hub.services.commands import HttpResult
from hub.services.jsonio import check_text, dumps

DEFAULT_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


def check_key(raw: str | None) -> str:
    if raw is None:
        raise refuse(
            "idempotency_key_required",
            "Send an Idempotency-Key header (1–255 characters) so retries are safe.",
        )
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or not raw.strip():
        raise refuse(
            "idempotency_key_invalid",
            "The Idempotency-Key header must be 1–255 characters.",
        )
    check_text(raw, "Idempotency-Key")  # a vendor request id may carry one (POS formats)
    return raw


def request_hash(endpoint: str, canonical_body: bytes) -> str:
    h = hashlib.sha256(endpoint.encode())
    h.update(b"\0")
    h.update(canonical_body)
    return h.hexdigest()


def _lock_id(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"{scope}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# Hot-path statements, built once (building Core statements per call costs more than
# executing them).
_INSERT = InsertIfAbsent(t, t.c.key)
_SELECT = select(
    t.c.endpoint, t.c.request_hash, t.c.response_status, t.c.response_body, t.c.expires_at
).where(t.c.api_key_id == bindparam("b_scope"), t.c.key == bindparam("b_key"))
_DELETE_EXPIRED = delete(t).where(
    t.c.api_key_id == bindparam("b_scope"),
    t.c.key == bindparam("b_key"),
    t.c.expires_at <= bindparam("b_now"),
)
_COMPLETE = (
    update(t)
    .where(t.c.api_key_id == bindparam("b_scope"), t.c.key == bindparam("b_key"))
    .values(response_status=bindparam("b_status"), response_body=bindparam("b_body"))
)
_FAST_COMPLETE = FastStatement(_COMPLETE)


def _try_insert(conn: Connection, values: dict[str, object], scope: str, key: str) -> bool:
    # PostgreSQL: the key's advisory lock and the insert in one statement (the insert
    # happens only when the lock was free); SQLite has no such lock (no hash to make)
    if conn.dialect.name != "postgresql":
        return _INSERT.inserted(conn, values)
    return _INSERT.inserted_locked(conn, values, _lock_id(scope, key))


def claim(
    conn: Connection,
    *,
    scope: str,
    key: str,
    endpoint: str,
    req_hash: str,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
) -> StoredResponse | None:
    """Claim ``key`` for this request in the current transaction.

    Returns ``None`` when the caller now owns the key (it must call :func:`complete`
    before committing), or the stored response to replay. Raises 409/422 refusals.
    """
    values: dict[str, object] = {
        "api_key_id": scope,
        "key": key,
        "endpoint": endpoint,
        "request_hash": req_hash,
        "created_at": now,
        "expires_at": now + ttl,
    }
    if _try_insert(conn, values, scope, key):
        return None
    ident = {"b_scope": scope, "b_key": key}
    row = conn.execute(_SELECT, ident).first()
    if row is not None and row.expires_at <= now:
        conn.execute(_DELETE_EXPIRED, {**ident, "b_now": now})
        if _try_insert(conn, values, scope, key):
            return None
        row = None
    if row is None or row.response_status is None:
        raise refuse(
            "idempotency_key_in_flight",
            "A request with this Idempotency-Key is still being processed; "
            "retry shortly with the same key.",
        )
    if row.endpoint != endpoint or row.request_hash != req_hash:
        raise refuse(
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request; "
            "use a new key for a new request.",
        )
    return StoredResponse(status=row.response_status, body=bytes(row.response_body))


def complete(conn: Connection, *, scope: str, key: str, status: int, body: bytes) -> None:
    _FAST_COMPLETE.run(conn, completion_params(scope=scope, key=key, status=status, body=body))


def create_once(
    engine: Engine,
    *,
    scope: str,
    key: str,
    endpoint: str,
    canonical_body: bytes,
    now: datetime,
    make: Callable[[Connection], dict[str, Any]],
) -> HttpResult:
    """What ``make`` creates (201, its JSON view) in one write transaction with the
    key's record, or the first answer replayed. A refusal ``make`` raises rolls the
    key back with everything else: it is answered, never stored (the claims and
    transfer offers; the redeem's contract, which stores refusals, is
    :func:`hub.services.redeem.run_once`)."""
    req_hash = request_hash(endpoint, canonical_body)
    with write_conn(engine) as conn:
        stored = claim(conn, scope=scope, key=key, endpoint=endpoint, req_hash=req_hash, now=now)
        if stored is not None:
            return HttpResult(stored.status, stored.body, replayed=True)
        body = dumps(make(conn))
        complete(conn, scope=scope, key=key, status=201, body=body)
    return HttpResult(201, body)


def completion_with(*ctes: CTE) -> Update:
    """The completion statement with data-modifying ``ctes`` (PostgreSQL: inserts that
    run in the same statement; build it once); execute it with
    :func:`completion_params` plus the CTEs' parameters."""
    return _COMPLETE.add_cte(*ctes)


def completion_params(*, scope: str, key: str, status: int, body: bytes) -> dict[str, object]:
    return {"b_scope": scope, "b_key": key, "b_status": status, "b_body": body}


def release(conn: Connection, *, scope: str, key: str) -> None:
    """Give up a key claimed in this transaction without an outcome to store (the
    guard's 429): the next request with it runs afresh."""
    conn.execute(delete(t).where(t.c.api_key_id == scope, t.c.key == key))


def purge_expired(conn: Connection, now: datetime) -> int:
    """Delete records whose time is up; returns how many."""
    result = conn.execute(delete(t).where(and_(t.c.expires_at <= now)))
    return int(result.rowcount or 0)

"""Engines: SQLite (embedded default) and PostgreSQL, with the same transaction semantics.

* SQLite runs in WAL mode with a busy timeout; write transactions start with
  ``BEGIN IMMEDIATE`` (ask for it with :func:`write_conn`), so concurrent writers
  queue instead of failing with "database is locked" half-way.
* PostgreSQL URLs (``postgresql://`` or ``postgres://``) are served by psycopg 3; the
  redeem/validate/POS hot path uses asyncpg on the same database from the event loop
  (:func:`make_async_engine`; the URL stays ``postgresql://``).
* The pool is bounded (:class:`PoolSettings`, from ``HUB_DB_POOL_*``); running out of
  connections is :func:`busy_reason` ``database_busy``, which the API answers with 503
  and ``Retry-After`` instead of an internal error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import structlog
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.db.budget import ConnectionBudget
from hub.db.fastexec import driver_sql
from hub.settings import env as read_env

DEFAULT_SQLITE_PATH = "hub.db"

log = structlog.get_logger("hub.db")


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and sqlite paths; pick the drivers we ship."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if "://" not in url:
        url = f"sqlite:///{url}"
    return url


def async_url(url: str) -> str:
    """The asyncpg spelling of a PostgreSQL URL (the hot path's driver); other URLs are
    returned as they are."""
    url = normalize_url(url)
    for sync in ("postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(sync):
            return "postgresql+asyncpg://" + url[len(sync) :]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@dataclass(frozen=True)
class PoolSettings:
    """The connection pool of one process: ``size`` kept open, up to ``max_overflow``
    more under load, and ``timeout`` seconds a request waits for a free connection
    before it is answered 503 ``database_busy`` with ``Retry-After``.

    From ``HUB_DB_POOL_SIZE``, ``HUB_DB_MAX_OVERFLOW``, ``HUB_DB_POOL_TIMEOUT``; the
    defaults suit one ``hub serve`` process (PostgreSQL allows 100 connections by
    default: keep the sum over every process below it)."""

    size: int
    max_overflow: int
    timeout: float

    @classmethod
    def from_env(cls, backend: str, env: Mapping[str, str] | None = None) -> PoolSettings:
        e = env  # None: the process environment, read now (hub.settings)
        size, overflow = POOL_DEFAULTS.get(backend, POOL_DEFAULTS["postgresql"])
        return cls(
            size=_env_number(e, "HUB_DB_POOL_SIZE", size, int, minimum=1),
            max_overflow=_env_number(e, "HUB_DB_MAX_OVERFLOW", overflow, int, minimum=0),
            timeout=_env_number(e, "HUB_DB_POOL_TIMEOUT", POOL_TIMEOUT, float, minimum=0.001),
        )


POOL_DEFAULTS: dict[str, tuple[int, int]] = {"sqlite": (8, 32), "postgresql": (10, 20)}
POOL_TIMEOUT = 10.0

N = TypeVar("N", int, float)


def _env_number(
    environ: Mapping[str, str] | None,
    name: str,
    default: N,
    kind: Callable[[str], N],
    *,
    minimum: N,
) -> N:
    raw = (read_env(name, environ) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw[:40]!r}") from None
    if not value >= minimum or value != value:  # also refuses NaN
        raise ValueError(f"{name} must be at least {minimum}, not {raw[:40]!r}")
    return value


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; its pool comes from :class:`PoolSettings` (the
    environment) unless ``pool_size``/``max_overflow``/``pool_timeout`` are given."""
    url = normalize_url(url)
    u = make_url(url)
    # Statement parameters carry secrets (subscription configs): keep them out of
    # SQLAlchemy's SQL log lines and of exception messages (which end up in error logs).
    kwargs.setdefault("hide_parameters", True)
    backend = u.get_backend_name()
    pool = PoolSettings.from_env(backend)
    kwargs.setdefault("pool_size", pool.size)
    kwargs.setdefault("max_overflow", pool.max_overflow)
    kwargs.setdefault("pool_timeout", pool.timeout)
    if backend == "sqlite":
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )
        _sqlite_setup(engine)
        return engine
    engine = create_engine(url, **kwargs)
    _postgresql_setup(engine)
    return engine


def _pool_bounds(engine: Engine) -> tuple[int, int, float]:
    pool: Any = engine.pool
    size = pool.size() if callable(getattr(pool, "size", None)) else POOL_DEFAULTS["postgresql"][0]
    overflow = getattr(pool, "_max_overflow", POOL_DEFAULTS["postgresql"][1])
    timeout = getattr(pool, "_timeout", POOL_TIMEOUT)
    return int(size), max(int(overflow), 0), float(timeout)


def budget_for(engine: Engine) -> ConnectionBudget:
    """The process's connection budget (:mod:`hub.db.budget`) from ``engine``'s pool
    bounds: hot-path work plus ``engine``'s checked-out connections stay within them."""
    size, overflow, timeout = _pool_bounds(engine)
    pool: Any = engine.pool
    checkedout = getattr(pool, "checkedout", None)
    return ConnectionBudget(
        size=size,
        limit=size + overflow,
        timeout=timeout,
        others_in_use=checkedout if callable(checkedout) else (lambda: 0),
    )


def _json_text(value: Any) -> str:
    """JSON for a JSON/JSONB parameter: msgspec (several times faster than the standard
    library, which costs ~4 % of a redeem's CPU); the standard library for what msgspec
    will not encode (non-string keys)."""
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return json.dumps(value)


def make_async_engine(engine: Engine) -> AsyncEngine:
    """An asyncpg engine on ``engine``'s PostgreSQL database with the same pool bounds
    (size, overflow, timeout) — the redeem/validate/POS hot path runs its Core
    statements on it, on the event loop (:func:`hub.db.hotpath.run_hot`). The caller
    owns it: ``await dispose()`` it when the event loop is done (the app's shutdown)."""
    size, overflow, timeout = _pool_bounds(engine)
    url = async_url(engine.url.render_as_string(hide_password=False))
    return create_async_engine(
        url,
        hide_parameters=True,
        pool_size=size,
        max_overflow=overflow,
        pool_timeout=timeout,
        # every timestamp read in UTC, as the psycopg engine's connect hook sets it
        connect_args={"server_settings": {"timezone": "UTC"}},
        json_serializer=_json_text,
        json_deserializer=msgspec.json.decode,
    )


def _postgresql_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Every timestamp is read in UTC whatever the server's TimeZone: psycopg reads a
        # timestamptz in the session's zone, and 9999-12-31T23:59:59Z read at +08:00 is
        # "after year 10K" (a DataError where SQLite answers).
        dbapi_conn.execute("SET TIME ZONE 'UTC'")
        dbapi_conn.commit()


# PostgreSQL SQLSTATEs meaning "the server has no room for this now" (too_many_connections,
# cannot_connect_now, lock_not_available, deadlock_detected, serialization_failure,
# query_canceled by a statement/lock timeout).
_BUSY_SQLSTATES = frozenset({"53300", "57P03", "55P03", "40P01", "40001", "57014"})
_BUSY_MESSAGES = (
    "too many clients",
    "remaining connection slots are reserved",
    "database is locked",
    "database table is locked",
)


def busy_reason(exc: BaseException) -> str | None:
    """``"database_busy"`` when ``exc`` says the database (or this process's pool) has no
    connection or lock to spare right now, ``"database_unavailable"`` when the database
    cannot be reached; ``None`` for anything else. Both are worth a retry."""
    if isinstance(exc, sa_exc.TimeoutError):  # QueuePool limit … reached, timed out
        return "database_busy"
    if not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return None
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    text = str(orig if orig is not None else exc).lower()
    if sqlstate in _BUSY_SQLSTATES or any(m in text for m in _BUSY_MESSAGES):
        return "database_busy"
    return "database_unavailable"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # on the DBAPI cursor (hub/db/fastexec.py): exec_driver_sql's execution context
        # was 7 % of a redeem's service time
        if conn.get_execution_options().get("hub_write"):
            driver_sql(conn, "BEGIN IMMEDIATE")
        else:
            driver_sql(conn, "BEGIN")


_SQLITE_WRITERS: dict[int, threading.Lock] = {}
_REGISTRY_LOCK = threading.Lock()


def _writer_lock(engine: Engine) -> threading.Lock | None:
    """One in-process lock per SQLite engine.

    SQLite allows one writer at a time; when several threads wait for the file lock
    they poll it with sleeps of up to 100 ms (the busy handler), which wrecks latency.
    Queueing on a Python lock first hands the write lock over at once. Other processes
    on the same file still wait through ``busy_timeout``.
    """
    if not is_sqlite(engine):
        return None
    key = id(engine)
    lock = _SQLITE_WRITERS.get(key)
    if lock is None:
        with _REGISTRY_LOCK:
            lock = _SQLITE_WRITERS.setdefault(key, threading.Lock())
    return lock


AFTER_COMMIT_KEY = "hub_after_commit"


def after_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the transaction of ``conn`` (a :func:`write_conn`) commits.

    Used to enqueue work that must not be seen before the commit (new deliveries).
    Never runs if the transaction rolls back.
    """
    conn.info.setdefault(AFTER_COMMIT_KEY, []).append(callback)


@contextmanager
def write_conn(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on exit."""
    lock = _writer_lock(engine)
    callbacks: list[Callable[[], None]] = []
    with (
        lock if lock is not None else nullcontext(),
        engine.connect().execution_options(hub_write=True) as conn,
    ):
        conn.info.pop(AFTER_COMMIT_KEY, None)
        with conn.begin():
            yield conn
        callbacks = conn.info.pop(AFTER_COMMIT_KEY, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the commit stands; sweepers pick up whatever was missed
            log.exception("after_commit.failed")


@contextmanager
def read_conn(engine: Engine) -> Iterator[Connection]:
    """A connection in a read-only unit of work."""
    with engine.connect() as conn, conn.begin():
        yield conn

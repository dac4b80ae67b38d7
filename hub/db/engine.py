"""Engines: SQLite (embedded default) and PostgreSQL, with the same transaction semantics.

* SQLite runs in WAL mode with a busy timeout; write transactions start with
  ``BEGIN IMMEDIATE`` (ask for it with :func:`write_conn`), so concurrent writers
  queue instead of failing with "database is locked" half-way.
* PostgreSQL URLs (``postgresql://`` or ``postgres://``) are served by psycopg 3.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

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


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    u = make_url(url)
    # Statement parameters carry secrets (subscription configs): keep them out of
    # SQLAlchemy's SQL log lines and of exception messages (which end up in error logs).
    kwargs.setdefault("hide_parameters", True)
    if u.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=kwargs.pop("pool_size", 8),
            max_overflow=kwargs.pop("max_overflow", 32),
            **kwargs,
        )
        _sqlite_setup(engine)
        return engine
    return create_engine(
        url,
        pool_size=kwargs.pop("pool_size", 10),
        max_overflow=kwargs.pop("max_overflow", 40),
        **kwargs,
    )


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
        if conn.get_execution_options().get("hub_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


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

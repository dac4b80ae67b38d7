"""Engines: SQLite (embedded default) and PostgreSQL, with the same transaction semantics.

* SQLite runs in WAL mode with a busy timeout; write transactions start with
  ``BEGIN IMMEDIATE`` (ask for it with :func:`write_conn`), so concurrent writers
  queue instead of failing with "database is locked" half-way.
* PostgreSQL URLs (``postgresql://`` or ``postgres://``) are served by psycopg 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

DEFAULT_SQLITE_PATH = "hub.db"


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
        pool_pre_ping=True,
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


@contextmanager
def write_conn(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on exit."""
    with engine.connect().execution_options(hub_write=True) as conn, conn.begin():
        yield conn


@contextmanager
def read_conn(engine: Engine) -> Iterator[Connection]:
    """A connection in a read-only unit of work."""
    with engine.connect() as conn, conn.begin():
        yield conn

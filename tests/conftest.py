"""Shared fixtures. Every test that touches the database runs on SQLite *and* PostgreSQL.

PostgreSQL comes from ``HUB_TEST_PG_URL`` (default: the local server, database
``test``); each run creates and drops its own database there. It is never skipped
silently: if it does not answer, the PostgreSQL half fails with a clear message.
Set ``HUB_TEST_BACKENDS=sqlite`` to run SQLite only on a machine without PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
import uvicorn
from cryptography.fernet import Fernet
from hypothesis import settings as hypothesis_settings
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from hub import egress
from hub.api.app import create_app
from hub.api.state import HubState
from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.db.schema import metadata
from hub.services import catalog, issuing, keys
from hub.services.principal import Principal
from hub.services.settings import Settings

# One secret key for the whole run, so no test depends on (or writes) a key file in the
# working directory; the key-file tests clear it themselves.
os.environ.setdefault("HUB_SECRET_KEY", Fernet.generate_key().decode())
# The test receivers listen on loopback: open it to the egress policy (the hub's default
# refuses it) for this process and the `hub serve`/`hub worker` processes tests start.
# tests/security/test_egress.py runs with an empty allow-list.
os.environ.setdefault("HUB_EGRESS_ALLOW", "127.0.0.0/8,::1/128")


def _no_dns(host: str, port: int) -> list[str]:
    """Tests never ask DNS (no traffic off this machine): ``localhost`` is loopback and
    every other name is unresolvable (a config naming it is accepted; respx answers
    before any connection). tests/security/test_egress.py installs names of its own."""
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        return ["127.0.0.1", "::1"]
    raise OSError("no DNS in the tests")


egress.resolver = _no_dns

PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
# A small bounded pool for the session's engine: the PostgreSQL server is shared, and a
# request that finds no connection free in time is answered 503 database_busy (retried
# by the race tests as a client would), never a 500.
TEST_POOL: dict[str, Any] = {"pool_size": 5, "max_overflow": 10, "pool_timeout": 30}
BACKENDS = [b for b in os.environ.get("HUB_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


@dataclass
class Clock:
    """A settable clock for the app under test (UTC)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def fast_commits(admin: psycopg.Connection[Any], name: str) -> None:
    """A test database commits without waiting for its WAL to reach the disk
    (``synchronous_commit = off``): a commit is still atomic and visible to every other
    connection at once, only a crash of the PostgreSQL *server* could lose the last
    fraction of a second of commits, and no test crashes the server. Under a loaded
    disk that wait is most of the cost of a small write transaction."""
    admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')


def _pg_database(base_url: str) -> Iterator[str]:
    name = f"hub_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = base_url.replace("postgresql+psycopg://", "postgresql://")
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(
            f"PostgreSQL at {admin} does not answer ({exc}). Start it (see .ci/run) "
            "or set HUB_TEST_BACKENDS=sqlite to run SQLite only."
        )
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        fast_commits(conn, name)
    head, _, _ = admin.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated database of one backend, shared by the session."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "hub.db"
        eng = make_engine(str(path), **TEST_POOL)
        upgrade(eng)
        yield eng
        eng.dispose()
    else:
        gen = _pg_database(PG_URL)
        url = next(gen)
        eng = make_engine(url, **TEST_POOL)
        upgrade(eng)
        yield eng
        eng.dispose()
        for _ in gen:
            pass


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """The backend's engine, emptied before each test (one transaction)."""
    wipe(engine)
    yield engine


def wipe(engine: Engine) -> None:
    """Empty every table, children first. PostgreSQL gets the DELETEs as one script (one
    round trip instead of one per table)."""
    tables = [t for t in reversed(metadata.sorted_tables) if t.name != "audit_log"]
    with engine.begin() as conn:
        _wipe_audit_log(conn)  # first: it refers to merchants, nothing refers to it
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("; ".join(f'DELETE FROM "{t.name}"' for t in tables))
        else:
            for table in tables:
                conn.execute(table.delete())


def _wipe_audit_log(conn: Any) -> None:
    """Tests only: empty the append-only audit log (its guard refuses DELETE) around its
    guard triggers, which are on again when the transaction commits. Most tests write no
    audit row: then nothing is touched. (Not TRUNCATE: it makes a new file for the table
    each time, which costs an fsync and 40-200 ms a test on a loaded disk.)"""
    if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM audit_log)")).scalar():
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update"))
        conn.execute(text("DELETE FROM audit_log"))
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update"))
        return
    conn.execute(text("DROP TRIGGER audit_log_no_delete"))
    conn.execute(text("DELETE FROM audit_log"))
    conn.execute(
        text(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"
        )
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class Merchant:
    """A merchant with stores SH-001/SH-002/BJ-001, an admin key and one key per store."""

    id: str
    admin_key: str
    store_keys: dict[str, str]
    principal: Principal
    tz: ZoneInfo

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}


def make_merchant(
    engine: Engine,
    now: datetime,
    name: str = "Test Tea",
    stores: tuple[str, ...] = ("SH-001", "SH-002", "BJ-001"),
    customers: int = 5,
) -> Merchant:
    tz = "Asia/Shanghai"
    mid = catalog.create_merchant(engine, name, tz, now)
    admin = keys.create_key(engine, mid, "admin", now)
    p = Principal(key_id=admin.id, merchant_id=mid, role="admin", tz=ZoneInfo(tz))
    for code in stores:
        catalog.create_store(engine, p, code, f"Store {code}", now)
    for i in range(1, customers + 1):
        catalog.create_customer(engine, p, f"M{i:04d}", f"Customer {i}", None, now)
    store_keys = {
        code: keys.create_key(engine, mid, "store", now, store_code=code).token
        for code in stores
    }
    return Merchant(
        id=mid, admin_key=admin.token, store_keys=store_keys, principal=p, tz=ZoneInfo(tz)
    )


@pytest.fixture
def merchant(db: Engine, clock: Clock) -> Merchant:
    return make_merchant(db, clock.now)


# create_app() spends ~0.1-0.8 s registering the routes (litestar parses every handler's
# signature), more than most API tests take; 1,200+ tests ask for a client. The app is
# built once per engine and environment (tests that set HUB_* variables get their own) and
# each test gets a fresh HubState — settings read from the environment now, its own
# clock — exactly as create_app() makes it. Nothing else in the app keeps state between
# requests (the principal cache is module-level, as in a real process).
_APPS: OrderedDict[tuple[Any, ...], Any] = OrderedDict()  # (engine, environment): app
_APP_STATE_KEYS = {"hub", "allow_headers"}  # what create_app() puts in app.state


def shared_app(engine: Engine, clock: Clock) -> Any:
    """``create_app(engine, clock=clock)``, the routes registered once per engine and
    environment."""
    env = sorted((k, v) for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST")
    key = (engine, tuple(env))
    app = _APPS.get(key)
    if app is None:
        app = create_app(engine, clock=clock)
        assert set(app.state.dict()) == _APP_STATE_KEYS, "create_app() keeps new state"
        _APPS[key] = app
        while len(_APPS) > 8:
            _APPS.popitem(last=False)
    else:
        _APPS.move_to_end(key)
        app.state.hub = HubState.for_engine(engine, settings=Settings(), clock=clock)
    return app


@pytest.fixture
def client(db: Engine, clock: Clock) -> Iterator[TestClient[Any]]:
    with TestClient(shared_app(db, clock)) as c:
        yield c


THRESHOLD_SPEC: dict[str, Any] = {
    "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
    "validity": {"type": "relative", "days": 30},
}


def make_template(
    engine: Engine,
    m: Merchant,
    now: datetime,
    spec: dict[str, Any] | None = None,
    name: str = "满100减20",
) -> str:
    created = issuing.create_template(engine, m.principal, name, spec or THRESHOLD_SPEC, now)
    return str(created["id"])


def issue(
    engine: Engine,
    m: Merchant,
    template_id: str,
    now: datetime,
    count: int = 1,
    customers: list[str] | None = None,
) -> list[str]:
    out = issuing.issue_coupons(
        engine,
        m.principal,
        template_id,
        count=None if customers is not None else count,
        customer_external_ids=customers,
        channel=None,
        now=now,
    )
    return [c["code"] for c in out["coupons"]]


def order(
    amount: int = 12800, lines: list[dict[str, Any]] | None = None, order_id: str = "A-1001"
) -> dict[str, Any]:
    o: dict[str, Any] = {"id": order_id, "amount": amount}
    if lines is not None:
        o["lines"] = lines
    return o


# --- a real server for concurrency tests ----------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (bound and released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_free_port = free_port  # its name before issue 10; tests written against it still import


@pytest.fixture
def live_server(db: Engine, clock: Clock) -> Iterator[str]:
    """The app served by uvicorn on a loopback port, in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(db, clock=clock),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    with serve_in_thread(config):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def serve_in_thread(config: uvicorn.Config) -> Iterator[uvicorn.Server]:
    """Run ``config``'s server in a thread until the block ends (started before it)."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:  # pragma: no cover
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


# Property tests prove invariants, never speed: Hypothesis's default 200 ms deadline per
# example turns a busy machine into a failure (speed lives in bench/, not in unit tests).
hypothesis_settings.register_profile("hub", deadline=None)
hypothesis_settings.load_profile("hub")

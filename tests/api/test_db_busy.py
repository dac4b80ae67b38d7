"""Running out of database connections answers 503 ``database_busy`` with Retry-After
(issue 9, item 13), never a 500; the pool is bounded and set by ``HUB_DB_POOL_*``."""

from __future__ import annotations

import time
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine

from hub.api.app import create_app
from hub.db.engine import PoolSettings, busy_reason, make_engine
from hub.services.problems import PROBLEM_MEDIA_TYPE, status_for
from tests.conftest import Clock, Merchant, issue, make_template, order


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def tiny_pool(engine: Engine) -> Engine:
    """The same database behind a pool of one connection, no overflow, 50 ms to wait."""
    return make_engine(url_of(engine), pool_size=1, max_overflow=0, pool_timeout=0.05)


def assert_busy(r: Any, code: str = "database_busy") -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    assert int(r.headers["Retry-After"]) >= 1
    doc = r.json()
    assert doc["code"] == code and doc["status"] == 503 == status_for(code)
    assert doc["retry_after"] == int(r.headers["Retry-After"])
    assert "traceback" not in r.text.lower() and "queuepool" not in r.text.lower()


def test_pool_exhaustion_answers_503_with_retry_after(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    small = tiny_pool(db)
    try:
        with TestClient(create_app(small, clock=clock)) as client:
            assert client.get("/v1/merchant", headers=merchant.auth()).status_code == 200
            held = small.connect()  # the only connection: every request now waits 50 ms
            try:
                body = {"code": code, "store": "SH-001", "order": order()}
                headers = {**merchant.auth(), "Idempotency-Key": "busy-1"}
                started = time.monotonic()
                r = client.post("/v1/redemptions", json=body, headers=headers)
                assert_busy(r)
                assert time.monotonic() - started < 5
                assert_busy(client.get(f"/v1/coupons/{code}", headers=merchant.auth()))
                assert_busy(client.post("/v1/redemptions/validate", json=body,
                                        headers=merchant.auth()))
            finally:
                held.close()
            # the connection is back: the client's retry (same key) runs afresh and succeeds
            r = client.post("/v1/redemptions", json=body, headers=headers)
            assert r.status_code == 201, r.text
            assert "Idempotent-Replayed" not in r.headers
    finally:
        small.dispose()


def test_server_refusing_connections_answers_503_not_500(merchant: Merchant, clock: Clock) -> None:
    """A database that does not answer (here: a closed loopback port) is 503
    ``database_unavailable`` with Retry-After."""
    dead = make_engine("postgresql://postgres@127.0.0.1:9/none?connect_timeout=2",
                       pool_size=1, max_overflow=0, pool_timeout=0.05)
    try:
        with TestClient(create_app(dead, clock=clock)) as client:
            assert_busy(client.get("/v1/merchant", headers=merchant.auth()),
                        "database_unavailable")
    finally:
        dead.dispose()


def test_pool_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Any) -> None:
    monkeypatch.setenv("HUB_DB_POOL_SIZE", "3")
    monkeypatch.setenv("HUB_DB_MAX_OVERFLOW", "0")
    monkeypatch.setenv("HUB_DB_POOL_TIMEOUT", "0.25")
    for url in (str(tmp_path / "pool.db"), "postgresql://postgres@127.0.0.1:5432/test"):
        engine = make_engine(url)
        try:
            assert engine.pool.size() == 3  # type: ignore[attr-defined]
            assert engine.pool._max_overflow == 0  # type: ignore[attr-defined]
            assert engine.pool._timeout == 0.25  # type: ignore[attr-defined]
        finally:
            engine.dispose()
    # explicit arguments win over the environment
    engine = make_engine(str(tmp_path / "pool.db"), pool_size=2)
    assert engine.pool.size() == 2  # type: ignore[attr-defined]
    engine.dispose()


@pytest.mark.parametrize(("name", "value"), [
    ("HUB_DB_POOL_SIZE", "0"), ("HUB_DB_POOL_SIZE", "many"), ("HUB_DB_MAX_OVERFLOW", "-1"),
    ("HUB_DB_POOL_TIMEOUT", "nan"), ("HUB_DB_POOL_TIMEOUT", "0"),
])
def test_bad_pool_settings_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        PoolSettings.from_env("postgresql", {name: value})


def test_defaults_are_bounded() -> None:
    for backend in ("sqlite", "postgresql"):
        pool = PoolSettings.from_env(backend, {})
        assert 1 <= pool.size + pool.max_overflow <= 40 and 0 < pool.timeout <= 30


def test_busy_reason_classifies() -> None:
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    assert busy_reason(PoolTimeout("QueuePool limit of size 1 overflow 0 reached")) == (
        "database_busy")
    too_many = OperationalError("connect", {}, Exception("FATAL: sorry, too many clients already"))
    assert busy_reason(too_many) == "database_busy"
    locked = OperationalError("UPDATE", {}, Exception("database is locked"))
    assert busy_reason(locked) == "database_busy"
    refused = OperationalError("connect", {}, Exception("connection refused"))
    assert busy_reason(refused) == "database_unavailable"
    assert busy_reason(ValueError("x")) is None


def test_cli_names_a_bad_pool_setting(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from hub.cli import main

    result = CliRunner().invoke(main, ["migrate", "--db", str(tmp_path / "x.db")],
                                env={"HUB_DB_POOL_SIZE": "abc"})
    assert result.exit_code == 1 and "HUB_DB_POOL_SIZE" in result.output, result.output
    assert "Traceback" not in result.output

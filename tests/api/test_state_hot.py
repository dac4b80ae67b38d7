"""The hot path's asyncpg connections (hub.api.state) belong to the app: made in its
event loop on first use, closed at its shutdown — none is left open afterwards."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine

from hub.api.app import create_app
from hub.api.state import hot_driver
from hub.db.engine import make_engine
from tests.conftest import Clock, Merchant, issue, make_template, order


def test_asyncpg_is_the_default_hot_driver_on_postgresql(
    db: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_DB_HOT_DRIVER", raising=False)
    state = create_app(db, clock=clock).state.hub
    assert state.hot_async is (db.dialect.name == "postgresql")
    assert state.inline_db is (db.dialect.name == "sqlite")
    monkeypatch.setenv("HUB_DB_HOT_DRIVER", "psycopg")
    assert create_app(db, clock=clock).state.hub.hot_async is False


def test_an_unknown_hot_driver_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DB_HOT_DRIVER", "odbc")
    with pytest.raises(ValueError, match="HUB_DB_HOT_DRIVER"):
        hot_driver()


def test_the_hot_pool_is_closed_when_the_app_stops(
    db: Engine, merchant: Merchant, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_DB_HOT_DRIVER", "asyncpg")
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    engine = make_engine(db.url.render_as_string(hide_password=False), pool_size=2, max_overflow=0)
    app = create_app(engine, clock=clock)
    try:
        with TestClient(app) as client:
            r = client.post(
                "/v1/redemptions",
                json={"code": code, "store": "SH-001", "order": order()},
                headers={**merchant.auth(), "Idempotency-Key": "hot-1"},
            )
            assert r.status_code == 201, r.text
            hot = app.state.hub._hot
            if db.dialect.name == "sqlite":
                assert hot is None  # SQLite runs inline on the app's engine
                return
            assert hot is not None
            pool = hot.sync_engine.pool
            assert pool.checkedin() == 1 and pool.checkedout() == 0  # type: ignore[attr-defined]
        assert app.state.hub._hot is None
        assert pool.checkedin() == 0 and pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()

"""The hot path's asyncpg engine is derived from the app's engine: same database, same
pool bounds; the configured URL stays a plain ``postgresql://`` one."""

from __future__ import annotations

import asyncio

from hub.db.engine import async_url, make_async_engine, make_engine


def test_the_async_url_is_derived_from_any_postgresql_spelling() -> None:
    for url in (
        "postgresql://u:p@db:5432/hub",
        "postgres://u:p@db:5432/hub",
        "postgresql+psycopg://u:p@db:5432/hub",
    ):
        assert async_url(url) == "postgresql+asyncpg://u:p@db:5432/hub"
    assert async_url("sqlite:///hub.db") == "sqlite:///hub.db"


def test_the_async_engine_has_the_pools_bounds() -> None:
    engine = make_engine(
        "postgresql://postgres@127.0.0.1:5432/test", pool_size=3, max_overflow=4, pool_timeout=2.5
    )
    try:
        hot = make_async_engine(engine)
        pool = hot.sync_engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 4, 2.5)  # type: ignore[attr-defined]
        assert hot.url.drivername == "postgresql+asyncpg"
        assert hot.url.database == "test"
        asyncio.run(hot.dispose())
    finally:
        engine.dispose()

"""What every handler needs: the engine, the clock and settings — and, on PostgreSQL,
the hot path's asyncpg engine (created in the serving event loop, disposed at shutdown)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import structlog
from litestar import Request
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from hub.db.budget import ConnectionBudget
from hub.db.engine import budget_for, is_sqlite, make_async_engine
from hub.services.principal import Principal
from hub.services.settings import Settings
from hub.settings import env


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class HubState:
    engine: Engine
    settings: Settings = field(default_factory=Settings)
    clock: Callable[[], datetime] = utcnow
    inline_db: bool = False  # run database work on the event loop (SQLite), not in a thread
    hot_async: bool = False  # PostgreSQL hot path on asyncpg on the loop (HUB_DB_HOT_DRIVER)
    _limiter: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)
    _hot: AsyncEngine | None = field(default=None, init=False, repr=False)
    _hot_loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _budget: ConnectionBudget | None = field(default=None, init=False, repr=False)

    def hot_engine(self) -> Engine:
        """The engine the hot path (redeem, validate, POS) runs its sync Core code on.

        SQLite: the app's engine (run inline). PostgreSQL: the ``sync_engine`` face of an
        asyncpg :class:`AsyncEngine` made for the running event loop; :func:`run_db`
        runs the code in a greenlet on the loop, so each statement awaits asyncpg with no
        thread hop. Its connections are closed by :meth:`aclose` (the app's shutdown)."""
        if self.inline_db or not self.hot_async:
            return self.engine
        loop = asyncio.get_running_loop()
        if self._hot is None or self._hot_loop is not loop:
            if self._hot is not None:  # a loop that ended without the app's shutdown
                log.warning("hot_engine.abandoned", reason="event loop changed")
            self._hot, self._hot_loop = make_async_engine(self.engine), loop
            self._budget = budget_for(self.engine)
        return self._hot.sync_engine

    def budget(self) -> ConnectionBudget:
        """The admission of hot-path work (:mod:`hub.db.budget`): made with the engine."""
        if self._budget is None:
            self._budget = budget_for(self.engine)
        return self._budget

    async def aclose(self) -> None:
        """Close the hot path's connections (the app's ``on_shutdown``)."""
        hot, self._hot, self._hot_loop, self._budget = self._hot, None, None, None
        if hot is not None:
            await hot.dispose()

    def db_limiter(self) -> anyio.CapacityLimiter:
        """How many threads may run database work at once: the pool's kept connections.

        With anyio's default (40 threads) against a pool of 10 kept + 20 overflow, more
        than 10 overlapping requests check out overflow connections that the pool closes
        on return: each a new PostgreSQL backend, which slows the process, which makes
        more requests overlap (on a loaded machine: ~450 backends started in one
        bench/contention.py run, p99 ~500 ms at c32). Requests past this bound wait on
        the event loop, holding neither a thread nor a connection; the overflow stays
        for the other routes, housekeeping and the auth look-up."""
        if self._limiter is None:
            size = getattr(self.engine.pool, "size", None)
            tokens = size() if callable(size) else 0
            self._limiter = anyio.CapacityLimiter(tokens if tokens >= 1 else 40)
        return self._limiter

    @classmethod
    def for_engine(cls, engine: Engine, **kw: Any) -> HubState:
        sqlite = is_sqlite(engine)
        return cls(
            engine=engine,
            inline_db=sqlite,
            hot_async=not sqlite and hot_driver() == "asyncpg",
            **kw,
        )


def hot_driver(environ: Mapping[str, str] | None = None) -> str:
    """``HUB_DB_HOT_DRIVER``: ``asyncpg`` (the default) or ``psycopg``.

    asyncpg on the event loop saves the thread hop. ``python -m bench redeem --db
    postgresql --concurrency 8,32`` over HTTP, the two back to back on a quiet 2-core
    machine: asyncpg 544/s at c8 and 529/s at c32, 1.7 ms of hub CPU a redeem, open-loop
    p99 15 ms at 300/s; psycopg in worker threads 467/s and 419/s, 2.0–2.2 ms, p99 28 ms.
    (An earlier figure that had psycopg ahead was of a bench that did not pass the
    variable to the server.) ``psycopg`` keeps one driver and no greenlet."""
    raw = (env("HUB_DB_HOT_DRIVER", environ) or "asyncpg").strip().lower()
    if raw not in ("psycopg", "asyncpg"):
        raise ValueError(f"HUB_DB_HOT_DRIVER must be psycopg or asyncpg, not {raw[:40]!r}")
    return raw


T = TypeVar("T")
log = structlog.get_logger("hub.api")


async def run_db(request: Request, fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:  # type: ignore[type-arg]
    """Run blocking database work for a hot-path handler.

    SQLite work is local, short and serialised anyway (one writer), so it runs inline on
    the event loop: a thread hop per request cost a third of the throughput. PostgreSQL
    work waits on the network, so it runs in the worker thread pool, at most as many
    at once as the connection pool keeps connections (:meth:`HubState.db_limiter`).
    The hot routes use :func:`run_hot` instead.
    """
    state = hub(request)
    if state.inline_db:
        return fn(*args, **kw)
    return await anyio.to_thread.run_sync(partial(fn, *args, **kw), limiter=state.db_limiter())


async def run_hot(request: Request, fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:  # type: ignore[type-arg]
    """Run a hot-path service (redeem, validate, POS) as ``fn(engine, *args, **kw)``.

    SQLite: inline, as :func:`run_db`. PostgreSQL with ``HUB_DB_HOT_DRIVER=psycopg``
    (the default): in a worker thread, as :func:`run_db`. With ``asyncpg``: in a
    greenlet on the event loop with :meth:`HubState.hot_engine`: the same sync Core
    code, each statement awaited, no thread hop; admission by the connection budget
    (a request waits on the loop for room, then 503 ``database_busy``)."""
    state = hub(request)
    engine = state.hot_engine()
    if state.inline_db:
        return fn(engine, *args, **kw)
    if not state.hot_async:  # psycopg in a worker thread (HUB_DB_HOT_DRIVER)
        work = partial(fn, engine, *args, **kw)
        return await anyio.to_thread.run_sync(work, limiter=state.db_limiter())
    async with state.budget():
        result: T = await greenlet_spawn(fn, engine, *args, **kw)
    return result


def hub(request: Request) -> HubState:  # type: ignore[type-arg]
    state: HubState = request.app.state.hub
    return state


def principal(request: Request) -> Principal:  # type: ignore[type-arg]
    p: Principal = request.scope["auth"]
    return p

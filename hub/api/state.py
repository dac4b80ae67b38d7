"""What every handler needs: the engine, the clock and settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from litestar import Request
from sqlalchemy import Engine

from hub.db.engine import is_sqlite
from hub.services.principal import Principal
from hub.services.settings import Settings


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class HubState:
    engine: Engine
    settings: Settings = field(default_factory=Settings)
    clock: Callable[[], datetime] = utcnow
    inline_db: bool = False  # run database work on the event loop (SQLite), not in a thread
    _limiter: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)

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
        return cls(engine=engine, inline_db=is_sqlite(engine), **kw)


T = TypeVar("T")


async def run_db(request: Request, fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:  # type: ignore[type-arg]
    """Run blocking database work for a hot-path handler.

    SQLite work is local, short and serialised anyway (one writer), so it runs inline on
    the event loop: a thread hop per request cost a third of the throughput. PostgreSQL
    work waits on the network, so it runs in the worker thread pool, at most as many
    at once as the connection pool keeps connections (:meth:`HubState.db_limiter`).
    """
    state = hub(request)
    if state.inline_db:
        return fn(*args, **kw)
    return await anyio.to_thread.run_sync(partial(fn, *args, **kw), limiter=state.db_limiter())


def hub(request: Request) -> HubState:  # type: ignore[type-arg]
    state: HubState = request.app.state.hub
    return state


def principal(request: Request) -> Principal:  # type: ignore[type-arg]
    p: Principal = request.scope["auth"]
    return p

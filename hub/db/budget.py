"""One process's budget of database connections, shared by its two pools on PostgreSQL.

The hot path (redeem, validate, POS) runs on an asyncpg pool while the rest of the app
uses psycopg; both are sized by ``HUB_DB_POOL_*`` (:class:`hub.db.engine.PoolSettings`).
:class:`ConnectionBudget` admits a hot-path unit of work only while

* fewer than ``size`` hot units run (the pool's kept connections: more would open
  overflow connections that the pool closes on return — a new backend per request), and
* hot units plus the psycopg pool's checked-out connections stay under ``size +
  max_overflow``, the process's bound, so the two pools together never use more at once.

A unit that cannot be admitted waits on the event loop (holding neither a thread nor a
connection) up to ``timeout`` seconds, then fails as the pool would:
:class:`sqlalchemy.exc.TimeoutError`, which the API answers 503 ``database_busy``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import exc as sa_exc

# how often a waiter looks again when the psycopg pool (other threads) holds the budget
_POLL_SECONDS = 0.005


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ConnectionBudget:
    """Admission to the hot path's pool (see the module docstring); one per event loop."""

    def __init__(
        self, *, size: int, limit: int, timeout: float, others_in_use: Callable[[], int]
    ) -> None:
        self.size = max(size, 1)
        self.limit = max(limit, 1)
        self.timeout = timeout
        self._others_in_use = others_in_use
        self.admitted = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def _free(self) -> bool:
        return self.admitted < self.size and self.admitted + self._others_in_use() < self.limit

    async def __aenter__(self) -> ConnectionBudget:
        if not self._waiters and self._free():
            self.admitted += 1
            return self
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise sa_exc.TimeoutError(
                    f"connection budget of {self.limit} reached, timed out after {self.timeout:g} s"
                )
            # woken by a hot unit leaving; only when the other pool holds the room (its
            # threads cannot wake us) look again every few milliseconds
            others_hold_it = self.admitted < self.size
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(
                min(remaining, _POLL_SECONDS) if others_hold_it else remaining,
                _wake,
                waiter,
            )
            try:
                await waiter
            except BaseException:  # cancelled: hand a wake-up it may have had to the next
                self._wake_next()
                raise
            finally:
                timer.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if self._free():
                self.admitted += 1
                return self

    async def __aexit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.admitted -= 1
        self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

"""A broker that stays down: back off, and say so once per backoff step.

One :class:`BrokerBackoff` per process is fed by everything that talks to the broker
(the enqueue sender, the worker's consumers through :class:`ConsumerErrorFilter`, the
worker's watch). The first failure logs ``broker.unreachable`` with the wait before the
next attempt (1 s, doubling to 60 s); failures during that wait are not repeated; the
first success after an outage logs ``broker.reachable``. The database stays the truth
meanwhile: deliveries wait as records, and the sweeper sends them once the broker is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("hub.delivery")

FIRST_WAIT = 1.0
MAX_WAIT = 60.0


class BrokerBackoff:
    def __init__(
        self,
        shown_url: str,
        first: float = FIRST_WAIT,
        cap: float = MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shown_url = shown_url
        self.first = first
        self.cap = cap
        self.clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._wait = 0.0
        self._retry_at = 0.0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def remaining(self) -> float:
        """Seconds until the next attempt is due (0 when up or due now)."""
        with self._lock:
            if self._down_since is None:
                return 0.0
            return max(0.0, self._retry_at - self.clock())

    def failure(self, error: BaseException | str) -> float:
        """Record a failed attempt; returns the seconds to wait before the next one.
        Logs once per backoff step (failures while waiting are part of the same step)."""
        with self._lock:
            now = self.clock()
            if self._down_since is not None and now < self._retry_at:
                return self._retry_at - now
            first = self._down_since is None
            self._wait = self.first if first else min(self._wait * 2, self.cap)
            if first:
                self._down_since = now
            self._retry_at = now + self._wait
            down_for = now - (self._down_since or now)
            wait = self._wait
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        log.warning(
            "broker.unreachable",
            broker=self.shown_url,
            error=" ".join(str(reason).split())[:300],
            retry_in=f"{wait:g}s",
            down_for=f"{down_for:.0f}s",
            message="deliveries wait in the database and are sent when the broker is back",
        )
        return wait

    def success(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            down_for = self.clock() - self._down_since
            self._down_since = None
            self._wait = 0.0
            self._retry_at = 0.0
        log.info("broker.reachable", broker=self.shown_url, down_for=f"{down_for:.0f}s")


class ConsumerErrorFilter(logging.Filter):
    """Drops dramatiq's own "connection error / restarting consumer" lines (repeated
    every few seconds for as long as the broker is down) and reports them to the
    backoff instead, which says it once per step."""

    def __init__(self, backoff: BrokerBackoff, wake: threading.Event) -> None:
        super().__init__()
        self.backoff = backoff
        self.wake = wake

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Consumer encountered a connection error"):
            self.backoff.failure(record.getMessage().split(": ", 1)[-1])
            self.wake.set()
            return False
        return not message.startswith("Restarting consumer in")

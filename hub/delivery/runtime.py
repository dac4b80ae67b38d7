"""A process's delivery runtime: engine, HTTP client, dramatiq worker and sweeper.

* ``hub serve`` with no ``HUB_BROKER_URL`` (embedded): an in-process dramatiq worker on a
  stub broker plus the sweeper — the two-command demo delivers for real.
* ``hub serve`` with ``HUB_BROKER_URL``: the API only enqueues; ``hub worker`` processes
  (any number) consume, each with its own sweeper.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dramatiq
import httpx
import structlog
from sqlalchemy import Engine

from hub import egress
from hub.connectors import load_connectors
from hub.db.engine import write_conn
from hub.delivery import queue
from hub.delivery.attempt import send
from hub.delivery.backoff import BrokerBackoff, ConsumerErrorFilter
from hub.delivery.claim import claim, record
from hub.delivery.sweeper import sweep
from hub.delivery.transport import delivery_client, http_transport

log = structlog.get_logger("hub.delivery")

SWEEP_INTERVAL = 1.0
BROKER_WATCH_INTERVAL = 5.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Runtime:
    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime] = _utcnow,
        client: httpx.Client | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.client = client or delivery_client()
        self.transport = http_transport(self.client)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._worker: dramatiq.Worker | None = None

    # --- work ---------------------------------------------------------------------
    def deliver(self, delivery_id: str) -> str:
        """Attempt one delivery if it is claimable now; returns its new status."""
        started = self.clock()
        with write_conn(self.engine) as conn:
            claimed = claim(conn, delivery_id, started)
        if claimed is None:
            return "skipped"
        sent = send(self.transport, claimed, started)
        return record(self.engine, claimed, sent, started, self.clock(), queue.enqueue)

    def sweep_once(self) -> list[str]:
        ids = sweep(self.engine, self.clock())
        queue.enqueue(ids)
        return ids

    def drain(self, rounds: int = 100) -> int:
        """Deliver everything due, synchronously (tests and one-shot tools)."""
        done = 0
        for _ in range(rounds):
            ids = sweep(self.engine, self.clock(), stale=timedelta(0))
            if not ids:
                break
            for delivery_id in ids:
                if self.deliver(delivery_id) != "skipped":
                    done += 1
        return done

    # --- threads ------------------------------------------------------------------
    def start(self, *, worker: bool, threads: int = 8) -> None:
        """Configure this process's broker with this runtime as the handler of its
        messages; start the sweeper (and a dramatiq worker)."""
        load_connectors()  # import every plugin now, not inside the first deliveries
        log.info(  # what the operator opened beyond public addresses (HUB_EGRESS_ALLOW)
            "egress.policy", allow=[str(n) for n in egress.allowed_networks()] or "public only"
        )
        broker = queue.configure(queue.broker_url(), handler=self.deliver)
        if worker:
            self._worker = dramatiq.Worker(broker, worker_threads=threads, queues={queue.QUEUE})
            self._worker.start()
            if queue.broker_url() is not None:
                self._start_broker_watch(self._worker)
        t = threading.Thread(target=self._sweep_loop, name="hub-sweeper", daemon=True)
        t.start()
        self._threads.append(t)

    def _start_broker_watch(self, worker: dramatiq.Worker) -> None:
        backoff = queue.backoff()
        if backoff is None:
            return
        wake = threading.Event()
        quiet = ConsumerErrorFilter(backoff, wake)
        for consumer in worker.consumers.values():
            consumer.logger.addFilter(quiet)
        t = threading.Thread(
            target=self._watch_broker,
            args=(worker, backoff, wake),
            name="hub-broker-watch",
            daemon=True,
        )
        t.start()
        self._threads.append(t)

    def _watch_broker(
        self, worker: dramatiq.Worker, backoff: BrokerBackoff, wake: threading.Event
    ) -> None:
        """While the broker is down, pause the consumers and try again after each backoff
        wait (said once per wait); resume them when it answers."""
        paused = False
        while not self._stop.is_set():
            if backoff.down:
                self._stop.wait(max(backoff.remaining(), 0.05))
            else:
                wake.wait(BROKER_WATCH_INTERVAL)
                wake.clear()
            if self._stop.is_set():
                break
            try:
                queue.check_broker()
            except Exception as exc:
                backoff.failure(exc)
                if not paused:
                    worker.pause()
                    paused = True
                continue
            backoff.success()
            if paused:
                worker.resume()
                paused = False

    def _sweep_loop(self) -> None:
        while not self._stop.wait(SWEEP_INTERVAL):
            try:
                self.sweep_once()
            except Exception:  # keep sweeping; the database may be back next round
                log.exception("sweeper.failed")

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.stop()
        for t in self._threads:
            t.join(timeout=5)
        queue.release(self.deliver)
        self.client.close()

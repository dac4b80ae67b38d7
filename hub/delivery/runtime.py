"""A process's delivery runtime: engine, HTTP client, dramatiq worker, the delivery
pipeline (:mod:`hub.delivery.pipeline`: batched claim, concurrent sends, batched record)
and the sweeper — whose loop also runs the :data:`PERIODIC_JOBS` (ending lapsed
reservations, :func:`hub.services.reservations.expire_reservations`, every
:data:`RESERVATION_EXPIRY_INTERVAL` seconds: its events are deliveries too).

* ``hub serve`` with no ``HUB_BROKER_URL`` (embedded): an in-process dramatiq worker on a
  stub broker plus the sweeper — the two-command demo delivers for real.
* ``hub serve`` with ``HUB_BROKER_URL``: the API only enqueues; ``hub worker`` processes
  (any number) consume, each with its own sweeper.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dramatiq
import httpx
import structlog
from sqlalchemy import Engine

from hub import egress
from hub.connectors import load_connectors
from hub.delivery import queue
from hub.delivery.backoff import BrokerBackoff, ConsumerErrorFilter
from hub.delivery.pipeline import MAX_BATCH, Pipeline, deliver_batch
from hub.delivery.sweeper import sweep
from hub.delivery.transport import DeliveryClient, delivery_client, http_transport
from hub.services.reminders import REMINDER_INTERVAL, send_due_reminders
from hub.services.reservations import expire_reservations
from hub.services.rollup import consume as consume_rollups

log = structlog.get_logger("hub.delivery")

SWEEP_INTERVAL = 1.0
RESERVATION_EXPIRY_INTERVAL = 5.0
ANALYTICS_ROLLUP_INTERVAL = 1.0
BROKER_WATCH_INTERVAL = 5.0


@dataclass(frozen=True)
class PeriodicJob:
    """Work the sweeper's loop runs every ``every`` seconds (rounded to whole sweep
    rounds) in every delivery runtime: the embedded ``hub serve`` and each ``hub
    worker``. A job must be safe to run in several processes at once (a conditional
    UPDATE, a unique row or a lock decides who does each piece) and must not raise for
    a piece of work that cannot be done: an exception is logged and the job runs again
    next time."""

    name: str
    every: float
    run: Callable[[Engine, datetime], object]


def _expire_reservations(engine: Engine, now: datetime) -> object:
    return expire_reservations(engine, now)


def _send_reminders(engine: Engine, now: datetime) -> object:
    return send_due_reminders(engine, now)


# every runtime's periodic jobs, in the order they run within a round
PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob("reservations.expiry", RESERVATION_EXPIRY_INTERVAL, _expire_reservations),
    # expiry reminders (coupon.expiring), hub.services.reminders
    PeriodicJob("reminders.expiring", REMINDER_INTERVAL, _send_reminders),
    # analytics rollups from the outbox (hub/services/rollup.py): one consumer at a time
    PeriodicJob("analytics.rollup", ANALYTICS_ROLLUP_INTERVAL, consume_rollups),
]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Runtime:
    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime] = _utcnow,
        client: DeliveryClient | httpx.Client | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.client = client or delivery_client()
        self.transport = http_transport(self.client)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._worker: dramatiq.Worker | None = None
        self._pipeline: Pipeline | None = None

    # --- work ---------------------------------------------------------------------
    def deliver(self, delivery_id: str) -> str:
        """Attempt one delivery if it is claimable now, in this thread; returns its new
        status (``skipped``: not claimable now)."""
        return self.deliver_many([delivery_id])[delivery_id]

    def deliver_many(self, ids: list[str]) -> dict[str, str]:
        """Attempt these deliveries as one batch (one claim, one record transaction),
        sending one after another in this thread; returns each one's new status."""
        return deliver_batch(self.engine, ids, self.clock, self.transport, queue.enqueue)

    def ring(self, delivery_id: str) -> None:
        """The broker actor's handler: hand the id to the pipeline (or, with no pipeline
        running, attempt it here)."""
        if self._pipeline is not None:
            self._pipeline.ring(delivery_id)
        else:
            self.deliver(delivery_id)

    def sweep_once(self) -> list[str]:
        ids = sweep(self.engine, self.clock())
        queue.enqueue(ids)
        return ids

    def expire_reservations_once(self) -> int:
        """End the reservations whose hold has lapsed (one event each, whichever process
        records it first)."""
        return expire_reservations(self.engine, self.clock())

    def drain(self, rounds: int = 100) -> int:
        """Deliver everything due, synchronously (tests and one-shot tools)."""
        done = 0
        for _ in range(rounds):
            ids = sweep(self.engine, self.clock(), stale=timedelta(0))
            if not ids:
                break
            for i in range(0, len(ids), MAX_BATCH):
                statuses = self.deliver_many(ids[i : i + MAX_BATCH])
                done += sum(1 for s in statuses.values() if s != "skipped")
        return done

    # --- threads ------------------------------------------------------------------
    def start(self, *, worker: bool, threads: int = 8) -> None:
        """Configure this process's broker with this runtime as the handler of its
        messages; start the sweeper (and a dramatiq worker)."""
        load_connectors()  # import every plugin now, not inside the first deliveries
        log.info(  # what the operator opened beyond public addresses (HUB_EGRESS_ALLOW)
            "egress.policy", allow=[str(n) for n in egress.allowed_networks()] or "public only"
        )
        if worker:
            self._pipeline = Pipeline(self.engine, self.clock, self.transport, threads)
            self._pipeline.start()
        broker = queue.configure(queue.broker_url(), handler=self.ring)
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

    def run_periodic_once(self, job: PeriodicJob) -> object:
        """Run one periodic job now (tests and one-shot tools)."""
        return job.run(self.engine, self.clock())

    def _sweep_loop(self) -> None:
        n = 0
        while not self._stop.wait(SWEEP_INTERVAL):
            n += 1
            for job in PERIODIC_JOBS:
                if n % max(1, round(job.every / SWEEP_INTERVAL)):
                    continue
                try:
                    self.run_periodic_once(job)
                except Exception:  # the next round retries; deliveries go on meanwhile
                    log.exception("periodic.failed", job=job.name)
            try:
                self.sweep_once()
            except Exception:  # keep sweeping; the database may be back next round
                log.exception("sweeper.failed")

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.stop()
        if self._pipeline is not None:
            self._pipeline.stop()  # what the consumers accepted is claimed, sent, recorded
        for t in self._threads:
            t.join(timeout=5)
        queue.release(self.ring)
        self.client.close()

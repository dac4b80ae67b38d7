"""A worker process's delivery pipeline: doorbells in, batches out.

Delivery ids arrive from the broker's messages (:mod:`hub.delivery.queue` calls
:meth:`Pipeline.submit`) and from the coupons' next deliveries a success unblocked.
Three stages run concurrently, so the database work of one batch overlaps the HTTP calls
of the next:

* the **claimer** takes the waiting ids (at most :data:`MAX_BATCH`, and no more than
  free slots of the window) and claims them in one transaction (:func:`claim_batch`);
* the **senders** (a pool of ``threads``) run each claimed delivery's exchange over the
  kept-alive HTTP client, at most :data:`policy.ENDPOINT_CONCURRENCY` at once per
  endpoint (:mod:`hub.delivery.transport`);
* the **recorder** stores every finished attempt that is ready in one transaction
  (:func:`record_batch`).

At most :data:`WINDOW` deliveries are claimed and not yet recorded: a window that wide
keeps the senders busy while a claim and a record transaction are under way (with a few
per sender the pipeline waited on its own transactions: ~450 events/s where ~1,000 go
out). A claimed delivery may therefore wait for a sender behind many others; one whose
send has not started within :data:`START_WITHIN` seconds of its claim (a slow receiver
holds the senders) is given back unsent — its claim undone, no attempt counted — and
rung again, so every attempt that starts has most of its lease ahead of it.

Nothing here is the truth: a doorbell lost with the process (an id accepted, not yet
claimed) is rung again by a sweeper, and a claimed delivery whose worker died is revived
when its lease runs out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from itertools import islice

import structlog
from sqlalchemy import Engine

from hub.connectors import Retry
from hub.db.engine import write_conn
from hub.delivery import policy
from hub.delivery.attempt import send
from hub.delivery.claim import Claimed, Sent, claim_batch
from hub.delivery.exchange import Transport
from hub.delivery.record import Attempted, give_back, record_batch

log = structlog.get_logger("hub.delivery")

MAX_BATCH = 128  # deliveries claimed (and at most recorded) in one transaction
WINDOW = 256  # deliveries claimed and not yet recorded, at most
MAX_WAITING = 1024  # ids accepted and not yet claimed; beyond, submit() waits
# a claimed delivery whose send has not started this long after its claim is given back
# unsent (its lease must cover the attempt itself: tries × the request's timeout)
START_WITHIN = policy.LEASE_SECONDS / 4
STOP_TIMEOUT = 60.0


def deliver_batch(
    engine: Engine,
    ids: list[str],
    clock: Callable[[], datetime],
    transport: Transport,
    on_next: Callable[[list[str]], None],
) -> dict[str, str]:
    """Claim, send (one after another, in this thread) and record ``ids`` as one batch;
    returns each id's new status (``skipped``: not claimable now)."""
    started = clock()
    with write_conn(engine) as conn:
        claimed = claim_batch(conn, ids, started)
    done = [Attempted(c, _send(transport, c, started), started) for c in claimed]
    statuses = record_batch(engine, done, clock(), on_next)
    result = dict.fromkeys(ids, "skipped")
    result.update({a.claimed.delivery_id: s for a, s in zip(done, statuses, strict=True)})
    return result


def _send(transport: Transport, claimed: Claimed, started: datetime) -> Sent:
    try:
        return send(transport, claimed, started)
    except Exception as exc:  # a fault of ours, not the receiver's: try again later
        log.exception("delivery.send_failed", delivery_id=claimed.delivery_id)
        return Sent(Retry(f"worker error: {type(exc).__name__}"), None, None, None, 0)


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime],
        transport: Transport,
        threads: int = 8,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.transport = transport
        self.threads = max(1, threads)
        self.slots = WINDOW
        lock = threading.Lock()  # one lock, three conditions: wake only who can go on
        self._claimable = threading.Condition(lock)  # the claimer: ids and free slots
        self._recordable = threading.Condition(lock)  # the recorder: finished attempts
        self._room = threading.Condition(lock)  # submitters: room among the waiting ids
        self._room_waiters = 0
        self._waiting: dict[str, None] = {}  # ids in arrival order
        self._busy: set[str] = set()  # being claimed, sent or recorded here
        self._in_flight = 0  # claimed (or being claimed), not yet recorded
        self._finished: list[Attempted] = []
        self._unsent: list[Claimed] = []  # claimed, not started in time: to give back
        self._stopping = False
        self._claimer_done = False
        self._senders: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []

    # --- the way in -----------------------------------------------------------------
    def submit(self, ids: Iterable[str], *, wait: bool = True) -> None:
        """Accept delivery ids to look at (duplicates of waiting or busy ones are
        dropped). ``wait``: while :data:`MAX_WAITING` are waiting, wait for room (the
        broker's consumers slow down instead of piling messages up in memory)."""
        with self._room:
            if wait and len(self._waiting) >= MAX_WAITING and not self._stopping:
                self._room_waiters += 1
                self._room.wait_for(
                    lambda: len(self._waiting) < MAX_WAITING or self._stopping, timeout=60
                )
                self._room_waiters -= 1
            before = len(self._waiting)
            for delivery_id in ids:
                if delivery_id not in self._busy:
                    self._waiting[delivery_id] = None
            if before == 0 and self._waiting:
                self._claimable.notify()

    def ring(self, delivery_id: str) -> None:
        """The broker actor's handler: one doorbell."""
        self.submit((delivery_id,))

    def ring_next(self, ids: list[str]) -> None:
        """A success's unblocked next deliveries (from the recorder: never waits)."""
        self.submit(ids, wait=False)

    # --- threads --------------------------------------------------------------------
    def start(self) -> None:
        self._senders = ThreadPoolExecutor(self.threads, thread_name_prefix="hub-send")
        for target, name in ((self._claim_loop, "hub-claim"), (self._record_loop, "hub-record")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Finish what was accepted (claim, send, record), then stop."""
        with self._claimable:
            self._stopping = True
            self._claimable.notify_all()
            self._recordable.notify_all()
            self._room.notify_all()
        for t in self._threads:
            t.join(timeout=timeout)
        if self._senders is not None:
            self._senders.shutdown(wait=False, cancel_futures=True)

    def _take(self) -> list[str] | None:
        """The next ids to claim (None: stopping and nothing left to do)."""
        with self._claimable:
            while True:
                free = self.slots - self._in_flight
                if self._waiting and free > 0:
                    break
                if self._stopping and not self._waiting and self._in_flight == 0:
                    self._claimer_done = True
                    self._recordable.notify()
                    return None
                self._claimable.wait()
            batch = list(islice(self._waiting, min(free, MAX_BATCH)))
            for delivery_id in batch:
                del self._waiting[delivery_id]
            self._busy.update(batch)
            self._in_flight += len(batch)
            if self._room_waiters:
                self._room.notify_all()
            return batch

    def _claim_loop(self) -> None:
        senders = self._senders
        assert senders is not None
        while (batch := self._take()) is not None:
            started = self.clock()
            try:
                with write_conn(self.engine) as conn:
                    claimed = claim_batch(conn, batch, started)
            except Exception:  # the database may be back next time; sweepers ring again
                log.exception("delivery.claim_failed", deliveries=len(batch))
                claimed = []
            claimed_at = time.monotonic()
            taken = {c.delivery_id for c in claimed}
            self._release([i for i in batch if i not in taken])
            for c in claimed:
                senders.submit(self._send_one, c, started, claimed_at)

    def _send_one(self, claimed: Claimed, started: datetime, claimed_at: float) -> None:
        if time.monotonic() - claimed_at > START_WITHIN:  # waited too long: give it back
            with self._recordable:
                self._unsent.append(claimed)
                if len(self._unsent) + len(self._finished) == 1:
                    self._recordable.notify()
            return
        sent = _send(self.transport, claimed, started)
        with self._recordable:
            self._finished.append(Attempted(claimed, sent, started))
            if len(self._finished) + len(self._unsent) == 1:
                self._recordable.notify()

    def _record_loop(self) -> None:
        while True:
            with self._recordable:
                self._recordable.wait_for(
                    lambda: (
                        bool(self._finished or self._unsent)
                        or (self._claimer_done and self._in_flight == 0)
                    )
                )
                if not self._finished and not self._unsent:
                    return
                done, self._finished = self._finished[:MAX_BATCH], self._finished[MAX_BATCH:]
                unsent, self._unsent = self._unsent, []
            if unsent:
                self._give_back(unsent)
            if not done:
                continue
            try:
                record_batch(self.engine, done, self.clock(), self.ring_next)
            except Exception:  # left `delivering`: retried when the lease runs out
                log.exception("delivery.record_failed", deliveries=len(done))
            self._release([a.claimed.delivery_id for a in done])

    def _give_back(self, unsent: list[Claimed]) -> None:
        """Undo the claims of deliveries not sent in time, then ring them again."""
        ids = [c.delivery_id for c in unsent]
        try:
            returned = give_back(self.engine, unsent, self.clock())
        except Exception:  # left `delivering`: retried when the lease runs out
            log.exception("delivery.give_back_failed", deliveries=len(unsent))
            returned = []
        log.info("delivery.given_back", deliveries=len(returned))
        self._release(ids)
        if returned and not self._stopping:
            self.submit(returned, wait=False)

    def _release(self, ids: list[str]) -> None:
        if not ids:
            return
        with self._claimable:
            self._in_flight -= len(ids)
            self._busy.difference_update(ids)
            self._claimable.notify()
            if self._claimer_done:
                self._recordable.notify()

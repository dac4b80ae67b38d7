"""The asyncio client (:class:`AsyncHubClient`): :class:`hub.client.HubClient` with
``await``; the same requests, answers, retries and offline queue (:mod:`hub.client.core`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx
from tenacity import AsyncRetrying

from hub.client.core import (
    DEFAULT_TIMEOUT,
    SYNC_BATCH,
    Call,
    ClientCore,
    RetryPolicy,
    new_key,
    stalled,
    transport_error,
    unreachable,
)
from hub.client.errors import HubError
from hub.client.queue import OfflineQueue
from hub.client.types import (
    Coupon,
    KeysDocument,
    OfflineReceipt,
    OrderLike,
    OrderRedemption,
    QueueItem,
    Quote,
    Redemption,
    Reversal,
    SyncReport,
    Validation,
)

T = TypeVar("T")


class AsyncHubClient:
    """A till's connection to the hub, for asyncio (see :class:`hub.client.HubClient`).

    ``base_url`` and ``api_key`` (a store key) are the hub's; ``terminal_id`` names the
    till in the offline sync; ``store`` its store code. With ``offline_queue`` (a path
    to a SQLite file) a redeem that cannot reach the hub is judged and queued on the
    terminal; without it, it raises :class:`~hub.client.errors.HubUnreachable`.
    With ``auto_sync`` (the default) a redeem first syncs the queue while it holds
    offline sales, so they reach the hub before newer ones. ``transport`` lets tests
    (or a proxy setup) supply the httpx transport."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        terminal_id: str,
        store: str | None = None,
        channel: str = "pos",
        offline_queue: str | Path | OfflineQueue | None = None,
        timezone: str = "Asia/Shanghai",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] | None = None,
        auto_sync: bool = True,
    ) -> None:
        self.core = ClientCore(
            api_key=api_key,
            terminal_id=terminal_id,
            store=store,
            channel=channel,
            queue=offline_queue,
            timezone=timezone,
            clock=clock,
        )
        self.retry = retry or RetryPolicy()
        self.auto_sync = auto_sync
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, transport=transport, headers=self.core.headers()
        )

    async def __aenter__(self) -> AsyncHubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()
        if self.core.queue is not None:
            self.core.queue.close()

    @property
    def queue(self) -> OfflineQueue | None:
        return self.core.queue

    # --- sending -----------------------------------------------------------------------

    async def _once(self, call: Call[T]) -> T:
        headers = {"Idempotency-Key": call.key} if call.key else None
        try:
            response = await self.http.request(
                call.method, call.path, json=call.json, params=call.params or None, headers=headers
            )
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        return self.core.answer(call, response)

    async def _send(self, call: Call[T]) -> T:
        """``call`` with the retry policy: every attempt carries the same key."""
        async for attempt in AsyncRetrying(
            stop=self.retry.stop(), wait=self.retry.wait(), retry=self.retry.retry(), reraise=True
        ):
            with attempt:
                return await self._once(call)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the calls ---------------------------------------------------------------------

    async def lookup(self, code: str) -> Coupon:
        """A coupon's status, rules and history (a code or a token)."""
        return await self._send(self.core.lookup(code))

    async def validate(
        self, code: str, order: OrderLike, *, store: str | None = None, channel: str | None = None
    ) -> Validation:
        """Every redeem check, nothing changed: what the coupon would take off."""
        body = self.core.redeem_body(code, order, store, channel, None)
        return await self._send(self.core.validate(body))

    async def redeem(
        self,
        code: str,
        order: OrderLike,
        *,
        store: str | None = None,
        channel: str | None = None,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Redemption | OfflineReceipt:
        """Redeem ``code`` (a code or a token) on ``order``, exactly once.

        Online: the hub's :class:`Redemption`. Hub unreachable and an offline queue
        configured: the token is judged on the terminal and queued, and an
        :class:`OfflineReceipt` comes back (or :class:`OfflineRefused` says why not)."""
        key = idempotency_key or new_key()
        at = occurred_at or self.core.now()
        body = self.core.redeem_body(code, order, store, channel, occurred_at)
        # offline sales reach the hub before newer ones: sync first while any wait
        if self.auto_sync and self.core.queue is not None and self.core.queue.count_pending():
            try:
                error = (await self.sync()).error
            except HubError as exc:  # the sale goes on whatever the sync met
                error = exc
            if isinstance(error, HubError) and unreachable(error):
                # just found unreachable (after the retries): straight to offline
                return self.core.redeem_offline(body, key, at, error)
        try:
            result = await self._send(self.core.redeem(body, key))
        except HubError as exc:
            if not unreachable(exc):
                raise
            return self.core.redeem_offline(body, key, at, exc)
        await self._refresh_keys_if_stale()
        return result

    async def reverse(
        self, redemption_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Reversal:
        return await self._send(
            self.core.reverse(redemption_id, reason, idempotency_key or new_key())
        )

    async def quote(
        self,
        order: OrderLike,
        *,
        codes: Sequence[str] | None = None,
        customer: str | None = None,
        store: str | None = None,
        channel: str | None = None,
    ) -> Quote:
        """Each candidate coupon on ``order`` and the best combination (nothing changes)."""
        return await self._send(self.core.quote(order, codes, customer, store, channel))

    async def redeem_order(
        self,
        codes: Sequence[str],
        order: OrderLike,
        *,
        store: str | None = None,
        channel: str | None = None,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> OrderRedemption:
        """Several coupons on one order, all or nothing (online only)."""
        return await self._send(
            self.core.redeem_order(
                codes, order, store, channel, occurred_at, idempotency_key or new_key()
            )
        )

    async def offline_keys(self) -> KeysDocument:
        """Fetch the offline keys document (and cache it in the offline queue's file)."""
        return await self._send(self.core.offline_keys())

    async def _refresh_keys_if_stale(self) -> None:
        if self.core.keys_stale():
            # on failure the cached document stays; the next online call tries again
            with contextlib.suppress(HubError):
                await self.offline_keys()

    # --- the offline queue -----------------------------------------------------------------

    async def sync(self) -> SyncReport:
        """Send the queued offline redemptions, oldest first, in batches of 100, and keep
        each verdict locally. Stops (``report.error``) when the hub is unreachable again;
        what was not answered stays queued. With the queue empty, the offline limits
        start afresh and the keys are refreshed."""
        queue = self.core.queue
        if queue is None:
            return self.core.sync_report(0, [], None)
        sent, outcomes = 0, []
        error: Exception | None = None
        while batch := queue.pending(SYNC_BATCH):
            try:
                answers = await self._send(self.core.sync_call(batch))
            except HubError as exc:
                if not unreachable(exc):
                    raise
                error = exc
                break
            sent += len(batch)
            done = self.core.record_sync(batch, answers)
            outcomes.extend(done)
            if not done:
                error = stalled(batch)
                break
        if error is None and queue.reset_tally_if_drained(self.core.now()):
            await self._refresh_keys_if_stale()
        return self.core.sync_report(sent, outcomes, error)

    def queued(self, *, status: str | None = None, outcome: str | None = None) -> list[QueueItem]:
        """The offline queue's items (``status`` pending|done, ``outcome`` e.g.
        ``conflict``), oldest first."""
        if self.core.queue is None:
            return []
        return self.core.queue.items(status=status, outcome=outcome)


__all__ = ["AsyncHubClient"]

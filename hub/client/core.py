"""What the sync and the async client share: building each request, reading each answer,
the retry policy, and the offline decision. Neither I/O nor a transport lives here, only
in :mod:`hub.client.sync` and :mod:`hub.client.aio`, which differ only in ``await``.

**An intent** is one call of the till's: redeem this code on this order. The client gives
it one ``Idempotency-Key`` (a uuid4, or the till's own) and sends every retry of it, and
its offline queue item, with that key, so however often it is sent the hub redeems it at
most once.

**Retries** (tenacity): connection failures and timeouts, 502/503/504, ``internal_error``
(500: nothing was changed) and ``idempotency_key_in_flight`` (409: the first attempt is
still running), waiting ``Retry-After`` when the hub sends it, else an exponential backoff
with jitter. A 4xx refusal is never retried.

**Unreachable** (what sends a redeem offline): after the retries, the last attempt got no
answer at all (:class:`~hub.client.errors.HubUnreachable`: connection refused or reset,
DNS failure, connect/read/write timeout) or a 502/503/504 (a proxy in front of a stopped
hub, a hub without its database). Any other answer is the hub's word and is raised.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote as urlquote
from zoneinfo import ZoneInfo

import httpx
from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from hub import signing
from hub.client.errors import (
    CLIENT_OFFLINE_CODES,
    HubError,
    HubUnreachable,
    OfflineRefused,
    error_for,
)
from hub.client.queue import OfflineQueue
from hub.client.types import (
    Coupon,
    KeysDocument,
    LineDiscount,
    OfflineReceipt,
    OrderLike,
    OrderRedemption,
    QueueItem,
    Quote,
    Redemption,
    Reversal,
    SyncReport,
    Validation,
    format_time,
    order_json,
    order_of,
    parse_time,
)
from hub.domain.discount import compute_discount
from hub.domain.errors import DomainError
from hub.domain.offline import OfflineTally, judge_claims, looks_like_token, offline_refusal
from hub.domain.redeeming import CouponFacts, RedeemContext, check_usable
from hub.domain.state import CouponState
from hub.domain.validity import Window

T = TypeVar("T")

KEYS_RETRY_SECONDS = 60  # a failed refresh of the keys document is tried again after
SYNC_BATCH = 100  # items per POST /v1/redemptions/sync (the hub's limit)
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
USER_AGENT = "hub-client/1"


@dataclass(frozen=True)
class RetryPolicy:
    """How long an intent keeps being retried before the client gives up (or goes
    offline): at most ``attempts`` sends within ``deadline`` seconds, waiting
    ``Retry-After`` (at most ``max_wait``) or a backoff from ``initial_wait``."""

    attempts: int = 4
    deadline: float = 20.0
    initial_wait: float = 0.2
    max_wait: float = 5.0

    def stop(self) -> Any:
        return stop_after_attempt(self.attempts) | stop_after_delay(self.deadline)

    def wait(self) -> Callable[[RetryCallState], float]:

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, HubError) and exc.retry_after is not None:
                return min(exc.retry_after, self.max_wait)
            step = self.initial_wait * float(2 ** (state.attempt_number - 1))
            return min(self.max_wait, step + random.uniform(0, self.initial_wait))

        return wait

    @staticmethod
    def retry() -> Any:
        return retry_if_exception(lambda e: isinstance(e, HubError) and e.retryable)


def unreachable(exc: BaseException) -> bool:
    """The hub could not be used at all (module docstring: "Unreachable")."""
    if isinstance(exc, HubUnreachable):
        return True
    return isinstance(exc, HubError) and exc.status in (502, 503, 504)


def transport_error(exc: httpx.TransportError) -> HubUnreachable:
    return HubUnreachable(
        f"The hub cannot be reached: {type(exc).__name__}: {exc}",
        code="hub_unreachable",
        retryable=True,
    )


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of an intent: sent as is on every retry."""

    method: str
    path: str
    read: Callable[[dict[str, Any], bool], T]  # (body, replayed) → result
    json: dict[str, Any] | None = None
    key: str | None = None  # Idempotency-Key, the same on every retry
    params: dict[str, Any] = field(default_factory=dict)


def new_key() -> str:
    return str(uuid.uuid4())


class ClientCore:
    """The clients' shared state and logic."""

    def __init__(
        self,
        *,
        api_key: str,
        terminal_id: str,
        store: str | None,
        channel: str,
        queue: str | Path | OfflineQueue | None,
        timezone: str,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``queue``: the offline queue, or the path of its SQLite file; ``clock``: UTC
        now unless given (tests)."""
        if queue is not None and not isinstance(queue, OfflineQueue):
            queue = OfflineQueue(queue)
        if queue is not None and not store:
            raise ValueError("an offline queue needs the terminal's store code (store=...)")
        self.api_key = api_key
        self.terminal_id = terminal_id
        self.store = store
        self.channel = channel
        self.queue = queue
        self.timezone = timezone
        ZoneInfo(timezone)  # an unknown zone fails here, not at the first offline sale
        self.clock = clock or _utcnow
        self._touched: datetime | None = None
        self._keys_tried: datetime | None = None

    def touch(self) -> None:
        """The hub answered: remember when (written at most once a minute; the offline
        duration counts from the last answer)."""
        if self.queue is None:
            return
        now = self.now()
        if self._touched is None or (now - self._touched).total_seconds() >= 60:
            self.queue.touch(now)
            self._touched = now

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    # --- answers ------------------------------------------------------------------------

    def answer(self, call: Call[T], response: httpx.Response) -> T:
        """The result of ``response``, or the :class:`HubError` it means (raised)."""
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = None
        if response.status_code >= 400 or not isinstance(body, dict):
            problem = body if isinstance(body, dict) else None
            if problem is None and response.status_code < 400:
                raise error_for(
                    502,
                    {"code": "invalid_answer", "detail": "The hub's answer is not a JSON object."},
                    None,
                )
            raise error_for(response.status_code, problem, response.headers.get("Retry-After"))
        self.touch()
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        return call.read(body, replayed)

    # --- requests ------------------------------------------------------------------------

    def redeem_body(
        self,
        code: str,
        order: OrderLike,
        store: str | None,
        channel: str | None,
        occurred_at: datetime | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": code,
            "order": order_json(order),
            "channel": channel or self.channel,
        }
        if store or self.store:
            body["store"] = store or self.store
        if occurred_at is not None:
            body["occurred_at"] = format_time(occurred_at)
        return body

    def lookup(self, code: str) -> Call[Coupon]:
        return Call(
            "GET", f"/v1/coupons/{urlquote(code, safe='')}", lambda b, _r: Coupon.from_json(b)
        )

    def validate(self, body: dict[str, Any]) -> Call[Validation]:
        return Call(
            "POST", "/v1/redemptions/validate", lambda b, _r: Validation.from_json(b), json=body
        )

    def redeem(self, body: dict[str, Any], key: str) -> Call[Redemption]:
        return Call(
            "POST",
            "/v1/redemptions",
            lambda b, r: Redemption.from_json(b, key=key, replayed=r),
            json=body,
            key=key,
        )

    def reverse(self, redemption_id: str, reason: str | None, key: str) -> Call[Reversal]:
        body = {} if reason is None else {"reason": reason}
        return Call(
            "POST",
            f"/v1/redemptions/{urlquote(redemption_id, safe='')}/reversal",
            lambda b, r: Reversal.from_json(b, key=key, replayed=r),
            json=body,
            key=key,
        )

    def quote(
        self,
        order: OrderLike,
        codes: Sequence[str] | None,
        customer: str | None,
        store: str | None,
        channel: str | None,
    ) -> Call[Quote]:
        body: dict[str, Any] = {"order": order_json(order), "channel": channel or self.channel}
        if store or self.store:
            body["store"] = store or self.store
        if codes is not None:
            body["codes"] = list(codes)
        if customer is not None:
            body["customer"] = customer
        return Call("POST", "/v1/orders/quote", lambda b, _r: Quote.from_json(b), json=body)

    def redeem_order(
        self,
        codes: Sequence[str],
        order: OrderLike,
        store: str | None,
        channel: str | None,
        occurred_at: datetime | None,
        key: str,
    ) -> Call[OrderRedemption]:
        body: dict[str, Any] = {
            "codes": list(codes),
            "order": order_json(order),
            "channel": channel or self.channel,
        }
        if store or self.store:
            body["store"] = store or self.store
        if occurred_at is not None:
            body["occurred_at"] = format_time(occurred_at)
        return Call(
            "POST",
            "/v1/orders/redeem",
            lambda b, r: OrderRedemption.from_json(b, key=key, replayed=r),
            json=body,
            key=key,
        )

    def offline_keys(self) -> Call[KeysDocument]:
        def read(b: dict[str, Any], _r: bool) -> KeysDocument:
            doc = KeysDocument.from_json(b)  # parsed before it replaces the cached one
            if self.queue is not None:
                self.queue.save_keys_document(b, self.now())
            return doc

        return Call("GET", "/v1/offline/keys", read)

    def keys_stale(self) -> bool:
        """The cached keys document is missing or older than its ``refresh_after`` (and
        no refresh was tried in the last :data:`KEYS_RETRY_SECONDS`: a failed one is not
        repeated on every call). Asking counts as trying."""
        if self.queue is None:
            return False
        now = self.now()
        if self._keys_tried is not None and (now - self._keys_tried).total_seconds() < (
            KEYS_RETRY_SECONDS
        ):
            return False
        doc = self.queue.keys_document()
        if doc is None:
            self._keys_tried = now
            return True
        fetched = self.queue.keys_fetched() or doc.fetched_at
        stale = (now - fetched).total_seconds() >= doc.refresh_after
        if stale:
            self._keys_tried = now
        return stale

    # --- offline ---------------------------------------------------------------------------

    def redeem_offline(
        self, body: dict[str, Any], key: str, at: datetime, cause: HubError
    ) -> OfflineReceipt:
        """Judge ``body`` (the redeem request the hub did not answer) on the terminal and,
        when every check passes, queue it: committed before the receipt is returned.
        Raises :class:`OfflineRefused` with the reason otherwise."""
        queue = self.queue
        if queue is None:  # no offline mode: the hub's unreachability is the answer
            raise cause
        with queue.lock:  # judged and queued as one step (threads share a client)
            return self._redeem_offline(queue, body, key, at, cause)

    def _redeem_offline(
        self, queue: OfflineQueue, body: dict[str, Any], key: str, at: datetime, cause: HubError
    ) -> OfflineReceipt:
        token = str(body["code"]).strip()
        again = queue.queued_under(key)
        if again is not None:  # the same intent sent again (a till retrying after a restart)
            queued, stored = again
            if queued["code"] != token or queued["order"] != body["order"]:
                raise _refused(
                    "idempotency_key_reused",
                    cause,
                    message="This Idempotency-Key was queued offline with another sale.",
                )
            return _receipt_of(stored)
        if not looks_like_token(token):
            raise _refused("offline_token_required", cause)
        doc = queue.keys_document()
        if doc is None:
            raise _refused("offline_keys_missing", cause)
        store = str(body.get("store") or self.store)
        channel = str(body.get("channel") or self.channel)
        try:
            order = order_of(body["order"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _refused("invalid_request", cause, message="The order cannot be read.") from None
        tz = ZoneInfo(doc.timezone or self.timezone)
        try:
            claims = signing.verify(token, doc.public_keys)
            judge_claims(claims, merchant_id=doc.merchant, at=at)
            offline_template = doc.templates.get(claims.template_id)
            earlier = queue.holds_code(claims.code)
            if earlier is not None:
                raise _refused(
                    "coupon_already_redeemed",
                    cause,
                    message="This coupon was redeemed on this terminal already (offline).",
                    redeemed_at=format_time(earlier.occurred_at),
                    order_id=earlier.order_id,
                )
            if offline_template is None or not claims.offline_allowed:
                refusal = offline_refusal(
                    doc.rules, OfflineTally(), discount=0, at=at, offline_allowed=False
                )
                assert refusal is not None
                raise _refused(refusal.code, cause, message=refusal.message)
            facts = CouponFacts(
                CouponState.ISSUED,
                Window(claims.valid_from, claims.valid_until),
                offline_template.template,
            )
            check_usable(facts, RedeemContext(store=store, channel=channel, at=at, tz=tz))
            discount = compute_discount(offline_template.template, order)
        except DomainError as err:
            raise _refused(err.code, cause, message=err.message, **err.extra) from None
        tally = queue.tally()
        if tally.since is None:  # going offline now: the duration counts from the last answer
            tally = OfflineTally(tally.count, tally.discount, queue.last_contact() or at)
        refusal = offline_refusal(doc.rules, tally, discount=discount.total, at=at)
        if refusal is not None:
            raise _refused(refusal.code, cause, message=refusal.message, **refusal.facts)
        item = {
            "idempotency_key": key,
            "code": token,
            "store": store,
            "channel": channel,
            "order": body["order"],
            "occurred_at": format_time(at),
            "offline_discount": discount.total,
        }
        receipt = OfflineReceipt(
            code=claims.code,
            discount=discount.total,
            payable=order.amount - discount.total,
            lines=tuple(LineDiscount(ld.index, ld.sku, ld.discount) for ld in discount.lines),
            occurred_at=at,
            idempotency_key=key,
            terminal_id=self.terminal_id,
            store=store,
            order_id=order.id,
            template_id=claims.template_id,
        )
        queue.enqueue(
            key=key,
            code=claims.code,
            order_id=order.id,
            discount=discount.total,
            occurred_at=at,
            body=item,
            receipt=_receipt_json(receipt),
            tally=tally.add(discount.total, at),
            now=self.now(),
        )
        return receipt

    # --- sync ----------------------------------------------------------------------------

    def sync_call(self, batch: Sequence[QueueItem]) -> Call[list[dict[str, Any]]]:
        def read(b: dict[str, Any], _r: bool) -> list[dict[str, Any]]:
            items = b.get("items")
            if not isinstance(items, list):
                raise error_for(
                    502, {"code": "invalid_answer", "detail": "The sync answer has no items."}, None
                )
            return [i for i in items if isinstance(i, dict)]

        body = {"terminal_id": self.terminal_id, "items": [i.body for i in batch]}
        return Call("POST", "/v1/redemptions/sync", read, json=body, key=new_key())

    def record_sync(
        self, batch: Sequence[QueueItem], answers: list[dict[str, Any]]
    ) -> list[QueueItem]:
        """Commit the answers; the items of ``batch`` now done (with their outcomes)."""
        assert self.queue is not None
        done = set(self.queue.record_answers(answers, self.now()))
        keys = [i.idempotency_key for i in batch if i.idempotency_key in done]
        by_key = {
            i.idempotency_key: i
            for i in self.queue.items(status="done")
            if i.idempotency_key in done
        }
        return [by_key[k] for k in keys]

    def sync_report(
        self, sent: int, outcomes: list[QueueItem], error: Exception | None
    ) -> SyncReport:
        counts = {"redeemed": 0, "replayed": 0, "refused": 0, "conflict": 0}
        for o in outcomes:
            if o.outcome in counts:
                counts[o.outcome] += 1
        remaining = self.queue.count_pending() if self.queue is not None else 0
        return SyncReport(sent, counts, remaining, tuple(outcomes), error)


def _refused(
    code: str, cause: HubError, message: str | None = None, **facts: Any
) -> OfflineRefused:
    text = message or CLIENT_OFFLINE_CODES.get(code) or code
    safe = {k: (format_time(v) if isinstance(v, datetime) else v) for k, v in facts.items()}
    return OfflineRefused(text, code=code, facts=safe, cause=cause)


def _receipt_json(r: OfflineReceipt) -> dict[str, Any]:
    d = dataclasses.asdict(r)
    d["occurred_at"] = format_time(r.occurred_at)
    return d


def _receipt_of(d: dict[str, Any]) -> OfflineReceipt:
    return OfflineReceipt(
        **{
            **d,
            "occurred_at": parse_time(d["occurred_at"]),
            "lines": tuple(LineDiscount(**ld) for ld in d["lines"]),
        }
    )


def stalled(batch: Sequence[QueueItem]) -> HubError:
    return error_for(
        502,
        {
            "code": "sync_stalled",
            "detail": f"The hub answered none of the {len(batch)} items sent.",
        },
        None,
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)

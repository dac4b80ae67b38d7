"""Request metrics: a counter by outcome code and a latency histogram, per route.

One ASGI wrapper (:class:`RequestMetrics`, around the whole app: outside litestar's
router, exception handlers and middleware) sees every response of every route, 404s
and refusals included, so a new route is counted with no code of its own. The outcome
of a request is decided there, at the response edge, in this order:

1. ``Idempotent-Replayed: true`` on the response: ``replayed``;
2. an outcome the route noted (the POS route: the hub's result behind the vendor's
   reply, which is in the vendor's format);
3. a problem document (``application/problem+json``): its ``code``, checked against
   the error table (:data:`hub.domain.errors.ERROR_CODES`);
4. any other success: the route's own word (:data:`SUCCESS`: ``redeemed``,
   ``validated``, ``reversed``, ``found``), else ``ok``.

Labels are bounded: the route is litestar's path *template* (``unmatched`` when no route
matched, whatever the path), the method one of the HTTP methods (else ``other``), the
outcome a code of the table or one of the words above (else ``other``); the POS
connector is one the registry resolved, the operation one of ``OPERATIONS``.

Recording costs a few microseconds and touches no database and no lock other than
prometheus-client's own (``bench/metrics_overhead.py`` measures it). With several API
processes set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, an
empty directory shared by the processes, before they start): each process then writes
its figures to memory-mapped files there and ``/metrics`` sums them; without it, each
process keeps its figures in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any, Final, cast

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from hub.connectors import InboundResult
from hub.domain.errors import ERROR_CODES

log = structlog.get_logger("hub.api")

LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
UNMATCHED: Final = "unmatched"
OTHER: Final = "other"
REPLAYED: Final = "replayed"
OK: Final = "ok"
# The success word of the hot routes (method, route template); every other route: ``ok``.
SUCCESS: Final[dict[tuple[str, str], str]] = {
    ("POST", "/v1/redemptions"): "redeemed",
    ("POST", "/v1/redemptions/validate"): "validated",
    ("POST", "/v1/redemptions/{redemption_id}/reversal"): "reversed",
    ("GET", "/v1/coupons/{code}"): "found",
}
POS_SUCCESS: Final[dict[str, str]] = {
    "redeem": "redeemed",
    "validate": "validated",
    "reverse": "reversed",
}
OUTCOMES: Final = frozenset(ERROR_CODES) | {
    REPLAYED,
    OK,
    OTHER,
    *SUCCESS.values(),
    *POS_SUCCESS.values(),
}
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROBLEM: Final = b"application/problem+json"
SLOT: Final = "hub.metrics"  # the request's Exchange, in scope["state"]

# Process-wide: prometheus-client's multiprocess mode keys its files by metric and labels,
# so one set of metric objects per process (an app made twice shares them).
_REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "hub_http_requests",
    "HTTP requests by route template, method, status and outcome code",
    ["method", "route", "status", "outcome"],
    registry=_REGISTRY,
)
LATENCY = Histogram(
    "hub_http_request_duration_seconds",
    "Time from the request's arrival to its last response byte, by route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=_REGISTRY,
)
POS_REQUESTS = Counter(
    "hub_pos_requests",
    "POS route requests by connector, operation and outcome code",
    ["connector", "operation", "outcome"],
    registry=_REGISTRY,
)
POS_LATENCY = Histogram(
    "hub_pos_request_duration_seconds",
    "POS route latency by connector and operation",
    ["connector", "operation"],
    buckets=LATENCY_BUCKETS,
    registry=_REGISTRY,
)

SYNC_ITEMS = Counter(
    "hub_sync_items",
    "Items of offline syncs (POST /v1/redemptions/sync) by outcome and code",
    ["outcome", "code"],
    registry=_REGISTRY,
)
SYNC_OUTCOMES: Final = frozenset({"redeemed", "replayed", "refused", "conflict"})

# Label children by their (bounded) label values: a dict read instead of labels()'s lock.
_counters: dict[tuple[Counter, tuple[str, ...]], Any] = {}
_histograms: dict[tuple[Histogram, tuple[str, ...]], Any] = {}


def _count(metric: Counter, labels: tuple[str, ...]) -> None:
    child = _counters.get((metric, labels))
    if child is None:
        child = _counters[(metric, labels)] = metric.labels(*labels)
    child.inc()


def _observe(metric: Histogram, labels: tuple[str, ...], seconds: float) -> None:
    child = _histograms.get((metric, labels))
    if child is None:
        child = _histograms[(metric, labels)] = metric.labels(*labels)
    child.observe(seconds)


def count_sync_items(items: Iterable[dict[str, Any]]) -> None:
    """Count each item of a sync's answer by its outcome and its problem's code (a
    success: the outcome itself); labels bounded like the requests'."""
    for item in items:
        outcome = item.get("outcome")
        outcome = outcome if outcome in SYNC_OUTCOMES else OTHER
        problem = item.get("problem")
        code = problem.get("code") if isinstance(problem, dict) else None
        _count(SYNC_ITEMS, (outcome, known(code) if isinstance(code, str) else outcome))


class _Code(msgspec.Struct):
    code: str = OTHER


_decode_code = msgspec.json.Decoder(_Code).decode


def known(outcome: str) -> str:
    return outcome if outcome in OUTCOMES else OTHER


class Exchange:
    """What the edge learns of one request while it is answered."""

    __slots__ = ("connector", "operation", "outcome", "problem", "replayed", "status")

    def __init__(self) -> None:
        self.status = 0
        self.problem = False
        self.replayed = False
        self.outcome: str | None = None
        self.connector: str | None = None
        self.operation: str | None = None

    def started(self, message: dict[str, Any]) -> None:
        self.status = int(message["status"])
        for name, value in message.get("headers", ()):
            lowered = name.lower()
            if lowered == b"content-type":
                self.problem = value.split(b";", 1)[0].strip().lower() == PROBLEM
            elif lowered == b"idempotent-replayed":
                self.replayed = value.strip().lower() == b"true"

    def read_problem(self, body: bytes) -> None:
        try:
            self.outcome = known(_decode_code(body).code)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.outcome = OTHER

    def pos_result(self, operation: str, result: InboundResult) -> None:
        """The hub's answer behind a POS reply (a vendor's format hides its code)."""
        if result.replayed:
            self.outcome = REPLAYED
        elif result.ok:
            self.outcome = POS_SUCCESS.get(operation, OK)
        else:
            self.outcome = known(result.code or OTHER)

    def final_outcome(self, method: str, route: str) -> str:
        if self.replayed:
            return REPLAYED
        if self.outcome is not None:
            return self.outcome
        if self.status < 400:
            return SUCCESS.get((method, route), OK)
        return OTHER


def exchange(scope: Scope) -> Exchange | None:
    """The request's :class:`Exchange` (``None`` when the app runs without metrics)."""
    state = scope.get("state")
    return state.get(SLOT) if isinstance(state, dict) else None


def note_pos(scope: Scope, connector: str, operation: str) -> Callable[[InboundResult], None]:
    """The POS route resolved ``connector`` (a registered one) for ``operation``: count
    the request under both, and return the callback that notes the hub's result."""
    seen = exchange(scope)
    if seen is None:
        return lambda result: None
    seen.connector, seen.operation = connector, operation
    return lambda result: seen.pos_result(operation, result)


_warned = False


def _record(scope: Scope, seen: Exchange, seconds: float) -> None:
    global _warned
    try:
        method = str(scope.get("method", ""))
        if method not in METHODS:
            method = OTHER
        route = scope.get("path_template") or UNMATCHED  # set by litestar's router
        outcome = seen.final_outcome(method, route)
        _count(REQUESTS, (method, route, str(seen.status), outcome))
        _observe(LATENCY, (method, route), seconds)
        if seen.connector is not None and seen.operation is not None:
            _count(POS_REQUESTS, (seen.connector, seen.operation, outcome))
            _observe(POS_LATENCY, (seen.connector, seen.operation), seconds)
    except Exception as exc:  # a metric must never fail a request
        if not _warned:
            _warned = True
            log.warning("metrics_failed", error=f"{type(exc).__name__}: {exc}")


class RequestMetrics:
    """The ASGI wrapper that counts and times every HTTP request of the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        seen = Exchange()
        scope.setdefault("state", {})[SLOT] = seen

        async def observed(message: Message) -> None:
            msg = cast(dict[str, Any], message)
            kind = msg["type"]
            if kind == "http.response.start":
                seen.started(msg)
            elif kind == "http.response.body" and seen.problem and seen.outcome is None:
                seen.read_problem(msg.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except Exception:
            if not seen.status:  # the server answers 500 for it
                seen.status, seen.outcome = 500, "internal_error"
            raise
        finally:
            if seen.status:
                _record(scope, seen, perf_counter() - started)


def multiprocess() -> bool:
    """True when prometheus-client runs in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``
    was set when it was first imported)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def check_multiprocess_dir() -> None:
    """At start-up: in multiprocess mode the directory must exist (else every figure
    would be lost and ``/metrics`` could not read them)."""
    if multiprocess():
        try:
            MultiProcessCollector(CollectorRegistry())  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise RuntimeError(
                f"PROMETHEUS_MULTIPROC_DIR must name an existing directory: {exc}"
            ) from None


def request_collectors() -> Iterable[Collector]:
    """The collectors of the request metrics for ``/metrics``: every process's (read from
    the multiprocess directory), else this process's own."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return [registry]
    return [_REGISTRY]

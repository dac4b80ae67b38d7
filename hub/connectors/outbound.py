"""Outbound connectors: an event envelope in, HTTP requests out, each answer named.

:class:`OutboundConnector` is the protocol (a base class with the hub's defaults); the
rest are plain frozen dataclasses with no I/O: a connector builds
:class:`OutboundRequest` s, the hub sends them and hands back :class:`OutboundResponse`
s, and the connector names the :data:`Outcome`.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from hub.connectors.base import ConnectorBase

MAX_RETRY_AFTER = 24 * 3600.0
# requests one delivery may make (session renewals included): a connector that keeps
# yielding is a bug, not a delivery; the hub fails it
MAX_EXCHANGE_STEPS = 50


@dataclass(frozen=True)
class OutboundRequest:
    """One HTTP request for the hub to send (it adds nothing but a session's headers)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    timeout: float = 10.0

    def with_headers(self, extra: Mapping[str, str]) -> OutboundRequest:
        """A copy with ``extra`` headers added (replacing same-named ones, any case)."""
        lowered = {k.lower() for k in extra}
        kept = {k: v for k, v in self.headers.items() if k.lower() not in lowered}
        return replace(self, headers={**kept, **extra})


@dataclass(frozen=True)
class OutboundResponse:
    """The receiver's answer, as the hub read it off the wire."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    # every header line as received, repeats kept (``headers`` joins repeats with ", ")
    raw_headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            return None

    def header_values(self, name: str) -> list[str]:
        """Every value of a header that may repeat (``Set-Cookie``), in order."""
        name = name.lower()
        if self.raw_headers:
            return [v for k, v in self.raw_headers if k.lower() == name]
        found = header(self.headers, name)
        return [] if found is None else [found]


@dataclass(frozen=True)
class Delivered:
    """The receiver has the event: the delivery is done."""


@dataclass(frozen=True)
class Retry:
    """Try again later, on the subscription's schedule (``after``: the receiver's
    ``Retry-After``)."""

    reason: str
    after: float | None = None  # seconds the receiver asked us to wait (Retry-After)


@dataclass(frozen=True)
class Failed:
    """A permanent failure: retrying would not help (the delivery goes dead)."""

    reason: str


Outcome = Delivered | Retry | Failed

# A multi-step delivery: the connector yields requests, the hub sends each and sends the
# response back in, and the generator's return value is the outcome.
Exchange = Generator[OutboundRequest, OutboundResponse, Outcome]


@dataclass(frozen=True)
class Session:
    """Credentials obtained by a connector's session request (an OAuth token, a CSRF
    token and its cookies), added to every request until they expire."""

    headers: Mapping[str, str]
    expires_in: float | None = None  # seconds; None: until the receiver says otherwise


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` in ``headers``, whatever its case (``None``: absent)."""
    name = name.lower()
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def classify_http(response: OutboundResponse | None, error: Exception | None) -> Outcome:
    """The hub's default reading of an HTTP outcome: connect errors, timeouts, 408, 429
    and 5xx retry (honouring Retry-After); redirects and other 4xx fail; 2xx delivers."""
    if response is None:
        return Retry(f"{type(error).__name__}: {error}" if error else "no response")
    status = response.status
    if 200 <= status < 300:
        return Delivered()
    after = retry_after_seconds(response.header("retry-after"))
    if status in (408, 429) or status >= 500:
        return Retry(f"HTTP {status}", after=after)
    if 300 <= status < 400:
        return Failed(f"HTTP {status}: redirects are not followed")
    return Failed(f"HTTP {status}")


class OutboundConnector(ConnectorBase):
    """An outbound connector: delivers the events it :attr:`consumes` to another system.

    Override :meth:`build_requests` (or :meth:`exchange` for a conversation); the other
    verbs have the hub's defaults: :meth:`classify` an answer, open and renew a session
    (:meth:`session_request`, :meth:`open_session`, :meth:`session_expired`,
    :meth:`authorize`), and :meth:`check_requests` for ``hub connectors check``."""

    consumes: ClassVar[tuple[str, ...]] = ()  # event types, "*" for any

    def _does(self) -> dict[str, Any]:
        about = super()._does()
        if self.consumes:
            about["consumes"] = list(self.consumes)
        return about

    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        """The request(s) that deliver ``event`` (the published envelope), sent in order;
        ``now`` is the attempt's time (for signatures). Deterministic given its inputs.
        No requests means there is nothing to do for this event (it counts delivered)."""
        raise NotImplementedError

    def exchange(self, event: dict[str, Any], config: dict[str, Any], *, now: datetime) -> Exchange:
        """A delivery as a conversation: yield a request, receive its response, and
        return the outcome. Override it when a later request depends on an earlier
        answer (read-modify-write, look-up then post). Transport errors never reach the
        generator: the hub classifies them with :meth:`classify` and stops."""
        outcome: Outcome = Delivered()
        for request in self.build_requests(event, config, now=now):
            response = yield request
            outcome = self.classify(response, None)
            if not isinstance(outcome, Delivered):
                return outcome
        return outcome

    def classify(self, response: OutboundResponse | None, error: Exception | None) -> Outcome:
        """Connect errors, timeouts, 408, 429 and 5xx retry (honouring Retry-After);
        other 4xx fail at once; 2xx is delivered."""
        return classify_http(response, error)

    # sessions: OAuth tokens, CSRF tokens. The hub caches a session per subscription,
    # adds it to every request, and renews it once when a response says it expired.
    def session_request(self, config: dict[str, Any]) -> OutboundRequest | None:
        """The request that opens a session, or ``None`` when the connector needs none."""
        return None

    def open_session(self, config: dict[str, Any], response: OutboundResponse) -> Session | Outcome:
        """Read the session out of the answer to :meth:`session_request`."""
        outcome = self.classify(response, None)
        if not isinstance(outcome, Delivered):
            return outcome
        return Session(headers={})

    def session_expired(self, response: OutboundResponse) -> bool:
        """Whether ``response`` says the session's credentials are no longer good."""
        return False

    def authorize(self, request: OutboundRequest, session: Session) -> OutboundRequest:
        """``request`` carrying ``session`` (by default: with the session's headers)."""
        return request.with_headers(session.headers) if session.headers else request

    def check_requests(self, config: dict[str, Any]) -> Sequence[OutboundRequest]:
        """Requests that prove connectivity and credentials (``hub connectors check``).
        The hub sends them after opening a session; each must be classified
        :class:`Delivered`. The default checks only the session, if there is one."""
        return ()


__all__ = [
    "MAX_EXCHANGE_STEPS",
    "MAX_RETRY_AFTER",
    "Delivered",
    "Exchange",
    "Failed",
    "OutboundConnector",
    "OutboundRequest",
    "OutboundResponse",
    "Outcome",
    "Retry",
    "Session",
    "classify_http",
    "header",
    "retry_after_seconds",
]

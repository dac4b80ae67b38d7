"""What an outbound connector exchanges with the hub: requests, responses, outcomes.

Plain frozen dataclasses with no I/O: a connector builds :class:`OutboundRequest` s, the
hub sends them and hands back :class:`OutboundResponse` s, and the connector names the
:data:`Outcome`.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

MAX_RETRY_AFTER = 24 * 3600.0
# requests one delivery may make (session renewals included): a connector that keeps
# yielding is a bug, not a delivery; the hub fails it
MAX_EXCHANGE_STEPS = 50


@dataclass(frozen=True)
class OutboundRequest:
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
    pass


@dataclass(frozen=True)
class Retry:
    reason: str
    after: float | None = None  # seconds the receiver asked us to wait (Retry-After)


@dataclass(frozen=True)
class Failed:
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

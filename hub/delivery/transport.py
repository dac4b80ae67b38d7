"""The HTTP transport deliveries go out on: one cookie-less ``httpx`` client whose every
connection passes the egress policy (:mod:`hub.egress`), and the short in-attempt retries
(tenacity) around each request a connector's exchange sends.

The long retries (minutes to hours) are not here: an attempt that fails is recorded and
made due again by :mod:`hub.delivery.claim` after the subscription's retry schedule.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urlsplit

import httpx
import tenacity

from hub import egress
from hub.connectors import OutboundRequest, OutboundResponse
from hub.delivery import policy
from hub.delivery.exchange import Transport

# what is read of an answer at all (connectors parse it); the rest is not fetched
MAX_RESPONSE_BYTES = 1024 * 1024

_TRANSIENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.PoolTimeout,
)


def delivery_client() -> httpx.Client:
    """The HTTP client deliveries go out on. It keeps no cookies: one subscription's
    session cookie must never ride along on another's request to the same host
    (connectors that need cookies carry them in their session headers). Every
    connection it makes passes the egress policy (:mod:`hub.egress`); it follows no
    redirect."""
    return egress.client(
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )


def send_one(client: httpx.Client, req: OutboundRequest) -> OutboundResponse:
    """The short, in-attempt retries: connection errors and timeouts, three tries. The
    URL passes the egress policy first; redirects are never followed; at most
    :data:`MAX_RESPONSE_BYTES` of the answer are read."""
    egress.check_request_url(req.url)
    for attempt in tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.1, max=1.0),
        retry=tenacity.retry_if_exception_type(_TRANSIENT),
        reraise=True,
    ):
        with (
            attempt,
            client.stream(
                req.method,
                req.url,
                headers=dict(req.headers),
                content=req.body,
                timeout=req.timeout,
                follow_redirects=False,
            ) as r,
        ):
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) >= MAX_RESPONSE_BYTES:
                    break
            return OutboundResponse(
                r.status_code,
                dict(r.headers),
                bytes(body[:MAX_RESPONSE_BYTES]),
                tuple(r.headers.multi_items()),
            )
    raise AssertionError("unreachable")  # pragma: no cover


class EndpointLimit:
    """At most ``limit`` requests at once to one endpoint (scheme, host and port), so a
    worker's senders never pile onto one receiver; the others' requests go on."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._gates: defaultdict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(self.limit)
        )

    def gate(self, url: str) -> threading.BoundedSemaphore:
        parts = urlsplit(url)
        with self._lock:
            return self._gates[f"{parts.scheme}://{parts.netloc}"]


def http_transport(
    client: httpx.Client, per_endpoint: int = policy.ENDPOINT_CONCURRENCY
) -> Transport:
    """Send a connector's requests with ``client`` (short in-attempt retries included),
    at most ``per_endpoint`` at once to one endpoint."""
    limit = EndpointLimit(per_endpoint)

    def transport(req: OutboundRequest) -> OutboundResponse:
        with limit.gate(req.url):
            return send_one(client, req)

    return transport

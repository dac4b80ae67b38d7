"""The HTTP transport deliveries go out on: one cookie-less client whose every connection
passes the egress policy (:mod:`hub.egress`), and the short in-attempt retries
(tenacity) around each request a connector's exchange sends.

The client (:class:`DeliveryClient`) is httpx's own connection pool (``httpcore``) driven
directly: the same connections, TLS and timeouts as an ``httpx.Client`` with the egress
transport, and the same request headers, without the per-request work of ``httpx.Client``
(request and response models, cookie extraction, redirect and auth handling) that a
delivery does not use — it halved the client's CPU per request (0.43 → 0.19 ms on
loopback), the largest single cost of a worker. Any ``httpx.Client`` (a test's mock
transport) is still accepted by :func:`http_transport`.

The long retries (minutes to hours) are not here: an attempt that fails is recorded and
made due again by :mod:`hub.delivery.claim` after the subscription's retry schedule.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from types import TracebackType
from urllib.parse import urlsplit

import httpcore
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


MAX_CONNECTIONS = 64
# what an httpx.Client sends unless the request says otherwise (kept, so receivers see the
# same requests as before); the encodings are the ones decoded below
_DEFAULT_HEADERS: tuple[tuple[str, bytes, bytes], ...] = tuple(
    (name.lower(), name.encode(), value.encode())
    for name, value in (
        ("Accept", "*/*"),
        ("Accept-Encoding", "gzip, deflate"),
        ("Connection", "keep-alive"),
        ("User-Agent", f"python-httpx/{httpx.__version__}"),
    )
)
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_httpx_log = logging.getLogger("httpx")  # the request log line httpx.Client writes
# httpcore's exceptions as httpx's (what connectors' classify and the retries expect)
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


def _as_httpx(exc: Exception) -> Exception:
    for theirs, ours in _EXCEPTIONS:
        if isinstance(exc, theirs):
            return ours(str(exc))
    return exc


class DeliveryClient:
    """The HTTP client deliveries go out on: httpx's connection pool (``httpcore``:
    keep-alive, TLS verified as by ``httpx``) whose every connection passes the egress
    policy (:class:`hub.egress.EgressBackend`). It keeps no cookies (one subscription's
    session cookie must never ride along on another's request to the same host:
    connectors that need cookies carry them in their session headers), follows no
    redirect and uses no proxy. Thread-safe; close it when done."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=egress.EgressBackend(),
        )

    def send(self, req: OutboundRequest) -> OutboundResponse:
        """One request (no retries here): the URL passes the egress policy first; at
        most :data:`MAX_RESPONSE_BYTES` of the answer are read. Transport errors are
        raised as httpx's."""
        url = egress.check_request_url(req.url)
        method = req.method.upper()
        given = {name.lower() for name in req.headers}
        headers = [(raw, value) for low, raw, value in _DEFAULT_HEADERS if low not in given]
        headers += [(k.encode("ascii"), v.encode("ascii")) for k, v in req.headers.items()]
        if not req.body and method in _WITH_BODY and "content-length" not in given:
            headers.append((b"Content-Length", b"0"))
        timeout = req.timeout
        try:
            with self._pool.stream(
                method,
                httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=headers,
                content=req.body or None,
                extensions={
                    "timeout": {
                        "connect": timeout,
                        "read": timeout,
                        "write": timeout,
                        "pool": timeout,
                    }
                },
            ) as r:
                if _httpx_log.isEnabledFor(logging.INFO):
                    _httpx_log.info(
                        'HTTP Request: %s %s "%s %d %s"',
                        method,
                        url,
                        r.extensions.get("http_version", b"HTTP/1.1").decode("ascii", "replace"),
                        r.status,
                        r.extensions.get("reason_phrase", b"").decode("ascii", "replace"),
                    )
                if any(k.lower() == b"content-encoding" for k, _ in r.headers):
                    return _decoded(r)  # rare: the receiver compressed its answer
                return _response(r.status, httpx.Headers(r.headers), _capped(r.iter_stream()))
        except Exception as exc:
            mapped = _as_httpx(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> DeliveryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _capped(chunks: Iterator[bytes]) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) >= MAX_RESPONSE_BYTES:
            break
    return bytes(body[:MAX_RESPONSE_BYTES])


def _decoded(r: httpcore.Response) -> OutboundResponse:
    """An answer with a Content-Encoding, decoded as httpx decodes it (gzip, deflate;
    others as they are), the decoded bytes capped."""
    response = httpx.Response(r.status, headers=r.headers, stream=_Chunks(r.iter_stream()))
    return _response(r.status, response.headers, _capped(response.iter_bytes()))


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


def _response(status: int, headers: httpx.Headers, body: bytes) -> OutboundResponse:
    return OutboundResponse(status, dict(headers), body, tuple(headers.multi_items()))


def delivery_client() -> DeliveryClient:
    """The HTTP client deliveries go out on (:class:`DeliveryClient`)."""
    return DeliveryClient()


def _retrying() -> tenacity.Retrying:
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.1, max=1.0),
        retry=tenacity.retry_if_exception_type(_TRANSIENT),
        reraise=True,
    )


def send_with_retries(client: DeliveryClient, req: OutboundRequest) -> OutboundResponse:
    """The short, in-attempt retries: connection errors and timeouts, three tries."""
    for attempt in _retrying():
        with attempt:
            return client.send(req)
    raise AssertionError("unreachable")  # pragma: no cover


def send_one(client: httpx.Client, req: OutboundRequest) -> OutboundResponse:
    """:func:`send_with_retries` over an ``httpx.Client`` (tests' mock transports): the
    URL passes the egress policy first; redirects are never followed; at most
    :data:`MAX_RESPONSE_BYTES` of the answer are read."""
    egress.check_request_url(req.url)
    for attempt in _retrying():
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
    client: DeliveryClient | httpx.Client, per_endpoint: int = policy.ENDPOINT_CONCURRENCY
) -> Transport:
    """Send a connector's requests with ``client`` (short in-attempt retries included),
    at most ``per_endpoint`` at once to one endpoint."""
    limit = EndpointLimit(per_endpoint)

    if isinstance(client, DeliveryClient):

        def transport(req: OutboundRequest) -> OutboundResponse:
            with limit.gate(req.url):
                return send_with_retries(client, req)

        return transport

    def via_httpx(req: OutboundRequest) -> OutboundResponse:
        with limit.gate(req.url):
            return send_one(client, req)

    return via_httpx

"""Drive a connector's exchange: open or reuse its session, send each request it yields,
feed the answers back, and return the outcome.

The transport is a plain callable (``httpx`` in the worker, canned answers in the
contract kit), so the same code runs a delivery, a connectivity check and a test.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.connectors import (
    MAX_EXCHANGE_STEPS,
    AnyConnector,
    Delivered,
    Failed,
    OutboundConnector,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
    Session,
)
from hub.egress import denied

Transport = Callable[[OutboundRequest], OutboundResponse]  # raises on transport errors
MAX_STEPS = MAX_EXCHANGE_STEPS
SESSION_BODY_HIDDEN = b"(the session request's answer carries credentials: not logged)"


@dataclass
class Trace:
    """What happened on the wire, for the attempt log."""

    status: int | None = None
    body: bytes | None = None
    error: str | None = None
    steps: list[tuple[OutboundRequest, OutboundResponse | None]] = field(default_factory=list)


class SessionCache:
    """Sessions per (subscription, config), shared by a worker's threads. Only a cache:
    losing it costs one session request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[Session, float | None]] = {}

    @staticmethod
    def key(owner: str, config: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
        return f"{owner}:{digest.hexdigest()}"

    def get(self, key: str) -> Session | None:
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                return None
            session, until = found
            if until is not None and self._clock() >= until:
                del self._sessions[key]
                return None
            return session

    def put(self, key: str, session: Session) -> None:
        # renew a little early so a request never leaves with a token about to lapse
        until = None if session.expires_in is None else self._clock() + session.expires_in * 0.9
        with self._lock:
            self._sessions[key] = (session, until)

    def drop(self, key: str) -> None:
        with self._lock:
            self._sessions.pop(key, None)


def _send(
    connector: OutboundConnector,
    transport: Transport,
    req: OutboundRequest,
    trace: Trace,
    *,
    credentials: bool = False,
) -> OutboundResponse | Outcome:
    """Send one request; ``credentials``: its answer holds secrets (a session's token)
    and is never kept as the attempt's logged body."""
    try:
        response = transport(req)
    except Exception as exc:  # the transport's errors (httpx: connect, timeouts …)
        refused = denied(exc)
        if refused is not None:  # the egress policy: permanent, whatever the connector says
            trace.error = f"egress refused: {refused.reason}"
            trace.steps.append((req, None))
            return Failed(trace.error)
        trace.error = f"{type(exc).__name__}: {exc}"
        trace.steps.append((req, None))
        return connector.classify(None, exc)
    trace.status, trace.error = response.status, None
    trace.body = SESSION_BODY_HIDDEN if credentials else response.body
    trace.steps.append((req, response))
    return response


def _open_session(
    connector: OutboundConnector,
    config: dict[str, Any],
    transport: Transport,
    sessions: SessionCache,
    key: str,
    trace: Trace,
) -> Session | Outcome | None:
    request = connector.session_request(config)
    if request is None:
        return None
    answer = _send(connector, transport, request, trace, credentials=True)
    if not isinstance(answer, OutboundResponse):
        return answer
    opened = connector.open_session(config, answer)
    if isinstance(opened, Session):
        sessions.put(key, opened)
    return opened


def run_exchange(
    connector: AnyConnector,
    event: dict[str, Any],
    config: dict[str, Any],
    *,
    now: datetime,
    transport: Transport,
    sessions: SessionCache,
    session_owner: str,
    trace: Trace | None = None,
) -> tuple[Outcome, Trace]:
    """Deliver ``event`` through ``connector``; never raises for a connector's fault.
    An inbound connector delivers nothing: that fails at once."""
    trace = trace or Trace()
    if not isinstance(connector, OutboundConnector):
        return Failed(f"{connector.name} is an inbound connector: it delivers no events"), trace
    key = SessionCache.key(f"{connector.name}:{session_owner}", config)
    try:
        return _run(connector, event, config, now, transport, sessions, key, trace), trace
    except Exception as exc:  # a connector that cannot translate: permanent
        return Failed(f"connector error: {type(exc).__name__}: {exc}"), trace


def _session(
    connector: OutboundConnector,
    config: dict[str, Any],
    transport: Transport,
    sessions: SessionCache,
    key: str,
    trace: Trace,
) -> Session | Outcome | None:
    cached = sessions.get(key)
    if cached is not None:
        return cached
    return _open_session(connector, config, transport, sessions, key, trace)


def _run(
    connector: OutboundConnector,
    event: dict[str, Any],
    config: dict[str, Any],
    now: datetime,
    transport: Transport,
    sessions: SessionCache,
    key: str,
    trace: Trace,
) -> Outcome:
    conversation = connector.exchange(event, config, now=now)
    try:
        request = next(conversation)
    except StopIteration as done:  # nothing to send: no session needed either
        return _outcome(done.value)
    session = _session(connector, config, transport, sessions, key, trace)
    if isinstance(session, (Delivered, Retry, Failed)):
        conversation.close()
        return session if not isinstance(session, Delivered) else Failed("session not opened")
    renewed = False
    for _ in range(MAX_STEPS):
        answer = _send(
            connector,
            transport,
            connector.authorize(request, session) if session else request,
            trace,
        )
        if not isinstance(answer, OutboundResponse):
            conversation.close()
            return answer
        if session is not None and not renewed and connector.session_expired(answer):
            renewed = True  # renew once and send the same request again
            sessions.drop(key)
            session = _open_session(connector, config, transport, sessions, key, trace)
            if not isinstance(session, Session):
                conversation.close()
                return session if session is not None else Failed("session not opened")
            continue
        try:
            request = conversation.send(answer)
        except StopIteration as done:
            return _outcome(done.value)
    conversation.close()
    return Failed(f"connector error: more than {MAX_STEPS} requests for one event")


def _outcome(value: object) -> Outcome:
    if isinstance(value, (Delivered, Retry, Failed)):
        return value
    return Failed(f"connector error: exchange returned {value!r}, not an outcome")


def check_connection(
    connector: AnyConnector,
    config: dict[str, Any],
    *,
    transport: Transport,
) -> tuple[Outcome, Trace]:
    """Open a session (if the connector has one) and send its check requests. An
    inbound connector reaches no other system: nothing to check."""
    trace = Trace()
    if not isinstance(connector, OutboundConnector):
        return Delivered(), trace
    sessions = SessionCache()
    key = SessionCache.key(f"{connector.name}:check", config)
    try:
        session = _open_session(connector, config, transport, sessions, key, trace)
        if isinstance(session, (Retry, Failed)):
            return session, trace
        for request in connector.check_requests(config):
            if isinstance(session, Session):
                request = connector.authorize(request, session)
            answer = _send(connector, transport, request, trace)
            outcome = (
                connector.classify(answer, None) if isinstance(answer, OutboundResponse) else answer
            )
            if not isinstance(outcome, Delivered):
                return outcome, trace
    except Exception as exc:
        return Failed(f"connector error: {type(exc).__name__}: {exc}"), trace
    return Delivered(), trace

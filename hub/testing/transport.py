"""Scripted receivers for driving connectors without a network (no pytest needed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from hub.connectors import Failed, OutboundRequest, OutboundResponse, Retry

NOW = datetime(2026, 11, 25, 6, 31, tzinfo=UTC)

Answer = Callable[[OutboundRequest], OutboundResponse]


@dataclass
class ScriptedTransport:
    """Answers every request with ``answer`` except the ``fail_at``-th (0-based, session
    requests included), which gets ``failure`` (a response, or an exception raised)."""

    answer: Answer
    fail_at: int | None = None
    failure: OutboundResponse | Exception | None = None
    sent: list[OutboundRequest] = field(default_factory=list)

    def __call__(self, request: OutboundRequest) -> OutboundResponse:
        index = len(self.sent)
        self.sent.append(request)
        if index == self.fail_at and self.failure is not None:
            if isinstance(self.failure, Exception):
                raise self.failure
            return self.failure
        return self.answer(request)


# (answer, the outcome class it must give); 429 also checks Retry-After is honoured
FAILURES: tuple[tuple[str, OutboundResponse | Exception, type], ...] = (
    ("HTTP 500", OutboundResponse(500, {}, b"oops"), Retry),
    ("HTTP 502", OutboundResponse(502, {}, b""), Retry),
    ("HTTP 503", OutboundResponse(503, {"retry-after": "30"}, b""), Retry),
    ("HTTP 429", OutboundResponse(429, {"Retry-After": "30"}, b"slow down"), Retry),
    ("HTTP 400", OutboundResponse(400, {}, b'{"error": "bad request"}'), Failed),
    ("HTTP 404", OutboundResponse(404, {}, b""), Failed),
    ("HTTP 422", OutboundResponse(422, {}, b"{}"), Failed),
    ("timeout", httpx.ReadTimeout("timed out"), Retry),
    ("connect error", httpx.ConnectError("connection refused"), Retry),
)

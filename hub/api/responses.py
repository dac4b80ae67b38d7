"""Responses the controllers share: a service's finished answer as sent, and the
documentation of problem answers (OpenAPI ``responses`` entries)."""

from __future__ import annotations

from litestar import Response
from litestar.openapi.datastructures import ResponseSpec

from hub.api.dto import Problem
from hub.services.commands import HttpResult
from hub.services.problems import PROBLEM_MEDIA_TYPE


def send(result: HttpResult) -> Response[bytes]:
    """A service's answer (stored once per Idempotency-Key) as sent: a replay says so in
    ``Idempotent-Replayed: true``."""
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return Response(
        content=result.body,
        status_code=result.status,
        media_type=result.media_type,
        headers=headers,
    )


def problem_docs(*statuses: int) -> dict[int, ResponseSpec]:
    """Problem documents (RFC 9457) the operation may answer with these statuses."""
    return {
        s: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description="Problem (RFC 9457) with a stable `code`",
        )
        for s in statuses
    }


def too_many_docs() -> dict[int, ResponseSpec]:
    """The 429 a guarded endpoint may answer, for its OpenAPI responses."""
    return {
        429: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description="`too_many_failed_attempts`: too many unknown or mistyped codes "
            "from this key or address; see Retry-After",
        )
    }

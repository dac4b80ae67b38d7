"""Response documentation the controllers share (OpenAPI ``responses`` entries)."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from hub.api.dto import Problem
from hub.services.problems import PROBLEM_MEDIA_TYPE


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

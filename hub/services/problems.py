"""RFC 9457 problem documents for domain errors (also stored for idempotent replay)."""

from __future__ import annotations

from typing import Any

from hub.domain.errors import ERROR_CODES, DomainError
from hub.services.jsonio import dumps

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:redemption-hub:error:"


def problem_dict(
    code: str, status: int, detail: str, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    title = ERROR_CODES.get(code, (status, "Request refused"))[1]
    doc: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        doc["instance"] = instance
    for k, v in extra.items():
        if k not in doc:
            doc[k] = v
    return doc


def problem_for(err: DomainError, instance: str | None = None) -> dict[str, Any]:
    return problem_dict(err.code, err.status, err.message, instance, **err.extra)


def problem_bytes(err: DomainError, instance: str | None = None) -> bytes:
    return dumps(problem_for(err, instance))

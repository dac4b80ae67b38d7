"""Every failure becomes an RFC 9457 problem+json with a stable ``code``; never a trace.

The HTTP status of a refusal is looked up here, at the edge, from the error table
(:func:`hub.services.problems.status_for`); a :class:`DomainError` carries none.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hub.db.engine import busy_reason
from hub.domain.codes import mask
from hub.domain.errors import DomainError
from hub.services.jsonio import dumps
from hub.services.problems import PROBLEM_MEDIA_TYPE, problem_dict, problem_for, status_for

log = structlog.get_logger("hub.api")

# path parameters that are secrets (a coupon code, a transfer offer's or a campaign's
# claim token): a log line carries them masked
SECRET_PATH_PARAMS = ("code", "token", "claim_token")


def log_path(request: Request[Any, Any, Any]) -> str:
    """The request's path for a log line, its secret path parameters masked."""
    path = request.url.path
    params = request.scope.get("path_params") or {}
    for name in SECRET_PATH_PARAMS:
        value = params.get(name)
        if isinstance(value, str) and value:
            path = path.replace(value, mask(value))
    return path


def _problem(doc: dict[str, Any], headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=dumps(doc),
        status_code=doc["status"],
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _edge(code: str, detail: str, path: str, **extra: Any) -> dict[str, Any]:
    """A problem document for a refusal made here at the edge, with the table's status."""
    return problem_dict(code, status_for(code), detail, path, **extra)


def domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    status = status_for(exc.code)
    # RFC 9110 §15.5.2: a 401 response must carry WWW-Authenticate.
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429 and "retry_after" in exc.extra:  # too_many_failed_attempts
        headers = {"Retry-After": str(exc.extra["retry_after"])}
    return _problem(problem_for(exc, instance=request.url.path), headers=headers)


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]*)`")


def _field_errors(extra: Any) -> list[dict[str, str]]:
    """Litestar's validation details as ``[{"field": "order.lines[0].qty", "message"}]``.

    Litestar names the *parent* object for unknown and missing fields; the field itself
    is only in the message, so it is appended to the path here.
    """
    out = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or "")
            message = str(item.get("message", ""))
            field = "" if key in ("data", "body") else key
            named = _UNKNOWN_FIELD.search(message) or _MISSING_FIELD.search(message)
            if named:
                field = f"{field}.{named.group(1)}" if field else named.group(1)
            out.append({"field": field or "body", "message": message})
    return out


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    path = request.url.path
    status = exc.status_code
    detail = str(exc.detail or "")
    if isinstance(exc, ValidationException):
        errors = _field_errors(exc.extra)
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or detail
        if any(e["message"] == "'data'" for e in errors):
            message = "A JSON body is required."
        return _problem(_edge("invalid_request", message, path, errors=errors))
    # litestar wraps msgspec's DecodeError ("JSON is malformed: …", "Input data was
    # truncated", …) in a SerializationException, re-raised as a 400 ClientException.
    if status == 400 and (
        isinstance(exc.__cause__, SerializationException) or "JSON is malformed" in detail
    ):
        if not detail.startswith("JSON is malformed"):
            detail = f"JSON is malformed: {detail}"
        return _problem(_edge("malformed_json", detail, path))
    if status == 413:
        return _problem(_edge("payload_too_large", "The request body is too large.", path))
    if isinstance(exc, NotAuthorizedException) or status == 401:
        return _problem(_edge("unauthorized", detail, path), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, NotFoundException) or status == 404:
        return _problem(_edge("not_found", "No such resource.", path))
    if isinstance(exc, MethodNotAllowedException) or status == 405:
        # RFC 9110 §15.5.6: a 405 response must carry Allow (litestar puts it on the exception).
        return _problem(_edge("method_not_allowed", detail, path), headers=exc.headers or None)
    # any other litestar refusal keeps litestar's status (e.g. a 400 for a header litestar
    # cannot parse): ``invalid_request`` names the kind, the status stays what it was
    if status >= 500:
        return internal_error(request, exc)
    return _problem(problem_dict("invalid_request", status, detail, path))


def too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    """msgspec raises RecursionError (not a DecodeError) on JSON nested too deeply."""
    if "deserializing" not in str(exc):
        return internal_error(request, exc)
    detail = "JSON is malformed: nested too deeply."
    return _problem(_edge("malformed_json", detail, request.url.path))


def not_utf8(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[bytes]:
    """msgspec raises UnicodeDecodeError (not a DecodeError) on invalid UTF-8 inside a string."""
    detail = "JSON is malformed: the body is not valid UTF-8."
    return _problem(_edge("malformed_json", detail, request.url.path))


def data_error(request: Request[Any, Any, Any], exc: DataError) -> Response[bytes]:
    """The database refused a value (e.g. a NUL character, which PostgreSQL text cannot hold)."""
    log.info("data_error", path=log_path(request), error=type(exc.orig).__name__)
    return _problem(
        _edge(
            "invalid_request",
            "A value cannot be stored (it contains a NUL character or is too long).",
            request.url.path,
        )
    )


DB_RETRY_AFTER = 1  # seconds: a busy pool frees up within milliseconds to seconds


def database_busy(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """No database connection (or lock) to spare right now: 503 with Retry-After, never
    a 500. Nothing was committed, so retrying with the same Idempotency-Key is safe."""
    reason = busy_reason(exc)
    if reason is None:
        return internal_error(request, exc)
    log.warning("database_busy", path=log_path(request), reason=reason, error=type(exc).__name__)
    detail = (
        "The database has no connection to spare right now; nothing was changed. "
        "Retry after the number of seconds in Retry-After, with the same Idempotency-Key."
        if reason == "database_busy"
        else "The database cannot be reached right now; nothing was changed. "
        "Retry after the number of seconds in Retry-After, with the same Idempotency-Key."
    )
    return _problem(
        _edge(reason, detail, request.url.path, retry_after=DB_RETRY_AFTER),
        headers={"Retry-After": str(DB_RETRY_AFTER)},
    )


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unhandled_error", path=log_path(request), error=type(exc).__name__, exc_info=exc)
    return _problem(
        _edge(
            "internal_error",
            "Unexpected failure; nothing was changed. Retry with the same Idempotency-Key.",
            request.url.path,
        )
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: domain_error,
    HTTPException: http_error,
    RecursionError: too_deep,
    UnicodeDecodeError: not_utf8,
    DataError: data_error,
    PoolTimeout: database_busy,
    OperationalError: database_busy,
    InterfaceError: database_busy,
    Exception: internal_error,
}

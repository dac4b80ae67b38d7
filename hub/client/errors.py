"""The errors the client raises: one tree, rooted at :class:`HubError`, as stripe-python's.

Every error carries the hub's stable ``code`` (the problem document's, or the client's
own for what happens before or without an answer), the HTTP ``status`` (``None`` when
there was no answer), the whole ``problem`` document, and ``retryable``: whether sending
the *same* intent again (same Idempotency-Key) may succeed. The client has already
retried the retryable ones before raising them.

* :class:`HubUnreachable` — no answer at all (connection refused, timed out, dropped);
* :class:`ApiError` — the hub answered with a problem document:
  :class:`InvalidRequestError` (400, 413, 415), :class:`AuthenticationError` (401),
  :class:`PermissionDeniedError` (403), :class:`NotFoundError` (404),
  :class:`ConflictError` (409), :class:`RefusedError` (422: the coupon is refused, e.g.
  ``coupon_already_redeemed``), :class:`RateLimitError` (429), :class:`ServerError` (5xx);
* :class:`OfflineRefused` — the hub could not be reached and the terminal refused to
  redeem offline (the code says why: ``offline_count_limit``, ``token_signature_invalid``…).
"""

from __future__ import annotations

from typing import Any

# Codes the hub answers while a retry with the same Idempotency-Key may succeed.
RETRYABLE_CODES = frozenset(
    {
        "idempotency_key_in_flight",  # 409: the first attempt is still running
        "database_busy",  # 503
        "database_unavailable",  # 503
        "draining",  # 503: the process is stopping, another one answers
        "internal_error",  # 500: nothing was changed
    }
)


class HubError(Exception):
    """Any failure of a client call."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None = None,
        problem: dict[str, Any] | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.problem: dict[str, Any] = problem or {}
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r})"


class HubUnreachable(HubError):
    """No answer from the hub: connection refused or reset, DNS failure, timeout."""


class ApiError(HubError):
    """The hub answered with an error status and (normally) a problem document."""


class InvalidRequestError(ApiError):
    pass


class AuthenticationError(ApiError):
    pass


class PermissionDeniedError(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class RefusedError(ApiError):
    """422: the hub judged the request and refused it (the coupon, the order, the token)."""


class RateLimitError(ApiError):
    pass


class ServerError(ApiError):
    pass


class OfflineRefused(HubError):
    """The terminal could not reach the hub and may not redeem this offline; ``code`` is
    one of :data:`hub.domain.offline.OFFLINE_REFUSALS`, a token code (``token_*``), a
    redeem refusal judged locally (``threshold_not_met``…), or the client's own
    ``offline_token_required`` / ``offline_keys_missing``."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        facts: dict[str, Any] | None = None,
        cause: HubError | None = None,
    ) -> None:
        super().__init__(
            message, code=code, problem={"code": code, "detail": message, **(facts or {})}
        )
        self.facts: dict[str, Any] = facts or {}
        self.cause = cause  # why the hub was not used (the last transport failure)


# Client-side offline codes (never an HTTP answer), next to hub.domain.offline's.
CLIENT_OFFLINE_CODES: dict[str, str] = {
    "offline_token_required": (
        "Offline, only a signed coupon token (the QR code) can be checked; a typed code "
        "cannot. Scan the QR code or wait for the hub."
    ),
    "offline_keys_missing": (
        "The terminal has no offline keys yet: it must reach the hub once first."
    ),
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: RefusedError,
    429: RateLimitError,
}


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: the hub never sends one; fall back to backoff
    return max(0.0, seconds)


def error_for(status: int, problem: dict[str, Any] | None, retry_after: str | None) -> ApiError:
    """The error for an answer of ``status`` with ``problem`` (its parsed body)."""
    doc = problem or {}
    code = str(doc.get("code") or f"http_{status}")
    message = str(doc.get("detail") or doc.get("title") or f"HTTP {status}")
    cls = ServerError if status >= 500 else _BY_STATUS.get(status, ApiError)
    retryable = code in RETRYABLE_CODES or status in (502, 503, 504)
    return cls(
        message,
        code=code,
        status=status,
        problem=doc,
        retryable=retryable,
        retry_after=_retry_after(retry_after),
    )

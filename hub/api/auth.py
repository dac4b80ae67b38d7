"""Bearer API keys on every endpoint (but the OpenAPI document and /health)."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from threading import Lock

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from hub.domain.errors import DomainError, refuse
from hub.services.catalog import authenticate
from hub.services.principal import Principal

PUBLIC_PATHS = {"/schema", "/health", "/ready", "/metrics"}
CACHE_SECONDS = 5.0  # a key change is seen by every process within this time
_CACHE_SIZE = 10_000


class _PrincipalCache:
    """Short-lived cache of verified tokens (keyed by their SHA-256, never the token)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = Lock()

    def get(self, digest: str) -> Principal | None:
        with self._lock:
            item = self._items.get(digest)
            if item is None or item[0] < time.monotonic():
                return None
            return item[1]

    def put(self, digest: str, p: Principal) -> None:
        with self._lock:
            self._items[digest] = (time.monotonic() + CACHE_SECONDS, p)
            self._items.move_to_end(digest)
            while len(self._items) > _CACHE_SIZE:
                self._items.popitem(last=False)


_cache = _PrincipalCache()


def _unauthorized(message: str) -> DomainError:
    return refuse("unauthorized", message, status=401)


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        header = connection.headers.get("authorization")
        if not header:
            raise _unauthorized("Send an API key: Authorization: Bearer <key>.")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 200:
            raise _unauthorized("Use Authorization: Bearer <key>.")
        digest = hashlib.sha256(token.encode()).hexdigest()
        principal = _cache.get(digest)
        if principal is None:
            engine = connection.app.state.hub.engine
            principal = await anyio.to_thread.run_sync(authenticate, engine, token)
            if principal is None:
                raise _unauthorized("Unknown or revoked API key.")
            _cache.put(digest, principal)
        return AuthenticationResult(user=principal, auth=principal)

"""Bearer API keys on every endpoint (but the OpenAPI document and /health)."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from threading import Lock

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from hub.api.permissions import PUBLIC_PREFIXES, allowed
from hub.domain.errors import DomainError, refuse
from hub.services import audit
from hub.services.keys import authenticate
from hub.services.principal import Principal

PUBLIC_PATHS = set(PUBLIC_PREFIXES)
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
    return refuse("unauthorized", message)


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
            state = connection.app.state.hub
            principal = await anyio.to_thread.run_sync(
                authenticate, state.engine, token, state.clock()
            )
            if principal is None:
                raise _unauthorized("Unknown, revoked or expired API key.")
            _cache.put(digest, principal)
        method = str(connection.scope.get("method", "GET"))
        template = str(connection.scope.get("path_template", connection.scope["path"]))
        if not allowed(method, template, principal.role):
            raise refuse(
                "forbidden",
                f"A key with role {principal.role} may not {method} {template} "
                "(see the role table in the README).",
            )
        peer = connection.client.host if connection.client else None
        guard = connection.app.state.hub.settings.guard
        audit.CLIENT_ADDRESS.set(
            guard.client_address(peer, connection.headers.get("x-forwarded-for"))
        )
        return AuthenticationResult(user=principal, auth=principal)

"""Bearer API keys on every endpoint (but the OpenAPI document and /health).

A verified key is cached in the process (:class:`PrincipalCache`, keyed by the token's
SHA-256, never the token) for at most :data:`CACHE_SECONDS`, and never past the key's own
``expires_at`` (judged by the app's clock): so a key revoked or expired in the database
stops working in every process within :data:`CACHE_SECONDS`, an expiring key stops at
its expiry, and a key revoked through this process's API (``POST /v1/keys/{id}/revoke``)
stops at once here (:func:`forget_key`). Unknown, revoked and expired keys are never
cached: each such request asks the database (and the guessing defence counts it).

A staff member's shift session (``Bearer hs_…``, :mod:`hub.services.staff_sessions`) is
authenticated and cached the same way, never past the session's end (the shift's):
a principal with role ``store`` and the staff member. Disabling a staff member through
this process forgets their sessions here at once (:func:`forget_staff`); signing out
forgets the session (:func:`forget_key`). An API key's path is unchanged: one prefix
test of the token decides which look-up runs.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from threading import Lock
from typing import Any, Final

import anyio.to_thread
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from hub.api.client import CLIENT_SLOT, AddressBook
from hub.api.permissions import PUBLIC_PREFIXES, allowed
from hub.api.state import HubState
from hub.domain.errors import DomainError, refuse
from hub.services import audit
from hub.services.keys import authenticate_key
from hub.services.principal import Principal
from hub.services.staff_sessions import authenticate_session, is_session_token

PUBLIC_PATHS = set(PUBLIC_PREFIXES)
CACHE_SECONDS = 5.0  # a key change is seen by every process within this time
_CACHE_SIZE: Final = 10_000
_BEARER: Final = b"bearer "
MAX_TOKEN: Final = 200


class PrincipalCache:
    """Short-lived cache of verified tokens: SHA-256 of the token → principal, for
    :data:`CACHE_SECONDS` (read when an entry is made) and no longer than the key's
    ``expires_at``. At most ``size`` entries, the least recently added dropped first."""

    def __init__(
        self, monotonic: Callable[[], float] = time.monotonic, size: int = _CACHE_SIZE
    ) -> None:
        self._items: OrderedDict[str, tuple[float, datetime | None, Principal]] = OrderedDict()
        self._lock = Lock()
        self._monotonic = monotonic
        self._size = size

    def get(self, digest: str, now: Callable[[], datetime]) -> Principal | None:
        item = self._items.get(digest)
        if item is None:
            return None
        until, expires_at, p = item
        if until <= self._monotonic() or (expires_at is not None and expires_at <= now()):
            with self._lock:
                self._items.pop(digest, None)
            return None
        return p

    def put(self, digest: str, p: Principal, expires_at: datetime | None) -> None:
        if CACHE_SECONDS <= 0:
            return
        with self._lock:
            self._items[digest] = (self._monotonic() + CACHE_SECONDS, expires_at, p)
            self._items.move_to_end(digest)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget_key(self, key_id: str) -> None:
        """Drop every entry of ``key_id`` (it was revoked here)."""
        with self._lock:
            for digest in [d for d, (_, _, p) in self._items.items() if p.key_id == key_id]:
                del self._items[digest]

    def forget_staff(self, staff_id: str) -> None:
        """Drop every session of ``staff_id`` (they were disabled here)."""
        with self._lock:
            for digest in [d for d, (_, _, p) in self._items.items() if p.staff_id == staff_id]:
                del self._items[digest]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = PrincipalCache()


def forget_key(key_id: str) -> None:
    """A key was revoked through this process: it stops working here at once (other
    processes drop it within :data:`CACHE_SECONDS`)."""
    _cache.forget_key(key_id)


def forget_staff(staff_id: str) -> None:
    """A staff member was disabled through this process: every session of theirs stops
    here at once (other processes drop them within :data:`CACHE_SECONDS`)."""
    _cache.forget_staff(staff_id)


def token_digest(token: str) -> str:
    """What the cache keys a token by: its SHA-256 (the token itself is never kept)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _unauthorized(message: str) -> DomainError:
    return refuse("unauthorized", message)


_allowed: dict[tuple[str, str, str], bool] = {}


def _may(method: str, template: str, role: str) -> bool:
    """The permission table's answer (:func:`hub.api.permissions.allowed`), memoised:
    methods, route templates and roles are few and fixed."""
    key = (method, template, role)
    ok = _allowed.get(key)
    if ok is None:
        ok = _allowed[key] = allowed(method, template, role)
    return ok


def bearer_token(scope: Scope) -> str:
    """The token of ``Authorization: Bearer <token>`` (401 ``unauthorized`` otherwise)."""
    header: bytes | None = None
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            header = value
            break
    if not header:
        raise _unauthorized("Send an API key: Authorization: Bearer <key>.")
    scheme, _, raw = header.partition(b" ")
    token = raw.strip()
    if scheme.lower() != _BEARER[:-1] or not token or len(token) > MAX_TOKEN:
        raise _unauthorized("Use Authorization: Bearer <key>.")
    return token.decode("latin-1")


class ApiKeyMiddleware:
    """Authenticates every request but those to :data:`PUBLIC_PATHS`, ``OPTIONS``
    (CORS preflight) and handlers with ``opt={"exclude_from_auth": True}``; checks the
    key's role against the permission table; notes the client's address for the
    audit log and the guessing defence (:mod:`hub.api.client`)."""

    def __init__(self, app: ASGIApp, state: HubState) -> None:
        self.app = app
        self.state = state
        self.addresses = AddressBook(state.settings.guard)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: HubState = scope["app"].state.hub  # the app's state now, not at start-up
        if state is not self.state:
            self.state, self.addresses = state, AddressBook(state.settings.guard)
        if scope["type"] == ScopeType.HTTP and not self._public(scope):
            p = await self.authenticate(scope)
            scope["user"] = p
            scope["auth"] = p
        await self.app(scope, receive, send)

    @staticmethod
    def _public(scope: Scope) -> bool:
        if scope.get("method") == "OPTIONS" or str(scope["path"]).startswith(PUBLIC_PREFIXES):
            return True
        handler = scope.get("route_handler")
        return handler is not None and bool(handler.opt.get("exclude_from_auth"))

    async def authenticate(self, scope: Scope) -> Principal:
        token = bearer_token(scope)
        digest = token_digest(token)
        state = self.state
        principal = _cache.get(digest, state.clock)
        if principal is None:
            look_up = authenticate_session if is_session_token(token) else authenticate_key
            found = await anyio.to_thread.run_sync(look_up, state.engine, token, state.clock())
            if found is None:
                raise _unauthorized("Unknown, revoked or expired API key or staff session.")
            principal, expires_at = found
            _cache.put(digest, principal, expires_at)
        method = str(scope.get("method", "GET"))
        template = str(scope.get("path_template", scope["path"]))
        if not _may(method, template, principal.role):
            raise refuse(
                "forbidden",
                f"A key with role {principal.role} may not {method} {template} "
                "(see the role table in the README).",
            )
        address = self.addresses.of(scope)
        state_dict: dict[str, Any] = scope.setdefault("state", {})
        state_dict[CLIENT_SLOT] = address
        audit.CLIENT_ADDRESS.set(address)
        return principal

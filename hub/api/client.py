"""Who is calling: the client's address, as the guessing defence counts it.

Worked out once per request, by the authentication middleware (:class:`AddressBook`,
which remembers the answer for each TCP peer and ``X-Forwarded-For`` value it has seen,
so the addresses are parsed once per client rather than once per request), and kept in
the request's scope for the handlers."""

from __future__ import annotations

from typing import Any, Final

from litestar import Request
from litestar.types import Scope

from hub.api.state import hub
from hub.services.guard import Guard

CLIENT_SLOT: Final = "hub.client"  # the request's client address, in scope["state"]
_MISSING: Final = object()
_BOOK_SIZE: Final = 4096


class AddressBook:
    """``guard.client_address(peer, x_forwarded_for)``, remembered per distinct pair (a
    pure function of them and the guard's fixed trusted proxies); at most
    :data:`_BOOK_SIZE` pairs, forgotten all at once when full."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._known: dict[tuple[str | None, bytes | None], str | None] = {}

    def of(self, scope: Scope) -> str | None:
        client = scope.get("client")
        peer = client[0] if client else None
        forwarded: bytes | None = None
        for name, value in scope["headers"]:
            if name.lower() == b"x-forwarded-for":
                forwarded = value
                break
        key = (peer, forwarded)
        found = self._known.get(key, _MISSING)
        if found is _MISSING:
            text = forwarded.decode("latin-1") if forwarded is not None else None
            found = self.guard.client_address(peer, text)
            if len(self._known) >= _BOOK_SIZE:
                self._known.clear()
            self._known[key] = found
        return found  # type: ignore[return-value]


def client_address(request: Request[Any, Any, Any]) -> str | None:
    """The client's address: the TCP peer, or the ``X-Forwarded-For`` client when the
    peer is one of ``HUB_TRUSTED_PROXIES`` (as the authentication noted it)."""
    state = request.scope.get("state")
    if isinstance(state, dict) and CLIENT_SLOT in state:
        address: str | None = state[CLIENT_SLOT]
        return address
    peer = request.client.host if request.client is not None else None
    return hub(request).settings.guard.client_address(peer, request.headers.get("x-forwarded-for"))

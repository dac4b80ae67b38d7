"""Who is calling: the client's address, as the guessing defence counts it."""

from __future__ import annotations

from typing import Any

from litestar import Request

from hub.api.state import hub


def client_address(request: Request[Any, Any, Any]) -> str | None:
    """The client's address: the TCP peer, or the ``X-Forwarded-For`` client when the
    peer is one of ``HUB_TRUSTED_PROXIES``."""
    peer = request.client.host if request.client is not None else None
    return hub(request).settings.guard.client_address(peer, request.headers.get("x-forwarded-for"))

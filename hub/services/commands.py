"""Commands the transports hand to the services (already shape-checked)."""

from __future__ import annotations

from dataclasses import dataclass

# the command lives in the domain, where POS connectors can build it too
from hub.domain.commands import RedeemCommand


@dataclass(frozen=True)
class HttpResult:
    """A finished response: what the API sends, and what idempotency stores."""

    status: int
    body: bytes
    replayed: bool = False
    media_type: str = "application/json"


__all__ = ["HttpResult", "RedeemCommand"]

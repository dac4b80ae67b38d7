"""Commands the transports hand to the services (already shape-checked)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub.domain.cart import Order


@dataclass(frozen=True)
class RedeemCommand:
    code: str  # as presented; normalised and checked by the service
    store: str | None
    channel: str
    order: Order
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class HttpResult:
    """A finished response: what the API sends, and what idempotency stores."""

    status: int
    body: bytes
    replayed: bool = False
    media_type: str = "application/json"

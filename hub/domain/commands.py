"""Commands the transports hand to the services, already shape-checked.

A redeem (or validate) arrives as the native ``/v1/redemptions`` body or through a POS
connector's ``parse``; both end as the same :class:`RedeemCommand`, so the rules that
follow cannot tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub.domain.cart import Order


@dataclass(frozen=True)
class RedeemCommand:
    """Redeem (or validate) ``code`` against ``order`` at ``store`` through ``channel``;
    ``occurred_at`` is when the till says it happened (``None``: now)."""

    code: str  # as presented; normalised and checked by the service
    store: str | None
    channel: str
    order: Order
    occurred_at: datetime | None = None


__all__ = ["RedeemCommand"]

"""Stock movements as a generic signed JSON message (``erp.webhook``), for ERPs that
have their own adapter.

Which stock moves follows :mod:`connectors.erp.stock`; an event that moves nothing (a
threshold coupon, a skipped store, an event type without stock) sends no request. One
``POST`` to ``config.url`` per stock-moving event::

    {"id": "<event id>", "type": "stock.movement", "occurred_at": "<event time>",
     "merchant_id": "mch_…",
     "movements": [{"sku": "<ERP code>", "qty": 1, "direction": "out" | "in",
                    "store": "SH-001", "location": "<config.locations[store]>"}],
     "source_event": "coupon.redeemed" | "coupon.redemption_reversed",
     "redemption_id": "rdm_…"}

``direction`` is ``out`` for a redemption and ``in`` for its reversal; ``location`` is
the store code when ``config.locations`` is not set. Signed exactly like the generic
``webhook`` connector (Standard Webhooks): ``webhook-id`` is the event id — the
receiver's dedupe key —, ``webhook-timestamp`` the attempt's Unix time and
``webhook-signature`` ``v1,`` + base64 HMAC-SHA256 over ``{id}.{timestamp}.{body}``.
Answers are read the hub's default way (2xx delivered; connection errors, timeouts,
408, 429 and 5xx retried with ``Retry-After``; other 4xx failed).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from connectors.erp.stock import StockError, StockMovement, movements, plan
from connectors.webhook import secret_key, signed_request
from hub.connectors import (
    Delivered,
    Exchange,
    Failed,
    OutboundConnector,
    OutboundRequest,
    package_schema,
)

_encoder = msgspec.json.Encoder()


class ErpWebhookConnector(OutboundConnector):
    """Generic ERP: a signed ``stock.movement`` message per stock-moving event."""

    name: ClassVar[str] = "erp.webhook"
    kind: ClassVar[str] = "erp"
    version: ClassVar[str] = "1.0"
    summary: ClassVar[str] = "Stock movements as a signed JSON message (Standard Webhooks)"
    capabilities: ClassVar[tuple[str, ...]] = ("outbound", "stock.decrement", "stock.increment")
    consumes: ClassVar[tuple[str, ...]] = ("coupon.redeemed", "coupon.redemption_reversed")
    # extra headers often carry credentials: write-only like the secret
    secret_fields: ClassVar[tuple[str, ...]] = ("secret", "headers")
    config_schema: ClassVar[dict[str, Any]] = package_schema(
        "connectors.erp", "webhook.schema.json"
    )

    def check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        super().check_config(config)
        secret_key(config["secret"])
        return config

    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        """The message for ``event`` (none when nothing moves). Raises
        :class:`~connectors.erp.stock.StockError` for a store outside the mapping;
        :meth:`exchange` turns that into a failed delivery."""
        planned = movements(event, config)
        return [message(event, config, planned, now=now)] if planned else []

    def exchange(self, event: dict[str, Any], config: dict[str, Any], *, now: datetime) -> Exchange:
        planned = plan(event, config)
        if isinstance(planned, Failed):
            return planned
        if not planned:
            return Delivered()
        response = yield message(event, config, planned, now=now)
        return self.classify(response, None)


def message(
    event: dict[str, Any],
    config: dict[str, Any],
    planned: Sequence[StockMovement],
    *,
    now: datetime,
) -> OutboundRequest:
    """The signed ``stock.movement`` request for ``planned`` movements of ``event``."""
    if not planned:
        raise StockError("a stock.movement message needs at least one movement")
    event_id = str(event["id"])
    body = _encoder.encode(
        {
            "id": event_id,
            "type": "stock.movement",
            "occurred_at": event["occurred_at"],
            "merchant_id": event["merchant_id"],
            "movements": [
                {
                    "sku": m.sku,
                    "qty": m.qty,
                    "direction": m.direction,
                    "store": m.store,
                    "location": m.location,
                }
                for m in planned
            ],
            "source_event": event["type"],
            "redemption_id": planned[0].redemption_id,
        }
    )
    return signed_request(config, event_id, body, now)


__all__ = ["ErpWebhookConnector", "message"]

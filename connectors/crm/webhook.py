"""``crm.webhook``: a generic loyalty accrual message, signed per Standard Webhooks.

For every redemption (credit) and reversal (debit) of a coupon held by a customer, one
``POST {url}``::

    {"id": "evt_…",                 # the event id: the receiver's dedupe key
     "type": "loyalty.points",
     "member": "C-0001",            # the customer's external id
     "points": 88,                  # positive: credit; negative: debit
     "reason": "redemption",        # or "reversal"
     "redemption_id": "rdm_…",
     "occurred_at": "2026-11-25T06:30:00Z",
     "merchant_id": "mch_…",
     "source_event": "coupon.redeemed"}

signed like the ``webhook`` connector (:func:`connectors.webhook.sign`): headers
``webhook-id`` (the event id), ``webhook-timestamp``, ``webhook-signature``. The points
come from the shared rule (:mod:`connectors.crm.points`); no customer or zero points
sends nothing. Classification is the hub's default (2xx delivered; connection errors,
timeouts, 408, 429 and 5xx retry honouring ``Retry-After``; other 4xx fail).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from connectors.crm.points import PointsError, points_for, with_points_schema
from connectors.webhook import secret_key, signed_request
from hub.connectors import (
    Delivered,
    Exchange,
    Failed,
    OutboundConnector,
    OutboundRequest,
    package_schema,
)

MESSAGE_TYPE = "loyalty.points"
_encoder = msgspec.json.Encoder()


class CrmWebhookConnector(OutboundConnector):
    """Loyalty points as a signed generic webhook message."""

    name: ClassVar[str] = "crm.webhook"
    kind: ClassVar[str] = "crm"
    version: ClassVar[str] = "1.0"
    summary: ClassVar[str] = "Loyalty points credit/debit as a signed generic webhook message"
    capabilities: ClassVar[tuple[str, ...]] = ("outbound", "loyalty.credit", "loyalty.debit")
    consumes: ClassVar[tuple[str, ...]] = ("coupon.redeemed", "coupon.redemption_reversed")
    secret_fields: ClassVar[tuple[str, ...]] = ("secret", "headers")
    config_schema: ClassVar[dict[str, Any]] = with_points_schema(
        package_schema("connectors.crm", "webhook.schema.json")
    )

    def check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        super().check_config(config)
        secret_key(config["secret"])
        return config

    def message(self, event: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        """The accrual message of ``event``, or ``None`` when it changes no points."""
        change = points_for(event, config)
        if change is None:
            return None
        return {
            "id": change.reference,
            "type": MESSAGE_TYPE,
            "member": change.member,
            "points": change.points,
            "reason": change.reason,
            "redemption_id": change.redemption_id,
            "occurred_at": event.get("occurred_at"),
            "merchant_id": event.get("merchant_id"),
            "source_event": event.get("type"),
        }

    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        message = self.message(event, config)
        if message is None:
            return []
        return [signed_request(config, str(message["id"]), _encoder.encode(message), now)]

    def exchange(self, event: dict[str, Any], config: dict[str, Any], *, now: datetime) -> Exchange:
        try:
            requests = self.build_requests(event, config, now=now)
        except PointsError as exc:  # a malformed redemption event: permanent
            return Failed(f"cannot compute the points: {exc}")
        for request in requests:  # at most one
            response = yield request
            return self.classify(response, None)
        return Delivered()  # no customer, or no points: nothing to send


__all__ = ["MESSAGE_TYPE", "CrmWebhookConnector"]

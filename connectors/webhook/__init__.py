"""The generic webhook connector: the event envelope as JSON, signed per Standard Webhooks.

Headers (https://www.standardwebhooks.com): ``webhook-id`` (the event id — the
receiver's dedupe key), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature``: ``v1,`` + base64 HMAC-SHA256, keyed with the base64 secret after
``whsec_``, over ``{id}.{timestamp}.{body}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from hub.connectors import OutboundConnector, OutboundRequest
from hub.domain.errors import refuse

_encoder = msgspec.json.Encoder()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (or a bare base64 one)."""
    raw = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise refuse(
            "invalid_config",
            "config.secret must be whsec_ + base64",
            errors=[{"field": "config.secret", "message": "not base64"}],
        ) from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


class WebhookConnector(OutboundConnector):
    name: ClassVar[str] = "webhook"
    kind: ClassVar[str] = "webhook"
    version: ClassVar[str] = "1.0"
    # extra headers often carry credentials: write-only like the secret
    secret_fields: ClassVar[tuple[str, ...]] = ("secret", "headers")
    consumes: ClassVar[tuple[str, ...]] = ("*",)
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["url", "secret"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "format": "uri", "pattern": "^https?://", "maxLength": 2000},
            "secret": {
                "type": "string",
                "pattern": "^(whsec_)?[A-Za-z0-9+/]{16,}={0,2}$",
                "description": "Standard Webhooks secret, whsec_ + base64",
            },
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "extra request headers",
            },
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
        },
    }

    def check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        super().check_config(config)
        secret_key(config["secret"])
        return config

    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        return [signed_request(config, str(event["id"]), _encoder.encode(event), now)]


def signed_request(
    config: dict[str, Any], message_id: str, body: bytes, now: datetime
) -> OutboundRequest:
    """A JSON ``POST`` to ``config["url"]`` signed per Standard Webhooks with
    ``config["secret"]``; ``config["headers"]`` are added, but the signed headers win
    over same-named ones whatever their case. Shared by every signed-webhook connector."""
    timestamp = int(now.timestamp())
    request = OutboundRequest(
        "POST",
        config["url"],
        dict(config.get("headers", {})),
        body,
        timeout=float(config.get("timeout", 10.0)),
    )
    return request.with_headers(
        {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(config["secret"], message_id, timestamp, body),
        }
    )

"""``pos.native``: the hub's own JSON through the POS route.

- redeem and validate: the ``/v1/redemptions`` body (``RedeemIn``: code, store?, channel,
  order {id, amount, lines?}, occurred_at?), decoded strictly (amounts are integer fen;
  ``"12800"`` is refused; unknown fields are refused).
- reverse: ``{"redemption_id": "rdm_…", "reason": "…"}`` or ``{"code": "…", "reason":
  …}`` (the coupon's current redemption); exactly one of the two.

The request id is the ``Idempotency-Key`` header, as on the native API (the hub prefixes
it with ``pos.native:``). A key longer than the 200 characters a request id may have is
left to the hub, which then uses the header as it is. The reply is the hub's answer as
it is: the ``/v1/redemptions`` JSON, or a problem document (``application/problem+json``)
with the hub's status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta, Struct

from connectors.pos import (
    JSON_MAX_BODY,
    OPERATION_CAPABILITIES,
    check_media_type,
    check_size,
    decode_json,
    fail,
    redeem_command,
)
from hub.connectors import (
    OPERATIONS,
    REQUEST_ID_MAX,
    InboundCommand,
    InboundConnector,
    InboundReply,
    InboundResult,
    Operation,
    RedeemIn,
    header,
    package_schema,
)

_encoder = msgspec.json.Encoder()


class ReverseIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A reversal names the redemption, or the coupon whose current redemption it is."""

    redemption_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    code: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    reason: Annotated[str, Meta(max_length=500)] | None = None


def request_id(headers: Mapping[str, str]) -> str | None:
    """The ``Idempotency-Key`` header when it fits a request id, else ``None`` (the hub
    then reads the header itself and refuses a missing or oversized one as usual)."""
    key = header(headers, "idempotency-key")
    if key is None:
        return None
    key = key.strip()
    return key if 0 < len(key) <= REQUEST_ID_MAX else None


class NativePosConnector(InboundConnector):
    """The hub's own redeem/validate/reverse JSON, for terminals that speak it."""

    name: ClassVar[str] = "pos.native"
    kind: ClassVar[str] = "pos"
    version: ClassVar[str] = "1.0"
    summary: ClassVar[str] = "POS terminals speaking the hub's own /v1/redemptions JSON"
    capabilities: ClassVar[tuple[str, ...]] = OPERATION_CAPABILITIES
    config_schema: ClassVar[dict[str, Any]] = package_schema("connectors.pos", "native.schema.json")
    operations: ClassVar[tuple[Operation, ...]] = OPERATIONS
    media_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def parse(
        self, operation: Operation, body: bytes, headers: Mapping[str, str]
    ) -> InboundCommand:
        check_media_type(headers, self.media_types)
        check_size(body, JSON_MAX_BODY)
        rid = request_id(headers)
        if operation == "reverse":
            rev = decode_json(body, ReverseIn)
            if rev.redemption_id is None and rev.code is None:
                fail("redemption_id", "a reversal names redemption_id or code")
            if rev.redemption_id is not None and rev.code is not None:
                fail("code", "give redemption_id or code, not both")
            return InboundCommand(
                operation=operation,
                request_id=rid,
                code=rev.code,
                redemption_id=rev.redemption_id,
                reason=rev.reason,
            )
        data = decode_json(body, RedeemIn)
        return InboundCommand(
            operation=operation,
            request_id=rid,
            redeem=redeem_command(data),
            store=data.store,
        )

    def reply(
        self, operation: Operation, command: InboundCommand | None, result: InboundResult
    ) -> InboundReply:
        media = "application/json" if result.ok else "application/problem+json"
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        return InboundReply(result.status, media, _encoder.encode(dict(result.body)), headers)

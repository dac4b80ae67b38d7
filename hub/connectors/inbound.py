"""What an inbound (POS) connector exchanges with the hub.

A POS connector turns a vendor payload into an :class:`InboundCommand` (pure parsing;
garbage is refused with a :class:`~hub.domain.errors.DomainError`, never another
exception) and the hub's :class:`InboundResult` into the vendor's reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.domain.errors import DomainError
from hub.services.commands import RedeemCommand

Operation = Literal["redeem", "validate", "reverse"]
OPERATIONS: tuple[Operation, ...] = ("redeem", "validate", "reverse")
REQUEST_ID_MAX = 200  # the hub prefixes the connector name; idempotency keys stop at 255


@dataclass(frozen=True)
class InboundCommand:
    """One vendor request, read.

    ``request_id`` is the vendor's own id of the request (a POSLog transaction's store,
    workstation, day and sequence number, a vendor's ``request_id`` field); the hub
    makes it the idempotency key, so a terminal's retry replays the first answer.
    Redeem and validate carry ``redeem``; reverse names the redemption by ``code`` (the
    coupon's current redemption) or ``redemption_id``. ``echo`` holds vendor values the
    reply repeats (sequence numbers, terminal ids).
    """

    operation: Operation
    request_id: str | None = None
    redeem: RedeemCommand | None = None
    code: str | None = None
    redemption_id: str | None = None
    store: str | None = None
    reason: str | None = None
    echo: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundResult:
    """The hub's answer: the ``/v1/redemptions`` response body on success, or the
    problem document (with its stable ``code``) on refusal."""

    status: int
    body: Mapping[str, Any]
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def code(self) -> str | None:
        """The refusal's stable code (``None`` on success)."""
        return None if self.ok else str(self.body.get("code", "internal_error"))


@dataclass(frozen=True)
class InboundReply:
    status: int
    media_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class PayloadError(DomainError):
    """A refusal of a payload that was readable enough to answer in kind.

    A connector's ``parse`` raises it (instead of the plain :class:`DomainError`) when
    it could read the request — e.g. valid JSON with a wrong amount — so that ``reply``
    still gets what was read as ``partial`` (its ``echo``: the vendor's request id,
    terminal, sequence number…) and the vendor's reply can repeat them, as it does for
    every other refusal."""

    def __init__(self, err: DomainError, partial: InboundCommand) -> None:
        super().__init__(err.message, code=err.code, **err.extra)
        self.partial = partial

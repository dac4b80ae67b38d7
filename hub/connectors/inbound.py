"""Inbound (POS) connectors: a vendor's payload in, the vendor's reply out.

:class:`InboundConnector` is the protocol: it turns a vendor payload into an
:class:`InboundCommand` (pure parsing; garbage is refused with a
:class:`~hub.domain.errors.DomainError`, never another exception) and the hub's
:class:`InboundResult` into the vendor's :class:`InboundReply`. The hub runs the
command exactly as ``/v1/redemptions`` would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from hub.connectors.base import ConnectorBase
from hub.domain.commands import RedeemCommand
from hub.domain.errors import DomainError

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
    """The vendor's reply: status, content type, body and any extra headers."""

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


class InboundConnector(ConnectorBase):
    """An inbound connector: serves its :attr:`operations` on ``POST /v1/pos/{name}/
    {operation}`` in a vendor's format (:attr:`media_types`). Two verbs: :meth:`parse`
    and :meth:`reply`."""

    operations: ClassVar[tuple[Operation, ...]] = ()  # redeem/validate/reverse
    media_types: ClassVar[tuple[str, ...]] = ()  # request content types

    def _does(self) -> dict[str, Any]:
        about = super()._does()
        if self.operations:
            about["operations"] = list(self.operations)
            about["media_types"] = list(self.media_types)
        return about

    def parse(
        self, operation: Operation, body: bytes, headers: Mapping[str, str]
    ) -> InboundCommand:
        """Read a vendor request. Refuse garbage with :func:`~hub.domain.errors.refuse`
        (``malformed_json``, ``malformed_xml``, ``invalid_pos_payload`` …), never with
        another exception; raise :class:`PayloadError` when the request was readable
        enough for :meth:`reply` to echo what it read."""
        raise NotImplementedError

    def reply(
        self, operation: Operation, command: InboundCommand | None, result: InboundResult
    ) -> InboundReply:
        """The vendor's reply to ``result``; ``command`` is ``None`` when the request
        could not be read."""
        raise NotImplementedError


__all__ = [
    "OPERATIONS",
    "REQUEST_ID_MAX",
    "InboundCommand",
    "InboundConnector",
    "InboundReply",
    "InboundResult",
    "Operation",
    "PayloadError",
]

"""POS inbound connectors: terminals redeem, validate and reverse in their own formats.

- ``pos.native`` (:mod:`connectors.pos.native`): the hub's own ``/v1/redemptions`` JSON.
- ``pos.poslog`` (:mod:`connectors.pos.poslog`): ARTS/NRF POSLog XML (V6 and 2.x).

They are pure translation (``parse``/``reply``); the route ``POST /v1/pos/{connector}/
{operation}`` and the redeem/validate/reverse work stay in the hub. This module holds
the helpers they share: refusing payloads naming the field, media types, body size,
strict msgspec conversion into the native request shape (``hub.connectors.RedeemIn``,
turned into the hub's command by ``hub.connectors.redeem_command``), and yuan ⇄ fen.
Like every connector, they import only ``hub.connectors`` and ``hub.domain``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import msgspec

from hub.connectors import FEN_MAX, RedeemIn, header, redeem_command
from hub.domain.errors import DomainError, refuse
from hub.domain.jsontext import check_json_text

T = TypeVar("T")

JSON_MAX_BODY = 64 * 1024  # as /v1/redemptions
XML_MAX_BODY = 256 * 1024  # as the /v1/pos route
OPERATION_CAPABILITIES = ("inbound.redeem", "inbound.validate", "inbound.reverse")

_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_YUAN = re.compile(r"-?[0-9]{1,13}(?:\.[0-9]{1,12})?")


def invalid(field: str, message: str) -> DomainError:
    """``invalid_pos_payload`` (422) naming ``field`` (a JSON field or an element path)."""
    return refuse(
        "invalid_pos_payload",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )


def fail(field: str, message: str) -> NoReturn:
    raise invalid(field, message)


def check_media_type(headers: Mapping[str, str], accepted: tuple[str, ...]) -> None:
    """Refuse a ``Content-Type`` the connector does not read (``unsupported_media_type``).
    No header at all is accepted: the ``/v1/pos`` route has already checked it."""
    raw = header(headers, "content-type")
    if raw is None:
        return
    media = raw.split(";")[0].strip().lower()
    if media not in accepted:
        raise refuse(
            "unsupported_media_type",
            f"This connector takes {', '.join(accepted)}, not {media or 'no type'}.",
            accepted=list(accepted),
        )


def check_size(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise refuse(
            "payload_too_large",
            f"The body has {len(body)} bytes; at most {limit} are accepted.",
        )


def msgspec_field(exc: msgspec.ValidationError) -> str:
    """The dotted path a msgspec validation error names (``order.lines[0].sku``)."""
    m = _MSGSPEC_PATH.search(str(exc))
    return (m.group(1) if m else "") or "body"


def _problem_text(exc: msgspec.ValidationError) -> str:
    return _MSGSPEC_PATH.sub("", str(exc))


def decode_json(body: bytes, type_: type[T]) -> T:
    """Strict JSON decoding into ``type_`` (integers must be integers, unknown fields are
    refused): ``malformed_json`` or ``invalid_pos_payload`` naming the field; a key
    repeated in an object is ``duplicate_json_key``, a NUL character
    ``invalid_characters`` (as on every JSON route)."""
    check_json_text(body)
    try:
        return msgspec.json.decode(body, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        raise invalid(msgspec_field(exc), _problem_text(exc)) from None
    except msgspec.DecodeError as exc:
        raise refuse("malformed_json", f"The body is not valid JSON: {exc}") from None


def convert_redeem(data: Mapping[str, Any], where: Callable[[str], str]) -> RedeemIn:
    """Check ``data`` (the native RedeemIn shape, built from a vendor payload) exactly as
    ``/v1/redemptions`` checks its body; ``where`` turns a field path into the vendor's
    name for it (an XML element path) for the refusal."""
    try:
        return msgspec.convert(data, RedeemIn, strict=True)
    except msgspec.ValidationError as exc:
        raise invalid(where(msgspec_field(exc)), _problem_text(exc)) from None


def yuan_to_fen(text: str | None, where: str) -> int:
    """A decimal yuan amount (``44.00``) as integer fen, exactly (Decimal, never float).
    Trailing zeros are fine (``44.000``); a third significant decimal is refused."""
    value = (text or "").strip()
    if not _YUAN.fullmatch(value):
        fail(where, f"{value[:40]!r} is not an amount in yuan (like 44.00)")
    fen = Decimal(value) * 100
    if fen != fen.to_integral_value():
        fail(where, f"{value} has more than 2 decimals (fen are the smallest unit)")
    if fen < 0:
        fail(where, f"{value} is negative")
    if fen > FEN_MAX:
        fail(where, f"{value} is too large")
    return int(fen)


def fen_to_yuan(fen: int) -> str:
    """Integer fen as a decimal yuan string with two decimals (``4000`` → ``40.00``)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


__all__ = [
    "JSON_MAX_BODY",
    "OPERATION_CAPABILITIES",
    "XML_MAX_BODY",
    "check_media_type",
    "check_size",
    "convert_redeem",
    "decode_json",
    "fail",
    "fen_to_yuan",
    "invalid",
    "redeem_command",
    "yuan_to_fen",
]

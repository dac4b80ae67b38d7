"""Offline redemption (离线核销): the coupon token a QR code carries, and the limits a
terminal keeps while it cannot reach the hub. Pure: no I/O, no cryptography (the
signature is made and checked by :mod:`hub.signing`, which frames it with this module).

A **coupon token** is ``HT1.<payload>.<signature>``, both parts unpadded base64url:

* ``payload`` — compact JSON with the claims: ``v`` (format, 1), ``k`` (signing key id),
  ``m`` (merchant id), ``c`` (coupon code), ``t`` (template id), ``h`` (holder's external
  customer id or null), ``f``/``u`` (validity window, Unix seconds, from inclusive /
  until exclusive), ``i`` (issued, Unix seconds), ``x`` (offline allowed: 1 or 0);
* ``signature`` — Ed25519 over the ASCII bytes ``HT1.<payload>`` (the signing input,
  as in a JWS compact serialisation).

A terminal verifies it with the merchant's public keys (``GET /v1/offline/keys``) and
judges the claims with :func:`judge_claims`. The hub does the same when a token is
presented online, so an altered, foreign, unknown-key or expired token is refused with
the same code on both sides.

**Offline limits** bound what a terminal accepts while offline, as card terminals bound
their floor limits: at most ``max_count`` redemptions and ``max_discount`` fen of
discount, and no longer than ``max_offline_seconds`` after its first offline
redemption. :func:`offline_refusal` is the check; its codes are in
:data:`OFFLINE_REFUSALS` (they are the terminal's, never an HTTP answer).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.domain.errors import DomainError, refuse

PREFIX = "HT1."
FORMAT_VERSION = 1
MAX_TOKEN_LENGTH = 1024  # longer text is never a token of ours (checked before parsing)
SIGNATURE_BYTES = 64  # Ed25519


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def unb64url(text: str) -> bytes:
    """Decode canonical unpadded base64url; :class:`ValueError` on anything else.

    Canonical: the one spelling :func:`b64url` gives those bytes. Base64's last
    character can carry unused bits, so several spellings decode alike; accepting
    them would let an altered token pass as the signed one.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if b64url(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


@dataclass(frozen=True)
class TokenClaims:
    """What a coupon token says; times are UTC-aware, whole seconds."""

    kid: str
    merchant_id: str
    code: str
    template_id: str
    holder: str | None
    valid_from: datetime
    valid_until: datetime
    issued_at: datetime
    offline_allowed: bool = True

    def payload(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "k": self.kid,
            "m": self.merchant_id,
            "c": self.code,
            "t": self.template_id,
            "h": self.holder,
            "f": _epoch(self.valid_from),
            "u": _epoch(self.valid_until),
            "i": _epoch(self.issued_at),
            "x": 1 if self.offline_allowed else 0,
        }


def _epoch(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("token times must be timezone-aware")
    return int(t.timestamp())


def _time(value: Any) -> datetime:
    if type(value) is not int or not 0 <= value < 253402300800:  # before year 10000
        raise ValueError("a token time is a whole number of seconds")
    return datetime.fromtimestamp(value, UTC)


def _text(value: Any, limit: int) -> str:
    if type(value) is not str or not 0 < len(value) <= limit:
        raise ValueError("a token text field is empty or too long")
    return value


def signing_input(claims: TokenClaims) -> bytes:
    """The bytes the signature covers: ``HT1.<payload>``."""
    text = json.dumps(claims.payload(), separators=(",", ":"), ensure_ascii=False)
    return (PREFIX + b64url(text.encode("utf-8"))).encode("ascii")


def assemble(signed: bytes, signature: bytes) -> str:
    return signed.decode("ascii") + "." + b64url(signature)


def looks_like_token(text: str) -> bool:
    """A presented string is taken as a token (not a 14-character code) by its prefix."""
    return text.startswith(PREFIX)


def malformed(why: str) -> DomainError:
    return refuse("token_malformed", f"The coupon token cannot be read: {why}.", reason=why)


@dataclass(frozen=True)
class ParsedToken:
    signed: bytes  # the signing input, to verify the signature over
    signature: bytes
    claims: TokenClaims


def parse(token: str) -> ParsedToken:
    """Split and decode a token without judging its signature (:mod:`hub.signing` does).

    Raises ``token_malformed`` for anything that is not ``HT1.<payload>.<sig>`` with a
    well-formed payload."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise malformed("too long")
    token = token.strip()
    if not looks_like_token(token):
        raise malformed("it does not start with HT1.")
    parts = token[len(PREFIX) :].split(".")
    if len(parts) != 2:
        raise malformed("it is not three dot-separated parts")
    payload_b64, sig_b64 = parts
    try:
        payload = json.loads(unb64url(payload_b64).decode("utf-8"))
        signature = unb64url(sig_b64)
    except (ValueError, UnicodeDecodeError):
        raise malformed("a part is not base64url JSON") from None
    if len(signature) != SIGNATURE_BYTES:
        raise malformed("the signature has the wrong length")
    if not isinstance(payload, dict) or payload.get("v") != FORMAT_VERSION:
        raise malformed("unknown token format")
    try:
        holder = payload.get("h")
        claims = TokenClaims(
            kid=_text(payload.get("k"), 40),
            merchant_id=_text(payload.get("m"), 40),
            code=_text(payload.get("c"), 32),
            template_id=_text(payload.get("t"), 40),
            holder=None if holder is None else _text(holder, 128),
            valid_from=_time(payload.get("f")),
            valid_until=_time(payload.get("u")),
            issued_at=_time(payload.get("i")),
            offline_allowed=payload.get("x", 1) == 1,
        )
    except ValueError as exc:
        raise malformed(str(exc)) from None
    if set(payload) - {"v", "k", "m", "c", "t", "h", "f", "u", "i", "x"}:
        raise malformed("unknown claims")
    return ParsedToken(PREFIX.encode("ascii") + payload_b64.encode("ascii"), signature, claims)


def judge_claims(claims: TokenClaims, *, merchant_id: str, at: datetime) -> None:
    """The checks of a verified token's claims at ``at`` (the redemption's time):
    ``token_wrong_merchant``, ``token_expired``, ``coupon_not_yet_valid``."""
    if claims.merchant_id != merchant_id:
        raise refuse("token_wrong_merchant", "The coupon token was issued by another merchant.")
    if at >= claims.valid_until:
        raise refuse(
            "token_expired",
            "The coupon token's validity window has ended.",
            valid_until=claims.valid_until,
        )
    if at < claims.valid_from:
        raise refuse(
            "coupon_not_yet_valid",
            "The coupon is not valid yet.",
            valid_from=claims.valid_from,
        )


# --- offline limits -------------------------------------------------------------------

DEFAULT_MAX_COUNT = 200
DEFAULT_MAX_DISCOUNT = 200_000  # fen: 2,000 yuan of discount
DEFAULT_MAX_OFFLINE_SECONDS = 24 * 3600
MAX_OFFLINE_SECONDS_CAP = 7 * 24 * 3600  # the hub refuses older occurred_at anyway

OFFLINE_REFUSALS: dict[str, str] = {
    "offline_count_limit": "The terminal has redeemed as many coupons offline as allowed.",
    "offline_discount_limit": "The offline discount would exceed the terminal's limit.",
    "offline_too_long": "The terminal has been offline longer than allowed; connect first.",
    "offline_not_allowed": "The coupon's template does not allow offline redemption.",
}


@dataclass(frozen=True)
class OfflineRules:
    """Per terminal, while offline (served with the keys; enforced by the terminal)."""

    max_count: int = DEFAULT_MAX_COUNT
    max_discount: int = DEFAULT_MAX_DISCOUNT
    max_offline_seconds: int = DEFAULT_MAX_OFFLINE_SECONDS

    def to_json(self) -> dict[str, int]:
        return {
            "max_count": self.max_count,
            "max_discount": self.max_discount,
            "max_offline_seconds": self.max_offline_seconds,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> OfflineRules:
        """Rules from a stored or submitted document (missing members: the defaults).
        Raises ``invalid_request`` naming the member that is wrong."""
        if doc is None:
            return cls()
        if not isinstance(doc, Mapping):
            raise refuse(
                "invalid_request", "offline rules must be an object", field="offline_rules"
            )
        unknown = set(doc) - {"max_count", "max_discount", "max_offline_seconds"}
        if unknown:
            raise refuse(
                "invalid_request",
                f"unknown offline rule(s): {sorted(unknown)}",
                field=sorted(unknown)[0],
            )
        limits = {
            "max_count": (0, 100_000),
            "max_discount": (0, 10**11),
            "max_offline_seconds": (0, MAX_OFFLINE_SECONDS_CAP),
        }
        values: dict[str, int] = {}
        for name, (low, high) in limits.items():
            if name not in doc:
                continue
            v = doc[name]
            if type(v) is not int or not low <= v <= high:
                raise refuse(
                    "invalid_request",
                    f"{name} must be a whole number from {low} to {high}",
                    field=name,
                )
            values[name] = v
        return cls(**values)


@dataclass(frozen=True)
class OfflineTally:
    """What a terminal has accepted since it went offline (kept by the terminal)."""

    count: int = 0
    discount: int = 0  # fen
    # when the terminal went offline: its last contact with the hub, else its first
    # offline redemption
    since: datetime | None = None

    def add(self, discount: int, at: datetime) -> OfflineTally:
        return OfflineTally(self.count + 1, self.discount + discount, self.since or at)


@dataclass(frozen=True)
class OfflineRefusal:
    code: str
    message: str
    facts: dict[str, Any] = field(default_factory=dict)


def offline_refusal(
    rules: OfflineRules,
    tally: OfflineTally,
    *,
    discount: int,
    at: datetime,
    offline_allowed: bool = True,
) -> OfflineRefusal | None:
    """Why a terminal must refuse one more offline redemption of ``discount`` fen at
    ``at``, or None when it may accept it."""
    if not offline_allowed:
        return OfflineRefusal("offline_not_allowed", OFFLINE_REFUSALS["offline_not_allowed"])
    if tally.count + 1 > rules.max_count:
        return OfflineRefusal(
            "offline_count_limit",
            OFFLINE_REFUSALS["offline_count_limit"],
            {"max_count": rules.max_count, "count": tally.count},
        )
    if tally.discount + discount > rules.max_discount:
        return OfflineRefusal(
            "offline_discount_limit",
            OFFLINE_REFUSALS["offline_discount_limit"],
            {"max_discount": rules.max_discount, "discount": tally.discount},
        )
    if tally.since is not None and (at - tally.since).total_seconds() > rules.max_offline_seconds:
        return OfflineRefusal(
            "offline_too_long",
            OFFLINE_REFUSALS["offline_too_long"],
            {"max_offline_seconds": rules.max_offline_seconds, "since": tally.since},
        )
    return None

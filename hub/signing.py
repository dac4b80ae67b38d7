"""Ed25519 signatures of coupon tokens (the format is :mod:`hub.domain.offline`'s).

The hub signs with a merchant's active key; a terminal (``hub.client``) and the hub
verify with the merchant's published public keys. Raw 32-byte keys travel as unpadded
base64url (``GET /v1/offline/keys``).
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.domain.errors import refuse
from hub.domain.offline import TokenClaims, assemble, b64url, parse, signing_input, unb64url

ALGORITHM = "Ed25519"


def generate_keypair() -> tuple[bytes, bytes]:
    """A new (private, public) pair, each the raw 32 bytes."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, public


def public_key_text(public: bytes) -> str:
    return b64url(public)


def sign(private: bytes, claims: TokenClaims) -> str:
    """The token of ``claims`` signed with the raw ``private`` key (``claims.kid`` must
    name it)."""
    signed = signing_input(claims)
    return assemble(signed, Ed25519PrivateKey.from_private_bytes(private).sign(signed))


def verify(token: str, public_keys: Mapping[str, bytes | str]) -> TokenClaims:
    """The claims of ``token`` once its signature verifies with the key its ``kid`` names
    among ``public_keys`` (raw bytes or base64url text).

    Raises ``token_malformed`` (not a token), ``token_unknown_key`` (no such key) or
    ``token_signature_invalid`` (altered, or signed by another key). The claims are not
    judged here: :func:`hub.domain.offline.judge_claims` does that."""
    parsed = parse(token)
    raw = public_keys.get(parsed.claims.kid)
    if raw is None:
        raise refuse(
            "token_unknown_key",
            "The coupon token names a signing key the hub does not know.",
            kid=parsed.claims.kid,
        )
    try:
        key_bytes = unb64url(raw) if isinstance(raw, str) else raw
        Ed25519PublicKey.from_public_bytes(key_bytes).verify(parsed.signature, parsed.signed)
    except (InvalidSignature, ValueError):
        raise refuse(
            "token_signature_invalid",
            "The coupon token's signature does not verify: it was altered.",
        ) from None
    return parsed.claims

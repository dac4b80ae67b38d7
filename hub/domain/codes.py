"""Coupon codes: random, unguessable, readable aloud, self-checking.

Alphabet: the 32 characters ``23456789ABCDEFGHJKLMNPQRSTUVWXYZ`` — digits without 0
and 1, letters without I and O, so nothing is confused when read aloud or typed.
A code is 13 random characters (65 bits from :mod:`secrets`) followed by one check
character. Each character is a value 0–31, read as an element of the field GF(32);
the code is valid when ``Σ dᵢ·α^(n−i) = 0`` with α a primitive element (a single
Reed–Solomon-style check symbol, computed by Horner's rule). Since α ≠ 0 and α ≠ 1,
every single-character error and every transposition of two adjacent different
characters changes the sum, so a mistyped code is refused (``code_malformed``)
without a database lookup. (Luhn mod N, the usual choice, misses swapping the
characters with values 0 and N−1 — here ``2`` and ``Z``.)
Codes are shown in groups of four (``ABCD-EFGH-JKLM-NP``); input is
normalised by upper-casing and dropping spaces and dashes.
"""

from __future__ import annotations

import secrets

from hub.domain.errors import refuse

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
PAYLOAD_LENGTH = 13  # 13 × 5 bits = 65 bits of entropy
CODE_LENGTH = PAYLOAD_LENGTH + 1
ENTROPY_BITS = PAYLOAD_LENGTH * 5


_POLY = 0b100101  # x⁵ + x² + 1, primitive over GF(2): α = x has order 31


def _times_alpha(v: int) -> int:
    v <<= 1
    return v ^ _POLY if v & 0b100000 else v


def _fold(chars: str) -> int:
    acc = 0
    for ch in chars:
        acc = _times_alpha(acc) ^ _INDEX[ch]
    return acc


def check_character(payload: str) -> str:
    """The check character that makes ``payload + check`` fold to zero in GF(32)."""
    return ALPHABET[_times_alpha(_fold(payload))]


def generate_code() -> str:
    """A new random code (normalised form, no separators)."""
    payload = "".join(secrets.choice(ALPHABET) for _ in range(PAYLOAD_LENGTH))
    return payload + check_character(payload)


def normalize(raw: str) -> str:
    """Upper-case and drop spaces and dashes; does not validate."""
    return raw.replace("-", "").replace(" ", "").upper()


def is_well_formed(code: str) -> bool:
    """True when ``code`` (normalised) has the right length, alphabet and check character."""
    if len(code) != CODE_LENGTH or any(c not in _INDEX for c in code):
        return False
    return _fold(code) == 0


def parse_code(raw: str) -> str:
    """Normalise ``raw`` and return it, or raise ``code_malformed``."""
    code = normalize(raw)
    if not is_well_formed(code):
        raise refuse(
            "code_malformed", "The coupon code is not a valid code: check for a typing mistake."
        )
    return code


def display(code: str) -> str:
    """Group a normalised code in fours for printing: ``ABCD-EFGH-JKLM-NP``."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def mask(code: str) -> str:
    """A code safe to log at info level: first four and last two characters."""
    if len(code) <= 6:
        return "*" * len(code)
    return f"{code[:4]}…{code[-2:]}"

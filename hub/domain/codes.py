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
Codes are shown in groups of four (``ABCD-EFGH-JKLM-NP``). Input is normalised
before the check character is tested (:func:`normalize`): Unicode NFKC (full-width
letters and digits from Chinese input methods become ASCII, U+3000 and NBSP become
spaces), then every whitespace (scanners append CR LF or a tab), invisible format
character (zero-width space, BOM) and dash of any kind (ASCII, U+2010–2015, U+2212,
full-width U+FF0D, …) is dropped as grouping, and letters are upper-cased.
"""

from __future__ import annotations

import secrets
import unicodedata

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


# Dash-like characters NFKC leaves alone that people type between groups (besides every
# character of Unicode category Pd): minus signs, the hyphen bullet, the katakana-hiragana
# prolonged sound mark an IME may give for "-".
_EXTRA_DASHES = frozenset("\u2212\u2043\u207b\u208b\u30fc\uff70")


def _is_grouping(ch: str) -> bool:
    """Whitespace, an invisible format character or a dash: grouping, not content."""
    if ch.isspace() or ch in _EXTRA_DASHES:
        return True
    category = unicodedata.category(ch)
    return category in ("Pd", "Cf", "Zs", "Zl", "Zp")  # not Cc: NUL & co. stay, and refuse


def normalize(raw: str) -> str:
    r"""The code as typed or scanned, in normal form; does not validate.

    NFKC (full-width ``ＡＢ１２`` → ``AB12``, U+3000/NBSP → space), then drop every
    whitespace (scanner suffixes such as ``\r\n`` or ``\t`` included), format
    character and dash (``－``/``–``/``−`` between groups), then upper-case. Done in the
    domain so every route and connector that takes a code gets the same answer."""
    if raw.isascii() and raw.isalnum():  # the usual case: nothing to strip
        return raw.upper()
    text = unicodedata.normalize("NFKC", raw)
    return "".join(ch for ch in text if not _is_grouping(ch)).upper()


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

"""Staff on a phone: the sign-in code's shape and the shift session's end.

A *sign-in code* is 8 random characters of the coupon-code alphabet
(:data:`hub.domain.codes.ALPHABET`: no 0/O, 1/I), 40 bits, shown in two groups of four
(``ABCD-EFGH``). It is single use and valid :data:`SIGN_IN_CODE_TTL`; typed input is
normalised as coupon codes are (grouping, full-width characters, lower case).

A *session* lasts until the end of the shift: :func:`shift_end` is the earlier of
:data:`SHIFT_MAX` after the sign-in and the next :data:`SHIFT_CUTOFF` (04:00) of the
merchant's local time, so a phone left signed in never carries over to the next day.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hub.domain.codes import ALPHABET, normalize

SIGN_IN_CODE_LENGTH = 8  # 40 bits
SIGN_IN_CODE_TTL = timedelta(minutes=10)
SHIFT_MAX = timedelta(hours=12)
SHIFT_CUTOFF = time(4, 0)  # local time: the business day's end
_ALPHABET = frozenset(ALPHABET)


def new_sign_in_code() -> str:
    """A fresh sign-in code (normal form, no grouping)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(SIGN_IN_CODE_LENGTH))


def parse_sign_in_code(raw: str) -> str | None:
    """The code in normal form, or ``None`` when it cannot be one (wrong length or a
    character outside the alphabet) — the caller refuses it like an unknown code."""
    if len(raw) > 64:
        return None
    code = normalize(raw)
    if len(code) != SIGN_IN_CODE_LENGTH or any(c not in _ALPHABET for c in code):
        return None
    return code


def display_sign_in_code(code: str) -> str:
    """``ABCDEFGH`` → ``ABCD-EFGH``."""
    return f"{code[:4]}-{code[4:]}"


def next_cutoff(now: datetime, tz: ZoneInfo) -> datetime:
    """The first :data:`SHIFT_CUTOFF` of local time ``tz`` strictly after ``now``, in UTC.

    A cutoff that falls in a daylight-saving gap is the instant the wall clock
    reads it after the jump (``zoneinfo``'s reading of a non-existent local time)."""
    local_day = now.astimezone(tz).date()
    for days in (0, 1, 2):
        candidate = datetime.combine(local_day + timedelta(days=days), SHIFT_CUTOFF, tzinfo=tz)
        at = candidate.astimezone(UTC)
        if at > now:
            return at
    raise AssertionError("a cutoff comes within two days")  # pragma: no cover


def shift_end(now: datetime, tz: ZoneInfo) -> datetime:
    """When a session started at ``now`` (UTC-aware) ends: ``min(now + 12 h, the next
    local 04:00)``."""
    return min(now + SHIFT_MAX, next_cutoff(now, tz))

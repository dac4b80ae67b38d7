"""Amounts as finance reads them: integer fen written as yuan with two decimals.

Integer arithmetic only (``divmod`` on the absolute value): ``-5`` fen is ``"-0.05"``,
never a float's ``-0.049999…``.
"""

from __future__ import annotations

__all__ = ["yuan"]


def yuan(fen: int) -> str:
    """``12345`` → ``"123.45"``, ``-5`` → ``"-0.05"``, ``0`` → ``"0.00"``."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"an amount in fen is an int, not {type(fen).__name__}")
    whole, cents = divmod(abs(fen), 100)
    sign = "-" if fen < 0 else ""
    return f"{sign}{whole}.{cents:02d}"

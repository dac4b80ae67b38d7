"""Secret tokens a caller sends in a URL (a transfer offer's, a campaign's claim link):
their shape, how they are made, and the look-up behind the guessing guard.

A token is a secret like a coupon code: a look-up that finds nothing is a guess, counted
by :mod:`hub.services.guard` (its refusal code is one of ``guard.COUNTED``), and a
blocked key or address gets 429 before any token is looked up. A string that is not
token-shaped is refused the same way without a query.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine

from hub.domain.errors import DomainError
from hub.services.guard import Guard
from hub.services.principal import Principal

# what secrets.token_urlsafe(24) makes (32 characters); anything else is not a token
TOKEN_PATTERN = "^[A-Za-z0-9_-]{16,64}$"
_TOKEN_SHAPE = re.compile(TOKEN_PATTERN)


def new_token() -> str:
    """An unguessable token: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def well_formed(token: str) -> bool:
    """``token`` could be one the hub made (worth a database look-up)."""
    return _TOKEN_SHAPE.fullmatch(token) is not None


@contextmanager
def guarded_look_up(
    engine: Engine, guard: Guard, p: Principal, now: datetime, client: str | None, *,
    read: bool = False,
) -> Iterator[None]:
    """Look-ups by token behind the guessing guard: a blocked key (or address) is
    refused first; a wrong token is counted, and one over the limit answers 429."""
    guard.check(engine, p, client, now, read=read)
    try:
        yield
    except DomainError as err:
        answer = guard.count_txn(engine, p, client, err, now, read=read)
        if answer is err:
            raise
        raise answer from None

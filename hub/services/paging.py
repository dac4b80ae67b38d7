"""Keyset pagination, newest first, with opaque cursors: the helpers every listing uses
(redemptions, audit log, alerts, delivery records)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Select, and_, or_

from hub.domain.errors import refuse


class _Cursor(msgspec.Struct, array_like=True):
    at: datetime
    id: str


def encode_cursor(at: datetime, rid: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(_Cursor(at, rid))).decode().rstrip("=")


def newest_first(
    q: Select[Any], at: ColumnElement[Any], id_: ColumnElement[Any], limit: int, cursor: str | None
) -> Select[Any]:
    """Keyset pagination, newest first by ``at`` then ``id_``: the rows after ``cursor``,
    one more than a page (so :func:`split_page` knows whether there is a next one)."""
    if cursor is not None:
        c = decode_cursor(cursor)
        q = q.where(or_(at < c.at, and_(at == c.at, id_ < c.id)))
    return q.order_by(at.desc(), id_.desc()).limit(limit + 1)


def split_page(rows: Sequence[Any], limit: int, at: str) -> tuple[Sequence[Any], str | None]:
    """The page of a :func:`newest_first` query, and the cursor of the next one (or None);
    ``at`` names the rows' time attribute."""
    page = rows[:limit]
    more = len(rows) > limit and page
    return page, encode_cursor(getattr(page[-1], at), page[-1].id) if more else None


def decode_cursor(raw: str) -> _Cursor:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        cur = msgspec.json.decode(base64.urlsafe_b64decode(padded), type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise refuse("invalid_cursor", "The cursor is not one this API issued.") from None
    if cur.at.tzinfo is None or "\x00" in cur.id:
        raise refuse("invalid_cursor", "The cursor is not one this API issued.")
    try:  # a forged time with no UTC instant (0001-01-01T00:00:00+14:00)
        return _Cursor(cur.at.astimezone(UTC), cur.id)
    except OverflowError:
        raise refuse("invalid_cursor", "The cursor is not one this API issued.") from None

"""``column IN (…)`` for a batch of ids, one SQL text whatever the batch's size."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ARRAY, String, any_, bindparam


def among(column: Any, name: str, pg: bool) -> Any:
    """``column IN (:name…)``: on PostgreSQL ``= ANY(:name)`` with one array parameter,
    so a statement has one SQL text (and one prepared plan) whatever the batch's size and
    nothing is rendered per id; elsewhere an expanding ``IN``."""
    if pg:
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


# ids per statement: SQLite binds each id of an expanding IN as its own parameter
# (a statement takes at most 32,766); PostgreSQL's one array takes the whole batch
CHUNK = {True: 10_000, False: 500}

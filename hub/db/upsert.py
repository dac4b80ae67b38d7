"""Dialect-specific inserts, in one place: ``INSERT … ON CONFLICT`` exists on SQLite and
PostgreSQL alike but is built by each dialect's own ``insert``. Services use these
helpers and never import ``sqlalchemy.dialects`` themselves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import ReturningInsert


class InsertIfAbsent:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING <columns>`` on ``table``, built once
    per dialect (building Core statements per call costs more than running them)."""

    def __init__(self, table: Table, *returning: ColumnElement[Any]) -> None:
        if not returning:
            raise ValueError("InsertIfAbsent needs a column to return")
        self._postgresql = pg_insert(table).on_conflict_do_nothing().returning(*returning)
        self._sqlite = sqlite_insert(table).on_conflict_do_nothing().returning(*returning)

    def statement(self, conn: Connection) -> ReturningInsert[Any]:
        """The statement for ``conn``'s database."""
        return self._postgresql if conn.dialect.name == "postgresql" else self._sqlite

    def inserted(self, conn: Connection, values: dict[str, Any]) -> bool:
        """Insert the row unless one with the same key exists; True when it went in."""
        return conn.execute(self.statement(conn), values).first() is not None

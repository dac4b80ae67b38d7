"""Dialect-specific inserts, in one place: ``INSERT … ON CONFLICT`` exists on SQLite and
PostgreSQL alike but is built by each dialect's own ``insert``. Services use these
helpers and never import ``sqlalchemy.dialects`` themselves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import ReturningInsert

from hub.db.fastexec import FastStatement


class InsertIfAbsent:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING <columns>`` on ``table``, built once
    per dialect (building Core statements per call costs more than running them) and
    per set of columns given, and run through :mod:`hub.db.fastexec`."""

    def __init__(self, table: Table, *returning: ColumnElement[Any]) -> None:
        if not returning:
            raise ValueError("InsertIfAbsent needs a column to return")
        self._table = table
        self._returning = returning
        self._postgresql = pg_insert(table).on_conflict_do_nothing().returning(*returning)
        self._sqlite = sqlite_insert(table).on_conflict_do_nothing().returning(*returning)
        self._locked: dict[tuple[str, ...], FastStatement] = {}
        self._fast: dict[tuple[str, tuple[str, ...]], FastStatement] = {}

    def statement(self, conn: Connection) -> ReturningInsert[Any]:
        """The statement for ``conn``'s database."""
        return self._postgresql if conn.dialect.name == "postgresql" else self._sqlite

    def _fast_statement(self, dialect: str, columns: tuple[str, ...]) -> FastStatement:
        key = (dialect, columns)
        stmt = self._fast.get(key)
        if stmt is None:
            make = pg_insert if dialect == "postgresql" else sqlite_insert
            values = {c: bindparam(c, type_=self._table.c[c].type) for c in columns}
            stmt = FastStatement(
                make(self._table).values(values).on_conflict_do_nothing().returning(*self._returning)
            )
            self._fast[key] = stmt
        return stmt

    def inserted(self, conn: Connection, values: dict[str, Any]) -> bool:
        """Insert the row unless one with the same key exists; True when it went in."""
        dialect = conn.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            return conn.execute(self.statement(conn), values).first() is not None
        return self._fast_statement(dialect, tuple(values)).first(conn, values) is not None

    def _locked_statement(self, columns: tuple[str, ...]) -> FastStatement:
        stmt = self._locked.get(columns)
        if stmt is None:
            row = select(*(bindparam(c, type_=self._table.c[c].type) for c in columns)).where(
                func.pg_try_advisory_xact_lock(bindparam("hub_lock_id", type_=BigInteger))
            )
            stmt = FastStatement(
                pg_insert(self._table)
                .from_select(list(columns), row)
                .on_conflict_do_nothing()
                .returning(*self._returning)
            )
            self._locked[columns] = stmt
        return stmt

    def inserted_locked(self, conn: Connection, values: dict[str, Any], lock_id: int) -> bool:
        """:meth:`inserted`, on PostgreSQL only if this transaction can take the
        advisory lock ``lock_id`` without waiting (``pg_try_advisory_xact_lock``), in the
        same statement: one round trip, not two. False when the lock is held elsewhere or
        the row exists. SQLite has no such lock (its writers are serialised anyway)."""
        if conn.dialect.name != "postgresql":
            return self.inserted(conn, values)
        stmt = self._locked_statement(tuple(values))
        return stmt.first(conn, {**values, "hub_lock_id": lock_id}) is not None


def add_counts(
    conn: Connection, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET c = c + excluded.c`` for every other
    column of ``rows`` (all rows carry the same columns): counters added to, created at
    zero when absent. Rows go in as one executemany."""
    if not rows:
        return
    counts = [c for c in rows[0] if c not in keys]
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = make(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={c: table.c[c] + stmt.excluded[c] for c in counts},
    )
    conn.execute(stmt, rows)

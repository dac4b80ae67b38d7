"""Static Core statements run with the least Python per execution (the hot path's).

``conn.execute(statement, params)`` costs more Python than the database's own work on
the redeem's short statements: the compiled-cache look-up, an execution context, the
parameters rebuilt through ``construct_params``, the result's metadata and row objects,
event dispatch. A :class:`FastStatement` compiles its statement once per dialect — the SQL
text, the bind parameters in the DBAPI's order with their bind processors (the same ones
SQLAlchemy uses, so values are stored exactly as ``conn.execute`` stores them: SQLite's
DATETIME text, JSON text, :class:`hub.db.types.UTCDateTime`), the result columns with
their result processors — and then runs it on the connection's DBAPI cursor, returning
named tuples (attribute access as on a :class:`sqlalchemy.Row`).

The transaction stays SQLAlchemy's: the statement runs inside the ``Connection``'s
transaction (begun by it, as ``conn.execute`` would autobegin it), so ``begin`` hooks
(SQLite's ``BEGIN IMMEDIATE``), commits and rollbacks are unchanged. ``before_`` /
``after_cursor_execute`` listeners still see each statement, and a DBAPI error goes
through the connection's own handling (wrapped as SQLAlchemy's exceptions, a lost
connection invalidated). A statement the fast path cannot run as it is (defaults computed
in Python, ``IN`` lists expanded per execution, callable bind values) runs through
``conn.execute`` instead — same answers, no shortcut.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Executable
from sqlalchemy.sql.compiler import SQLCompiler

_PLANS_ATTR = "_hub_fastexec_plans"
_MISSING = object()

Processor = Callable[[Any], Any]
_namedtuple: Any = namedtuple  # row types made at run time, one per statement


class _Plan:
    """One statement compiled for one dialect."""

    __slots__ = ("positional", "processed", "returns", "row", "slots", "sql")

    def __init__(
        self,
        sql: str,
        positional: bool,
        slots: tuple[tuple[str, str, Processor | None, Any], ...],
        row: Any,
        processed: tuple[tuple[int, Processor], ...],
    ) -> None:
        self.sql = sql
        self.positional = positional
        # (the caller's key, the name the DBAPI sees, its bind processor, the value
        # the statement itself gives it, processed — or _MISSING when the caller must)
        self.slots = slots
        self.row = row  # a namedtuple class, or None: the statement returns no rows
        self.processed = processed  # (column index, result processor)
        self.returns = row is not None

    def parameters(self, params: Mapping[str, Any]) -> Any:
        values = []
        for key, _name, proc, fixed in self.slots:
            value = params.get(key, _MISSING)
            if value is _MISSING:
                if fixed is _MISSING:
                    raise KeyError(f"no value for bind parameter {key!r}")
                values.append(fixed)
            else:
                values.append(proc(value) if proc is not None else value)
        if self.positional:
            return tuple(values)
        return {slot[1]: v for slot, v in zip(self.slots, values, strict=True)}

    def rows(self, raw: Sequence[Any]) -> list[Any]:
        make = self.row._make
        if not self.processed:
            return [make(r) for r in raw]
        out = []
        for r in raw:
            values = list(r)
            for i, proc in self.processed:
                values[i] = proc(values[i])
            out.append(make(values))
        return out


def _compile(statement: Executable, dialect: Dialect) -> _Plan | None:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if not isinstance(compiled, SQLCompiler):
        return None
    if (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.schema_translate_map
    ):
        return None  # SQLAlchemy computes something per execution: let it
    processors = compiled._bind_processors
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    order = list(compiled.positiontup or ()) if compiled.positional else list(by_name)
    escaped: Mapping[str, str] = compiled.escaped_bind_names or {}
    slots = []
    for name in order:
        bind = by_name[name]
        if bind.callable is not None:
            return None
        proc = processors.get(name)
        if proc is not None and not callable(proc):
            return None  # a tuple type's processors
        fixed: Any = _MISSING
        if not bind.required:
            fixed = proc(bind.value) if proc is not None else bind.value
        slots.append((name, escaped.get(name, name), proc, fixed))
    row: Any = None
    processed: list[tuple[int, Processor]] = []
    if compiled._result_columns:
        keys = [c.keyname for c in compiled._result_columns]
        try:
            row = _namedtuple("FastRow", keys)
        except ValueError:
            return None  # duplicate or odd column names: SQLAlchemy's rows handle them
        for i, col in enumerate(compiled._result_columns):
            rproc = col.type._cached_result_processor(dialect, None)
            if rproc is not None:
                processed.append((i, rproc))
    elif getattr(statement, "_returning", None):
        return None
    return _Plan(compiled.string, compiled.positional, tuple(slots), row, tuple(processed))


class FastStatement:
    """A statement built once (a module constant) and run by :meth:`all`, :meth:`first`
    or :meth:`run` on a :class:`~sqlalchemy.Connection`.

    Its parameters are exactly its bound parameters (``bindparam``), each given by the
    caller unless the statement gives it a value; a key the statement does not bind is
    ignored (``conn.execute`` would make it a column of an INSERT/UPDATE: spell such
    columns as ``.values({column: bindparam(...)})``)."""

    __slots__ = ("__weakref__", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement

    def _plan(self, dialect: Dialect) -> _Plan | None:
        plans: dict[int, _Plan | None] | None = dialect.__dict__.get(_PLANS_ATTR)
        if plans is None:
            plans = {}
            setattr(dialect, _PLANS_ATTR, plans)
        key = id(self)
        try:
            return plans[key]
        except KeyError:
            plan = plans[key] = _compile(self.statement, dialect)
            return plan

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row the statement returns (named tuples; ``[]`` for one that returns
        none)."""
        plan = self._plan(conn.dialect)
        if plan is None:
            result = conn.execute(self.statement, dict(params))
            return list(result.all()) if result.returns_rows else []
        raw = _execute(conn, plan, params)
        return plan.rows(raw) if raw else []

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        """The first row, or ``None``."""
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> None:
        """Execute it for its effect."""
        self.all(conn, params)


def _execute(conn: Connection, plan: _Plan, params: Mapping[str, Any]) -> Sequence[Any] | None:
    if not conn.in_transaction():
        conn.begin()  # as conn.execute autobegins
    sql = plan.sql
    args: Any = params
    cursor = None
    try:
        args = plan.parameters(params)  # a value a processor refuses: StatementError
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        events = conn._has_events or conn.engine._has_events
        if events:
            for fn in conn.dispatch.before_cursor_execute:
                sql, args = fn(conn, cursor, sql, args, None, False)
        cursor.execute(sql, args)
        raw = cursor.fetchall() if plan.returns else None
        if events:
            for fn in conn.dispatch.after_cursor_execute:
                fn(conn, cursor, sql, args, None, False)
    except BaseException as e:
        conn._handle_dbapi_exception(e, sql, args, cursor, None)
    finally:
        if cursor is not None:
            cursor.close()
    return raw


def driver_sql(conn: Connection, sql: str) -> None:
    """Run a parameterless ``sql`` (a transaction's own ``BEGIN …``) on ``conn``'s DBAPI
    cursor: as ``conn.exec_driver_sql`` (listeners, error handling) without its
    execution context. It does not begin a transaction: a ``begin`` hook calls it."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    args: Any = ()
    events = conn._has_events or conn.engine._has_events
    try:
        if events:
            for fn in conn.dispatch.before_cursor_execute:
                sql, args = fn(conn, cursor, sql, args, None, False)
        cursor.execute(sql, args)
        if events:
            for fn in conn.dispatch.after_cursor_execute:
                fn(conn, cursor, sql, args, None, False)
    except BaseException as e:
        conn._handle_dbapi_exception(e, sql, args, cursor, None)
    finally:
        cursor.close()

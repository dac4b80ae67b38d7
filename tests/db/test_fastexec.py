"""hub/db/fastexec.py: a static statement run on the DBAPI cursor stores and reads
exactly what ``conn.execute`` does — on SQLite, PostgreSQL/psycopg and the hot path's
asyncpg — inside SQLAlchemy's transaction, with its listeners and its exceptions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    exc,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import sqlite

from hub.db.engine import make_async_engine, write_conn
from hub.db.fastexec import FastStatement
from hub.db.types import JSONDoc, UTCDateTime

_meta = MetaData()
probe = Table(
    "fastexec_probe",
    _meta,
    Column("id", String(40), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("maybe_at", UTCDateTime(), nullable=True),
    Column("doc", JSONDoc, nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=True),
    Column("label", String(40), nullable=True),
    Column("flag", Integer, nullable=True, default=7),  # a Python-side default
)
COLUMNS = ("id", "at", "maybe_at", "doc", "n", "body", "label", "flag")
FAST_INSERT = FastStatement(
    insert(probe).values({c: bindparam(c, type_=probe.c[c].type) for c in COLUMNS})
)
FAST_READ = FastStatement(
    select(probe.c.at, probe.c.maybe_at, probe.c.doc, probe.c.n, probe.c.body, probe.c.label).where(
        probe.c.id == bindparam("b_id")
    )
)
FAST_RELABEL = FastStatement(
    update(probe)
    .where(probe.c.id == bindparam("b_id"), probe.c.label == "old")  # a literal in the WHERE
    .values(label="new", n=probe.c.n + 1, maybe_at=None)
    .returning(probe.c.id, probe.c.n)
)

# the awkward values: non-ASCII and nested JSON, a time given at +08:00, microseconds,
# the year 9999 edge, None, bytes with NUL
VALUES: dict[str, Any] = {
    "at": datetime(2026, 12, 4, 13, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8))),
    "maybe_at": datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    "doc": {"名": "优惠券", "lines": [{"sku": "A", "qty": 2}], "none": None, "f": 1.5},
    "n": 2**40,
    "body": b'{"x":1}\x00',
    "label": "old",
    "flag": None,
}


@pytest.fixture
def probe_table(db: Engine) -> Iterator[Table]:
    _meta.drop_all(db)
    _meta.create_all(db)
    yield probe
    _meta.drop_all(db)


def _stored(conn: Connection, row_id: str) -> tuple[Any, ...]:
    """The row as the database holds it (text casts on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        sql = (
            "SELECT at::text, maybe_at::text, doc::text, n, body, label, flag "
            "FROM fastexec_probe WHERE id = :id"
        )
    else:
        sql = "SELECT at, maybe_at, doc, n, body, label, flag FROM fastexec_probe WHERE id = :id"
    return tuple(conn.execute(text(sql), {"id": row_id}).one())


def _read(conn: Connection, row_id: str) -> tuple[Any, ...]:
    cols = [probe.c[c] for c in COLUMNS[1:-1]]
    return tuple(conn.execute(select(*cols).where(probe.c.id == row_id)).one())


def test_a_row_is_stored_and_read_as_sqlalchemy_stores_and_reads_it(
    db: Engine, probe_table: Table
) -> None:
    for fast in (FAST_INSERT, FAST_READ, FAST_RELABEL):  # none goes through conn.execute
        assert fast._plan(db.dialect) is not None
    with db.begin() as conn:
        conn.execute(insert(probe), {"id": "sa", **VALUES})
        FAST_INSERT.run(conn, {"id": "fast", **VALUES})
    with db.connect() as conn:
        assert _stored(conn, "fast") == _stored(conn, "sa")
        assert _read(conn, "fast") == _read(conn, "sa")
        sa_row = conn.execute(
            select(*(probe.c[c] for c in COLUMNS[1:-1])).where(probe.c.id == "sa")
        ).one()
        fast_row = FAST_READ.first(conn, {"b_id": "sa"})
    assert tuple(fast_row) == tuple(sa_row)
    assert fast_row.at == VALUES["at"] and fast_row.at.tzinfo is not None
    assert fast_row.doc == VALUES["doc"] and fast_row.label == "old"


def test_fixed_values_and_returning_of_an_update(db: Engine, probe_table: Table) -> None:
    with write_conn(db) as conn:
        FAST_INSERT.run(conn, {"id": "u", **VALUES})
        [changed] = FAST_RELABEL.all(conn, {"b_id": "u"})
        assert (changed.id, changed.n) == ("u", 2**40 + 1)
        assert FAST_RELABEL.first(conn, {"b_id": "u"}) is None  # the label is "new" now
    with db.connect() as conn:
        row = conn.execute(select(probe).where(probe.c.id == "u")).one()
    assert (row.label, row.n, row.maybe_at) == ("new", 2**40 + 1, None)


def test_it_runs_in_sqlalchemys_transaction(db: Engine, probe_table: Table) -> None:
    with db.connect() as conn:
        FAST_INSERT.run(conn, {"id": "gone", **VALUES})  # autobegins, as conn.execute does
        assert conn.in_transaction()
        conn.rollback()
    with db.begin() as conn:
        FAST_INSERT.run(conn, {"id": "kept", **VALUES})
    with db.connect() as conn:
        ids = conn.execute(select(probe.c.id)).scalars().all()
    assert ids == ["kept"]


def test_errors_are_sqlalchemys_and_listeners_see_the_statement(
    db: Engine, probe_table: Table
) -> None:
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db, "before_cursor_execute", listen)
    try:
        with db.begin() as conn:
            FAST_INSERT.run(conn, {"id": "dup", **VALUES})
        with pytest.raises(exc.IntegrityError), db.begin() as conn:
            FAST_INSERT.run(conn, {"id": "dup", **VALUES})
    finally:
        event.remove(db, "before_cursor_execute", listen)
    inserts = [s for s in seen if s.startswith("INSERT INTO fastexec_probe")]
    assert len(inserts) == 2, seen


def test_a_missing_or_refused_value_is_a_statement_error_as_in_sqlalchemy(
    db: Engine, probe_table: Table
) -> None:
    row = {"id": "x", **VALUES}
    with db.begin() as conn, pytest.raises(exc.StatementError, match="label"):
        FAST_INSERT.run(conn, {k: v for k, v in row.items() if k != "label"})
    naive = {**row, "at": datetime(2026, 12, 4, 13, 30)}
    with db.begin() as conn, pytest.raises(exc.StatementError, match="naive datetime"):
        conn.execute(insert(probe), naive)
    with db.begin() as conn, pytest.raises(exc.StatementError, match="naive datetime"):
        FAST_INSERT.run(conn, naive)
    with db.connect() as conn:
        assert conn.execute(select(probe.c.id)).all() == []


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.timezones()))
def test_utc_datetime_text_on_sqlite_is_sqlalchemys(value: datetime) -> None:
    """UTCDateTime's one-step SQLite processor gives the text of the two it replaces
    (its own process_bind_param, then SQLAlchemy's DATETIME)."""
    dialect = sqlite.dialect()
    t = UTCDateTime()
    ours = t.dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None
    impl = t.impl_instance.dialect_impl(dialect).bind_processor(dialect)
    assert impl is not None
    try:
        expected = impl(t.process_bind_param(value, dialect))
    except (OverflowError, ValueError):  # outside the years a UTC datetime can have
        with pytest.raises((OverflowError, ValueError)):
            ours(value)
        return
    assert ours(value) == expected
    assert ours(None) is None


def test_a_statement_with_python_defaults_runs_through_sqlalchemy(
    db: Engine, probe_table: Table
) -> None:
    """``flag``'s default is computed per execution by SQLAlchemy: such a statement is
    not run on the cursor (it would lose the default) but by ``conn.execute``."""
    with_default = FastStatement(  # no flag given
        insert(probe).values(
            {c: bindparam(c, type_=probe.c[c].type) for c in ("id", "at", "doc", "n")}
        )
    )
    assert with_default._plan(db.dialect) is None
    with db.begin() as conn:
        with_default.run(conn, {"id": "d", "at": VALUES["at"], "doc": {}, "n": 1})
    with db.connect() as conn:
        assert conn.execute(select(probe.c.flag).where(probe.c.id == "d")).scalar() == 7


def test_asyncpg_stores_and_reads_as_sqlalchemy_does(db: Engine, probe_table: Table) -> None:
    """The hot path's driver on PostgreSQL: the sync Core code on the asyncpg engine's
    ``sync_engine`` (as :func:`hub.api.state.run_hot` runs it)."""
    if db.dialect.name != "postgresql":
        pytest.skip("asyncpg is PostgreSQL's hot-path driver")
    with db.begin() as conn:
        conn.execute(insert(probe), {"id": "sa", **VALUES})

    def work(conn: Connection) -> tuple[Any, Any]:
        FAST_INSERT.run(conn, {"id": "fast", **VALUES})
        [changed] = FAST_RELABEL.all(conn, {"b_id": "fast"})
        read = FAST_READ.first(conn, {"b_id": "sa"})
        return changed, read

    async def main() -> tuple[Any, Any]:
        hot = make_async_engine(db)
        try:
            async with hot.begin() as aconn:
                return await aconn.run_sync(work)
        finally:
            await hot.dispose()

    changed, read = asyncio.run(main())
    assert (changed.id, changed.n) == ("fast", 2**40 + 1)
    with db.connect() as conn:
        assert tuple(read) == _read(conn, "sa")
        conn.execute(
            update(probe).where(probe.c.id == "sa").values(label="new", n=2**40 + 1, maybe_at=None)
        )
        assert _stored(conn, "fast") == _stored(conn, "sa")
        assert _read(conn, "fast") == _read(conn, "sa")
        conn.rollback()

"""hub/db/upsert.py: the one home of dialect-specific inserts (ON CONFLICT DO NOTHING),
on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint, select

from hub.db.upsert import InsertIfAbsent

ROOT = Path(__file__).resolve().parents[2]

_meta = MetaData()
_probe = Table(
    "upsert_probe",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("key", String(20), nullable=False),
    Column("value", String(20), nullable=False),
    UniqueConstraint("key"),
)


@pytest.fixture
def probe_table(db):
    _meta.create_all(db)
    yield _probe
    _meta.drop_all(db)


def test_insert_if_absent_inserts_once_and_keeps_the_first_row(db, probe_table):
    insert = InsertIfAbsent(probe_table, probe_table.c.key)
    with db.begin() as conn:
        assert insert.inserted(conn, {"id": 1, "key": "a", "value": "first"}) is True
        assert insert.inserted(conn, {"id": 2, "key": "a", "value": "second"}) is False
        assert insert.inserted(conn, {"id": 3, "key": "b", "value": "other"}) is True
    with db.connect() as conn:
        rows = conn.execute(select(probe_table).order_by(probe_table.c.id)).all()
    assert [(r.key, r.value) for r in rows] == [("a", "first"), ("b", "other")]


def test_insert_if_absent_picks_the_statement_of_the_connection_dialect(db, probe_table):
    insert = InsertIfAbsent(probe_table, probe_table.c.key)
    with db.connect() as conn:
        sql = str(insert.statement(conn).compile(dialect=conn.dialect))
    assert "ON CONFLICT DO NOTHING" in sql and "RETURNING" in sql


def test_insert_if_absent_needs_a_returned_column():
    with pytest.raises(ValueError, match="column to return"):
        InsertIfAbsent(_probe)


def test_no_module_but_the_helper_builds_dialect_specific_inserts():
    """``sqlalchemy.dialects.<db>.insert`` (and so ``on_conflict_…``) appears in
    hub/db/upsert.py only: every service shares the one helper."""
    offenders = []
    for path in sorted(
        [*ROOT.joinpath("hub").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")]
    ):
        if path == ROOT / "hub" / "db" / "upsert.py":
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("sqlalchemy.dialects")
                and any(a.name == "insert" for a in node.names)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("on_conflict_"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []

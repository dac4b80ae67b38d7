"""The migrations build exactly the tables ``hub/db/schema.py`` declares, on both
databases: a column or index added to one and not the other fails here."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from hub.db.schema import metadata


def test_the_migrated_database_matches_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []

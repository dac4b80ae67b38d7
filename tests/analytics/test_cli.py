"""`hub analytics rebuild` on a seeded demo database."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from hub.cli import main
from hub.db.engine import make_engine
from hub.db.schema import analytics_daily, analytics_progress, coupons


def test_rebuild_from_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    runner = CliRunner()
    assert runner.invoke(main, ["seed", "--db", db], catch_exceptions=False).exit_code == 0
    result = runner.invoke(main, ["analytics", "rebuild", "--db", db], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "rebuilt analytics rollups" in result.output
    engine = make_engine(db, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            issued = conn.execute(select(func.sum(analytics_daily.c.issued))).scalar()
            assert issued == conn.execute(select(func.count()).select_from(coupons)).scalar()
            assert conn.execute(select(analytics_progress.c.seq)).scalar() is not None
    finally:
        engine.dispose()

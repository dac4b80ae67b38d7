"""`hub reminders run-once`: the job's round, from the command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import func, select

from hub.cli import main
from hub.db.engine import make_engine
from hub.db.schema import outbox_events
from tests.conftest import issue, make_merchant, make_template


def test_run_once_sends_the_due_reminders_once(tmp_path) -> None:
    db = str(tmp_path / "hub.db")
    assert CliRunner().invoke(main, ["migrate", "--db", db]).exit_code == 0
    engine = make_engine(db, pool_size=1, max_overflow=1)
    try:
        now = datetime.now(UTC)
        m = make_merchant(engine, now)
        spec = {
            "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
            "validity": {"type": "fixed", "start": (now - timedelta(days=1)).isoformat(),
                         "end": (now + timedelta(days=2)).isoformat()},
        }
        issue(engine, m, make_template(engine, m, now, spec), now, customers=["M0001", "M0002"])
        first = CliRunner().invoke(main, ["reminders", "run-once", "--db", db])
        assert first.exit_code == 0, first.output
        assert first.output.strip().splitlines()[-1] == "sent 2 reminders"
        again = CliRunner().invoke(main, ["reminders", "run-once", "--db", db])
        assert again.output.strip().splitlines()[-1] == "sent 0 reminders"
        with engine.connect() as conn:
            n = conn.execute(
                select(func.count()).where(outbox_events.c.type == "coupon.expiring")
            ).scalar_one()
        assert n == 2
    finally:
        engine.dispose()

"""``python -m bench`` (issue 11, item 1): one command runs the hot routes against the raw
driver on fresh databases, writes every figure to JSON and checks the database afterwards.

Never asserts a speed: only that the run completes, reports every field, and that the
database check passed (and fails when the database disagrees with the successes).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest

from bench import suite
from hub.db.engine import make_engine
from hub.db.schema import redemptions
from tests.conftest import BACKENDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_run_writes_every_field_and_passes_the_database_check(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "all",
            "--quick",
            "--db",
            ",".join(BACKENDS),
            "--concurrency",
            "2,4",
            "--rates",
            "40",
            "--requests",
            "16",
            "--duration",
            "0.5",
            "--warmup",
            "4",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "database check: passed" in done.stdout
    assert "| hub/raw |" in done.stdout  # the table is printed
    doc = json.loads(out.read_text())
    assert doc["passed"] is True
    assert {"started_at", "machine", "options", "rows", "checks"} <= doc.keys()
    row_fields = {f.name for f in fields(suite.Row)}
    modes = {"c2", "c4", "open40"}
    seen = set()
    for row in doc["rows"]:
        assert row.keys() == row_fields
        seen.add((row["db"], row["target"], row["mode"]))
        assert row["requests"] > 0 and row["hub_rate"] > 0
        assert row["hub_p99_ms"] >= row["hub_p50_ms"] > 0
        assert sum(row["hub_statuses"].values()) == row["requests"]
        assert row["hub_cpu_ms"] is not None and row["hub_cpu_ms"] >= 0
        assert row["rss_mib"] > 0 and row["rss_max_process_mib"] > 0
        if row["mode"].startswith("c"):  # closed loop: the raw baseline ran beside it
            assert row["raw_rate"] > 0 and row["ratio"] > 0
            assert row["raw_p99_ms"] >= row["raw_p50_ms"] >= 0
            assert row["raw_connections"] == int(row["mode"][1:])
        else:
            assert row["offered_rate"] == 40
        if row["db"] == "postgresql":  # the backends' CPU is sampled from /proc
            assert row["db_cpu_ms"] is not None
    assert seen == {(db, t, m) for db in BACKENDS for t in suite.TARGETS for m in modes}
    checks = {(c["db"], c["target"]): c for c in doc["checks"]}
    assert checks.keys() == {(db, t) for db in BACKENDS for t in suite.TARGETS}
    for (_db, target), c in checks.items():
        assert c["passed"], c
        assert c["coupons_redeemed_twice"] == 0
        if target in ("redeem", "pos"):  # 4 warm-up + 2 × 16 closed + 20 open
            assert c["hub_successes"] == c["redemptions"] == c["events"] == 56
        else:
            assert c["hub_successes"] == 56 and c["redemptions"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_check_fails_when_the_database_disagrees(backend: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, suite.fresh_db(backend, Path(tmp)) as db:
        seeded = suite.seed(db, 3)
        assert suite.check_db(db, "redeem", 0).passed
        assert suite.check_db(db, "validate", 0).passed
        # a success the database does not hold
        missing = suite.check_db(db, "redeem", 1)
        assert not missing.passed
        assert "0 hub redemptions for 1 expected" in missing.detail
        # one coupon redeemed twice by the raw path (the redeem transaction twice)
        suite.raw_run(
            db, "redeem", seeded.codes[:1], seeded.store_id, 1, 1, suite.Sampler(None, None)
        )
        twice = suite.check_db(db, "redeem", 0)
        assert twice.passed and twice.all_redemptions == 1
        engine = make_engine(db.url, pool_size=1, max_overflow=0)
        cols = [c.name for c in redemptions.columns if c.name != "id"]
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    f"INSERT INTO redemptions (id, {', '.join(cols)}) "
                    f"SELECT 'dup' || substr(id, 4), {', '.join(cols)} FROM redemptions"
                )
        finally:
            engine.dispose()
        bad = suite.check_db(db, "redeem", 0)
        assert not bad.passed and bad.coupons_redeemed_twice == 1
        assert "redeemed twice" in bad.detail


def test_the_server_under_test_gets_the_drivers_and_pools_knobs_and_no_other_hub_variable():
    """The bench once stripped HUB_DB_HOT_DRIVER, so a run 'with asyncpg' measured psycopg."""
    env = suite.server_env({"PATH": "/bin", "HUB_DB_HOT_DRIVER": "asyncpg",
                            "HUB_DB_POOL_SIZE": "7", "HUB_DATABASE_URL": "sqlite:///x.db",
                            "HUB_BROKER_URL": "redis://127.0.0.1:6379/0"})
    assert env == {"PATH": "/bin", "HUB_DB_HOT_DRIVER": "asyncpg", "HUB_DB_POOL_SIZE": "7"}

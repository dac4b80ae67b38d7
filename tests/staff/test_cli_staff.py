"""hub staff add|list|disable|enable|sign-in-code, on a SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from litestar.testing import TestClient

from hub.api.app import create_app
from hub.cli import main
from hub.db.engine import make_engine


def hub(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_staff_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    assert hub("seed", "--db", db)[0] == 0
    code, out = hub("staff", "add", "--db", db, "--store", "SH-001", "--name", "Li Lei",
                    "--external-id", "HR-7")
    assert code == 0, out
    made = json.loads(out)
    assert made["store"] == "SH-001" and made["status"] == "active"
    code, out = hub("staff", "add", "--db", db, "--store", "SH-001", "--name", "Again",
                    "--external-id", "HR-7")
    assert code != 0 and "already_exists" in out
    code, out = hub("staff", "add", "--db", db, "--store", "NOPE", "--name", "X")
    assert code != 0 and "store_not_found" in out

    code, out = hub("staff", "list", "--db", db, "--store", "SH-001")
    assert code == 0 and made["id"] in out and "Li Lei" in out and "active" in out
    code, out = hub("staff", "list", "--db", db, "--store", "SH-001", "--json")
    assert [s["id"] for s in json.loads(out)] == [made["id"]]

    code, out = hub("staff", "sign-in-code", "--db", db, made["id"])
    assert code == 0, out
    given = json.loads(out)
    assert len(given["code"]) == 9 and given["staff"]["id"] == made["id"]
    # the code signs a phone in on a hub serving that database
    engine = make_engine(db, pool_size=1, max_overflow=0)
    try:
        with TestClient(create_app(engine, clock=lambda: datetime.now(UTC))) as client:
            r = client.post("/v1/staff/sessions", json={"code": given["code"]})
            assert r.status_code == 201, r.text
    finally:
        engine.dispose()

    code, out = hub("staff", "disable", "--db", db, made["id"])
    assert code == 0 and json.loads(out)["status"] == "disabled"
    code, out = hub("staff", "sign-in-code", "--db", db, made["id"])
    assert code != 0 and "staff_inactive" in out
    code, out = hub("staff", "enable", "--db", db, made["id"])
    assert code == 0 and json.loads(out)["status"] == "active"
    code, out = hub("staff", "disable", "--db", db, "stf_nobody")
    assert code != 0 and "staff_not_found" in out

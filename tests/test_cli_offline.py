"""``hub keys offline``: list, rotate and the offline rules from the command line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hub.cli import main


def run_ok(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_offline_keys_rotate_list_and_rules(tmp_path):
    db = str(tmp_path / "x.db")
    run_ok("migrate", "--db", db)
    made = json.loads(run_ok("merchants", "create", "--db", db, "--name", "X Tea"))
    merchant = made["merchant_id"]
    assert "no offline keys yet" in run_ok("keys", "offline", "list", "--db", db)
    first = json.loads(run_ok("keys", "offline", "rotate", "--db", db, "--merchant", merchant))
    assert first["retired"] is None and first["kid"].startswith("ok_")
    second = json.loads(run_ok("keys", "offline", "rotate", "--db", db))
    assert second["retired"] == first["kid"]
    listed = json.loads(run_ok("keys", "offline", "list", "--db", db, "--json"))
    assert [(k["kid"], k["status"]) for k in listed] == [
        (second["kid"], "active"), (first["kid"], "retired")]
    assert all("private" not in json.dumps(k) for k in listed)
    table = run_ok("keys", "offline", "list", "--db", db)
    assert second["kid"] in table and "retired" in table
    # the rules: shown, changed member by member, reset
    assert json.loads(run_ok("keys", "offline", "rules", "--db", db))["rules"]["max_count"] == 200
    changed = json.loads(run_ok("keys", "offline", "rules", "--db", db, "--max-count", "7"))
    assert changed["rules"] == {"max_count": 7, "max_discount": 200000,
                                "max_offline_seconds": 86400}
    changed = json.loads(run_ok("keys", "offline", "rules", "--db", db, "--max-discount", "9"))
    assert changed["rules"]["max_count"] == 7 and changed["rules"]["max_discount"] == 9
    reset = json.loads(run_ok("keys", "offline", "rules", "--db", db, "--reset"))
    assert reset["rules"]["max_count"] == 200
    bad = CliRunner().invoke(main, ["keys", "offline", "rules", "--db", db, "--max-count", "-1"])
    assert bad.exit_code != 0 and "invalid_request" in bad.output

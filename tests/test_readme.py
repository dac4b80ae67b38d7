"""The README is part of the product: its commands, walkthrough and error table are tested."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub import settings
from hub.db.engine import PoolSettings
from hub.delivery import policy
from hub.domain.errors import ERROR_CODES
from hub.services.guard import Limits
from hub.services.problems import HTTP_STATUS, status_for
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
HUB = str(Path(sys.executable).with_name("hub"))


def _block(start: str, end: str) -> str:
    m = re.search(rf"<!-- {start} -->(.*?)<!-- {end} -->", README, re.S)
    assert m, f"README lacks the {start} block"
    return m.group(1)


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block and README.index("```sh") < README.index("\n## ")
    lines = [ln for ln in first_block.group(1).splitlines() if ln.strip()]
    assert len(lines) == 2
    run_cmd, test_cmd = lines
    assert run_cmd.endswith("hub serve") and "pytest" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd in ci.splitlines()


def test_error_table_matches_the_catalogue():
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| (.+?) \|$",
                      _block("error-codes:start", "error-codes:end"), re.M)
    table = {code: (status_for(code), meaning) for code, meaning in ERROR_CODES.items()}
    assert {code: (int(status), meaning) for code, status, meaning in rows} == table
    assert HTTP_STATUS.keys() == ERROR_CODES.keys()


def test_settings_table_matches_the_code():
    """The README documents every HUB_* variable, generated from hub/settings.py."""
    assert _block("settings:start", "settings:end").strip() == settings.readme_table().strip()


_HUB_NAME = re.compile(r"\bHUB_[A-Z0-9_]*[A-Z0-9]\b")
_READS_ENV = re.compile(r"os\.environ|getenv\(")


def test_every_hub_variable_in_the_code_is_declared_and_read_in_one_place():
    declared = {v.name for v in settings.VARIABLES}
    named: set[str] = set()
    for root in ("hub", "connectors"):
        for path in sorted((ROOT / root).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            named |= set(_HUB_NAME.findall(text)) - {"HUB_DB_"}
            inside = path == ROOT / "hub" / "settings.py"
            # hub/ reads the environment only through hub.settings.env; a plugin
            # (connectors/) reads its own, but its variables are declared too
            if root == "hub" and not inside:
                assert not _READS_ENV.search(text), f"{path}: read HUB_* via hub.settings.env"
    assert named, "the scan finds the variables"
    assert named <= declared, f"read in code, missing from hub/settings.py: {named - declared}"
    assert declared <= named, f"declared but never read: {declared - named}"
    with pytest.raises(KeyError):
        settings.env("HUB_NOT_DECLARED")


def _number(default: str) -> float:
    return float(default.split()[0].strip("`"))


def test_documented_defaults_are_the_code_defaults():
    documented = {v.name: v.default for v in settings.VARIABLES}
    limits = Limits.from_env({})
    assert limits.window.total_seconds() == _number(documented["HUB_GUESS_WINDOW_SECONDS"])
    assert limits.max_per_key == _number(documented["HUB_GUESS_MAX_FAILURES"])
    assert limits.max_per_address == _number(documented["HUB_GUESS_MAX_FAILURES_PER_ADDRESS"])
    assert limits.repeat_window.total_seconds() == _number(
        documented["HUB_REPEAT_WINDOW_SECONDS"]
    )
    assert limits.trusted_proxies == ()
    pool = PoolSettings.from_env("postgresql", {})
    sqlite = PoolSettings.from_env("sqlite", {})
    assert documented["HUB_DB_POOL_SIZE"] == f"{pool.size} (SQLite: {sqlite.size})"
    assert documented["HUB_DB_MAX_OVERFLOW"] == (
        f"{pool.max_overflow} (SQLite: {sqlite.max_overflow})"
    )
    assert pool.timeout == _number(documented["HUB_DB_POOL_TIMEOUT"])
    if settings.env("HUB_DELIVERY_LEASE_SECONDS") is None:  # not set for this run
        assert _number(documented["HUB_DELIVERY_LEASE_SECONDS"]) == policy.LEASE_SECONDS


def test_settings_are_read_when_needed(monkeypatch):
    monkeypatch.setenv("HUB_GUESS_MAX_FAILURES", "3")
    monkeypatch.setenv("HUB_DB_POOL_SIZE", "4")
    monkeypatch.setenv("HUB_CORS_ORIGINS", "https://pos.example")
    assert Limits.from_env().max_per_key == 3
    assert PoolSettings.from_env("postgresql").size == 4
    assert settings.env("HUB_CORS_ORIGINS") == "https://pos.example"


@pytest.fixture
def served_demo(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "HUB_DATABASE_URL"}
    proc = subprocess.Popen([HUB, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    raise RuntimeError(f"hub serve did not start:\n{out}") from None
                time.sleep(0.1)
        yield tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_walkthrough_runs_as_written(served_demo: Path):
    script = re.search(r"```sh\n(.*?)```", _block("walkthrough:start", "walkthrough:end"),
                       re.S)
    assert script
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script.group(1)],
                          cwd=served_demo, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert '"status":"issued"' in out  # 1. present
    assert '"status":"valid"' in out and '"discount":2000' in out  # 2. verify
    assert out.count('"status":"redeemed"') == 2  # 3. done, and its replay
    assert "idempotent-replayed: true" in out.lower()
    assert '"code":"coupon_already_redeemed"' in out and "SH-001" in out
    assert '{"ret":0,"msg":"ok","req_id":"T02-000187"' in out  # 4. a vendor's own format
    assert '"discount_amt":"20.00"' in out


def test_every_comment_of_the_readme_is_closed_and_opened():
    """Each ``<!--`` has its ``-->`` after it and no ``-->`` stands alone: a note left
    behind by an edit must not hide or show half a section."""
    depth = 0
    for number, line in enumerate(README.splitlines(), 1):
        for token in re.findall(r"<!--|-->", line):
            depth += 1 if token == "<!--" else -1
            assert depth in (0, 1), f"README line {number}: unbalanced HTML comment"
    assert depth == 0, "README ends inside an HTML comment"

"""The ``hub`` command line as an operator meets it (issue 9, items 3, 16 and 18): the real
CLI as a subprocess, loopback only.

- demo keys are minted only when a start seeds an empty database; ``hub-demo.json`` is 0600;
- operator mistakes end with one line on stderr and a documented exit code, no traceback;
- a broker that stays down is backed off and reported once per backoff step;
- ``--version``, full help texts, tables by default and ``--json``, a failing
  ``connectors list`` when something is broken, ``hub.testing`` without pytest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from hub.cli import EXIT_CODES, main
from hub.db.engine import make_engine
from hub.db.schema import api_keys
from hub.services.keys import authenticate
from tests.conftest import BACKENDS
from tests.delivery.multiproc import RedisServer, free_port, pg_database, wait_until

HUB = str(Path(sys.executable).with_name("hub"))
ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"hk\.[A-Za-z0-9_]+\.[A-Za-z0-9_-]+")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(extra)
    return env


def hub(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run([HUB, *args], cwd=cwd, env=env or _env(), capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The command failed with ``code`` and said why in exactly one line, no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def closed_port() -> int:
    return free_port()  # bound and released at once: nothing listens there


# --- item 3: demo keys ---------------------------------------------------------------------


@contextmanager
def serving(workdir: Path, args: list[str], env: dict[str, str]) -> Iterator[Path]:
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([HUB, "serve", "--port", str(port), *args], cwd=workdir,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: proc.poll() is not None or _listening(port), 90, 0.1,
                       "hub serve listening")
            assert proc.poll() is None, log.read_text(errors="replace")
            yield log
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """(url, serve arguments, environment): SQLite through --db, PostgreSQL through
    HUB_DATABASE_URL (both ways the CLI takes a database)."""
    if backend == "sqlite":
        path = tmp_path / "demo.db"
        yield str(path), ["--db", str(path)], _env()
    else:
        with pg_database("hub_cli_demo") as url:
            yield url, [], _env(HUB_DATABASE_URL=url)


def _key_rows(url: str) -> int:
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(api_keys)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_demo_keys_are_minted_once_by_the_start_that_seeds(backend: str, tmp_path: Path):
    demo = tmp_path / "hub-demo.json"
    demo.write_text('{"stale": "from some other database"}')
    demo.chmod(0o644)  # a world-readable leftover must not stay world-readable
    with database(backend, tmp_path) as (url, args, env):
        with serving(tmp_path, [*args, "--demo-file", str(demo)], env) as log:
            facts: dict[str, Any] = json.loads(demo.read_text(encoding="utf-8"))
            first_output = log.read_text(errors="replace")
        assert stat.S_IMODE(demo.stat().st_mode) == 0o600
        assert facts["admin_key"] in first_output  # shown once, at the seeding start
        engine = make_engine(url, pool_size=1, max_overflow=0)
        try:
            p = authenticate(engine, facts["admin_key"])
            assert p is not None and p.role == "admin"
        finally:
            engine.dispose()
        keys_after_seed = _key_rows(url)
        assert keys_after_seed == 1 + len(facts["store_keys"]) + 1  # admin, stores, app
        assert facts["app_key"] in first_output and facts["campaign_ids"]

        # the demo file is lost: a restart mints nothing and prints no key
        demo.unlink()
        with serving(tmp_path, [*args, "--demo-file", str(demo)], env) as log:
            pass
        restart_output = log.read_text(errors="replace")
        assert _key_rows(url) == keys_after_seed
        assert not TOKEN.search(restart_output), restart_output
        assert "hub keys create" in restart_output
        assert not demo.exists()

        # a demo file of another database is not believed either
        demo.write_text(json.dumps({**facts, "merchant_id": "mch_other"}))
        with serving(tmp_path, [*args, "--demo-file", str(demo)], env) as log:
            pass
        assert not TOKEN.search(log.read_text(errors="replace"))
        assert _key_rows(url) == keys_after_seed

        # the right demo file: the same keys are shown again, still nothing minted
        demo.write_text(json.dumps(facts))
        with serving(tmp_path, [*args, "--demo-file", str(demo)], env) as log:
            pass
        assert facts["admin_key"] in log.read_text(errors="replace")
        assert _key_rows(url) == keys_after_seed
        assert stat.S_IMODE(demo.stat().st_mode) == 0o600


def test_a_database_made_without_the_demo_gets_no_demo_keys(tmp_path: Path):
    db = tmp_path / "prod.db"
    made = hub("merchants", "create", "--db", str(db), "--name", "Real Shop", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    with serving(tmp_path, ["--db", str(db)], _env()) as log:
        pass
    assert not TOKEN.search(log.read_text(errors="replace"))
    assert _key_rows(str(db)) == 1  # the merchant's own first admin key only
    assert not (tmp_path / "hub-demo.json").exists()


# --- item 16: operator mistakes --------------------------------------------------------------


def test_a_missing_database_is_one_line_and_nothing_is_created(tmp_path: Path):
    line = one_line_error(hub("keys", "list", "--db", str(tmp_path / "nope.db"), cwd=tmp_path),
                          3)
    assert "no database at" in line and "hub migrate" in line
    assert not (tmp_path / "nope.db").exists()
    line = one_line_error(hub("migrate", "--db", "/nonexistent-dir/x.db", cwd=tmp_path), 3)
    assert "/nonexistent-dir" in line
    # a file with no hub schema in it
    (tmp_path / "empty.db").write_bytes(b"")
    line = one_line_error(hub("keys", "list", "--db", str(tmp_path / "empty.db"), cwd=tmp_path),
                          3)
    assert "hub migrate" in line


def test_unreachable_and_malformed_database_urls(tmp_path: Path):
    port = closed_port()
    for args in (["keys", "list"], ["serve", "--port", str(free_port())], ["migrate"]):
        done = hub(*args, cwd=tmp_path,
                   env=_env(HUB_DATABASE_URL=f"postgresql://hub:s3cret@127.0.0.1:{port}/x"))
        line = one_line_error(done, 3)
        assert f"127.0.0.1:{port}" in line and "s3cret" not in line
        assert "Redemption Hub" not in done.stderr
    line = one_line_error(hub("keys", "list", "--db", "foo://bar", cwd=tmp_path), 3)
    assert "not a database URL" in line


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="HUB_TEST_BACKENDS excludes postgresql")
def test_a_postgresql_database_that_does_not_exist(tmp_path: Path):
    with pg_database("hub_cli_gone") as url:
        gone = url + "_nonexistent"
        line = one_line_error(hub("keys", "list", "--db", gone, cwd=tmp_path), 3)
        assert "does not exist" in line


def test_worker_without_a_database_refuses_instead_of_creating_one(tmp_path: Path):
    line = one_line_error(hub("worker", cwd=tmp_path), 3)
    assert "--db" in line and "HUB_DATABASE_URL" in line
    assert list(tmp_path.iterdir()) == []  # no ./hub.db
    line = one_line_error(hub("worker", "--db", str(tmp_path / "typo.db"), cwd=tmp_path), 3)
    assert not (tmp_path / "typo.db").exists()


@pytest.fixture(scope="module")
def migrated_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``hub migrate`` for the module (a process start costs seconds on a busy
    machine); each test gets its own copy of the file."""
    folder = tmp_path_factory.mktemp("migrated")
    db = folder / "hub.db"
    done = hub("migrate", "--db", str(db), cwd=folder)
    assert done.returncode == 0, done.stderr
    return db


@pytest.fixture
def migrated(tmp_path: Path, migrated_once: Path) -> Path:
    db = tmp_path / "hub.db"
    for suffix in ("", "-wal"):  # the process has exited: its WAL (if any) is complete
        source = migrated_once.with_name(migrated_once.name + suffix)
        if source.exists():
            shutil.copyfile(source, db.with_name(db.name + suffix))
    return db


@pytest.mark.parametrize("url", ["foo://127.0.0.1/0", "redis://127.0.0.1:notaport/0", "nonsense"])
def test_a_bad_broker_url_is_refused(url: str, tmp_path: Path, migrated: Path):
    for args in (["worker", "--db", str(migrated)],
                 ["serve", "--db", str(migrated), "--port", str(free_port())]):
        done = hub(*args, cwd=tmp_path, env=_env(HUB_BROKER_URL=url))
        line = one_line_error(done, 4)
        assert "HUB_BROKER_URL" in line


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_an_unreachable_broker_is_refused_at_start(scheme: str, tmp_path: Path,
                                                   migrated: Path):
    url = f"{scheme}://guest:pw@127.0.0.1:{closed_port()}/"
    for args in (["worker", "--db", str(migrated)],
                 ["serve", "--db", str(migrated), "--port", str(free_port())]):
        done = hub(*args, cwd=tmp_path, env=_env(HUB_BROKER_URL=url))
        line = one_line_error(done, 4)
        assert "does not answer" in line and ":pw@" not in line
        assert "Redemption Hub" not in done.stderr


def test_a_port_in_use_is_one_line_before_any_banner_or_seeding(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = hub("serve", "--db", str(tmp_path / "x.db"), "--port", str(port), cwd=tmp_path)
    line = one_line_error(done, 5)
    assert f"127.0.0.1:{port}" in line and "in use" in line
    assert "Redemption Hub" not in done.stderr and not TOKEN.search(done.stderr)
    assert not (tmp_path / "hub-demo.json").exists()  # nothing was seeded
    line = one_line_error(hub("serve", "--host", "203.0.113.7", "--port", str(free_port()),
                              "--db", str(tmp_path / "x.db"), cwd=tmp_path), 5)
    assert "203.0.113.7" in line


@pytest.mark.slow
def test_a_broker_that_stays_down_is_backed_off_and_said_once_per_step(
    tmp_path: Path, migrated: Path
):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    log = tmp_path / "worker.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen([HUB, "worker", "--db", str(migrated)], cwd=tmp_path,
                                    env=_env(HUB_BROKER_URL=redis.url), stdout=out,
                                    stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: "hub worker:" in log.read_text(errors="replace"), 60, 0.1,
                           "worker started")
                redis.stop()
                down = time.monotonic()
                # waits of 1, 2, 4, 8 s: the fourth step is said after 1+2+4 = 7 s down
                # (waited for, not slept: no fixed 12 s)
                wait_until(lambda: "retry_in=8s" in log.read_text(errors="replace"), 60, 0.1,
                           "the 8 s backoff step")
                down_s = time.monotonic() - down
                text = log.read_text(errors="replace")
                said = text.count("broker.unreachable")
                # at most one line per step, not one per attempt, and the waits double
                assert 1 <= said <= 2 + int(down_s).bit_length(), text
                assert re.findall(r"retry_in=(\d+)s", text)[:4] == ["1", "2", "4", "8"], text
                assert "Consumer encountered a connection error" not in text
                assert "retry_in=" in text
                redis.start()  # same port
                wait_until(lambda: "broker.reachable" in log.read_text(errors="replace"), 60,
                           0.2, "broker back")
                assert proc.poll() is None
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        assert proc.returncode == 0
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        redis.stop()


def test_the_exit_codes_are_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- exit-codes:start -->(.*?)<!-- exit-codes:end -->", readme, re.S)
    assert m, "README lacks the exit code table"
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", m.group(1), re.M))
    assert {int(k): meaning for k, meaning in rows.items()} == EXIT_CODES


# --- item 18: version, help, tables, broken connectors, hub.testing ---------------------------


def test_version(tmp_path: Path):
    done = hub("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"hub {version('redemption-hub')}"


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name)


def _first_paragraph(cmd: click.Command) -> str:
    return " ".join((cmd.help or "").split("\n\n")[0].split())


def test_help_is_never_cut_off_at_80_columns():
    runner = CliRunner()
    for path in _commands(main):
        result = runner.invoke(main, [*path, "--help"], terminal_width=80)
        assert result.exit_code == 0, (path, result.output)
        body = result.output.split("\n", 1)[1]  # after "Usage: … [ARGS]..."
        assert "..." not in body, (path, result.output)
        assert all(len(line) <= 80 for line in result.output.splitlines()), result.output
        cmd: click.Command = main
        for part in path:
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[part]
        if isinstance(cmd, click.Group):
            flat = " ".join(result.output.split())
            for sub in cmd.commands.values():
                assert _first_paragraph(sub) in flat, (path, sub.name, result.output)


def _assert_table(text: str, headers: list[str]) -> list[list[str]]:
    lines = text.rstrip("\n").splitlines()
    head = lines[0]
    starts = [head.index(h) for h in headers]
    assert starts == sorted(starts) and starts[0] == 0, head
    rows = []
    for line in lines[1:]:
        cells = []
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else None
            assert start == 0 or line[start - 1] == " ", (line, headers[i])
            cells.append(line[start:end].strip())
        assert all(cells), line
        rows.append(cells)
    return rows


def test_list_commands_print_tables_and_json_on_request(tmp_path: Path):
    db = str(tmp_path / "x.db")
    facts = json.loads(hub("seed", "--db", db, cwd=tmp_path).stdout)
    sub = hub("subscriptions", "create", "--db", db, "--connector", "webhook", "--config",
              json.dumps({"url": "https://receiver.example/hook", "secret": "whsec_" + "A" * 32}),
              "--events", "*", cwd=tmp_path)
    assert sub.returncode == 0, sub.stderr

    keys = hub("keys", "list", "--db", db, cwd=tmp_path)
    assert keys.returncode == 0, keys.stderr
    rows = _assert_table(keys.stdout, ["ID", "ROLE", "STORES", "CHANNELS", "STATUS", "EXPIRES",
                                       "LAST USED", "NAME"])
    assert {r[1] for r in rows} == {"admin", "store", "app"} and len(rows) == 5
    # an app key's channels; the other roles act on every channel they may use
    assert {r[1]: r[3] for r in rows} == {"admin": "-", "store": "-", "app": "h5,mini_program"}
    as_json = json.loads(hub("keys", "list", "--db", db, "--json", cwd=tmp_path).stdout)
    assert [r["id"] for r in as_json] == [r[0] for r in rows]
    assert facts["admin_key"] not in keys.stdout

    subs = hub("subscriptions", "list", "--db", db, cwd=tmp_path)
    rows = _assert_table(subs.stdout, ["ID", "CONNECTOR", "STATUS", "EVENTS", "STORES",
                                       "FAILURES", "DESCRIPTION"])
    assert [r[1:4] for r in rows] == [["webhook", "active", "*"]]
    assert "whsec_" not in subs.stdout
    assert json.loads(hub("subscriptions", "list", "--db", db, "--json", cwd=tmp_path)
                      .stdout)[0]["connector"] == "webhook"

    empty = hub("deliveries", "list", "--db", db, cwd=tmp_path)
    assert empty.returncode == 0 and empty.stdout.strip() == "(no deliveries)"
    assert json.loads(hub("deliveries", "list", "--db", db, "--json", cwd=tmp_path).stdout) \
        == {"items": [], "next_cursor": None}

    listed = hub("connectors", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    doc = json.loads(hub("connectors", "list", "--json", cwd=tmp_path).stdout)
    assert {"webhook", "pos.mapped.acme", "pos.mapped.nimbus"} <= {c["name"] for c in
                                                                   doc["connectors"]}
    assert doc["problems"] == []


def test_connectors_list_fails_when_a_mapping_is_broken(tmp_path: Path):
    pos = tmp_path / "maps" / "pos"
    pos.mkdir(parents=True)
    (pos / "acme.yaml").write_text((ROOT / "mappings" / "pos" / "acme.yaml").read_text("utf-8"),
                                   encoding="utf-8")
    env = _env(HUB_MAPPINGS_DIR=str(tmp_path / "maps"))
    assert hub("connectors", "list", cwd=tmp_path, env=env).returncode == 0
    (pos / "bad.yaml").write_text("name: bad\noperations: {}\n", encoding="utf-8")
    done = hub("connectors", "list", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN" in done.stdout and "bad.yaml" in done.stdout
    assert "pos.mapped.acme" in done.stdout  # the good ones are still listed
    doc = hub("connectors", "list", "--json", cwd=tmp_path, env=env)
    assert doc.returncode == 1
    problems = json.loads(doc.stdout)["problems"]
    assert [p["status"] for p in problems] == ["broken"] and "bad.yaml" in problems[0]["where"]


def test_hub_testing_imports_without_pytest(tmp_path: Path):
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "import hub.testing as t\n"
        "from hub.testing import NOW, ScriptedTransport, sample_event, all_samples\n"
        "assert sample_event('coupon.redeemed')['type'] == 'coupon.redeemed'\n"
        "try:\n"
        "    t.ConnectorContract\n"
        "except ImportError as exc:\n"
        "    assert 'pytest' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('ConnectorContract imported without pytest?')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr

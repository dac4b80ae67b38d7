"""The ``hub`` command line: migrate, seed, merchants, keys, idempotency purge, serve."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, inspect, select

from hub.cli import main
from hub.db.engine import make_engine
from hub.db.schema import api_keys, coupons, idempotency_keys, merchants, stores
from hub.services.keys import authenticate
from tests.conftest import BACKENDS, PG_URL, free_port

HUB = Path(sys.executable).parent / "hub"


def run(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result


def run_ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    out: str = result.stdout
    return out


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HUB_DATABASE_URL"}
    env.update(extra)
    return env


def test_migrate_creates_the_schema(tmp_path):
    db = tmp_path / "x.db"
    out = run_ok("migrate", "--db", str(db))
    assert "migrations applied" in out
    engine = make_engine(str(db))
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"merchants", "stores", "coupons", "redemptions", "outbox_events",
                "api_keys", "idempotency_keys"} <= tables
    finally:
        engine.dispose()
    assert "migrations applied" in run_ok("migrate", "--db", str(db))  # idempotent


def test_seed_prints_keys_and_refuses_a_second_time(tmp_path):
    db = tmp_path / "x.db"
    facts = json.loads(run_ok("seed", "--db", str(db)))
    assert facts["admin_key"].startswith("hk.")
    assert set(facts["store_keys"]) == {"SH-001", "SH-002", "BJ-001"}
    engine = make_engine(str(db))
    try:
        admin = authenticate(engine, facts["admin_key"])
        assert admin is not None and admin.role == "admin"
        assert admin.merchant_id == facts["merchant_id"]
        p = authenticate(engine, facts["store_keys"]["BJ-001"])
        assert p is not None and p.store_code == "BJ-001"
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(coupons)).scalar_one() > 0
            n_merchants = conn.execute(select(func.count()).select_from(merchants)).scalar_one()
        assert n_merchants == 1
        again = run("seed", "--db", str(db))
        assert again.exit_code != 0
        assert "already has data" in again.output
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(merchants)).scalar_one() == 1
    finally:
        engine.dispose()


def test_merchants_create_then_keys_create(tmp_path):
    db = str(tmp_path / "x.db")
    made = json.loads(run_ok("merchants", "create", "--db", db, "--name", "X Coffee"))
    assert made["merchant_id"].startswith("mch_") and made["admin_key"].startswith("hk.")
    engine = make_engine(db)
    try:
        admin = authenticate(engine, made["admin_key"])
        assert admin is not None and admin.role == "admin"
        assert admin.merchant_id == made["merchant_id"]
        assert str(admin.tz) == "Asia/Shanghai"
        # a store key needs the store to exist
        missing = run("keys", "create", "--db", db, "--role", "store", "--store", "SH-001")
        assert missing.exit_code != 0 and "store_not_found" in missing.output
        with engine.begin() as conn:
            conn.execute(insert(stores).values(
                id="sto_cli", merchant_id=made["merchant_id"], code="SH-001", name="Shanghai",
                created_at=datetime.now(UTC),
            ))
        key = json.loads(run_ok("keys", "create", "--db", db, "--role", "store",
                                "--store", "SH-001", "--name", "till 1"))
        assert key["role"] == "store" and key["store"] == "SH-001"
        assert key["merchant_id"] == made["merchant_id"]
        p = authenticate(engine, key["key"])
        assert p is not None
        assert (p.role, p.store_code, p.merchant_id) == ("store", "SH-001", made["merchant_id"])
        assert p.key_id == key["id"]
        forged = key["key"][:-1] + ("A" if key["key"][-1] != "A" else "B")
        assert authenticate(engine, forged) is None
        # only a hash of the secret is stored
        secret = key["key"].split(".")[2]
        admin_secret = made["admin_key"].split(".")[2]
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(select(api_keys)).all()]
            row = conn.execute(select(api_keys).where(api_keys.c.id == key["id"])).one()
        assert len(rows) == 2
        dumped = repr(rows)
        assert secret not in dumped and admin_secret not in dumped
        assert key["key"] not in dumped
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert row.name == "till 1" and row.store_id == "sto_cli"
        # an admin key names no store; a store key names one
        bad = run("keys", "create", "--db", db, "--role", "store")
        assert bad.exit_code != 0 and "invalid_request" in bad.output
        admin2 = json.loads(run_ok("keys", "create", "--db", db, "--role", "admin"))
        p2 = authenticate(engine, admin2["key"])
        assert p2 is not None and p2.role == "admin" and p2.store_code is None
    finally:
        engine.dispose()


def test_keys_create_without_a_merchant_fails(tmp_path):
    db = str(tmp_path / "x.db")
    run_ok("migrate", "--db", db)
    result = run("keys", "create", "--db", db, "--role", "admin")
    assert result.exit_code != 0 and "no merchant" in result.output


def test_idempotency_purge(tmp_path):
    db = str(tmp_path / "x.db")
    run_ok("migrate", "--db", db)
    engine = make_engine(db)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            for key, created in (("old-1", now - timedelta(hours=30)),
                                 ("old-2", now - timedelta(hours=25)),
                                 ("fresh", now - timedelta(hours=1))):
                conn.execute(insert(idempotency_keys).values(
                    api_key_id="key_x", key=key, endpoint="POST /v1/redemptions",
                    request_hash="0" * 64, response_status=201, response_body=b"{}",
                    created_at=created, expires_at=created + timedelta(hours=24),
                ))
        assert "purged 2 expired records" in run_ok("idempotency", "purge", "--db", db)
        with engine.connect() as conn:
            left = conn.execute(select(idempotency_keys.c.key)).scalars().all()
        assert left == ["fresh"]
        assert "purged 0 expired records" in run_ok("idempotency", "purge", "--db", db)
    finally:
        engine.dispose()


# --- hub serve (a real process) ------------------------------------------------------------


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"hub serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"hub serve did not listen on {port} within {timeout} s")


@contextmanager
def serve(workdir: Path, db: Path, demo: Path) -> Iterator[str]:
    port = free_port()
    with (workdir / f"serve-{port}.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(HUB), "serve", "--db", str(db), "--port", str(port), "--demo-file", str(demo)],
            cwd=workdir, env=_env(), stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_port(port, proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait(timeout=15)


def test_serve_demo_end_to_end(tmp_path):
    db = tmp_path / "demo.db"
    demo = tmp_path / "hub-demo.json"
    with serve(tmp_path, db, demo) as base, httpx.Client(base_url=base, timeout=15) as http:
        facts: dict[str, Any] = json.loads(demo.read_text(encoding="utf-8"))
        assert facts["base_url"] == base
        assert facts["admin_key"].startswith("hk.")
        assert set(facts["store_keys"]) == {"SH-001", "SH-002", "BJ-001"}
        assert set(facts["codes"]) == {"threshold", "percentage", "exchange"}
        assert all(facts["codes"][k] for k in facts["codes"])
        assert http.get("/health").json() == {"status": "ok"}
        schema = http.get("/schema/openapi.json")
        assert schema.status_code == 200
        assert "/v1/redemptions" in schema.json()["paths"]
        code = facts["codes"]["threshold"][0]
        r = http.post(
            "/v1/redemptions",
            json={"code": code, "order": {"id": "DEMO-1", "amount": 12800}},
            headers={"Authorization": f"Bearer {facts['store_keys']['SH-001']}",
                     "Idempotency-Key": "demo-1"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "redeemed" and r.json()["discount"] == 2000
        assert r.json()["store"] == "SH-001"
        r = http.get("/v1/merchant", headers={"Authorization": f"Bearer {facts['admin_key']}"})
        assert r.status_code == 200 and r.json()["id"] == facts["merchant_id"]
    assert not (tmp_path / "hub.db").exists()  # --db was honoured

    # a second start on the same database keeps the keys and lists only unused codes
    with serve(tmp_path, db, demo) as base, httpx.Client(base_url=base, timeout=15) as http:
        again: dict[str, Any] = json.loads(demo.read_text(encoding="utf-8"))
        assert again["base_url"] == base
        assert again["merchant_id"] == facts["merchant_id"]
        assert again["admin_key"] == facts["admin_key"]
        assert again["store_keys"] == facts["store_keys"]
        assert code not in again["codes"]["threshold"]
        assert again["codes"]["threshold"]
        r = http.get(f"/v1/coupons/{code}",
                     headers={"Authorization": f"Bearer {again['admin_key']}"})
        assert r.status_code == 200 and r.json()["status"] == "redeemed"
    engine = make_engine(str(db))
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(merchants)).scalar_one() == 1
    finally:
        engine.dispose()


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="HUB_TEST_BACKENDS excludes postgresql")
def test_seed_on_postgresql():
    name = f"hub_cli_{os.getpid()}_{secrets.token_hex(3)}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin.rpartition('/')[0]}/{name}"
    try:
        done = subprocess.run([str(HUB), "seed"], env=_env(HUB_DATABASE_URL=url),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        facts = json.loads(done.stdout)
        assert set(facts["store_keys"]) == {"SH-001", "SH-002", "BJ-001"}
        engine = make_engine(url)
        try:
            assert engine.dialect.name == "postgresql"
            with engine.connect() as conn:
                assert conn.execute(select(func.count()).select_from(stores)).scalar_one() == 3
                assert conn.execute(select(func.count()).select_from(coupons)).scalar_one() > 0
            p = authenticate(engine, facts["admin_key"])
            assert p is not None and p.merchant_id == facts["merchant_id"]
        finally:
            engine.dispose()
        again = subprocess.run([str(HUB), "seed"], env=_env(HUB_DATABASE_URL=url),
                               capture_output=True, text=True, timeout=120)
        assert again.returncode != 0 and "already has data" in again.stderr
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

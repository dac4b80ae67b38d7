"""Rough redeem throughput: the hub against the raw driver doing the same transaction.

    .venv/bin/python -m bench service [--n 2000] [--backend sqlite|postgresql|both]

For each backend it prints redeems/s of
  * baseline  — the raw driver (sqlite3 / psycopg) running the redeem transaction's five
                statements (idempotency insert, conditional UPDATE … RETURNING, redemption
                insert, outbox insert, idempotency update) in a loop;
  * service   — hub.services.redeem.redeem() in a loop (domain checks, Core, idempotency);
and the service loop as a ratio of the baseline measured in the same run. The routes over
HTTP, under concurrency, are ``python -m bench`` (bench/suite.py).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from sqlalchemy import Engine

from hub.api.redemptions import REDEMPTION_OPERATIONS
from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.domain.cart import Order
from hub.logs import configure_logging
from hub.services import catalog, issuing, keys
from hub.services.commands import RedeemCommand
from hub.services.principal import Principal
from hub.services.redeem import redeem

PG_ADMIN = os.environ.get("HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def setup_merchant(engine: Engine, n: int) -> tuple[Principal, Principal, str, list[str]]:
    """A bench merchant with store SH-001 and ``n`` issued 满100减20 codes: (admin
    principal, store principal, store key token, codes)."""
    now = datetime.now(UTC)
    mid = catalog.create_merchant(engine, "Bench", "Asia/Shanghai", now)
    admin = keys.create_key(engine, mid, "admin", now)
    p0 = keys.authenticate(engine, admin.token)
    assert p0 is not None
    catalog.create_store(engine, p0, "SH-001", "bench store", now)
    store = keys.create_key(engine, mid, "store", now, store_code="SH-001")
    p = keys.authenticate(engine, store.token)
    assert p is not None
    tpl = issuing.create_template(
        engine,
        p0,
        "bench",
        {
            "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
            "validity": {"type": "relative", "days": 30},
        },
        now,
    )
    codes: list[str] = []
    while len(codes) < n:
        batch = min(10_000, n - len(codes))
        out = issuing.issue_coupons(
            engine, p0, tpl["id"], count=batch, customer_external_ids=None, channel=None, now=now
        )
        codes += [c["code"] for c in out["coupons"]]
    return p0, p, store.token, codes


def _setup(engine: Engine, n: int) -> tuple[Principal, str, list[str]]:
    _admin, p, token, codes = setup_merchant(engine, n)
    return p, token, codes


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


def bench_service(engine: Engine, p: Principal, codes: list[str]) -> float:
    t0 = time.perf_counter()
    for i, code in enumerate(codes):
        cmd = RedeemCommand(
            code=code, store=None, channel="pos", order=Order(id=f"B-{i}", amount=12800)
        )
        body = msgspec.json.encode({"code": code, "i": i})
        r = redeem(
            engine,
            p,
            cmd,
            idempotency_key=f"svc-{code}",
            canonical_body=body,
            now=datetime.now(UTC),
            operation=REDEMPTION_OPERATIONS.redeem,
        )
        assert r.status == 201, r.body
    return _rate(len(codes), time.perf_counter() - t0)


BASELINE_SQL = [
    (
        "INSERT INTO idempotency_keys (api_key_id, key, endpoint, request_hash, created_at, "
        "expires_at) VALUES ({p}, {p}, 'POST /v1/redemptions', 'h', {p}, {p}) "
        "ON CONFLICT DO NOTHING RETURNING key"
    ),
    (
        "UPDATE coupons SET status = 'redeemed', redemption_id = {p}, version = version + 1 "
        "WHERE code = {p} AND status = 'issued' RETURNING id, template_id, merchant_id"
    ),
    (
        "INSERT INTO redemptions (id, merchant_id, coupon_id, template_id, store_id, store_code, "
        "channel, order_id, order_amount, discount, detail, status, occurred_at, recorded_at, "
        "api_key_id) VALUES ({p}, {p}, {p}, {p}, {p}, 'SH-001', 'pos', {p}, 12800, 2000, '{{}}', "
        "'redeemed', {p}, {p}, 'k')"
    ),
    (
        "INSERT INTO outbox_events (id, merchant_id, type, coupon_id, occurred_at, recorded_at, "
        "data) VALUES ({p}, {p}, 'coupon.redeemed', {p}, {p}, {p}, '{{}}')"
    ),
    (
        "UPDATE idempotency_keys SET response_status = 201, response_body = {p} "
        "WHERE api_key_id = {p} AND key = {p}"
    ),
]


def _baseline(
    execute: Callable[[str, tuple[Any, ...]], Any],
    begin: Callable[[], None],
    commit: Callable[[], None],
    codes: list[str],
    store_id: str,
    now: Callable[[], Any],
    p: str,
) -> float:
    sql = [s.format(p=p) for s in BASELINE_SQL]
    t0 = time.perf_counter()
    for i, code in enumerate(codes):
        ts = now()
        rid = uuid.uuid4().hex
        begin()
        execute(sql[0], ("bench", f"raw-{i}", ts, ts))
        row = execute(sql[1], (rid, code))
        assert row is not None
        execute(sql[2], (rid, row[2], row[0], row[1], store_id, f"R-{i}", ts, ts))
        execute(sql[3], (uuid.uuid4().hex, row[2], row[0], ts, ts))
        execute(sql[4], (b'{"status":"redeemed"}', "bench", f"raw-{i}"))
        commit()
    return _rate(len(codes), time.perf_counter() - t0)


def bench_raw_sqlite(path: str, codes: list[str], store_id: str) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")

    def execute(sql: str, params: tuple[Any, ...]) -> Any:
        return conn.execute(sql, params).fetchone()

    rate = _baseline(
        execute,
        lambda: conn.execute("BEGIN IMMEDIATE"),
        lambda: conn.execute("COMMIT"),
        codes,
        store_id,
        lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "?",
    )
    conn.close()
    return rate


def bench_raw_pg(url: str, codes: list[str], store_id: str) -> float:
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))

    def execute(sql: str, params: tuple[Any, ...]) -> Any:
        return (
            conn.execute(sql, params).fetchone()
            if "RETURNING" in sql
            else conn.execute(sql, params)
        )

    def commit() -> None:
        conn.commit()

    rate = _baseline(
        execute, lambda: None, commit, codes, store_id, lambda: datetime.now(UTC), "%s"
    )
    conn.close()
    return rate


def _store_id(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SELECT id FROM stores LIMIT 1").scalar_one())


def run_backend(name: str, url: str, n: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    p, _token, codes = _setup(engine, n * 2)
    store_id = _store_id(engine)
    raw_codes, svc_codes = codes[:n], codes[n : 2 * n]
    if name == "sqlite":
        base = bench_raw_sqlite(url, raw_codes, store_id)
    else:
        base = bench_raw_pg(url, raw_codes, store_id)
    svc = bench_service(engine, p, svc_codes)
    print(f"{name:<10} baseline (raw driver, sequential) {base:8.0f} redeems/s   1.00")
    print(
        f"{name:<10} hub service (sequential)          {svc:8.0f} redeems/s   "
        f"{svc / base:4.2f} × baseline"
    )
    engine.dispose()


def main() -> None:
    os.environ.setdefault("HUB_LOG_LEVEL", "WARNING")
    configure_logging()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="redeems per measurement")
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            run_backend("sqlite", str(Path(tmp) / "bench.db"), args.n)
    if args.backend in ("postgresql", "both"):
        name = f"hub_bench_{os.getpid()}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            run_backend("postgresql", PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", args.n)
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()

"""``python -m bench exports``: reconciliation exports of N redemptions, memory and speed.

    python -m bench exports                       # 1,000,000 rows, PostgreSQL then SQLite
    python -m bench exports --n 200000 --db sqlite --formats csv,summary

For each database: a fresh one (PostgreSQL: a new database on ``HUB_TEST_PG_URL``'s
server, dropped afterwards; SQLite: a file in a temporary folder), migrated, N coupons
and N redemptions over 30 days across 10 stores and 5 templates (every 20th reversed
two hours later) bulk-loaded straight into the tables (PostgreSQL ``COPY``, SQLite
``executemany``). Then the hub runs as its own process (uvicorn, the real app) and the
bench downloads each export of the whole range through HTTP, counting rows and bytes,
while sampling the server process's resident memory (``/proc/<pid>/status``; the peak
``VmHWM`` is reset before each download where the kernel allows). Printed: rows, MiB,
seconds, rows/s, the server's RSS before, its peak during the download and the growth.

Bounded memory means the growth does not depend on N: run it at two sizes to see.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine, insert

from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.db.schema import coupon_templates, merchants, stores
from hub.services import keys

PG_ADMIN = os.environ.get("HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MERCHANT = "mch_BENCHEXPORTS"
STORES = 10
TEMPLATES = 5
DAYS = 30
REVERSED_EVERY = 20
BATCH = 50_000
END = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # midnight 2026-12-01 in Shanghai
RANGE = {"from": "2026-11-01", "to": "2026-11-30"}

_COUPON_COLS = (
    "id", "merchant_id", "template_id", "code", "status", "customer_id", "channel",
    "issued_at", "valid_from", "valid_until", "redemption_id", "version",
)  # fmt: skip
_REDEMPTION_COLS = (
    "id", "merchant_id", "coupon_id", "template_id", "store_id", "store_code", "channel",
    "order_id", "order_amount", "discount", "detail", "status", "occurred_at", "recorded_at",
    "reversed_at", "reversal_reason", "api_key_id",
)  # fmt: skip


def _rows(n: int) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """(coupon, redemption) of the i-th redemption, in time order."""
    start = END - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / max(n, 1)
    valid_until = END + timedelta(days=365)
    for i in range(n):
        at = start + step * i
        store = i % STORES
        tpl = f"tpl_{i % TEMPLATES}"
        reversed_at = at + timedelta(hours=2) if i % REVERSED_EVERY == 0 else None
        amount = 5000 + (i * 37) % 20000
        discount = 500 + (i % 7) * 100
        rid, cid = f"rdm_{i:010d}", f"cpn_{i:010d}"
        status = "reversed" if reversed_at else "redeemed"
        yield (
            (cid, MERCHANT, tpl, f"B{i:011d}", "issued" if reversed_at else "redeemed", None,
             None, start, start, valid_until, None if reversed_at else rid, 1),
            (rid, MERCHANT, cid, tpl, f"sto_{store}", f"S-{store:03d}",
             "pos" if i % 3 else "mini_program", f"O-{i}", amount, discount, "{}", status, at,
             at, reversed_at, "refund" if reversed_at else None, f"key_{store}"),
        )  # fmt: skip


def load(engine: Engine, n: int) -> str:
    """The merchant, its stores and templates, N coupons and N redemptions; returns an
    admin key's token."""
    created = END - timedelta(days=DAYS + 1)
    with engine.begin() as conn:
        conn.execute(
            insert(merchants).values(
                id=MERCHANT, name="Bench Tea", timezone="Asia/Shanghai", created_at=created
            )
        )
        conn.execute(
            insert(stores),
            [
                {"id": f"sto_{s}", "merchant_id": MERCHANT, "code": f"S-{s:03d}",
                 "name": f"门店 {s}", "created_at": created}
                for s in range(STORES)
            ],
        )  # fmt: skip
        conn.execute(
            insert(coupon_templates),
            [
                {"id": f"tpl_{t}", "merchant_id": MERCHANT, "name": f"满100减{t + 10}",
                 "kind": "threshold", "rules": {}, "status": "active", "created_at": created}
                for t in range(TEMPLATES)
            ],
        )  # fmt: skip
    for s in range(STORES):
        keys.create_key(engine, MERCHANT, "store", created, store_code=f"S-{s:03d}")
    token = keys.create_key(engine, MERCHANT, "admin", created, name="bench").token
    if engine.dialect.name == "postgresql":
        _copy_postgresql(engine, n)
    else:
        _insert_sqlite(engine, n)
    return token


def _copy_postgresql(engine: Engine, n: int) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY coupons ({', '.join(_COUPON_COLS)}) FROM STDIN") as cp:
            for c, _ in _rows(n):
                cp.write_row(c)
        with cur.copy(f"COPY redemptions ({', '.join(_REDEMPTION_COLS)}) FROM STDIN") as cp:
            for _, r in _rows(n):
                cp.write_row(r)
        raw.commit()
        cur.execute("ANALYZE coupons")
        cur.execute("ANALYZE redemptions")
        raw.commit()
    finally:
        raw.close()


def _sqlite_time(t: datetime | None) -> str | None:
    return None if t is None else t.replace(tzinfo=None).isoformat(" ", "microseconds")


def _insert_sqlite(engine: Engine, n: int) -> None:
    path = engine.url.database
    assert path
    conn = sqlite3.connect(path)
    try:
        cq = f"INSERT INTO coupons ({', '.join(_COUPON_COLS)}) VALUES ({', '.join('?' * 12)})"
        rq = (
            f"INSERT INTO redemptions ({', '.join(_REDEMPTION_COLS)}) "
            f"VALUES ({', '.join('?' * 17)})"
        )
        cb: list[tuple[Any, ...]] = []
        rb: list[tuple[Any, ...]] = []
        for c, r in _rows(n):
            cb.append(c[:7] + tuple(_sqlite_time(x) for x in c[7:10]) + c[10:])
            rb.append(r[:12] + tuple(_sqlite_time(x) for x in (r[12], r[13], r[14])) + r[15:])
            if len(cb) >= BATCH:
                conn.executemany(cq, cb)
                conn.executemany(rq, rb)
                cb.clear()
                rb.clear()
        conn.executemany(cq, cb)
        conn.executemany(rq, rb)
        conn.commit()
        conn.execute("ANALYZE")
    finally:
        conn.close()


# --- the server and the memory sampler ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SERVE = """
import sys, uvicorn
from hub.api.app import create_app
from hub.db.engine import make_engine
uvicorn.run(create_app(make_engine(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning")
"""


@contextlib.contextmanager
def serve(url: str) -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = {**os.environ, "HUB_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, url, str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the hub did not start")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Sampler:
    """The peak resident memory of ``pid`` while a download runs (sampled every 10 ms,
    and the kernel's own peak VmHWM after a reset where allowed)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.hwm_reset = False
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM
            self.hwm_reset = True
        self.before = _status_kib(pid, "VmRSS")
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _status_kib(self.pid, "VmRSS"))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.hwm_reset:
            self.peak = max(self.peak, _status_kib(self.pid, "VmHWM"))


@dataclass
class Result:
    db: str
    what: str
    rows: int
    bytes: int
    seconds: float
    rss_before_mib: float
    rss_peak_mib: float

    @property
    def growth_mib(self) -> float:
        return self.rss_peak_mib - self.rss_before_mib


def download(base: str, pid: int, token: str, path: str, params: dict[str, str]) -> tuple[
    int, int, float, float, float
]:
    """(rows or 0, bytes, seconds, RSS before MiB, peak MiB) of one export."""
    headers = {"Authorization": f"Bearer {token}"}
    sampler = Sampler(pid)
    t0 = time.perf_counter()
    size = lines = 0
    with httpx.stream(
        "GET", base + path, params=params, headers=headers, timeout=httpx.Timeout(1800.0)
    ) as r:
        if r.status_code != 200:
            sampler.stop()
            raise RuntimeError(f"{path}: {r.status_code} {r.read()[:300]!r}")
        for chunk in r.iter_raw(1 << 16):
            size += len(chunk)
            lines += chunk.count(b"\n")
    seconds = time.perf_counter() - t0
    sampler.stop()
    return lines, size, seconds, sampler.before / 1024, sampler.peak / 1024


FORMATS = {
    "csv": "/v1/exports/redemptions.csv",
    "xlsx": "/v1/exports/redemptions.xlsx",
    "summary": "/v1/exports/summary.csv",
}


def expected_rows(n: int) -> int:
    """Redemptions plus the reversals made inside the range (the last ones fall after)."""
    return n + sum(1 for c, r in _rows(n) if r[14] is not None and r[14] < END)


def run_backend(db: str, url: str, n: int, formats: list[str]) -> list[Result]:
    engine = make_engine(url, pool_size=2, max_overflow=0)
    try:
        upgrade(engine)
        t0 = time.perf_counter()
        token = load(engine, n)
        print(f"{db}: loaded {n:,} redemptions in {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        engine.dispose()
    out: list[Result] = []
    with serve(url) as (base, pid):
        one_day = {"from": "2026-11-30", "to": "2026-11-30"}
        for what in formats:  # warm: imports and first-request costs are not the export's
            download(base, pid, token, FORMATS[what], one_day)
        rows = expected_rows(n)
        for what in formats:
            lines, size, seconds, before, peak = download(base, pid, token, FORMATS[what], RANGE)
            if what == "csv":
                assert lines - 1 == rows, (lines - 1, rows)
            res = Result(db, what, rows, size, seconds, before, peak)
            out.append(res)
            print(
                f"{db}: {what}: {size / 2**20:.1f} MiB in {seconds:.1f} s, "
                f"RSS {before:.0f} → {peak:.0f} MiB",
                flush=True,
            )
    return out


def print_table(results: list[Result]) -> None:
    print()
    print(
        "| database | export | rows | MiB | seconds | rows/s | server RSS before | peak "
        "| growth |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        rate = r.rows / r.seconds if r.seconds else 0.0
        print(
            f"| {r.db} | {r.what} | {r.rows:,} | {r.bytes / 2**20:.1f} | {r.seconds:.1f} | "
            f"{rate:,.0f} | {r.rss_before_mib:.0f} MiB | {r.rss_peak_mib:.0f} MiB | "
            f"{r.growth_mib:+.0f} MiB |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench exports", description=(__doc__ or "").splitlines()[0]
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="redemptions to load")
    ap.add_argument("--db", default="postgresql,sqlite", help="postgresql, sqlite or both")
    ap.add_argument("--formats", default="csv,xlsx,summary", help="csv, xlsx, summary")
    args = ap.parse_args(argv)
    dbs = [d for d in args.db.split(",") if d]
    formats = [f for f in args.formats.split(",") if f]
    if args.n < 1 or set(dbs) - {"postgresql", "sqlite"} or set(formats) - set(FORMATS):
        ap.error("--n ≥ 1; --db postgresql,sqlite; --formats csv,xlsx,summary")
    results: list[Result] = []
    for db in dbs:
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                results += run_backend("sqlite", str(Path(tmp) / "bench.db"), args.n, formats)
        else:
            name = f"hub_bench_exports_{os.getpid()}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
                results += run_backend("postgresql", url, args.n, formats)
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

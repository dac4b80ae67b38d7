"""The hot routes under load, against the raw driver in the same run: ``python -m bench``.

For each database (a fresh PostgreSQL database on ``HUB_TEST_PG_URL``'s server, created
and dropped here; a fresh SQLite file) it seeds a merchant, a store key and enough fresh
coupons, starts ``hub serve`` as a subprocess (``--workers N`` passed through when given)
and, for each concurrency, measures

* **raw** — the same work issued straight through the driver (asyncpg for PostgreSQL,
  ``sqlite3`` for SQLite) by ``c`` concurrent clients; for a redeem the five statements
  of the redeem transaction (idempotency insert, conditional ``UPDATE … RETURNING``,
  redemption insert, outbox insert, idempotency update);
* **hub** — the route over HTTP, closed loop with ``c`` keep-alive connections, from a
  load generator in its own process (``bench.loadgen``);

then, open loop at fixed rates (each request due at its intended send time, latency
measured from it: no coordinated omission). CPU per request of the hub's processes and
of the database's backends (``/proc/<pid>/stat`` before/after a fixed number of
requests), the API's RSS under load, and finally a check of the database: successes =
redemptions = ``coupon.redeemed`` events, no coupon redeemed twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import msgspec
import psycopg

from bench import loadgen
from bench.redeem import BASELINE_SQL, setup_merchant
from hub.db.engine import make_engine
from hub.db.migrate import upgrade

PG_ADMIN = os.environ.get("HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test").replace(
    "postgresql+psycopg://", "postgresql://"
)
REPO = Path(__file__).resolve().parents[1]
TARGETS = ("redeem", "validate", "lookup", "pos")
CONSUMES = {"redeem": True, "pos": True, "validate": False, "lookup": False}
SUCCESS = {"redeem": 201, "pos": 201, "validate": 200, "lookup": 200}
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Options:
    dbs: list[str]
    targets: list[str]
    concurrency: list[int]
    rates: list[float]
    requests: int  # per closed-loop run
    duration: float  # seconds per open-loop rate
    processes: int | None  # hub serve --workers, when given
    raw_connections: int  # cap on the raw baseline's connections
    open_connections: int  # cap on the open loop's connections
    warmup: int
    json_path: str | None


@dataclass
class Row:
    db: str
    target: str
    mode: str  # "c8" (closed loop) or "open300" (open loop)
    requests: int
    hub_rate: float
    hub_p50_ms: float
    hub_p99_ms: float
    hub_statuses: dict[str, int]
    hub_cpu_ms: float | None  # hub processes' CPU per request
    db_cpu_ms: float | None  # database backends' CPU per request (PostgreSQL)
    rss_mib: float | None  # the hub processes' RSS, peak under load (sum)
    rss_max_process_mib: float | None
    raw_rate: float | None = None
    raw_p50_ms: float | None = None
    raw_p99_ms: float | None = None
    raw_db_cpu_ms: float | None = None
    raw_connections: int | None = None
    ratio: float | None = None  # hub_rate / raw_rate
    offered_rate: float | None = None  # open loop


@dataclass
class Check:
    db: str
    target: str
    hub_successes: int
    redemptions: int
    events: int
    coupons_redeemed_twice: int
    coupons_redeemed: int
    all_redemptions: int
    passed: bool
    detail: str = ""


@dataclass
class Report:
    started_at: str
    machine: dict[str, Any]
    options: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


# --- /proc sampling ---------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, utime + stime in ticks, rss pages) of ``pid``, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    rest = raw[raw.rindex(b")") + 2 :].split()
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[21])


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            children.setdefault(st[0], []).append(int(entry))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _pg_backends(dbname: str) -> set[int]:
    """The PostgreSQL backends connected to ``dbname`` (``postgres: user db host …``)."""
    pids = set()
    needle = f" {dbname} ".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"postgres: ") and needle in cmd.replace(b"\0", b" "):
            pids.add(int(entry))
    return pids


class Sampler:
    """CPU time of two groups of processes (the hub's tree, the database's backends)
    across a window, and the hub's peak RSS, polled every 0.1 s by a thread so that
    processes that come and go in the window are counted."""

    def __init__(self, hub_pid: int | None, dbname: str | None) -> None:
        self.hub_pid, self.dbname = hub_pid, dbname
        self.first: dict[str, dict[int, int]] = {"hub": {}, "db": {}}
        self.last: dict[str, dict[int, int]] = {"hub": {}, "db": {}}
        self.rss_sum = 0
        self.rss_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _groups(self) -> dict[str, set[int]]:
        return {
            "hub": _descendants(self.hub_pid) if self.hub_pid else set(),
            "db": _pg_backends(self.dbname) if self.dbname else set(),
        }

    def _poll(self, initial: bool = False) -> None:
        rss_sum = 0
        for group, pids in self._groups().items():
            for pid in pids:
                st = _stat(pid)
                if st is None:
                    continue
                if initial:
                    self.first[group][pid] = st[1]
                self.last[group][pid] = st[1]
                if group == "hub" and not initial:
                    rss_sum += st[2] * PAGE
                    self.rss_max = max(self.rss_max, st[2] * PAGE)
        self.rss_sum = max(self.rss_sum, rss_sum)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._poll()

    def __enter__(self) -> Sampler:
        self._poll(initial=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()

    def cpu_ms(self, group: str, n: int) -> float | None:
        if not self.last[group] or not n:
            return None
        ticks = sum(v - self.first[group].get(pid, 0) for pid, v in self.last[group].items())
        return ticks / TICK * 1000 / n


# --- databases ----------------------------------------------------------------------


@dataclass
class Db:
    kind: str  # "postgresql" | "sqlite"
    url: str  # for hub serve and SQLAlchemy
    dbname: str | None  # PostgreSQL database name
    path: str | None  # SQLite file


@contextlib.contextmanager
def fresh_db(kind: str, workdir: Path) -> Iterator[Db]:
    if kind == "sqlite":
        path = str(workdir / "bench.db")
        yield Db("sqlite", path, None, path)
        return
    name = f"hub_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Db("postgresql", f"{PG_ADMIN.rpartition('/')[0]}/{name}", name, None)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Seed:
    token: str
    store_id: str
    codes: list[str]


def seed(db: Db, n: int) -> Seed:
    engine = make_engine(db.url, pool_size=2, max_overflow=2)
    try:
        upgrade(engine)
        _admin, _store, token, codes = setup_merchant(engine, n)
        with engine.connect() as conn:
            store_id = str(conn.exec_driver_sql("SELECT id FROM stores LIMIT 1").scalar_one())
        return Seed(token, store_id, codes)
    finally:
        engine.dispose()


# --- hub serve ----------------------------------------------------------------------


def serve_supports_workers() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    return "--workers" in out.stdout


def _secret_key() -> str:
    """A throw-away ``HUB_SECRET_KEY`` for the run (no key file left anywhere)."""
    from hub.secrets import ENV_VAR, generate_key

    if not os.environ.get(ENV_VAR, "").strip():
        os.environ[ENV_VAR] = generate_key()
    return os.environ[ENV_VAR]


# The server's own knobs that pass from the bench's environment to the `hub serve` it
# starts (the hot path's driver included); the hub's other variables are the bench's.
SERVER_KNOBS = ("HUB_DB_POOL_SIZE", "HUB_DB_MAX_OVERFLOW", "HUB_DB_POOL_TIMEOUT",
                "HUB_DB_HOT_DRIVER", "HUB_PERIODIC_JOBS_OFF")


def server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of the server under test: no ``HUB_*`` variable but the knobs."""
    env = {k: v for k, v in environ.items() if not k.startswith("HUB_")}
    env.update({k: environ[k] for k in SERVER_KNOBS if k in environ})
    return env


@contextlib.contextmanager
def hub_serve(db: Db, workdir: Path, processes: int | None) -> Iterator[tuple[int, int]]:
    """``hub serve`` on a free loopback port; yields (pid, port)."""
    from tests.delivery.multiproc import PREEXEC, free_port, wait_until

    port = free_port()
    env = server_env(os.environ)
    env.update(HUB_LOG_LEVEL="WARNING", HUB_SECRET_KEY=_secret_key(), PYTHONUNBUFFERED="1")
    args = [sys.executable, "-m", "hub.cli", "serve", "--no-demo", "--db", db.url]
    args += ["--port", str(port), "--demo-file", str(workdir / "demo.json")]
    if processes is not None:
        args += ["--workers", str(processes)]
    log = workdir / "serve.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=workdir, preexec_fn=PREEXEC,
        )  # fmt: skip

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"hub serve exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 60, 0.1, "hub serve /health")
        yield proc.pid, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- requests -----------------------------------------------------------------------


def build_requests(target: str, token: str, codes: list[str], tag: str) -> list[bytes]:
    auth = {"Authorization": f"Bearer {token}"}
    json_type = {**auth, "Content-Type": "application/json"}
    out = []
    for i, code in enumerate(codes):
        order = {"id": f"{tag}-{i}", "amount": 12800}
        if target == "lookup":
            out.append(loadgen.request_bytes("GET", f"/v1/coupons/{code}", "127.0.0.1", auth, b""))
            continue
        if target == "validate":
            path, body, headers = (
                "/v1/redemptions/validate",
                {"code": code, "order": order},
                json_type,
            )
        elif target == "redeem":
            path, body = "/v1/redemptions", {"code": code, "order": order}
            headers = {**json_type, "Idempotency-Key": f"{tag}-{uuid.uuid4().hex}"}
        else:  # pos: the native POS format, the vendor's request id as the key
            path, body = (
                "/v1/pos/pos.native/redeem",
                {"code": code, "store": "SH-001", "order": order},
            )
            headers = {**json_type, "Idempotency-Key": f"{tag}-{uuid.uuid4().hex}"}
        out.append(
            loadgen.request_bytes("POST", path, "127.0.0.1", headers, msgspec.json.encode(body))
        )
    return out


def drive(
    pool: concurrent.futures.Executor, port: int, requests: list[bytes], *, concurrency: int = 0,
    rate: float = 0.0,
    max_connections: int = 256,
) -> tuple[list[float], dict[int, int], float]:  # fmt: skip
    spec = loadgen.Spec(
        "127.0.0.1", port, requests, concurrency=concurrency, rate=rate,
        max_connections=max_connections,
    )  # fmt: skip
    return pool.submit(loadgen.drive, spec).result(timeout=3600)


# --- the raw driver -----------------------------------------------------------------

_READ_SQL = {
    # what a validate reads: the coupon and its template's rules
    "validate": [
        "SELECT id, template_id, status, valid_from, valid_until, redemption_id "
        "FROM coupons WHERE code = {p}",
        "SELECT id, rules FROM coupon_templates WHERE id = {p}",
    ],
    # what a look-up reads: the coupon, its template and its event history
    "lookup": [
        "SELECT id, template_id, status, valid_from, valid_until, redemption_id "
        "FROM coupons WHERE code = {p}",
        "SELECT id, rules FROM coupon_templates WHERE id = {p}",
        "SELECT type, occurred_at, data FROM outbox_events WHERE coupon_id = {p} ORDER BY seq",
    ],
}


def _q(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        v = values[0] * 1000 if values else 0.0
        return v, v
    q = statistics.quantiles(values, n=100)
    return q[49] * 1000, q[98] * 1000


async def _raw_pg(
    url: str, target: str, codes: list[str], store_id: str, concurrency: int, max_conn: int,
    sampler: Sampler,
) -> tuple[float, list[float], int]:  # fmt: skip
    conns = min(concurrency, max_conn)
    pool = await asyncpg.create_pool(url, min_size=conns, max_size=conns)
    assert pool is not None
    pending = iter(enumerate(codes))
    latencies: list[float] = []
    sql = [s.format(p="${}") for s in (BASELINE_SQL if CONSUMES[target] else _READ_SQL[target])]
    sql = [_number(s) for s in sql]

    async def one(i: int, code: str) -> None:
        async with pool.acquire() as conn:
            if not CONSUMES[target]:
                row = await conn.fetchrow(sql[0], code)
                assert row is not None
                await conn.fetchrow(sql[1], row["template_id"])
                if target == "lookup":
                    await conn.fetch(sql[2], row["id"])
                return
            ts, rid, key = datetime.now(UTC), f"raw{uuid.uuid4().hex}", f"raw-{uuid.uuid4().hex}"
            async with conn.transaction():
                await conn.fetchrow(sql[0], "bench", key, ts, ts)
                row = await conn.fetchrow(sql[1], rid, code)
                assert row is not None
                await conn.execute(sql[2], rid, row[2], row[0], row[1], store_id, f"R-{i}", ts, ts)
                await conn.execute(sql[3], f"raw{uuid.uuid4().hex}", row[2], row[0], ts, ts)
                await conn.execute(sql[4], b'{"status":"redeemed"}', "bench", key)

    async def client() -> None:
        for i, code in pending:
            t0 = time.perf_counter()
            await one(i, code)
            latencies.append(time.perf_counter() - t0)

    try:
        with sampler:  # the connections are open: their start-up is not counted
            t0 = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            elapsed = time.perf_counter() - t0
        return elapsed, latencies, conns
    finally:
        await pool.close()


def _number(sql: str) -> str:
    """``${}`` placeholders → ``$1, $2, …`` (asyncpg's)."""
    n = 0
    while "${}" in sql:
        n += 1
        sql = sql.replace("${}", f"${n}", 1)
    return sql


def _raw_sqlite(
    path: str, target: str, codes: list[str], store_id: str, concurrency: int, max_conn: int
) -> tuple[float, list[float], int]:
    threads = min(concurrency, max_conn)
    pending = iter(enumerate(codes))
    lock = threading.Lock()
    latencies: list[float] = []
    sql = [s.format(p="?") for s in (BASELINE_SQL if CONSUMES[target] else _READ_SQL[target])]

    def client() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            while True:
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                i, code = item
                t0 = time.perf_counter()
                if CONSUMES[target]:
                    ts = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                    rid, key = f"raw{uuid.uuid4().hex}", f"raw-{uuid.uuid4().hex}"
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(sql[0], ("bench", key, ts, ts)).fetchone()
                    row = conn.execute(sql[1], (rid, code)).fetchone()
                    assert row is not None
                    conn.execute(sql[2], (rid, row[2], row[0], row[1], store_id, f"R-{i}", ts, ts))
                    conn.execute(sql[3], (f"raw{uuid.uuid4().hex}", row[2], row[0], ts, ts))
                    conn.execute(sql[4], (b'{"status":"redeemed"}', "bench", key))
                    conn.execute("COMMIT")
                else:
                    row = conn.execute(sql[0], (code,)).fetchone()
                    assert row is not None
                    conn.execute(sql[1], (row[1],)).fetchone()
                    if target == "lookup":
                        conn.execute(sql[2], (row[0],)).fetchall()
                latency = time.perf_counter() - t0
                with lock:
                    latencies.append(latency)
        finally:
            conn.close()

    workers = [threading.Thread(target=client) for _ in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - t0, latencies, threads


def raw_run(
    db: Db, target: str, codes: list[str], store_id: str, concurrency: int, max_conn: int,
    sampler: Sampler,
) -> tuple[float, list[float], int]:  # fmt: skip
    if db.kind == "postgresql":
        return asyncio.run(_raw_pg(db.url, target, codes, store_id, concurrency, max_conn, sampler))
    assert db.path is not None
    with sampler:
        return _raw_sqlite(db.path, target, codes, store_id, concurrency, max_conn)


# --- the check ----------------------------------------------------------------------


def check_db(db: Db, target: str, successes: int) -> Check:
    """After the run: the hub's successes = its redemptions = its ``coupon.redeemed``
    events (the raw baseline's rows carry ``raw`` ids and are counted apart), no coupon
    redeemed twice, and as many coupons marked redeemed as there are redemptions."""
    engine = make_engine(db.url, pool_size=1, max_overflow=1)
    try:
        with engine.connect() as conn:

            def one(sql: str) -> int:
                return int(conn.exec_driver_sql(sql).scalar_one())

            hub_redemptions = one(
                "SELECT count(*) FROM redemptions WHERE substr(id, 1, 3) <> 'raw'"
            )
            events = one(
                "SELECT count(*) FROM outbox_events WHERE type = 'coupon.redeemed' "
                "AND substr(id, 1, 3) <> 'raw'"
            )
            twice = one(
                "SELECT count(*) FROM (SELECT coupon_id FROM redemptions "
                "GROUP BY coupon_id HAVING count(*) > 1) AS t"
            )
            marked = one("SELECT count(*) FROM coupons WHERE status = 'redeemed'")
            all_redemptions = one("SELECT count(*) FROM redemptions")
    finally:
        engine.dispose()
    expected = successes if CONSUMES[target] else 0
    problems = []
    if hub_redemptions != expected:
        problems.append(f"{hub_redemptions} hub redemptions for {expected} expected")
    if events != expected:
        problems.append(f"{events} coupon.redeemed events for {expected} expected")
    if twice:
        problems.append(f"{twice} coupons redeemed twice")
    if marked != all_redemptions:
        problems.append(f"{marked} coupons marked redeemed for {all_redemptions} redemptions")
    return Check(
        db.kind, target, successes, hub_redemptions, events, twice, marked, all_redemptions,
        passed=not problems, detail="; ".join(problems),
    )  # fmt: skip


# --- the run ------------------------------------------------------------------------


def _statuses(s: dict[int, int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(s.items())}


def run_target(
    db: Db, target: str, opts: Options, pool: concurrent.futures.Executor, workdir: Path
) -> tuple[list[Row], Check]:
    per_closed = opts.requests
    open_counts = [max(1, int(rate * opts.duration)) for rate in opts.rates]
    consumed_hub = opts.warmup + per_closed * len(opts.concurrency) + sum(open_counts)
    consumed_raw = per_closed * len(opts.concurrency)
    n = (consumed_hub + consumed_raw) if CONSUMES[target] else max(per_closed, 100)
    s = seed(db, n)
    codes = iter(s.codes)

    def take(k: int) -> list[str]:
        if CONSUMES[target]:
            return [next(codes) for _ in range(k)]
        return [s.codes[i % len(s.codes)] for i in range(k)]

    rows: list[Row] = []
    successes = 0
    ok = SUCCESS[target]
    with hub_serve(db, workdir, opts.processes) as (pid, port):
        if opts.warmup:
            _lat, st, _el = drive(
                pool, port, build_requests(target, s.token, take(opts.warmup), "warm"),
                concurrency=min(8, opts.warmup),
            )  # fmt: skip
            successes += st.get(ok, 0)
        for c in opts.concurrency:
            raw_codes = take(per_closed)
            raw_sample = Sampler(None, db.dbname)
            raw_elapsed, raw_lat, raw_conns = raw_run(
                db, target, raw_codes, s.store_id, c, opts.raw_connections, raw_sample
            )
            requests = build_requests(target, s.token, take(per_closed), f"c{c}")
            with Sampler(pid, db.dbname) as sample:
                lat, st, elapsed = drive(pool, port, requests, concurrency=c)
            successes += st.get(ok, 0)
            p50, p99 = _q(lat)
            r50, r99 = _q(raw_lat)
            hub_rate = len(lat) / elapsed
            raw_rate = len(raw_lat) / raw_elapsed
            rows.append(
                Row(
                    db.kind,
                    target,
                    f"c{c}",
                    len(lat),
                    hub_rate,
                    p50,
                    p99,
                    _statuses(st),
                    sample.cpu_ms("hub", len(lat)),
                    sample.cpu_ms("db", len(lat)),
                    sample.rss_sum / 2**20,
                    sample.rss_max / 2**20,
                    raw_rate=raw_rate,
                    raw_p50_ms=r50,
                    raw_p99_ms=r99,
                    raw_db_cpu_ms=raw_sample.cpu_ms("db", len(raw_lat)),
                    raw_connections=raw_conns,
                    ratio=hub_rate / raw_rate,
                )
            )
        for rate, count in zip(opts.rates, open_counts, strict=True):
            requests = build_requests(target, s.token, take(count), f"o{rate:g}")
            with Sampler(pid, db.dbname) as sample:
                lat, st, elapsed = drive(
                    pool, port, requests, rate=rate, max_connections=opts.open_connections
                )
            successes += st.get(ok, 0)
            p50, p99 = _q(lat)
            rows.append(
                Row(
                    db.kind,
                    target,
                    f"open{rate:g}",
                    len(lat),
                    len(lat) / elapsed,
                    p50,
                    p99,
                    _statuses(st),
                    sample.cpu_ms("hub", len(lat)),
                    sample.cpu_ms("db", len(lat)),
                    sample.rss_sum / 2**20,
                    sample.rss_max / 2**20,
                    offered_rate=rate,
                )
            )
    return rows, check_db(db, target, successes)


def _fmt(v: float | None, spec: str = ".0f") -> str:
    return "—" if v is None else format(v, spec)


def table(rows: list[Row]) -> str:
    head = (
        "| db | route | load | hub/s | hub p50 / p99 ms | raw/s | raw p50 / p99 ms | hub/raw "
        "| hub CPU ms/req | DB CPU ms/req (raw) | RSS MiB | not 2xx |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        bad = sum(v for k, v in r.hub_statuses.items() if not k.startswith("2"))
        raw = (
            "—"
            if r.raw_rate is None
            else f"{_fmt(r.raw_p50_ms, '.1f')} / {_fmt(r.raw_p99_ms, '.1f')}"
        )
        db_cpu = _fmt(r.db_cpu_ms, ".2f") + (
            f" ({_fmt(r.raw_db_cpu_ms, '.2f')})" if r.raw_db_cpu_ms is not None else ""
        )
        lines.append(
            f"| {r.db} | {r.target} | {r.mode} | {r.hub_rate:,.0f} | {r.hub_p50_ms:.1f} / "
            f"{r.hub_p99_ms:.1f} | {_fmt(r.raw_rate, ',.0f')} | {raw} | {_fmt(r.ratio, '.2f')} "
            f"| {_fmt(r.hub_cpu_ms, '.2f')} | {db_cpu} | {_fmt(r.rss_mib, '.0f')} | {bad} |"
        )
    return "\n".join(lines)


def run(opts: Options) -> Report:
    _secret_key()
    if opts.processes is not None and not serve_supports_workers():
        raise SystemExit("--processes needs `hub serve --workers`, which this hub lacks")
    load = os.getloadavg()
    report = Report(
        started_at=datetime.now(UTC).isoformat(),
        machine={
            "cpus": os.cpu_count(),
            "loadavg_at_start": load,
            "python": sys.version.split()[0],
        },
        options=asdict(opts),
    )
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        pool.submit(int).result()  # the load generator's process is up before any timing
        for kind in opts.dbs:
            for target in opts.targets:
                workdir = Path(tempfile.mkdtemp(prefix=f"hub-bench-{kind}-"))
                try:
                    with fresh_db(kind, workdir) as db:
                        rows, check = run_target(db, target, opts, pool, workdir)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                report.rows += rows
                report.checks.append(check)
                print(table(rows), flush=True)
                print(_check_line(check), flush=True)
    report.machine["loadavg_at_end"] = os.getloadavg()
    return report


def _check_line(c: Check) -> str:
    verdict = "passed" if c.passed else f"FAILED: {c.detail}"
    return (
        f"check {c.db}/{c.target}: {c.hub_successes} successes, {c.redemptions} redemptions, "
        f"{c.events} coupon.redeemed events, {c.coupons_redeemed_twice} coupons redeemed "
        f"twice — {verdict}"
    )


def write_json(report: Report, path: str) -> None:
    doc = asdict(report) | {"passed": report.passed}
    Path(path).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def print_summary(report: Report, out: Callable[[str], None] = print) -> None:
    out("")
    out(table(report.rows))
    for c in report.checks:
        out(_check_line(c))
    out(f"database check: {'passed' if report.passed else 'FAILED'}")

"""The analytics routes on a million redemptions, and what the rollups cost a redeem.

    .venv/bin/python -m bench analytics [--n 1000000] [--runs 5] [--redeems 3000]
        [--concurrency 32] [--rounds 2] [--json out.json]

On a fresh PostgreSQL database (``HUB_TEST_PG_URL``'s server; created and dropped here):

1. **Load** — the demo merchant (hub.seeding.seed), then a year of synthetic history
   (hub.synthetic) with the bulk loader (COPY): one history of ``--base-customers``
   customers is generated and laid down again as *tiles* (new codes, customers, order
   ids and campaigns; same times) until ``--n`` redemptions are in, with their coupons,
   claims, reversals and sales in proportion. Then the rollups are rebuilt
   (``hub.services.rollup.rebuild_rollups``).
2. **Routes** — ``hub serve`` on the database; every analytics route (summary, series by
   day/week/month, breakdown by store/channel/online/template/kind, the store league,
   the funnel, expiring coupons) over HTTP for the last 30 local days and the last
   year, ``--runs`` times each: p50 and max (the first run included). Goal ≤ 200 ms.
3. **Redeem cost of the rollups** — closed-loop redeems (``--redeems`` at
   ``--concurrency``, bench.loadgen in its own process) against ``hub serve`` with the
   rollup job turned off (``HUB_PERIODIC_JOBS_OFF``) and on, alternately, ``--rounds``
   times each; the consumer has caught up before each timed run. Prints on ÷ off.
   Goal ≥ 0.95.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import json
import multiprocessing
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
from sqlalchemy import Engine, text

from bench import suite
from bench.redeem import setup_merchant
from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.seeding import seed
from hub.services import keys
from hub.synthetic.history import History, Knobs, code_from, generate
from hub.synthetic.load import load_history, rebuild_rollups_if_available, template_ids
from hub.synthetic.seeds import seed_inputs

GOAL_MS = 200.0
GOAL_RATIO = 0.95
# a busy year: every template pushed to most customers each week, no per-customer limit
BENCH_KNOBS = Knobs(push_rate=0.6)

ROUTES: tuple[tuple[str, dict[str, str]], ...] = (
    ("summary", {}),
    ("series", {"group": "day"}),
    ("series", {"group": "week"}),
    ("series", {"group": "month"}),
    ("breakdown", {"by": "store"}),
    ("breakdown", {"by": "channel"}),
    ("breakdown", {"by": "online"}),
    ("breakdown", {"by": "template"}),
    ("breakdown", {"by": "kind"}),
    ("stores/league", {}),
    ("funnel", {}),
    ("expiring", {"days": "7"}),
)


# --- the data ---------------------------------------------------------------------------


def tile(base: History, k: int, limit: int | None = None) -> History:
    """``base`` laid down again as tile ``k``: new coupon codes, customers (``<id>.k``),
    order ids and campaigns, the same times; ``limit``: keep only the first ``limit``
    redemptions (their coupons stay unredeemed). Tile 0 keeps the base's names."""
    rng = random.Random(f"tile-{k}")
    sfx = f".{k}" if k else ""
    codes = {c.code: code_from(rng) for c in base.coupons} if k else {}

    def cust(ext: str) -> str:
        return ext + sfx

    def code(c: str) -> str:
        return codes.get(c, c)

    customers = tuple(dataclasses.replace(c, external_id=cust(c.external_id), seeded=False)
                      for c in base.customers) if k else base.customers  # fmt: skip
    campaigns = tuple(
        dataclasses.replace(c, key=c.key + sfx, name=c.name + sfx) for c in base.campaigns
    ) if k else base.campaigns  # fmt: skip
    coupons = tuple(
        dataclasses.replace(
            c, code=code(c.code), customer=cust(c.customer),
            campaign=None if c.campaign is None else c.campaign + sfx,
        )
        for c in base.coupons
    ) if k else base.coupons  # fmt: skip
    reds = base.redemptions if limit is None else base.redemptions[:limit]
    redemptions = tuple(
        dataclasses.replace(
            r, code=code(r.code), customer=cust(r.customer),
            order=dataclasses.replace(r.order, id=r.order.id + sfx),
        )
        for r in reds
    ) if k else tuple(reds)  # fmt: skip
    sales = tuple(
        dataclasses.replace(s, order_id=s.order_id + sfx, customer=cust(s.customer))
        for s in base.sales
    ) if k else base.sales  # fmt: skip
    return History(base.seed, base.start, base.end, base.lagging, customers, campaigns,
                   coupons, redemptions, sales)  # fmt: skip


@dataclasses.dataclass
class Loaded:
    merchant_id: str
    tiles: int
    redemptions: int
    reversed: int
    coupons: int
    claims: int
    sales: int
    customers: int
    generate_s: float
    load_s: float
    rebuild_s: float | None


def load(engine: Engine, n: int, base_customers: int, seed_value: int) -> Loaded:
    now = datetime.now(UTC)
    facts = seed(engine, now=now)
    mid = facts["merchant_id"]
    inp = seed_inputs()
    # the bench's templates: the seed's, without per-customer limits or stock
    templates = {
        k: dataclasses.replace(t, per_customer_limit=None, total_quantity=None)
        for k, t in inp.templates.items()
    }
    t0 = time.perf_counter()
    base = generate(
        seed_value, customers=base_customers, days=365, end=now, stores=inp.stores,
        templates=templates, products=inp.products, tz=inp.tz, knobs=BENCH_KNOBS,
        id_prefix="B",
    )  # fmt: skip
    gen_s = time.perf_counter() - t0
    print(
        f"base history: {len(base.customers)} customers, {len(base.redemptions)} redemptions, "
        f"{len(base.coupons)} coupons, {len(base.sales)} sales in {gen_s:.1f} s",
        flush=True,
    )
    ids = template_ids(engine, mid)
    total = {"redemptions": 0, "reversed": 0, "coupons": 0, "claims": 0, "sales": 0,
             "customers": 0}  # fmt: skip
    k = 0
    t0 = time.perf_counter()
    while total["redemptions"] < n:
        left = n - total["redemptions"]
        part = tile(base, k, left if left < len(base.redemptions) else None)
        got = load_history(engine, mid, part, templates=ids, template_rules=templates,
                           now=now, rebuild=False)  # fmt: skip
        for key in total:
            total[key] += getattr(got, key)
        k += 1
        print(f"  tile {k}: {total['redemptions']} redemptions "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    load_s = time.perf_counter() - t0
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    t0 = time.perf_counter()
    rebuilt = rebuild_rollups_if_available(engine, mid)
    rebuild_s = time.perf_counter() - t0 if rebuilt else None
    return Loaded(mid, k, generate_s=gen_s, load_s=load_s, rebuild_s=rebuild_s, **total)


# --- the routes -------------------------------------------------------------------------


@dataclasses.dataclass
class RouteTiming:
    route: str
    range: str
    status: int
    runs: int
    first_ms: float
    p50_ms: float
    max_ms: float

    @property
    def passed(self) -> bool:
        return self.status == 200 and self.max_ms <= GOAL_MS


def time_routes(port: int, token: str, today: date, runs: int) -> list[RouteTiming]:
    ranges = {
        "30 days": (today - timedelta(days=29), today),
        "1 year": (today - timedelta(days=364), today),
    }
    out: list[RouteTiming] = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http:
        for label, (first, last) in ranges.items():
            for route, params in ROUTES:
                q = {"from": first.isoformat(), "to": last.isoformat(), **params}
                times: list[float] = []
                status = 0
                for _ in range(runs):
                    t0 = time.perf_counter()
                    r = http.get(f"/v1/analytics/{route}", params=q)
                    times.append((time.perf_counter() - t0) * 1000)
                    status = r.status_code if status in (0, 200) else status
                name = route + ("?" + "&".join(f"{k}={v}" for k, v in params.items())
                                if params else "")  # fmt: skip
                out.append(RouteTiming(name, label, status, runs, times[0],
                                       statistics.median(times), max(times)))  # fmt: skip
                print(f"  {label:>7}  {name:<26} {status}  p50 {out[-1].p50_ms:7.1f} ms  "
                      f"max {out[-1].max_ms:7.1f} ms", flush=True)  # fmt: skip
    return out


# --- redeem with and without the rollups -------------------------------------------------


def rollup_job_name() -> str | None:
    """The analytics rollup's periodic job, when this build has one."""
    from hub.delivery.runtime import PERIODIC_JOBS

    return next((j.name for j in PERIODIC_JOBS if "rollup" in j.name or "analytics" in j.name),
                None)  # fmt: skip


def _caught_up(engine: Engine, timeout: float = 120.0) -> bool:
    """Wait until the rollup consumer has read every outbox event (analytics_progress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            top = conn.execute(text("SELECT coalesce(max(seq), 0) FROM outbox_events")).scalar()
            seen = conn.execute(text("SELECT coalesce(max(seq), 0) FROM analytics_progress")
                                ).scalar()  # fmt: skip
        if int(seen or 0) >= int(top or 0):
            return True
        time.sleep(0.5)
    return False


@dataclasses.dataclass
class RedeemRun:
    rollups: bool
    requests: int
    rate: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    caught_up: bool | None
    hub_cpu_ms: float | None = None  # the hub's processes' CPU per redeem (the consumer's too)
    db_cpu_ms: float | None = None  # the database backends' CPU per redeem


def redeem_on_off(
    db: suite.Db, engine: Engine, workdir: Path, job: str, redeems: int, concurrency: int,
    rounds: int, warmup: int = 200,
) -> list[RedeemRun]:  # fmt: skip
    per_run = warmup + redeems
    _admin, _store, token, codes = setup_merchant(engine, per_run * 2 * rounds + redeems)
    it = iter(codes)
    runs: list[RedeemRun] = []
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        pool.submit(int).result()
        for i in range(rounds * 2):
            on = i % 2 == 1
            if on:
                os.environ.pop("HUB_PERIODIC_JOBS_OFF", None)
            else:
                os.environ["HUB_PERIODIC_JOBS_OFF"] = job
            try:
                with suite.hub_serve(db, workdir, None) as (pid, port):
                    caught = _caught_up(engine) if on else None
                    warm = [next(it) for _ in range(warmup)]
                    suite.drive(pool, port, suite.build_requests("redeem", token, warm, f"w{i}"),
                                concurrency=min(8, warmup))  # fmt: skip
                    if on:
                        caught = _caught_up(engine) and bool(caught)
                    batch = [next(it) for _ in range(redeems)]
                    reqs = suite.build_requests("redeem", token, batch, f"r{i}")
                    with suite.Sampler(pid, db.dbname) as sample:
                        lat, st, elapsed = suite.drive(pool, port, reqs, concurrency=concurrency)
            finally:
                os.environ.pop("HUB_PERIODIC_JOBS_OFF", None)
            p50, p99 = suite._q(lat)
            runs.append(RedeemRun(on, len(lat), len(lat) / elapsed, p50, p99,
                                  {str(k): v for k, v in sorted(st.items())}, caught,
                                  sample.cpu_ms("hub", len(lat)),
                                  sample.cpu_ms("db", len(lat))))  # fmt: skip
            r = runs[-1]
            print(f"  redeem, rollups {'on ' if on else 'off'}: {r.rate:7.0f}/s  "
                  f"p50 {p50:.1f} ms  p99 {p99:.1f} ms  CPU/redeem hub {r.hub_cpu_ms or 0:.2f} "
                  f"ms + db {r.db_cpu_ms or 0:.2f} ms  {r.statuses}", flush=True)
        # the consumer's own cost: one more run with the job off leaves its events to
        # apply; apply them here, in this process, and count the CPU it takes
        os.environ["HUB_PERIODIC_JOBS_OFF"] = job
        try:
            with suite.hub_serve(db, workdir, None) as (_pid, port):
                batch = [next(it) for _ in range(redeems)]
                suite.drive(pool, port, suite.build_requests("redeem", token, batch, "left"),
                            concurrency=concurrency)  # fmt: skip
        finally:
            os.environ.pop("HUB_PERIODIC_JOBS_OFF", None)
    global CONSUMER
    CONSUMER = consumer_cpu(db, engine)
    return runs


CONSUMER: dict[str, float] = {}


def consumer_cpu(db: suite.Db, engine: Engine) -> dict[str, float]:
    """CPU (this process + the database's backends) the rollup consumer spends per event
    on the events waiting now."""
    from hub.services.rollup import consume

    with engine.connect() as conn:
        top = int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM outbox_events")).scalar()
                  or 0)  # fmt: skip
        seen = int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM analytics_progress")
                                ).scalar() or 0)  # fmt: skip
    events = max(top - seen, 0)
    t0, w0 = time.process_time(), time.perf_counter()
    with suite.Sampler(None, db.dbname) as sample:
        while consume(engine, datetime.now(UTC), max_batches=1000):
            pass
    own_ms = (time.process_time() - t0) * 1000
    db_ms = (sample.cpu_ms("db", 1) or 0.0)
    out = {"events": float(events), "wall_s": time.perf_counter() - w0,
           "cpu_ms_per_event": (own_ms + db_ms) / events if events else 0.0,
           "own_ms_per_event": own_ms / events if events else 0.0,
           "db_ms_per_event": db_ms / events if events else 0.0}  # fmt: skip
    print(f"  rollup consumer: {events} events in {out['wall_s']:.1f} s, CPU per event "
          f"{out['own_ms_per_event']:.3f} ms + db {out['db_ms_per_event']:.3f} ms", flush=True)
    return out


# --- the command ------------------------------------------------------------------------


@contextlib.contextmanager
def _database(workdir: Path, keep: bool, reuse: str | None) -> Iterator[suite.Db]:
    """A fresh database (dropped after unless ``keep``), or the kept one ``reuse``."""
    base = suite.PG_ADMIN.rpartition("/")[0]
    if reuse:
        yield suite.Db("postgresql", f"{base}/{reuse}", reuse, None)
        return
    if not keep:
        with suite.fresh_db("postgresql", workdir) as db:
            yield db
        return
    name = f"hub_bench_analytics_{secrets.token_hex(3)}"
    with psycopg.connect(suite.PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    print(f"database {name} (kept: drop it with DROP DATABASE \"{name}\")", flush=True)
    yield suite.Db("postgresql", f"{base}/{name}", name, None)


def _counted(engine: Engine) -> Loaded:
    """What a kept database holds (the demo merchant's figures)."""
    with engine.connect() as conn:
        mid = conn.execute(text("SELECT id FROM merchants ORDER BY created_at LIMIT 1")).scalar()

        def n(sql: str) -> int:
            return int(conn.execute(text(sql), {"m": mid}).scalar() or 0)

        return Loaded(
            str(mid), 0,
            redemptions=n("SELECT count(*) FROM redemptions WHERE merchant_id = :m"),
            reversed=n("SELECT count(*) FROM redemptions WHERE merchant_id = :m "
                       "AND status = 'reversed'"),
            coupons=n("SELECT count(*) FROM coupons WHERE merchant_id = :m"),
            claims=n("SELECT count(*) FROM campaign_claims"),
            sales=n("SELECT count(*) FROM sales WHERE merchant_id = :m"),
            customers=n("SELECT count(*) FROM customers WHERE merchant_id = :m"),
            generate_s=0.0, load_s=0.0, rebuild_s=0.0,
        )  # fmt: skip


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench analytics",
                                 description=(__doc__ or "").splitlines()[0])  # fmt: skip
    ap.add_argument("--n", type=int, default=1_000_000, help="redemptions to load")
    ap.add_argument("--base-customers", type=int, default=2000,
                    help="customers of the generated history that is tiled")  # fmt: skip
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--runs", type=int, default=5, help="requests per route and range")
    ap.add_argument("--redeems", type=int, default=3000, help="timed redeems per run")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="off/on pairs of redeem runs")
    ap.add_argument("--skip-redeem", action="store_true", help="only the load and the routes")
    ap.add_argument("--skip-routes", action="store_true", help="only the load and the redeems")
    ap.add_argument("--keep", action="store_true",
                    help="keep the database (its name is printed) for --reuse")  # fmt: skip
    ap.add_argument("--reuse", metavar="DBNAME",
                    help="time a database loaded by an earlier --keep run (no load)")
    ap.add_argument("--json", dest="json_path")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    suite._secret_key()
    os.environ.setdefault("HUB_LOG_LEVEL", "WARNING")
    report: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(),
                              "options": vars(args), "cpus": os.cpu_count(),
                              "loadavg_at_start": os.getloadavg()}  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-analytics-"))
    ok = True
    try:
        with _database(workdir, args.keep, args.reuse) as db:
            engine = make_engine(db.url, pool_size=2, max_overflow=2)
            try:
                upgrade(engine)
                if args.reuse:
                    loaded = _counted(engine)
                else:
                    loaded = load(engine, args.n, args.base_customers, args.seed)
                report["loaded"] = dataclasses.asdict(loaded)
                print(f"loaded {loaded.redemptions} redemptions ({loaded.reversed} reversed), "
                      f"{loaded.coupons} coupons, {loaded.sales} sales, {loaded.customers} "
                      f"customers in {loaded.load_s:.0f} s; rollups rebuilt in "
                      f"{'—' if loaded.rebuild_s is None else f'{loaded.rebuild_s:.1f} s'}",
                      flush=True)  # fmt: skip
                if loaded.rebuild_s is None:
                    print("this build has no hub.services.rollup: routes and rollup cost "
                          "are not measured", flush=True)  # fmt: skip
                    return 1
                token = keys.create_key(engine, loaded.merchant_id, "admin",
                                        datetime.now(UTC), name="bench").token  # fmt: skip
                today = datetime.now(ZoneInfo(seed_inputs().tz.key)).date()
                timings: list[RouteTiming] = []
                if not args.skip_routes:
                    with suite.hub_serve(db, workdir, None) as (_pid, port):
                        timings = time_routes(port, token, today, args.runs)
                report["routes"] = [dict(dataclasses.asdict(t), passed=t.passed)
                                    for t in timings]  # fmt: skip
                if timings:
                    worst = max(timings, key=lambda t: t.max_ms)
                    ok = all(t.passed for t in timings)
                    print(f"routes: {'all' if ok else 'NOT all'} ≤ {GOAL_MS:.0f} ms; slowest "
                          f"{worst.route} ({worst.range}) max {worst.max_ms:.1f} ms", flush=True)
                job = rollup_job_name()
                if args.skip_redeem:
                    pass
                elif job is None:
                    print("no rollup job in hub.delivery.runtime.PERIODIC_JOBS: the redeem "
                          "comparison is skipped", flush=True)  # fmt: skip
                    ok = False
                else:
                    runs = redeem_on_off(db, engine, workdir, job, args.redeems,
                                         args.concurrency, args.rounds)  # fmt: skip
                    on = statistics.mean(r.rate for r in runs if r.rollups)
                    off = statistics.mean(r.rate for r in runs if not r.rollups)
                    ratio = on / off

                    def cpu(rollups: bool) -> float:
                        return statistics.mean((r.hub_cpu_ms or 0) + (r.db_cpu_ms or 0)
                                               for r in runs if r.rollups is rollups)  # fmt: skip

                    cpu_ratio = cpu(False) / cpu(True) if cpu(True) else None
                    per_event = CONSUMER.get("cpu_ms_per_event", 0.0)
                    share = per_event / cpu(False) if cpu(False) else None
                    print(f"the consumer's CPU per redeem event is {per_event:.3f} ms, "
                          f"{(share or 0) * 100:.1f} % of a redeem's CPU without it "
                          f"({cpu(False):.2f} ms): CPU-bound throughput with it "
                          f"÷ without = {1 / (1 + (share or 0)):.3f}", flush=True)
                    report["redeem"] = {"job": job, "runs": [dataclasses.asdict(r) for r in runs],
                                        "on_rate": on, "off_rate": off, "ratio": ratio,
                                        "cpu_on_ms": cpu(True), "cpu_off_ms": cpu(False),
                                        "cpu_ratio": cpu_ratio, "consumer": CONSUMER,
                                        "consumer_share": share}  # fmt: skip
                    print(f"redeem with the rollups running: {on:.0f}/s, without: {off:.0f}/s, "
                          f"ratio {ratio:.3f} (goal ≥ {GOAL_RATIO}); CPU per redeem (hub + "
                          f"database) {cpu(True):.2f} ms on, {cpu(False):.2f} ms off: "
                          f"throughput the CPU allows, on ÷ off = "
                          f"{cpu_ratio or 0:.3f}", flush=True)  # fmt: skip
                    ok = ok and ratio >= GOAL_RATIO
            finally:
                engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["loadavg_at_end"] = os.getloadavg()
    report["passed"] = ok
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if ok else 1


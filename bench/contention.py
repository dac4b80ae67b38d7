"""Redeem throughput at c8 and c32 on PostgreSQL: `hub serve` against a raw async loop.

    .venv/bin/python -m bench.contention [--n 3000] [--rounds 2] [--profile DIR]

A fresh PostgreSQL database (``HUB_TEST_PG_URL``'s server, dropped afterwards) gets
coupons; then, for each round and each concurrency (8, 32), back to back:

* **raw** — psycopg's ``AsyncConnection``, one connection per client, running the redeem
  transaction's five statements (bench/redeem.py's ``BASELINE_SQL``) in a loop;
* **hub** — ``hub serve`` (the real command, INFO logs to /dev/null; ``--src DIR`` serves
  another checkout, for an A/B) driven over HTTP by :mod:`bench.loadgen` from this
  process: ``POST /v1/redemptions`` with fresh codes and unique Idempotency-Keys.

Each hub figure is printed with its ratio to the raw loop of the same round and
concurrency. ``--profile DIR`` runs ``py-spy record`` on the hub process during the last
round's c32 run and writes DIR/profile-c32.txt (raw collapsed stacks) for ``py-spy``-style
reading.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg

from bench import loadgen
from bench.redeem import BASELINE_SQL, PG_ADMIN, _store_id, setup_merchant
from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from tests.delivery.multiproc import free_port


async def _raw(url: str, codes: list[str], store_id: str, c: int) -> tuple[float, float, float]:
    sql = [s.format(p="%s") for s in BASELINE_SQL]
    pending = list(enumerate(codes))
    lat: list[float] = []

    async def client() -> None:
        conn = await psycopg.AsyncConnection.connect(url)
        try:
            while pending:
                i, code = pending.pop()
                t0 = time.perf_counter()
                ts = datetime.now(UTC)
                rid = uuid.uuid4().hex
                await conn.execute(sql[0], ("bench", f"raw-{code}", ts, ts))
                cur = await conn.execute(sql[1], (rid, code))
                row = await cur.fetchone()
                assert row is not None
                params = (rid, row[2], row[0], row[1], store_id, f"R-{i}", ts, ts)
                await conn.execute(sql[2], params)
                await conn.execute(sql[3], (uuid.uuid4().hex, row[2], row[0], ts, ts))
                await conn.execute(sql[4], (b'{"status":"redeemed"}', "bench", f"raw-{code}"))
                await conn.commit()
                lat.append(time.perf_counter() - t0)
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(c)))
    elapsed = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100)
    return len(codes) / elapsed, q[49] * 1000, q[98] * 1000


def _http(port: int, token: str, codes: list[str], c: int, tag: str) -> tuple[float, float, float]:
    pending = list(enumerate(codes))
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def next_request() -> bytes | None:
        if not pending:
            return None
        i, code = pending.pop()
        body = msgspec.json.encode({"code": code, "order": {"id": f"H-{i}", "amount": 12800}})
        headers = {**auth, "Idempotency-Key": f"{tag}-{i}"}
        return loadgen.request_bytes("POST", "/v1/redemptions", "127.0.0.1", headers, body)

    result = asyncio.run(loadgen.run("127.0.0.1", port, next_request, c))
    assert result.statuses == {201: len(codes)}, result.statuses
    q = statistics.quantiles(result.latencies, n=100)
    return len(codes) / result.elapsed, q[49] * 1000, q[98] * 1000


def _serve(url: str, port: int, src: Path | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "HUB_BROKER_URL"}
    if src is not None:  # another checkout of the hub (an A/B against an older commit)
        env["PYTHONPATH"] = str(src)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from hub.cli import main; main()",
         "serve", "--db", url, "--port", str(port), "--no-demo"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("hub serve did not start")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    url: str, n: int, rounds: int, profile: Path | None, src: Path | None = None
) -> dict[str, Any]:
    engine = make_engine(url, pool_size=2, max_overflow=0)
    upgrade(engine)
    conc = (8, 32)
    _admin, _p, token, codes = setup_merchant(engine, n * 2 * len(conc) * rounds + 50)
    store_id = _store_id(engine)
    engine.dispose()
    raw_url = url.replace("postgresql+psycopg://", "postgresql://")
    port = free_port()
    proc = _serve(url, port, src)
    out: dict[str, Any] = {"rounds": []}
    try:
        _http(port, token, codes[:50], 8, "warm")  # caches, pool, first connections
        codes = codes[50:]
        for r in range(rounds):
            row: dict[str, Any] = {}
            for c in conc:
                raw_codes, codes = codes[:n], codes[n:]
                hub_codes, codes = codes[:n], codes[n:]
                raw = asyncio.run(_raw(raw_url, raw_codes, store_id, c))
                spy = None
                if profile is not None and r == rounds - 1 and c == 32:
                    spy = subprocess.Popen(
                        [shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")),
                         "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "200",
                         "--gil",
                         "-o", str(profile / "profile-c32.txt"), "--duration", "600",
                         "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )
                    time.sleep(1.0)
                cpu0 = _cpu(proc.pid)
                hub = _http(port, token, hub_codes, c, f"r{r}c{c}")
                cpu_ms = (_cpu(proc.pid) - cpu0) * 1000 / n
                if spy is not None:
                    spy.send_signal(2)
                    spy.wait(timeout=60)
                row[f"c{c}"] = {"raw": raw, "hub": hub, "hub_cpu_ms": cpu_ms}
                print(
                    f"round {r + 1} c{c:<3} raw {raw[0]:6.0f}/s p99 {raw[2]:6.1f} ms | "
                    f"hub {hub[0]:6.0f}/s ({hub[0] / raw[0]:.2f}x) p50 {hub[1]:6.1f} ms "
                    f"p99 {hub[2]:6.1f} ms | hub CPU {cpu_ms:.2f} ms/redeem",
                    flush=True,
                )
            out["rounds"].append(row)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="redeems per measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--profile", type=Path, default=None, help="py-spy the c32 run into DIR")
    ap.add_argument("--src", type=Path, default=None,
                    help="serve the hub from this source tree (e.g. `git archive` of a commit)")
    args = ap.parse_args()
    name = f"hub_contention_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        run(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", args.n, args.rounds, args.profile, args.src)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()

"""Delivery throughput and redeem-to-receiver latency with real `hub worker` processes.

    .venv/bin/python -m bench delivery [--n 3000] [--subs 2] [--latency-n 400] [--rate 50]

Everything runs on this machine: a fresh PostgreSQL database on ``HUB_TEST_PG_URL``
(dropped afterwards), a private redis-server on a free loopback port (the Redis broker),
and an asyncio webhook receiver on loopback that timestamps every request's arrival.

It prints
  * baseline    — the receiver's own throughput: a plain ``httpx.Client`` loop (one
                  thread, keep-alive) POSTing signed event-sized bodies to it;
  * pipeline    — the batched pipeline of a worker (:mod:`hub.delivery.pipeline`: one
                  claim and one record transaction per batch, a window of 256 claimed
                  deliveries, 8 sender threads on a kept-alive connection pool) in this
                  process (the receiver's thread shares its GIL), fed the ids directly:
                  the in-process worker of the embedded default, without the broker;
  * 1 worker / 2 workers — events delivered per second when ``hub worker`` processes
                  (8 threads each) drain a backlog of ``--n`` pending deliveries (made by
                  real redeems through ``hub.services.redeem``; each commit rings its
                  deliveries' doorbell on Redis, ids waiting together in one message),
                  first to last arrival at the receiver — the "1 worker" row is the
                  figure of the goal (≥ 1,000 events/s per worker process);
  * latency     — with `hub serve` and 2 workers running, ``--latency-n`` redeems over
                  HTTP paced at ``--rate``/s: client send → receiver arrival p50/p99,
                  against the redeem's own HTTP latency (send → 201) as its baseline;
and each figure as a ratio of its baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis
from sqlalchemy import Engine, select

from bench.redeem import setup_merchant
from connectors.webhook import WebhookConnector
from hub.api.redemptions import REDEMPTION_OPERATIONS
from hub.db.schema import deliveries, outbox_events
from hub.delivery import queue
from hub.delivery.pipeline import Pipeline
from hub.delivery.runtime import Runtime
from hub.delivery.transport import delivery_client, http_transport
from hub.domain.cart import Order
from hub.logs import configure_logging
from hub.secrets import ENV_VAR, generate_key
from hub.services.commands import RedeemCommand
from hub.services.principal import Principal
from hub.services.redeem import redeem
from tests.delivery.multiproc import (
    SECRET,
    Cluster,
    RedisServer,
    delivery_counts,
    migrated_engine,
    pg_database,
    subscribe,
    wait_until,
)

# --- a lean receiver ----------------------------------------------------------------


class Receiver:
    """HTTP/1.1 keep-alive on asyncio streams, in a thread: reads each request, notes
    (path + webhook-id, time.time()), answers 200. Parses only what it needs. Each
    subscription gets its own path, so a key names one delivery."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        threading.Thread(target=self._run, daemon=True, name="receiver").start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def duplicates(self) -> int:
        return len(self.arrivals) - len({k for k, _ in self.arrivals})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._conn, "127.0.0.1", 0, backlog=512)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length, event_id = 0, lines[0].split(b" ")[1].decode() + " "
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        event_id += value.strip().decode()
                if length:
                    await reader.readexactly(length)
                self.arrivals.append((event_id, time.time()))
                writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def reset(self) -> None:
        self.arrivals = []

    def close(self) -> None:
        def stop() -> None:
            if self._server is not None:
                self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)


# --- setup --------------------------------------------------------------------------


def _setup(engine: Engine, n: int) -> tuple[Principal, Principal, str, list[str]]:
    return setup_merchant(engine, n)


class _MerchantRef:
    def __init__(self, principal: Principal) -> None:
        self.principal = principal


def _redeem_backlog(engine: Engine, p: Principal, codes: list[str]) -> None:
    """Real redeems through the service layer; the broker is configured in this process,
    so each commit enqueues its deliveries, as in `hub serve`."""
    for code in codes:
        body = msgspec.json.encode({"code": code})
        r = redeem(
            engine,
            p,
            RedeemCommand(
                code=code, store=None, channel="pos", order=Order(id=f"B-{code}", amount=12800)
            ),
            idempotency_key=f"bl-{code}",
            canonical_body=body,
            now=datetime.now(UTC),
            operation=REDEMPTION_OPERATIONS.redeem,
        )
        assert r.status == 201, r.body


def _pending_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(deliveries.c.id)
                .where(deliveries.c.status == "pending")
                .order_by(deliveries.c.event_seq)
            ).scalars()
        )


# --- measurements -------------------------------------------------------------------


def _sample_body() -> tuple[bytes, dict[str, str]]:
    event = {
        "id": "evt_" + "0" * 26,
        "type": "coupon.redeemed",
        "occurred_at": "2026-11-25T08:00:00Z",
        "recorded_at": "2026-11-25T08:00:00Z",
        "merchant_id": "mch_" + "0" * 26,
        "data": {
            "redemption_id": "rdm_" + "0" * 26,
            "status": "redeemed",
            "code": "X" * 16,
            "store": "SH-001",
            "channel": "pos",
            "order_id": "B-1",
            "discount": 2000,
            "order": {"id": "B-1", "amount": 12800},
        },
    }
    [req] = WebhookConnector().build_requests(
        event, {"url": "http://x/hook", "secret": SECRET}, now=datetime.now(UTC)
    )
    return req.body, dict(req.headers)


def bench_baseline(receiver: Receiver, n: int) -> float:
    body, headers = _sample_body()
    with httpx.Client(timeout=10) as client:
        for _ in range(50):  # warm up
            client.post(receiver.url, content=body, headers=headers)
        t0 = time.perf_counter()
        for _ in range(n):
            r = client.post(receiver.url, content=body, headers=headers)
            assert r.status_code == 200
        return n / (time.perf_counter() - t0)


def bench_workers(
    url: str,
    broker: str,
    workdir: Path,
    engine: Engine,
    receiver: Receiver,
    p: Principal,
    codes: list[str],
    workers: int,
) -> tuple[float, int, float]:
    """Drain a backlog of deliveries with ``workers`` processes; returns (events/s by
    arrivals, duplicates, seconds from the first worker's start to all succeeded)."""
    before = delivery_counts(engine).get("succeeded", 0)
    _redeem_backlog(engine, p, codes)  # each commit rings the doorbell (enqueue), as the API
    ids = _pending_ids(engine)
    receiver.reset()
    t0 = time.monotonic()
    with Cluster(url, broker, workdir / f"w{workers}", workers=workers, api=False):
        wait_until(
            lambda: delivery_counts(engine).get("succeeded", 0) >= before + len(ids),
            600,
            0.2,
            f"{len(ids)} deliveries with {workers} worker(s)",
        )
        wall = time.monotonic() - t0
    arrivals = sorted(t for _, t in receiver.arrivals)
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    return rate, receiver.duplicates(), wall


def _q(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49], q[98]


def bench_latency(
    url: str,
    broker: str,
    workdir: Path,
    engine: Engine,
    receiver: Receiver,
    token: str,
    codes: list[str],
    rate: float,
    n_subs: int,
) -> dict[str, Any]:
    receiver.reset()
    sent: dict[str, float] = {}
    api_lat: list[float] = []
    lock = threading.Lock()
    clients = 4
    with Cluster(url, broker, workdir / "lat", workers=2) as cluster:

        def run(chunk: list[str], offset: float) -> None:
            interval = clients / rate
            with httpx.Client(
                base_url=cluster.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
            ) as c:
                c.get("/health")
                next_at = time.perf_counter() + offset
                for code in chunk:
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    next_at += interval
                    t_wall, t0 = time.time(), time.perf_counter()
                    r = c.post(
                        "/v1/redemptions",
                        json={"code": code, "order": {"id": code, "amount": 12800}},
                        headers={"Idempotency-Key": f"lat-{code}"},
                    )
                    assert r.status_code == 201, r.text
                    with lock:
                        sent[code] = t_wall
                        api_lat.append(time.perf_counter() - t0)

        threads = [
            threading.Thread(target=run, args=(codes[i::clients], i / rate)) for i in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = len(codes) * n_subs
        wait_until(
            lambda: len({e for e, _ in receiver.arrivals}) >= expected,
            120,
            0.1,
            "latency-phase deliveries",
        )
    with engine.connect() as conn:
        code_of = {
            eid: data["code"]
            for eid, data in conn.execute(
                select(outbox_events.c.id, outbox_events.c.data).where(
                    outbox_events.c.type == "coupon.redeemed"
                )
            ).all()
        }
    first: dict[str, float] = {}
    for eid, at in receiver.arrivals:
        first.setdefault(eid, at)
    e2e = [
        at - sent[code_of[key.split(" ")[1]]]
        for key, at in first.items()
        if code_of.get(key.split(" ")[1]) in sent
    ]
    p50, p99 = _q(e2e)
    a50, a99 = _q(api_lat)
    return {"n": len(e2e), "p50": p50, "p99": p99, "api_p50": a50, "api_p99": a99, "max": max(e2e)}


def bench_pipeline(engine: Engine, p: Principal, codes: list[str]) -> float:
    """``Runtime.deliver`` (claim, send, record) in a sequential loop in this process:
    the per-delivery cost of the hub's own code, with no broker and no threads."""
    _redeem_backlog(engine, p, codes)  # no broker configured yet: nothing is enqueued
    ids = _pending_ids(engine)
    rt = Runtime(engine)
    try:
        t0 = time.perf_counter()
        for delivery_id in ids:
            assert rt.deliver(delivery_id) == "succeeded"
        return len(ids) / (time.perf_counter() - t0)
    finally:
        rt.client.close()


def bench_batched(engine: Engine, p: Principal, codes: list[str], threads: int = 8) -> float:
    """The worker's pipeline (batched claim, concurrent sends, batched record) in this
    process, fed every id at once; events/s from the submit to the last record."""
    _redeem_backlog(engine, p, codes)  # no broker configured yet: nothing is enqueued
    ids = _pending_ids(engine)
    client = delivery_client()
    pipe = Pipeline(engine, lambda: datetime.now(UTC), http_transport(client), threads)
    pipe.start()
    try:
        before = delivery_counts(engine).get("succeeded", 0)
        t0 = time.perf_counter()
        pipe.submit(ids)
        wait_until(
            lambda: delivery_counts(engine).get("succeeded", 0) >= before + len(ids),
            300,
            0.02,
            f"{len(ids)} deliveries through the pipeline",
        )
        return len(ids) / (time.perf_counter() - t0)
    finally:
        pipe.stop()
        client.close()


def _flush(url: str) -> int:
    """Empty the private Redis between runs; returns the messages left in the queue
    (the sweepers' extra doorbells for deliveries already done)."""
    client = redis.Redis.from_url(url)
    try:
        left = int(client.llen(f"dramatiq:{queue.QUEUE}"))
        client.flushall()
        return left
    finally:
        client.close()


def main() -> None:
    os.environ.setdefault("HUB_LOG_LEVEL", "WARNING")
    # the receiver is on loopback: the egress policy must let it be reached (as the
    # multi-process tests do for their `hub worker`s)
    os.environ.setdefault("HUB_EGRESS_ALLOW", "127.0.0.0/8,::1/128")
    if not os.environ.get(ENV_VAR, "").strip():  # a throw-away key: no key file left behind
        os.environ[ENV_VAR] = generate_key()
    configure_logging()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="deliveries per throughput run")
    ap.add_argument("--subs", type=int, default=2, help="subscriptions (receiver paths)")
    ap.add_argument("--latency-n", type=int, default=400, help="redeems in the latency run")
    ap.add_argument("--rate", type=float, default=50, help="redeems/s in the latency run")
    ap.add_argument("--baseline-n", type=int, default=3000)
    ap.add_argument(
        "--pipeline-n", type=int, default=600, help="deliveries, sequential and pipeline runs"
    )
    args = ap.parse_args()

    per_run = -(-args.n // args.subs)  # redeems per throughput run
    per_seq = -(-args.pipeline_n // args.subs)
    receiver = Receiver()
    with (
        tempfile.TemporaryDirectory() as tmp,
        pg_database("hub_bench_delivery") as url,
        migrated_engine(url) as engine,
        RedisServer(Path(tmp) / "redis") as broker,
    ):
        pa, ps, token, codes = _setup(engine, 2 * per_seq + 2 * per_run + args.latency_n)
        for i in range(args.subs):
            subscribe(engine, _MerchantRef(pa), f"{receiver.url}/{i}")
        seq_codes, batched_codes = codes[:per_seq], codes[per_seq : 2 * per_seq]
        codes = codes[2 * per_seq :]
        try:
            base = bench_baseline(receiver, args.baseline_n)
            print(f"baseline: plain httpx loop → receiver       {base:6.0f} requests/s   1.00")
            seq = bench_pipeline(engine, ps, seq_codes)
            print(
                f"Runtime.deliver, sequential, no broker     {seq:6.0f} events/s     "
                f"{seq / base:4.2f} × baseline"
            )
            batched = bench_batched(engine, ps, batched_codes)
            print(
                f"pipeline in-process, 8 threads, no broker {batched:6.0f} events/s     "
                f"{batched / base:4.2f} × baseline"
            )
            queue.configure(broker.url)  # from here on every redeem commit enqueues
            for k, chunk in ((1, codes[:per_run]), (2, codes[per_run : 2 * per_run])):
                rate, dupes, wall = bench_workers(
                    url, broker.url, Path(tmp), engine, receiver, ps, chunk, k
                )
                left = _flush(broker.url)
                print(
                    f"{k} worker{'s' if k > 1 else ' '} × 8 threads, backlog of "
                    f"{per_run * args.subs:<5}  {rate:6.0f} events/s     {rate / base:4.2f} × "
                    f"baseline   ({rate / k:.0f}/s per worker; {dupes} duplicates; "
                    f"{wall:.1f} s incl. start-up; {left} stale doorbells left in the queue)"
                )
            lat = bench_latency(
                url,
                broker.url,
                Path(tmp),
                engine,
                receiver,
                token,
                codes[2 * per_run :],
                args.rate,
                args.subs,
            )
            print(
                f"latency, {lat['n']} deliveries ({len(codes[2 * per_run :])} redeems at "
                f"{args.rate:.0f}/s), 2 workers: redeem → receiver "
                f"p50 {lat['p50'] * 1000:.1f} ms, p99 {lat['p99'] * 1000:.1f} ms "
                f"(max {lat['max'] * 1000:.0f} ms); baseline redeem → 201 "
                f"p50 {lat['api_p50'] * 1000:.1f} ms, p99 {lat['api_p99'] * 1000:.1f} ms; "
                f"ratios {lat['p50'] / lat['api_p50']:.1f}× / {lat['p99'] / lat['api_p99']:.1f}×"
                f"; {receiver.duplicates()} duplicates"
            )
        finally:
            queue.reset()
            receiver.close()


if __name__ == "__main__":
    main()

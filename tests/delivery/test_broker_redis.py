"""Delivery through real processes and a real Redis broker on PostgreSQL: one `hub serve`
(the API enqueues after commit) and two `hub worker`s, three webhook receivers.

Each test runs a private redis-server on its own loopback port, so stopping the broker
never touches the machine's shared Redis, and a fresh PostgreSQL database.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import issue, make_merchant, make_template
from tests.delivery.multiproc import (
    Cluster,
    RedisServer,
    delivery_counts,
    event_ids,
    migrated_engine,
    pg_database,
    redeem_all,
    sinks,
    subscribe,
    tally,
    wait_delivered,
)

N_REDEEMS = 1000
N_SUBS = 3


@pytest.mark.slow  # ~25 s: 3,000 deliveries through real processes
def test_1000_redemptions_reach_three_receivers_via_redis(tmp_path):
    now = datetime.now(UTC)
    with (
        pg_database() as url,
        migrated_engine(url) as engine,
        RedisServer(tmp_path / "redis") as redis,
        sinks(N_SUBS) as receivers,
    ):
        m = make_merchant(engine, now)
        tpl = make_template(engine, m, now)
        codes = issue(engine, m, tpl, now, count=N_REDEEMS)
        for r in receivers:
            subscribe(engine, m, r.url)
        with Cluster(url, redis.url, tmp_path / "procs", workers=2) as cluster:
            t0 = time.monotonic()
            results = redeem_all(cluster.base_url, m.store_keys["SH-001"], codes)
            redeem_s = time.monotonic() - t0
            assert sorted(r.status for r in results) == [201] * N_REDEEMS
            try:
                waited = wait_delivered(engine, N_REDEEMS * N_SUBS, timeout=90)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{cluster.tails()}") from None
            total_s = time.monotonic() - t0
            # nothing more should arrive once all are recorded succeeded; let stragglers land
            time.sleep(0.5)
        expected = event_ids(engine)
        assert len(expected) == N_REDEEMS
        print(
            f"\nredis: {N_REDEEMS} redeems over HTTP in {redeem_s:.1f} s; "
            f"{N_REDEEMS * N_SUBS} deliveries succeeded {total_s:.1f} s after the first "
            f"redeem ({waited:.1f} s after the last); counts {delivery_counts(engine)}"
        )
        for i, r in enumerate(receivers):
            t = tally(expected, r.accepted_ids())
            print(t.line(f"receiver {i + 1}"))
            assert t.missing == 0, t.line(f"receiver {i + 1}")


def test_broker_down_redeems_still_succeed_and_the_sweeper_catches_up(tmp_path):
    now = datetime.now(UTC)
    with (
        pg_database() as url,
        migrated_engine(url) as engine,
        RedisServer(tmp_path / "redis") as redis,
        sinks(1) as (receiver,),
    ):
        m = make_merchant(engine, now)
        tpl = make_template(engine, m, now)
        codes = issue(engine, m, tpl, now, count=154)
        subscribe(engine, m, receiver.url)
        token = m.store_keys["SH-001"]
        with Cluster(url, redis.url, tmp_path / "procs", workers=2) as cluster:
            assert cluster.api is not None
            before = redeem_all(cluster.base_url, token, codes[:50], prefix="up")
            assert {r.status for r in before} == {201}
            wait_delivered(engine, 50, timeout=60)

            # 1. The broker is gone (killed; connections refused).
            redis.stop()
            t0 = time.monotonic()
            during = redeem_all(cluster.base_url, token, codes[50:150], prefix="down")
            down_s = time.monotonic() - t0
            assert sorted(r.status for r in during) == [201] * 100
            slowest = max(r.latency for r in during)
            # the after-commit enqueues failed and were only logged: once per backoff step
            # (1 s, 2 s, 4 s …), not once per delivery
            failed_enqueues = cluster.api.log.read_text(errors="replace").count(
                "broker.unreachable"
            )
            assert 1 <= failed_enqueues <= 2 + int(down_s).bit_length(), cluster.api.tail()
            ready = httpx.get(f"{cluster.base_url}/ready", timeout=10)
            assert ready.status_code == 503 and ready.json()["broker"].startswith("error")
            time.sleep(3)  # a few sweeps with the broker down
            counts = delivery_counts(engine)
            assert counts.get("succeeded", 0) == 50, counts  # nothing moves without it
            assert cluster.api.alive()
            assert all(w.alive() for w in cluster.workers), cluster.tails()

            redis.start()  # same port, empty: every message sent meanwhile is lost
            try:
                caught_up = wait_delivered(engine, 150, timeout=60)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{cluster.tails()}") from None
            ready = httpx.get(f"{cluster.base_url}/ready", timeout=10)
            assert ready.status_code == 200 and ready.json()["broker"] == "ok", ready.text

            # 2. The broker hangs (SIGSTOP: connections accepted, never answered).
            redis.pause()
            try:
                hung = redeem_all(
                    cluster.base_url, token, codes[150:], prefix="hung", concurrency=4
                )
            finally:
                redis.resume()
            assert sorted(r.status for r in hung) == [201] * 4
            hung_slowest = max(r.latency for r in hung)
            wait_delivered(engine, 154, timeout=60)
            time.sleep(0.3)
        expected = event_ids(engine)
        t = tally(expected, receiver.accepted_ids())
        print(
            f"\nredis down: 100 redeems in {down_s:.1f} s (slowest {slowest * 1000:.0f} ms), "
            f"all 201, broker down said {failed_enqueues} times; broker back → caught up in "
            f"{caught_up:.1f} s; redis paused: 4 redeems all 201, slowest "
            f"{hung_slowest:.1f} s (enqueue is off the request path); "
            f"{t.line('receiver')}"
        )
        assert t.missing == 0, t.line("receiver")


def test_400_is_dead_at_once_and_delivered_after_replay(tmp_path):
    now = datetime.now(UTC)
    with (
        pg_database() as url,
        migrated_engine(url) as engine,
        RedisServer(tmp_path / "redis") as redis,
        sinks(1) as (receiver,),
    ):
        m = make_merchant(engine, now)
        tpl = make_template(engine, m, now)
        codes = issue(engine, m, tpl, now, count=5)
        sub = subscribe(engine, m, receiver.url)
        receiver.status = 400
        with (
            Cluster(url, redis.url, tmp_path / "procs", workers=2) as cluster,
            httpx.Client(base_url=cluster.base_url, headers=m.auth(), timeout=10) as api,
        ):
            assert {
                r.status for r in redeem_all(cluster.base_url, m.store_keys["SH-001"], codes)
            } == {201}
            wait_delivered(engine, 5, timeout=30, status="dead")

            def dead_items() -> list[dict]:
                r = api.get("/v1/deliveries", params={"status": "dead", "subscription": sub})
                assert r.status_code == 200, r.text
                return r.json()["items"]

            dead = dead_items()
            assert len(dead) == 5
            assert {(d["attempts"], d["last_status"]) for d in dead} == {(1, 400)}
            assert receiver.count() == 5  # one attempt each, no retries for a 400

            receiver.status = 200
            for d in dead:
                r = api.post(f"/v1/deliveries/{d['id']}/replay")
                assert r.status_code == 200, r.text
                assert r.json()["status"] in ("pending", "delivering", "succeeded")
            wait_delivered(engine, 5, timeout=30)
            assert dead_items() == []
            for d in dead:
                one = api.get(f"/v1/deliveries/{d['id']}").json()
                assert one["status"] == "succeeded", one
                assert one["attempt_log"][-1]["http_status"] == 200
        expected = event_ids(engine)
        accepted = receiver.accepted_ids()
        assert set(accepted) == expected and len(accepted) == 5
        # each event arrived twice: refused once, accepted after the replay (same id)
        assert sorted(Counter(receiver.ids()).values()) == [2] * 5

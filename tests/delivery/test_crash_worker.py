"""A `hub worker` killed with SIGKILL in the middle of HTTP calls loses nothing: the
deliveries it had claimed stay ``delivering`` until their lease runs out, then a sweeper
(the API's or a restarted worker's) makes them due again and they are sent again with
the same event id. Real processes, Redis broker (a private redis-server), PostgreSQL.

The lease is shortened for the worker processes with HUB_DELIVERY_LEASE_SECONDS.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select

from hub.db.schema import deliveries
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
    wait_until,
)

N = 20
LEASE = 6.0  # seconds; the receiver answers after 1 s, so a healthy attempt fits easily
DELAY = 1.0


def test_worker_killed_mid_delivery_loses_nothing(tmp_path):
    now = datetime.now(UTC)
    env = {"HUB_DELIVERY_LEASE_SECONDS": str(LEASE)}
    with (
        pg_database() as url,
        migrated_engine(url) as engine,
        RedisServer(tmp_path / "redis") as redis,
        sinks(1) as (receiver,),
    ):
        m = make_merchant(engine, now)
        tpl = make_template(engine, m, now)
        codes = issue(engine, m, tpl, now, count=N)
        subscribe(engine, m, receiver.url)
        receiver.delay = DELAY  # every request keeps the worker waiting: it is mid-call
        with Cluster(url, redis.url, tmp_path / "procs", workers=1, threads=4, env=env) as cluster:
            [victim] = cluster.workers
            assert {
                r.status for r in redeem_all(cluster.base_url, m.store_keys["SH-001"], codes)
            } == {201}
            wait_until(
                lambda: len(receiver.unanswered()) >= 2, 30, 0.02, "the worker to be mid-request"
            )
            cluster.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            cut_off = receiver.unanswered()  # read, never answered to the dead worker
            time.sleep(DELAY + 0.2)
            with engine.connect() as conn:
                stuck = set(
                    conn.execute(
                        select(deliveries.c.event_id).where(deliveries.c.status == "delivering")
                    ).scalars()
                )
            assert cut_off <= stuck, (cut_off, stuck)  # their leases are still running

            cluster.start_worker()  # a replacement; its sweeper revives expired leases
            try:
                wait_delivered(engine, N, timeout=60)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{cluster.tails()}") from None
            recovered_s = time.monotonic() - killed_at
            time.sleep(0.3)
        expected = event_ids(engine)
        t = tally(expected, receiver.accepted_ids())
        copies = Counter(receiver.ids())
        with engine.connect() as conn:
            attempts = dict(
                conn.execute(select(deliveries.c.event_id, deliveries.c.attempts)).all()
            )
        print(
            f"\ncrash: killed the worker with {len(cut_off)} requests in flight; all {N} "
            f"delivered {recovered_s:.1f} s after the kill (lease {LEASE:.0f} s); "
            f"{t.line('receiver')}; counts {delivery_counts(engine)}"
        )
        assert t.missing == 0, t.line("receiver")
        for eid in cut_off:
            assert copies[eid] >= 2, (eid, copies[eid])  # sent again, same event id
            assert attempts[eid] >= 2, (eid, attempts[eid])

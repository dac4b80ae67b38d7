"""Delivery through real processes and the real RabbitMQ broker on PostgreSQL: one
`hub serve` and two `hub worker`s, three webhook receivers.

dramatiq's queue name is fixed (``hub-deliveries`` on the default vhost), so the test
purges it first. A message left by another run only names a delivery that does not
exist in this test's fresh database, and is skipped; one of ours taken by another run
is re-sent by the sweeper. Set HUB_TEST_AMQP_URL to use another server or vhost.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.conftest import issue, make_merchant, make_template
from tests.delivery.multiproc import (
    AMQP_URL,
    Cluster,
    delivery_counts,
    event_ids,
    migrated_engine,
    pg_database,
    purge_rabbitmq_queue,
    redeem_all,
    sinks,
    subscribe,
    tally,
    wait_delivered,
)

N_REDEEMS = 200
N_SUBS = 3


@pytest.fixture
def amqp_url() -> str:
    try:
        purged = purge_rabbitmq_queue(AMQP_URL)
    except Exception as exc:  # pragma: no cover - environment problem
        pytest.fail(
            f"RabbitMQ at {AMQP_URL} does not answer ({type(exc).__name__}: {exc}). Start it "
            "(`rabbitmq-server -detached`) or point HUB_TEST_AMQP_URL at one."
        )
    if purged:
        print(f"\npurged {purged} stale messages from hub-deliveries")
    return AMQP_URL


def test_200_redemptions_reach_three_receivers_via_rabbitmq(tmp_path, amqp_url):
    now = datetime.now(UTC)
    with pg_database() as url, migrated_engine(url) as engine, sinks(N_SUBS) as receivers:
        m = make_merchant(engine, now)
        tpl = make_template(engine, m, now)
        codes = issue(engine, m, tpl, now, count=N_REDEEMS)
        for r in receivers:
            subscribe(engine, m, r.url)
        with Cluster(url, amqp_url, tmp_path / "procs", workers=2) as cluster:
            t0 = time.monotonic()
            results = redeem_all(cluster.base_url, m.store_keys["SH-001"], codes)
            assert sorted(r.status for r in results) == [201] * N_REDEEMS
            try:
                wait_delivered(engine, N_REDEEMS * N_SUBS, timeout=90)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{cluster.tails()}") from None
            total_s = time.monotonic() - t0
            time.sleep(0.5)
        expected = event_ids(engine)
        assert len(expected) == N_REDEEMS
        print(
            f"\nrabbitmq: {N_REDEEMS * N_SUBS} deliveries succeeded {total_s:.1f} s after the "
            f"first redeem; counts {delivery_counts(engine)}"
        )
        for i, r in enumerate(receivers):
            t = tally(expected, r.accepted_ids())
            print(t.line(f"receiver {i + 1}"))
            assert t.missing == 0, t.line(f"receiver {i + 1}")

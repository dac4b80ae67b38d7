"""THE PROOF (PostgreSQL): two real `hub worker` processes, each running the reminder job
every 30 s against one database, and a loopback webhook receiver subscribed to
coupon.expiring. Every due reminder arrives, and each (coupon, days_before) as exactly
one distinct event (deliveries are at-least-once: a copy of the same event id may come
twice, a second event for the same reminder never may).

The workers use the real clock: the coupons' windows end within 3 days of now.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.db.schema import coupon_reminders, deliveries, outbox_events
from hub.services import subscriptions as subscription_service
from hub.services.reminders import REMINDER_INTERVAL
from tests.conftest import issue, make_merchant, make_template
from tests.delivery.multiproc import SECRET, Cluster, pg_database, wait_until
from tests.delivery.receiver import Receiver, start_receiver

N_SOON = 120  # claimed, end in 2 days, [3, 1]: the 3-day reminder is due
N_SOONER = 80  # claimed, end in 12 hours, [3, 1]: only the nearest, the 1-day one
N_UNCLAIMED = 20  # never reminded
DAY = timedelta(days=1)


@contextmanager
def small_engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url, pool_size=2, max_overflow=2, pool_timeout=30)
    upgrade(engine)  # once, here: the workers then find nothing to migrate
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def receiver() -> Iterator[Receiver]:
    rec, server = start_receiver()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def spec(now: datetime, end: datetime) -> dict[str, Any]:
    return {
        "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
        "validity": {"type": "fixed", "start": (now - DAY).isoformat(), "end": end.isoformat()},
        "remind_days_before": [3, 1],
    }


def count(engine: Engine, q: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


@pytest.mark.slow  # ~40 s: the job's first run comes 30 s after the workers start
def test_two_workers_send_each_reminder_exactly_once(tmp_path: Any) -> None:
    now = datetime.now(UTC)
    with pg_database("hub_rem") as url, small_engine(url) as engine, receiver() as rec:
        m = make_merchant(engine, now, customers=N_SOON + N_SOONER)
        ids = [f"M{i:04d}" for i in range(1, N_SOON + N_SOONER + 1)]
        soon = make_template(engine, m, now, spec(now, now + 2 * DAY), name="soon")
        sooner = make_template(engine, m, now, spec(now, now + DAY / 2), name="sooner")
        expected = {(c, 3) for c in issue(engine, m, soon, now, customers=ids[:N_SOON])}
        expected |= {(c, 1) for c in issue(engine, m, sooner, now, customers=ids[N_SOON:])}
        issue(engine, m, soon, now, count=N_UNCLAIMED)
        subscription_service.create(
            engine, m.principal, connector="webhook",
            config={"url": rec.url, "secret": SECRET}, events=["coupon.expiring"],
            flt=None, retry_schedule=None, description=None, now=now,
        )  # fmt: skip
        total = N_SOON + N_SOONER

        cluster = Cluster(url, "", tmp_path / "procs", workers=0, api=False, log_level="INFO")
        with cluster:
            # both at once, so their rounds (every REMINDER_INTERVAL s) start together
            workers = [cluster.start_worker(wait=False) for _ in range(2)]
            for w in workers:
                wait_until(lambda w=w: "hub worker: broker" in w.log.read_text(errors="replace")
                           or not w.alive(), 30, 0.1, f"{w.name} start")  # fmt: skip
                assert w.alive(), cluster.tails()

            def all_arrived() -> bool:
                return len({e["id"] for e in rec.events}) >= total

            try:
                wait_until(all_arrived, REMINDER_INTERVAL + 120, 0.25, f"{total} reminders")
                wait_until(
                    lambda: count(engine, select(func.count()).select_from(deliveries)
                                  .where(deliveries.c.status == "succeeded")) >= total,
                    60, 0.25, "deliveries recorded",
                )  # fmt: skip
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{cluster.tails()}") from None
            assert all(w.alive() for w in workers), cluster.tails()
            logs = [w.log.read_text(errors="replace") for w in workers]

        # the receiver: one distinct event per (coupon, days_before), every one expected
        events: dict[str, dict[str, Any]] = {e["id"]: e for e in rec.events}
        per_reminder: dict[tuple[str, int], set[str]] = defaultdict(set)
        for e in events.values():
            assert e["type"] == "coupon.expiring"
            per_reminder[(e["data"]["code"], e["data"]["days_before"])].add(e["id"])
        assert set(per_reminder) == expected
        assert all(len(v) == 1 for v in per_reminder.values()), {
            k: v for k, v in per_reminder.items() if len(v) != 1
        }
        # the database agrees: one row and one event per reminder
        rows = count(engine, select(func.count()).select_from(coupon_reminders))
        emitted = count(
            engine,
            select(func.count()).select_from(outbox_events)
            .where(outbox_events.c.type == "coupon.expiring"),
        )  # fmt: skip
        assert rows == emitted == total
        copies = len(rec.events) - len(events)
        sent_by = [re.findall(r"reminders\.sent\D+?(\d+)", log) for log in logs]
        by_worker = [sum(int(n) for n in found) for found in sent_by]
        print(
            f"\n{total} reminders, {len(rec.events)} requests received ({copies} redelivered "
            f"copies), sent by worker 1 / worker 2: {by_worker[0]} / {by_worker[1]}"
        )
        assert sum(by_worker) == total

"""Races below HTTP: 50 threads call the redeem service at once, each on its own pooled
connection. On SQLite the HTTP server runs database work on its event loop, so the
HTTP race tests serialise in-process; this test makes the database itself arbitrate
(BEGIN IMMEDIATE on SQLite, row locks and the conditional UPDATE on PostgreSQL), as it
must when several processes share one database. The test pool is bounded
(``tests/conftest.py``): threads queue for a connection, and one that finds none in time
(or a shared PostgreSQL with no slot left) retries with the same key, as a client would."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import msgspec
from sqlalchemy import func, select

from hub.api.redemptions import REDEMPTION_OPERATIONS
from hub.db.engine import busy_reason
from hub.db.schema import coupons, outbox_events, redemptions
from hub.domain.cart import Order
from hub.services.commands import RedeemCommand
from hub.services.redeem import redeem
from tests.conftest import issue, make_template

N = 50


def test_fifty_threads_one_code_exactly_one_redemption(db, merchant, clock, monkeypatch):
    # Without the in-process writer queue, so SQLite's own file lock is what serialises.
    monkeypatch.setattr("hub.db.engine._writer_lock", lambda engine: None)
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    barrier = threading.Barrier(N)

    def attempt(i: int) -> int:
        cmd = RedeemCommand(
            code=code, store="SH-001", channel="pos", order=Order(id=f"T-{i}", amount=12800)
        )
        barrier.wait()
        for _ in range(30):  # a client retries (same key) when no connection is free
            try:
                r = redeem(
                    db,
                    merchant.principal,
                    cmd,
                    idempotency_key=f"thread-{i}",
                    canonical_body=msgspec.json.encode({"i": i}),
                    now=clock.now,
                    operation=REDEMPTION_OPERATIONS.redeem,
                )
                break
            except Exception as exc:
                if busy_reason(exc) is None:
                    raise
                time.sleep(0.2)
        if r.status != 201:
            assert msgspec.json.decode(r.body)["code"] == "coupon_already_redeemed"
        return r.status

    with ThreadPoolExecutor(N) as pool:
        statuses = list(pool.map(attempt, range(N)))
    assert sorted(statuses) == [201] + [409] * (N - 1)
    with db.connect() as conn:
        coupon_id, status = conn.execute(
            select(coupons.c.id, coupons.c.status).where(coupons.c.code == code)
        ).one()
        assert status == "redeemed"
        assert (
            conn.execute(
                select(func.count())
                .select_from(redemptions)
                .where(redemptions.c.coupon_id == coupon_id)
            ).scalar_one()
            == 1
        )
        assert (
            conn.execute(
                select(func.count())
                .select_from(outbox_events)
                .where(
                    outbox_events.c.coupon_id == coupon_id,
                    outbox_events.c.type == "coupon.redeemed",
                )
            ).scalar_one()
            == 1
        )

"""Claiming a batch of due deliveries in one transaction (``claim.claim_batch``): per
coupon and subscription, a batch never holds a later event while an earlier one is
unfinished; a batch whose worker dies is claimed again once its lease has run out."""

from __future__ import annotations

import random

from sqlalchemy import select

from hub.connectors import Delivered, Retry
from hub.db.engine import write_conn
from hub.db.schema import deliveries as deliveries_t
from hub.delivery import policy
from hub.delivery.claim import Sent, claim_batch
from hub.delivery.record import Attempted, record_batch
from tests.conftest import issue, make_template
from tests.delivery.support import redeem, reverse, runtime, subscribe

OK = Sent(Delivered(), 200, None, "{}", 1)
BUSY = Sent(Retry("503"), 503, "HTTP 503", "busy", 1)


def _pending(db):
    with db.connect() as conn:
        rows = conn.execute(
            select(
                deliveries_t.c.id,
                deliveries_t.c.coupon_id,
                deliveries_t.c.subscription_id,
                deliveries_t.c.event_seq,
            )
        ).all()
    return {r.id: r for r in rows}


def _two_events_per_coupon(client, db, merchant, clock, count):
    tpl = make_template(db, merchant, clock.now)
    for code in issue(db, merchant, tpl, clock.now, count=count):
        reverse(client, merchant, redeem(client, merchant, code))


def test_a_batch_never_holds_two_events_of_one_coupon(client, db, merchant, clock):
    subscribe(client, merchant)
    _two_events_per_coupon(client, db, merchant, clock, 4)
    rows = _pending(db)
    newest_first = sorted(rows, key=lambda i: -rows[i].event_seq)  # the order asked: no matter
    with write_conn(db) as conn:
        batch = claim_batch(conn, newest_first, clock.now)
    assert len(batch) == 4
    assert {c.event["type"] for c in batch} == {"coupon.redeemed"}
    assert len({c.coupon_id for c in batch}) == 4
    with write_conn(db) as conn:  # the reversals wait while the redemptions are out
        assert claim_batch(conn, list(rows), clock.now) == []
    record_batch(db, [Attempted(c, BUSY, clock.now) for c in batch], clock.now, lambda _: None)
    clock.advance(hours=1)  # the redemptions' retries are due: still before the reversals
    with write_conn(db) as conn:
        again = claim_batch(conn, list(rows), clock.now)
    assert {c.delivery_id for c in again} == {c.delivery_id for c in batch}
    rung: list[str] = []
    record_batch(db, [Attempted(c, OK, clock.now) for c in again], clock.now, rung.extend)
    with write_conn(db) as conn:
        reversals = claim_batch(conn, list(rows), clock.now)
    assert {c.event["type"] for c in reversals} == {"coupon.redemption_reversed"}
    assert {c.delivery_id for c in reversals} == set(rung)  # the successes rang them


def test_batches_keep_every_coupons_order_whatever_the_outcomes(
    client, db, merchant, clock, monkeypatch
):
    monkeypatch.setattr(policy, "CIRCUIT_THRESHOLD", 10_000)  # failures in a row here
    subscribe(client, merchant, retry_schedule=[1] * 20)
    subscribe(client, merchant, url="https://other.example/hook", retry_schedule=[1] * 20)
    _two_events_per_coupon(client, db, merchant, clock, 6)
    rows = _pending(db)
    rng = random.Random(11)
    succeeded_at: dict[str, int] = {}
    for rnd in range(200):
        ids = list(rows)
        rng.shuffle(ids)
        with write_conn(db) as conn:
            batch = claim_batch(conn, ids, clock.now)
        keys = [(c.subscription_id, c.coupon_id) for c in batch]
        assert len(keys) == len(set(keys)), keys  # one event per coupon and subscription
        for c in batch:  # and only once every earlier one of its coupon has succeeded
            earlier = [
                i
                for i, r in rows.items()
                if (r.subscription_id, r.coupon_id) == (c.subscription_id, c.coupon_id)
                and r.event_seq < rows[c.delivery_id].event_seq
            ]
            assert all(i in succeeded_at for i in earlier), (c.delivery_id, earlier)
        sent = [OK if rng.random() < 0.5 else BUSY for _ in batch]
        statuses = record_batch(
            db,
            [Attempted(c, s, clock.now) for c, s in zip(batch, sent, strict=True)],
            clock.now,
            lambda _: None,
        )
        for c, status in zip(batch, statuses, strict=True):
            if status == "succeeded":
                succeeded_at[c.delivery_id] = rnd
        if len(succeeded_at) == len(rows):
            break
        clock.advance(seconds=2)
    assert len(succeeded_at) == len(rows) == 24


def test_a_batch_whose_worker_died_is_sent_again_after_the_lease(
    client, db, merchant, clock, receiver
):
    subscribe(client, merchant, receiver.url, events=["coupon.redeemed"])
    tpl = make_template(db, merchant, clock.now)
    for code in issue(db, merchant, tpl, clock.now, count=3):
        redeem(client, merchant, code)
    with write_conn(db) as conn:  # a worker claims the batch, then dies: nothing sent
        lost = claim_batch(conn, list(_pending(db)), clock.now)
    assert len(lost) == 3
    with runtime(db, clock) as rt:
        assert rt.drain() == 0  # leased: neither due nor revived
        clock.advance(seconds=policy.LEASE_SECONDS - 1)
        assert rt.drain() == 0
        clock.advance(seconds=2)
        assert rt.drain() == 3  # the sweeper revived them; sent again
    assert sorted(e["id"] for e in receiver.events) == sorted(c.event["id"] for c in lost)
    with db.connect() as conn:
        after = conn.execute(select(deliveries_t.c.status, deliveries_t.c.attempts)).all()
    assert {(r.status, r.attempts) for r in after} == {("succeeded", 2)}
    # the dead worker's outcome, were it to arrive late, no longer counts
    late = record_batch(
        db, [Attempted(c, BUSY, clock.now) for c in lost], clock.now, lambda _: None
    )
    assert late == ["superseded"] * 3

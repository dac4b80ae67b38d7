"""A worker's delivery pipeline (``pipeline.Pipeline``): batched claim, concurrent sends
over the kept-alive client, batched record. Each outcome of a mixed batch is recorded as
it went; two workers on one database deliver every event at least once, in order per
coupon; stopping finishes what was accepted."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select

from hub.db.engine import make_engine
from hub.db.schema import coupons, delivery_attempts
from hub.db.schema import deliveries as deliveries_t
from hub.delivery import pipeline as pipeline_module
from hub.delivery.pipeline import Pipeline
from hub.delivery.sweeper import sweep
from hub.delivery.transport import delivery_client, http_transport
from tests.conftest import issue, make_template
from tests.delivery.support import URL, code_of, redeem, reverse, subscribe


def _ids(db):
    with db.connect() as conn:
        return list(
            conn.execute(select(deliveries_t.c.id).order_by(deliveries_t.c.event_seq)).scalars()
        )


def _statuses(db) -> Counter[str]:
    with db.connect() as conn:
        return Counter(conn.execute(select(deliveries_t.c.status)).scalars())


def _wait(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_each_outcome_of_a_mixed_batch_is_recorded(client, db, merchant, clock):
    subscribe(client, merchant, events=["coupon.redeemed"], retry_schedule=[60, 60])
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=4)
    ok, busy, bad, slow = codes
    for code in codes:
        redeem(client, merchant, code)

    def answer(request: httpx.Request) -> httpx.Response:
        code = code_of(request)
        if code == slow:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response({ok: 200, busy: 503, bad: 400}[code], text=f"for {code}")

    http = delivery_client()
    pipe = Pipeline(db, clock, http_transport(http), threads=4)
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=answer)
        pipe.start()
        try:
            pipe.submit(_ids(db))
            _wait(lambda: not {"pending", "delivering"} & set(_statuses(db)))
        finally:
            pipe.stop()
            http.close()
    assert route.call_count == 1 + 1 + 1 + 3  # the timeout: three tries in the attempt
    with db.connect() as conn:
        rows = conn.execute(
            select(
                deliveries_t.c.coupon_id,
                deliveries_t.c.status,
                deliveries_t.c.attempts,
                deliveries_t.c.last_status,
                deliveries_t.c.last_error,
                deliveries_t.c.next_attempt_at,
                delivery_attempts.c.outcome,
                delivery_attempts.c.http_status,
                delivery_attempts.c.error,
                delivery_attempts.c.response_body,
            ).join(delivery_attempts, delivery_attempts.c.delivery_id == deliveries_t.c.id)
        ).all()
    assert len(rows) == 4  # one attempt row each
    with db.connect() as conn:
        code_of_coupon = dict(conn.execute(select(coupons.c.id, coupons.c.code)).all())
    by_code = {code_of_coupon[r.coupon_id]: r for r in rows}
    assert (by_code[ok].status, by_code[ok].outcome, by_code[ok].http_status) == (
        "succeeded",
        "delivered",
        200,
    )
    assert (by_code[busy].status, by_code[busy].outcome, by_code[busy].http_status) == (
        "retrying",
        "retry",
        503,
    )
    assert by_code[busy].response_body == f"for {busy}"
    assert clock.now <= by_code[busy].next_attempt_at <= clock.now + timedelta(seconds=60)
    assert (by_code[bad].status, by_code[bad].outcome, by_code[bad].last_status) == (
        "dead",
        "failed",
        400,
    )
    assert (by_code[slow].status, by_code[slow].outcome, by_code[slow].http_status) == (
        "retrying",
        "retry",
        None,
    )
    assert "ReadTimeout" in by_code[slow].error and "ReadTimeout" in by_code[slow].last_error
    assert {r.attempts for r in rows} == {1}


def test_stop_finishes_what_was_accepted(client, db, merchant, clock, receiver):
    subscribe(client, merchant, receiver.url)
    tpl = make_template(db, merchant, clock.now)
    for code in issue(db, merchant, tpl, clock.now, count=6):
        reverse(client, merchant, redeem(client, merchant, code))
    http = delivery_client()
    pipe = Pipeline(db, clock, http_transport(http), threads=2)
    pipe.start()
    pipe.submit(_ids(db))  # the reversals are rung by their redemptions' successes
    pipe.stop()
    http.close()
    assert _statuses(db) == {"succeeded": 12}
    types = [(e["data"].get("code"), e["type"]) for e in receiver.events]
    for code, kind in types:
        if kind == "coupon.redemption_reversed":
            assert types.index((code, "coupon.redeemed")) < types.index((code, kind))


def test_a_delivery_not_started_in_time_is_given_back_unsent(
    client, db, merchant, clock, receiver, monkeypatch
):
    """A wide window lets claimed deliveries queue for a sender: one whose send has not
    started within START_WITHIN of its claim goes back as it was (no attempt counted,
    no attempt row), is rung again, and is delivered once."""
    subscribe(client, merchant, receiver.url)
    tpl = make_template(db, merchant, clock.now)
    for code in issue(db, merchant, tpl, clock.now, count=4):
        redeem(client, merchant, code)
    monkeypatch.setattr(pipeline_module, "START_WITHIN", 0.2)
    returned: list[str] = []
    real_give_back = pipeline_module.give_back

    def give_back(engine, claimed, now):
        got = real_give_back(engine, claimed, now)
        returned.extend(got)
        return got

    monkeypatch.setattr(pipeline_module, "give_back", give_back)
    http = delivery_client()
    send = http_transport(http)
    slow = [True]

    def transport(req):
        if slow[0]:  # the first send holds the only sender past the others' start time
            slow[0] = False
            time.sleep(0.5)
        return send(req)

    pipe = Pipeline(db, clock, transport, threads=1)
    pipe.start()
    try:
        pipe.submit(_ids(db))
        _wait(lambda: _statuses(db) == {"succeeded": 4})
    finally:
        pipe.stop()
        http.close()
    assert returned  # the three queued behind the slow send went back at least once
    with db.connect() as conn:
        attempts = list(conn.execute(select(deliveries_t.c.attempts)).scalars())
        rows = conn.execute(select(func.count()).select_from(delivery_attempts)).scalar()
    assert attempts == [1, 1, 1, 1] and rows == 4
    ids = [e["id"] for e in receiver.events]
    assert len(ids) == len(set(ids)) == 4


def test_two_workers_deliver_every_event_at_least_once_in_coupon_order(
    client, db, merchant, clock, receiver
):
    if db.dialect.name != "postgresql":
        pytest.skip("concurrent worker processes share a PostgreSQL database")
    subscribe(client, merchant, receiver.url, retry_schedule=[1] * 10)
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=40)
    for code in codes:
        reverse(client, merchant, redeem(client, merchant, code))
    receiver.script = [503, 200, 200, 503, 200, 500, 200, 200] * 6  # some retries
    other = make_engine(db.url.render_as_string(hide_password=False), pool_size=3, max_overflow=0)
    clients = [delivery_client(), delivery_client()]
    workers = [
        Pipeline(engine, clock, http_transport(http), threads=4)
        for engine, http in zip((db, other), clients, strict=True)
    ]
    for w in workers:
        w.start()
    try:
        ids = _ids(db)
        for w in workers:  # every doorbell reaches both: they race for every delivery
            w.submit(ids)
        deadline = time.monotonic() + 90
        while _statuses(db).get("succeeded", 0) < len(ids):
            assert time.monotonic() < deadline, _statuses(db)
            time.sleep(0.1)
            if "delivering" not in _statuses(db):  # idle: let the retries come due
                clock.advance(seconds=2)
                due = sweep(db, clock.now, stale=timedelta(0))
                for w in workers:
                    w.submit(due)
    finally:
        for w in workers:
            w.stop()
        for http in clients:
            http.close()
        other.dispose()
    arrivals = [(e["id"], e["type"], e["data"]["code"]) for e in receiver.events]
    with db.connect() as conn:
        made = dict(conn.execute(select(deliveries_t.c.event_id, deliveries_t.c.attempts)).all())
        logged = dict(
            conn.execute(
                select(deliveries_t.c.event_id, func.count())
                .join(delivery_attempts, delivery_attempts.c.delivery_id == deliveries_t.c.id)
                .group_by(deliveries_t.c.event_id)
            ).all()
        )
    sent = Counter(event_id for event_id, _, _ in arrivals)
    assert set(sent) == set(made)  # every event reached the receiver (at least once)
    assert sent == Counter(made) == Counter(logged)  # each send was one claimed attempt
    for code in codes:
        kinds = [kind for _, kind, c in arrivals if c == code]
        first_reversal = kinds.index("coupon.redemption_reversed")
        assert "coupon.redeemed" not in kinds[first_reversal:], kinds

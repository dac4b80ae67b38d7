"""The per-subscription circuit breaker: open after CIRCUIT_THRESHOLD failures in a row
(with an ``alert.raised`` event), no attempts while open, a probe after the cooldown,
closed again by a successful probe or by resuming the subscription."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx

from hub.delivery import policy
from tests.conftest import issue, make_template
from tests.delivery.support import (
    URL,
    deliveries,
    events_of_type,
    parse_time,
    redeem,
    runtime,
    sent_events,
    subscribe,
    subscription,
)

OPS_URL = "https://ops.example/alerts"


@pytest.fixture(autouse=True)
def _threshold(monkeypatch):
    monkeypatch.setattr(policy, "CIRCUIT_THRESHOLD", 3)


class Switch:
    """A receiver that answers 503 while down, else 200."""

    def __init__(self) -> None:
        self.down = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if self.down else 200)


def _open_circuit(client, db, merchant, clock, rt, n=3):
    sub = subscribe(client, merchant, events=["coupon.redeemed"], retry_schedule=[1] * 20)
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=n + 1)
    for code in codes[:n]:
        redeem(client, merchant, code)
    rt.drain()
    return sub, codes[n]


def test_circuit_opens_holds_and_closes_after_a_successful_probe(client, db, merchant, clock):
    ops = subscribe(client, merchant, OPS_URL, events=["alert.raised"])
    switch = Switch()
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=switch)
        alerts = mock.post(OPS_URL).mock(return_value=httpx.Response(200))
        with runtime(db, clock) as rt:
            sub, spare = _open_circuit(client, db, merchant, clock, rt)
            assert route.call_count == 3
            s = subscription(client, merchant, sub)
            assert s["status"] == "circuit_open" and s["consecutive_failures"] == 3
            opened_at = clock.now
            probe_at = opened_at + timedelta(seconds=policy.CIRCUIT_COOLDOWN)
            assert parse_time(s["circuit_retry_at"]) == probe_at

            [alert] = events_of_type(db, merchant.id, "alert.raised")
            assert alert["data"]["alert"] == "subscription_circuit_open"
            assert alert["data"]["severity"] == "warning"
            assert alert["data"]["details"]["subscription_id"] == sub
            assert alert["data"]["details"]["consecutive_failures"] == 3
            # the alert is an event like any other: the ops subscription received it
            [sent] = sent_events(alerts)
            assert sent["type"] == "alert.raised" and sent["id"] == alert["id"]

            # open: retries fall due and a new event comes in, but nothing is sent
            redeem(client, merchant, spare)
            for _ in range(3):
                clock.advance(seconds=60)
                assert rt.drain() == 0
            assert route.call_count == 3
            waiting = deliveries(client, merchant, subscription=sub)
            assert sorted(d["status"] for d in waiting) == [
                "pending",
                "retrying",
                "retrying",
                "retrying",
            ]

            # after the cooldown one probe goes out; it fails: open for another cooldown
            clock.now = probe_at
            assert rt.drain() == 1
            assert route.call_count == 4
            s = subscription(client, merchant, sub)
            assert s["status"] == "circuit_open" and s["consecutive_failures"] == 4
            probe_at = clock.now + timedelta(seconds=policy.CIRCUIT_COOLDOWN)
            assert parse_time(s["circuit_retry_at"]) == probe_at
            assert len(events_of_type(db, merchant.id, "alert.raised")) == 1  # not re-raised
            clock.now = probe_at - timedelta(seconds=1)
            assert rt.drain() == 0

            # the receiver is back: the next probe succeeds and everything flows again
            switch.down = False
            clock.now = probe_at
            assert rt.drain() == 4
    assert route.call_count == 8
    s = subscription(client, merchant, sub)
    assert s["status"] == "active" and s["consecutive_failures"] == 0
    assert s["circuit_retry_at"] is None
    assert {d["status"] for d in deliveries(client, merchant, subscription=sub)} == {"succeeded"}
    assert subscription(client, merchant, ops)["status"] == "active"


def test_failures_below_the_threshold_or_interrupted_do_not_open(client, db, merchant, clock):
    answers = iter([503, 503, 200, 503, 503])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers, 200))

    sub = subscribe(client, merchant, events=["coupon.redeemed"], retry_schedule=[1] * 5)
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=5)
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=answer)
        with runtime(db, clock) as rt:
            for code in codes:  # one at a time, so the answers meet them in this order
                redeem(client, merchant, code)
                rt.drain()
    s = subscription(client, merchant, sub)
    assert s["status"] == "active" and s["consecutive_failures"] == 2  # the 200 reset it
    assert events_of_type(db, merchant.id, "alert.raised") == []


def test_resume_closes_an_open_circuit(client, db, merchant, clock):
    switch = Switch()
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=switch)
        with runtime(db, clock) as rt:
            sub, spare = _open_circuit(client, db, merchant, clock, rt)
            assert subscription(client, merchant, sub)["status"] == "circuit_open"
            redeem(client, merchant, spare)
            switch.down = False
            r = client.post(f"/v1/subscriptions/{sub}/resume", headers=merchant.auth())
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "active"
            assert r.json()["consecutive_failures"] == 0
            assert r.json()["circuit_retry_at"] is None
            clock.advance(seconds=2)  # the retries' short waits, far less than the cooldown
            assert rt.drain() == 4
    assert route.call_count == 7
    assert {d["status"] for d in deliveries(client, merchant, subscription=sub)} == {"succeeded"}


def test_pausing_an_open_circuit_keeps_it_quiet_until_resumed(client, db, merchant, clock):
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=Switch())
        with runtime(db, clock) as rt:
            sub, _ = _open_circuit(client, db, merchant, clock, rt)
            r = client.post(f"/v1/subscriptions/{sub}/pause", headers=merchant.auth())
            assert r.status_code == 200 and r.json()["status"] == "paused"
            clock.advance(seconds=policy.CIRCUIT_COOLDOWN * 3)
            assert rt.drain() == 0  # no probe for a paused subscription
    assert route.call_count == 3
    assert subscription(client, merchant, sub)["status"] == "paused"


def test_half_open_circuit_lets_exactly_one_probe_through(client, db, merchant, clock):
    """Several due deliveries of an open circuit: the first claim takes the probe, the
    others are refused until the probe's outcome is known (or the next cooldown)."""
    from sqlalchemy import select, update

    from hub.db.engine import write_conn
    from hub.db.schema import deliveries, subscriptions
    from hub.delivery.claim import claim

    r = client.post(
        "/v1/subscriptions",
        headers=merchant.auth(),
        json={
            "connector": "webhook",
            "config": {
                "url": "http://127.0.0.1:9/hook",
                "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            },
            "events": ["coupon.issued"],
        },
    )
    sub = r.json()["id"]
    tpl = make_template(db, merchant, clock.now)
    issue(db, merchant, tpl, clock.now, count=4)
    with db.begin() as conn:
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == sub)
            .values(status="circuit_open", circuit_retry_at=clock.now + timedelta(seconds=60))
        )
        ids = list(
            conn.execute(
                select(deliveries.c.id).where(deliveries.c.subscription_id == sub)
            ).scalars()
        )
    assert len(ids) == 4
    with write_conn(db) as conn:  # still cooling down: nobody
        assert all(claim(conn, i, clock.now) is None for i in ids)
    clock.advance(seconds=61)
    with write_conn(db) as conn:
        claimed = [claim(conn, i, clock.now) for i in ids]
    assert sum(c is not None for c in claimed) == 1

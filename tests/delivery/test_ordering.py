"""Per coupon, events reach a subscription in order; other coupons (and other
subscriptions) are not held up by one coupon's failing delivery."""

from __future__ import annotations

import httpx
import respx
from standardwebhooks.webhooks import Webhook

from tests.conftest import issue, make_template
from tests.delivery.support import (
    SECRET,
    URL,
    code_of,
    deliveries,
    delivery,
    parse_time,
    redeem,
    reverse,
    runtime,
    sent_events,
    subscribe,
)

REDEEMED, REVERSED = "coupon.redeemed", "coupon.redemption_reversed"


def _by_type(client, merchant, sub):
    return {d["event_type"]: d for d in deliveries(client, merchant, subscription=sub)}


def test_reversal_waits_for_the_redemption_to_succeed(client, db, merchant, clock, receiver):
    receiver.script = [503]
    sub = subscribe(client, merchant, receiver.url, retry_schedule=[1, 1, 1])
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    rid = redeem(client, merchant, code)
    reverse(client, merchant, rid)
    with runtime(db, clock) as rt:
        assert rt.drain() == 1  # only the redemption: the reversal is behind it
        assert [e["type"] for e in receiver.events] == [REDEEMED]
        held = _by_type(client, merchant, sub)
        assert held[REDEEMED]["status"] == "retrying"
        assert held[REVERSED]["status"] == "pending" and held[REVERSED]["attempts"] == 0
        # still held while the redemption's retry is not due, however often we look
        assert rt.drain() == 0 and rt.sweep_once() == []
        clock.advance(seconds=2)
        assert rt.drain() == 2
    assert [e["type"] for e in receiver.events] == [REDEEMED, REDEEMED, REVERSED]
    assert len({e["id"] for e in receiver.events}) == 2
    for req in receiver.requests:
        Webhook(SECRET).verify(req.body, req.headers)
    done = _by_type(client, merchant, sub)
    assert {d["status"] for d in done.values()} == {"succeeded"}
    red = delivery(client, merchant, done[REDEEMED]["id"])
    rev = delivery(client, merchant, done[REVERSED]["id"])
    assert [a["http_status"] for a in red["attempt_log"]] == [503, 200]
    assert [a["http_status"] for a in rev["attempt_log"]] == [200]
    assert parse_time(rev["attempt_log"][0]["started_at"]) >= parse_time(red["delivered_at"])


def test_a_dead_redemption_holds_the_reversal_until_replayed(client, db, merchant, clock,
                                                             receiver):
    receiver.script = [400]
    sub = subscribe(client, merchant, receiver.url)
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    reverse(client, merchant, redeem(client, merchant, code))
    with runtime(db, clock) as rt:
        rt.drain()
        clock.advance(hours=30)
        rt.drain()
        held = _by_type(client, merchant, sub)
        assert held[REDEEMED]["status"] == "dead"
        assert held[REVERSED]["status"] == "pending"  # never overtakes the redemption
        assert [e["type"] for e in receiver.events] == [REDEEMED]
        r = client.post(f"/v1/deliveries/{held[REDEEMED]['id']}/replay", headers=merchant.auth())
        assert r.status_code == 200, r.text
        assert rt.drain() == 2
    assert [e["type"] for e in receiver.events] == [REDEEMED, REDEEMED, REVERSED]
    assert {d["status"] for d in _by_type(client, merchant, sub).values()} == {"succeeded"}


def test_other_coupons_are_not_held_up(client, db, merchant, clock):
    sub = subscribe(client, merchant, retry_schedule=[1, 1, 1])
    tpl = make_template(db, merchant, clock.now)
    a, b = issue(db, merchant, tpl, clock.now, count=2)
    failed_once: set[str] = set()

    def answer(request: httpx.Request) -> httpx.Response:
        if code_of(request) == a and a not in failed_once:
            failed_once.add(a)
            return httpx.Response(503)
        return httpx.Response(200)

    rid_a = redeem(client, merchant, a)
    rid_b = redeem(client, merchant, b)
    reverse(client, merchant, rid_a)
    reverse(client, merchant, rid_b)
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=answer)
        with runtime(db, clock) as rt:
            rt.drain()
            first = [(e["data"]["code"], e["type"]) for e in sent_events(route)]
            # B's two events went out in this same drain, in order; A stopped at its first
            assert [x for x in first if x[0] == b] == [(b, REDEEMED), (b, REVERSED)]
            assert [x for x in first if x[0] == a] == [(a, REDEEMED)]
            items = deliveries(client, merchant, subscription=sub)
            states = {(d["event_type"], d["status"]) for d in items}
            assert states == {(REDEEMED, "retrying"), (REVERSED, "pending"),
                              (REDEEMED, "succeeded"), (REVERSED, "succeeded")}
            clock.advance(seconds=2)
            rt.drain()
    events = [(e["data"]["code"], e["type"]) for e in sent_events(route)]
    assert [x for x in events if x[0] == a] == [(a, REDEEMED), (a, REDEEMED), (a, REVERSED)]
    assert len(events) == 5
    assert {d["status"] for d in deliveries(client, merchant, subscription=sub)} == {"succeeded"}


def test_one_subscriptions_failure_does_not_hold_up_another(client, db, merchant, clock):
    down_url, up_url = "https://down.example/hook", "https://up.example/hook"
    down = subscribe(client, merchant, down_url, retry_schedule=[60])
    up = subscribe(client, merchant, up_url)
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    reverse(client, merchant, redeem(client, merchant, code))
    with respx.mock() as mock:
        failing = mock.post(down_url).mock(return_value=httpx.Response(500))
        working = mock.post(up_url).mock(return_value=httpx.Response(200))
        with runtime(db, clock) as rt:
            rt.drain()
    assert [e["type"] for e in sent_events(working)] == [REDEEMED, REVERSED]
    assert [e["type"] for e in sent_events(failing)] == [REDEEMED]
    assert {d["status"] for d in deliveries(client, merchant, subscription=up)} == {"succeeded"}
    assert {d["event_type"]: d["status"] for d in deliveries(client, merchant, subscription=down)} \
        == {REDEEMED: "retrying", REVERSED: "pending"}
    # the same event reaches both subscriptions with the same id (the receivers' dedupe key)
    assert sent_events(working)[0]["id"] == sent_events(failing)[0]["id"]

"""Redemptions reach a real webhook receiver on loopback, signed, in order, with retries."""

from __future__ import annotations

from standardwebhooks.webhooks import Webhook

from hub.delivery.runtime import Runtime
from tests.conftest import issue, make_template, order

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def subscribe(client, merchant, url, events=("coupon.redeemed", "coupon.redemption_reversed"),
              **extra):
    r = client.post("/v1/subscriptions", headers=merchant.auth(), json={
        "connector": "webhook", "config": {"url": url, "secret": SECRET},
        "events": list(events), **extra})
    assert r.status_code == 201, r.text
    assert "secret" not in r.text or r.json()["config"]["secret"] == "***"
    return r.json()["id"]


def redeem(client, merchant, code, key):
    r = client.post("/v1/redemptions", json={"code": code, "store": "SH-001", "order": order()},
                    headers={**merchant.auth(), "Idempotency-Key": key})
    assert r.status_code == 201, r.text
    return r.json()["redemption_id"]


def test_redeem_and_reversal_arrive_signed_and_in_order(client, db, merchant, clock, receiver):
    subscribe(client, merchant, receiver.url)
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    rid = redeem(client, merchant, code, "w1")
    r = client.post(f"/v1/redemptions/{rid}/reversal", json={},
                    headers={**merchant.auth(), "Idempotency-Key": "w2"})
    assert r.status_code == 201
    rt = Runtime(db, clock=clock)
    try:
        assert rt.drain() == 2
    finally:
        rt.stop()
    assert [e["type"] for e in receiver.events] == ["coupon.redeemed",
                                                    "coupon.redemption_reversed"]
    wh = Webhook(SECRET)
    for req in receiver.requests:
        payload = wh.verify(req.body, req.headers)
        assert payload["id"] == req.headers["webhook-id"]
    r = client.get("/v1/deliveries", headers=merchant.auth())
    assert {d["status"] for d in r.json()["items"]} == {"succeeded"}


def test_failures_are_retried_then_delivered(client, db, merchant, clock, receiver):
    receiver.script = [503, 500]
    subscribe(client, merchant, receiver.url, retry_schedule=[1, 1, 1])
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, code, "w3")
    rt = Runtime(db, clock=clock)
    try:
        rt.drain()
        clock.advance(seconds=2)
        rt.drain()
        clock.advance(seconds=2)
        rt.drain()
    finally:
        rt.stop()
    assert len(receiver.requests) == 3
    items = client.get("/v1/deliveries", headers=merchant.auth()).json()["items"]
    assert [d["status"] for d in items] == ["succeeded"]
    one = client.get(f"/v1/deliveries/{items[0]['id']}", headers=merchant.auth()).json()
    assert [a["http_status"] for a in one["attempt_log"]] == [503, 500, 200]


def test_400_goes_dead_and_replays(client, db, merchant, clock, receiver):
    receiver.script = [400]
    sub = subscribe(client, merchant, receiver.url)
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, code, "w4")
    rt = Runtime(db, clock=clock)
    try:
        rt.drain()
        dead = client.get(f"/v1/deliveries?status=dead&subscription={sub}",
                          headers=merchant.auth()).json()["items"]
        assert len(dead) == 1
        r = client.post(f"/v1/deliveries/{dead[0]['id']}/replay", headers=merchant.auth())
        assert r.status_code == 200 and r.json()["status"] == "pending"
        rt.drain()
    finally:
        rt.stop()
    assert len(receiver.requests) == 2
    assert receiver.events[0]["id"] == receiver.events[1]["id"]
    d = client.get(f"/v1/deliveries/{dead[0]['id']}", headers=merchant.auth()).json()
    assert d["status"] == "succeeded"

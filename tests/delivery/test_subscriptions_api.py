"""/v1/subscriptions and /v1/deliveries through the HTTP API (both backends)."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hub.db.schema import deliveries as deliveries_table
from hub.db.schema import outbox_events
from hub.services.problems import PROBLEM_MEDIA_TYPE
from hub.services.subscriptions import MAX_BODY_LOGGED
from tests.conftest import issue, make_merchant, make_template
from tests.delivery.support import (
    REDEMPTION_EVENTS,
    SECRET,
    URL,
    code_of,
    deliveries,
    delivery,
    drain,
    iso_z,
    redeem,
    reverse,
    runtime,
    sent_events,
    stored_secret,
    subscribe,
    subscribe_raw,
    subscription,
)

SECRET2 = "whsec_c2Vjb25kIHNlY3JldCBmb3IgdGhlIGh1YiB0ZXN0cw=="
URL2 = "https://receiver-two.example/hook"


def problem(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body = r.json()
    assert body["code"] == code, body
    return dict(body)


def listed(client, merchant) -> list[dict]:
    r = client.get("/v1/subscriptions", headers=merchant.auth())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# --- create: validation -------------------------------------------------------------------


def test_create_answers_201_with_the_subscription(client, merchant):
    r = subscribe_raw(client, merchant, description="ERP feed", retry_schedule=[5, 60])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"].startswith("sub_") and body["connector"] == "webhook"
    assert body["config"] == {"url": URL, "secret": "***"}
    assert body["events"] == sorted(REDEMPTION_EVENTS)
    assert body["filter"] == {"stores": [], "templates": []}
    assert body["retry_schedule"] == [5, 60] and body["description"] == "ERP feed"
    assert body["status"] == "active" and body["consecutive_failures"] == 0
    assert [s["id"] for s in listed(client, merchant)] == [body["id"]]
    assert subscription(client, merchant, body["id"]) == body


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"secret": SECRET}, "config.url"),
        ({"url": URL}, "config.secret"),
        # a URL the egress policy refuses (scheme, host, address) is url_not_allowed
        ({"url": "ftp://receiver.example/x", "secret": SECRET}, "config.url!url_not_allowed"),
        ({"url": URL, "secret": "not a secret"}, "config.secret"),
        ({"url": URL, "secret": "whsec_" + "A" * 17}, "config.secret"),  # not valid base64
        ({"url": URL, "secret": 12345678901234567}, "config.secret"),
        ({"url": URL, "secret": SECRET, "timeout": 600}, "config.timeout"),
        ({"url": URL, "secret": SECRET, "headers": {"x-a": 1}}, "config.headers.x-a"),
        ({"url": URL, "secret": SECRET, "colour": "red"}, "config"),
    ],
)
def test_config_is_validated_against_the_connectors_schema(client, merchant, config, field):
    r = client.post(
        "/v1/subscriptions",
        headers=merchant.auth(),
        json={"connector": "webhook", "config": config, "events": ["coupon.redeemed"]},
    )
    field, _, code = field.partition("!")
    body = problem(r, 422, code or "invalid_config")
    assert body["errors"][0]["field"] == field
    assert listed(client, merchant) == []


def test_a_rejected_secret_is_not_echoed(client, merchant):
    near_miss = SECRET + "!"  # one character off the real secret: must not come back
    r = subscribe_raw(client, merchant, secret=near_miss)
    body = problem(r, 422, "invalid_config")
    assert body["errors"][0]["field"] == "config.secret"
    assert SECRET.removeprefix("whsec_") not in r.text


def test_unknown_connector_event_type_store_or_template(client, db, merchant, clock):
    r = client.post(
        "/v1/subscriptions",
        headers=merchant.auth(),
        json={"connector": "erp.nonesuch", "config": {}, "events": ["coupon.redeemed"]},
    )
    assert "webhook" in problem(r, 422, "unknown_connector")["known"]
    r = subscribe_raw(client, merchant, events=["coupon.redeemed", "coupon.exploded"])
    assert "coupon.redeemed" in problem(r, 422, "unknown_event_type")["known"]
    r = subscribe_raw(client, merchant, filter={"stores": ["SH-001", "XX-404"]})
    assert problem(r, 422, "store_not_found")["stores"] == ["XX-404"]
    r = subscribe_raw(client, merchant, filter={"templates": ["tpl_nonesuch"]})
    problem(r, 404, "template_not_found")
    problem(subscribe_raw(client, merchant, events=[]), 422, "invalid_request")
    problem(subscribe_raw(client, merchant, retry_schedule=[]), 422, "invalid_request")
    problem(subscribe_raw(client, merchant, retry_schedule=[-1]), 422, "invalid_request")
    # another merchant's store or template is unknown here
    other = make_merchant(db, clock.now, name="Other", stores=("ZZ-001",))
    other_tpl = make_template(db, other, clock.now)
    problem(subscribe_raw(client, merchant, filter={"stores": ["ZZ-001"]}), 422, "store_not_found")
    problem(
        subscribe_raw(client, merchant, filter={"templates": [other_tpl]}),
        404,
        "template_not_found",
    )
    assert listed(client, merchant) == []


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_are_never_returned(client, db, merchant, clock):
    texts = []
    r = subscribe_raw(client, merchant)
    texts.append(r.text)
    sub = r.json()["id"]
    auth = merchant.auth()
    texts.append(client.get(f"/v1/subscriptions/{sub}", headers=auth).text)
    texts.append(client.get("/v1/subscriptions", headers=auth).text)
    r = client.patch(f"/v1/subscriptions/{sub}", headers=auth, json={"config": {"url": URL2}})
    assert r.status_code == 200, r.text
    texts.append(r.text)
    r = client.patch(
        f"/v1/subscriptions/{sub}", headers=auth, json={"config": {"url": URL, "secret": SECRET2}}
    )
    assert r.status_code == 200 and r.json()["config"] == {"url": URL, "secret": "***"}
    texts.append(r.text)
    for action in ("pause", "resume"):
        texts.append(client.post(f"/v1/subscriptions/{sub}/{action}", headers=auth).text)
    texts.append(client.get("/schema/openapi.json").text)
    for text in texts:
        for secret in (SECRET, SECRET2):
            assert secret.removeprefix("whsec_") not in text
    assert stored_secret(db, sub) == SECRET2


def test_patch_without_the_secret_keeps_it(client, db, merchant, clock):
    sub = subscribe(client, merchant)
    r = client.patch(
        f"/v1/subscriptions/{sub}",
        headers=merchant.auth(),
        json={"config": {"url": URL2}, "description": "moved"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["config"] == {"url": URL2, "secret": "***"}
    assert r.json()["description"] == "moved"
    assert stored_secret(db, sub) == SECRET
    tpl = make_template(db, merchant, clock.now)
    a, b = issue(db, merchant, tpl, clock.now, count=2)
    redeem(client, merchant, a)
    with respx.mock() as mock:
        route = mock.post(URL2).mock(return_value=httpx.Response(200))
        drain(db, clock)
        [req] = [c.request for c in route.calls]
        assert Webhook(SECRET).verify(req.content, dict(req.headers))["data"]["code"] == a
        # a new secret signs what follows (and the old one no longer verifies)
        r = client.patch(
            f"/v1/subscriptions/{sub}",
            headers=merchant.auth(),
            json={"config": {"url": URL2, "secret": SECRET2}},
        )
        assert r.status_code == 200, r.text
        redeem(client, merchant, b)
        drain(db, clock)
        req = route.calls.last.request
    assert Webhook(SECRET2).verify(req.content, dict(req.headers))["data"]["code"] == b
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(req.content, dict(req.headers))


def test_patch_events_and_filter(client, db, merchant, clock):
    sub = subscribe(client, merchant)
    auth = merchant.auth()
    r = client.patch(
        f"/v1/subscriptions/{sub}",
        headers=auth,
        json={"events": ["coupon.redeemed"], "filter": {"stores": ["SH-002"]}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["events"] == ["coupon.redeemed"]
    assert r.json()["filter"] == {"stores": ["SH-002"], "templates": []}
    assert r.json()["config"] == {"url": URL, "secret": "***"}
    problem(
        client.patch(f"/v1/subscriptions/{sub}", headers=auth, json={"events": ["nope.nope"]}),
        422,
        "unknown_event_type",
    )
    problem(
        client.patch(
            f"/v1/subscriptions/{sub}", headers=auth, json={"config": {"url": "mailto:x"}}
        ),
        422,
        "url_not_allowed",  # the egress policy judges URLs before the schema
    )
    problem(
        client.patch(f"/v1/subscriptions/{sub}", headers=auth, json={"config": {"timeout": 0}}),
        422,
        "invalid_config",
    )
    problem(
        client.patch(
            f"/v1/subscriptions/{sub}", headers=auth, json={"filter": {"stores": ["XX-1"]}}
        ),
        422,
        "store_not_found",
    )
    assert subscription(client, merchant, sub)["events"] == ["coupon.redeemed"]
    assert stored_secret(db, sub) == SECRET
    tpl = make_template(db, merchant, clock.now)
    a, b = issue(db, merchant, tpl, clock.now, count=2)
    reverse(client, merchant, redeem(client, merchant, a, store="SH-002"))
    redeem(client, merchant, b, store="SH-001")
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=httpx.Response(200))
        drain(db, clock)
    assert [(e["type"], e["data"]["code"]) for e in sent_events(route)] == [("coupon.redeemed", a)]


# --- pause, resume, delete --------------------------------------------------------------------


def test_paused_deliveries_wait_and_go_out_on_resume(client, db, merchant, clock):
    sub = subscribe(client, merchant)
    r = client.post(f"/v1/subscriptions/{sub}/pause", headers=merchant.auth())
    assert r.status_code == 200 and r.json()["status"] == "paused"
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, code)
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=httpx.Response(200))
        with runtime(db, clock) as rt:
            assert rt.drain() == 0
            clock.advance(hours=1)
            assert rt.drain() == 0
            [d] = deliveries(client, merchant, subscription=sub)
            assert d["status"] == "pending" and d["attempts"] == 0
            assert route.call_count == 0
            r = client.post(f"/v1/subscriptions/{sub}/resume", headers=merchant.auth())
            assert r.status_code == 200 and r.json()["status"] == "active"
            assert rt.drain() == 1
    assert route.call_count == 1
    assert deliveries(client, merchant, subscription=sub)[0]["status"] == "succeeded"


def test_deleted_subscription_is_gone_and_gets_nothing(client, db, merchant, clock):
    sub = subscribe(client, merchant)
    keep = subscribe(client, merchant, URL2)
    tpl = make_template(db, merchant, clock.now)
    a, b = issue(db, merchant, tpl, clock.now, count=2)
    redeem(client, merchant, a)  # a delivery waiting when the subscription is deleted
    auth = merchant.auth()
    r = client.delete(f"/v1/subscriptions/{sub}", headers=auth)
    assert r.status_code == 200 and r.json() == {"id": sub, "status": "deleted"}
    problem(client.get(f"/v1/subscriptions/{sub}", headers=auth), 404, "subscription_not_found")
    problem(client.delete(f"/v1/subscriptions/{sub}", headers=auth), 404, "subscription_not_found")
    problem(
        client.patch(f"/v1/subscriptions/{sub}", headers=auth, json={"description": "x"}),
        404,
        "subscription_not_found",
    )
    for action in ("pause", "resume", "replay-dead"):
        problem(
            client.post(f"/v1/subscriptions/{sub}/{action}", headers=auth),
            404,
            "subscription_not_found",
        )
    assert [s["id"] for s in listed(client, merchant)] == [keep]
    redeem(client, merchant, b)
    with respx.mock(assert_all_called=False) as mock:
        gone = mock.post(URL).mock(return_value=httpx.Response(200))
        kept = mock.post(URL2).mock(return_value=httpx.Response(200))
        drain(db, clock)
    assert gone.call_count == 0
    assert sorted(e["data"]["code"] for e in sent_events(kept)) == sorted([a, b])
    assert len(deliveries(client, merchant, subscription=sub)) == 1  # none for the new event


# --- filters ---------------------------------------------------------------------------------


def test_store_filter_keeps_only_events_at_those_stores(client, db, merchant, clock):
    only = "https://sh002.example/hook"
    sub = subscribe(client, merchant, only, events=["*"], filter={"stores": ["SH-002"]})
    assert subscription(client, merchant, sub)["filter"]["stores"] == ["SH-002"]
    tpl = make_template(db, merchant, clock.now)
    a, b, c = issue(db, merchant, tpl, clock.now, count=3)  # coupon.issued: no store
    redeem(client, merchant, a, store="SH-001")
    reverse(client, merchant, redeem(client, merchant, b, store="SH-002"))
    redeem(client, merchant, c, store="BJ-001")
    with respx.mock() as mock:
        route = mock.post(only).mock(return_value=httpx.Response(200))
        drain(db, clock)
    assert [(e["type"], e["data"]["code"]) for e in sent_events(route)] == [
        ("coupon.redeemed", b),
        ("coupon.redemption_reversed", b),
    ]
    assert len(deliveries(client, merchant, subscription=sub)) == 2


def test_template_filter_keeps_only_events_about_those_templates(client, db, merchant, clock):
    tpl_a = make_template(db, merchant, clock.now, name="A")
    tpl_b = make_template(db, merchant, clock.now, name="B")
    sub = subscribe(
        client, merchant, events=["coupon.issued", "coupon.redeemed"], filter={"templates": [tpl_a]}
    )
    [a] = issue(db, merchant, tpl_a, clock.now)
    [b] = issue(db, merchant, tpl_b, clock.now)
    redeem(client, merchant, a)
    redeem(client, merchant, b)
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=httpx.Response(200))
        drain(db, clock)
    assert [(e["type"], e["data"]["code"]) for e in sent_events(route)] == [
        ("coupon.issued", a),
        ("coupon.redeemed", a),
    ]
    assert len(deliveries(client, merchant, subscription=sub)) == 2


def test_star_subscribes_to_every_event(client, db, merchant, clock):
    with db.connect() as conn:
        before = set(conn.execute(select(outbox_events.c.id)).scalars())
    sub = subscribe(client, merchant, events=["*"])
    assert subscription(client, merchant, sub)["events"] == ["*"]
    auth = merchant.auth()
    tpl = make_template(db, merchant, clock.now)
    a, b = issue(db, merchant, tpl, clock.now, count=2)
    reverse(client, merchant, redeem(client, merchant, a))
    assert (
        client.post(f"/v1/coupons/{b}/claim", json={"customer": "M0001"}, headers=auth).status_code
        == 200
    )
    assert (
        client.post(f"/v1/coupons/{b}/void", json={"reason": "test"}, headers=auth).status_code
        == 200
    )
    for action in ("pause", "resume"):
        assert client.post(f"/v1/templates/{tpl}/{action}", headers=auth).status_code == 200
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=httpx.Response(200))
        drain(db, clock)
    with db.connect() as conn:
        rows = conn.execute(select(outbox_events.c.id, outbox_events.c.type)).all()
    new = {r.id: r.type for r in rows if r.id not in before}
    sent = {e["id"]: e["type"] for e in sent_events(route)}
    assert sent == new
    assert set(new.values()) >= {
        "template.created",
        "coupon.issued",
        "coupon.redeemed",
        "coupon.redemption_reversed",
        "coupon.claimed",
        "coupon.voided",
        "template.paused",
        "template.resumed",
    }


# --- deliveries: list, one, replay -----------------------------------------------------------


def test_replay_dead_replays_every_dead_delivery_with_the_same_event_ids(
    client, db, merchant, clock
):
    sub = subscribe(client, merchant, events=["coupon.redeemed"])
    tpl = make_template(db, merchant, clock.now)
    a, b, c = issue(db, merchant, tpl, clock.now, count=3)
    for code in (a, b, c):
        redeem(client, merchant, code)
    broken = {a, b}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(410 if code_of(request) in broken else 200)

    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=answer)
        drain(db, clock)
        dead = deliveries(client, merchant, subscription=sub, status="dead")
        assert len(dead) == 2
        first_ids = {e["id"] for e in sent_events(route) if e["data"]["code"] in broken}
        broken.clear()  # the receiver is fixed
        clock.advance(minutes=5)
        r = client.post(f"/v1/subscriptions/{sub}/replay-dead", headers=merchant.auth())
        assert r.status_code == 200, r.text
        assert r.json() == {"subscription_id": sub, "replayed": 2}
        for d in dead:
            again = delivery(client, merchant, d["id"])
            assert again["status"] == "pending" and again["attempts"] == 0
        drain(db, clock)
        replayed = sent_events(route)[3:]
    assert {e["id"] for e in replayed} == first_ids and len(replayed) == 2
    assert {d["status"] for d in deliveries(client, merchant, subscription=sub)} == {"succeeded"}
    r = client.post(f"/v1/subscriptions/{sub}/replay-dead", headers=merchant.auth())
    assert r.json()["replayed"] == 0
    for d in dead:  # the attempt log keeps the history across the replay
        log = delivery(client, merchant, d["id"])["attempt_log"]
        assert [a["http_status"] for a in log] == [410, 200]


def test_list_deliveries_filters_and_pages(client, db, merchant, clock):
    sub_a = subscribe(client, merchant)
    sub_b = subscribe(client, merchant, URL2, events=["coupon.redeemed"])
    tpl = make_template(db, merchant, clock.now)
    c1, c2, c3 = issue(db, merchant, tpl, clock.now, count=3)
    t0 = clock.now
    rid1 = redeem(client, merchant, c1)
    clock.advance(seconds=10)
    redeem(client, merchant, c2)
    clock.advance(seconds=10)
    redeem(client, merchant, c3)
    clock.advance(seconds=10)
    reverse(client, merchant, rid1)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400 if code_of(request) == c2 else 200)

    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=answer)
        mock.post(URL2).mock(side_effect=answer)
        drain(db, clock)

    every = deliveries(client, merchant)
    assert len(every) == 7
    keys = [(d["created_at"], d["id"]) for d in every]
    assert keys == sorted(keys, reverse=True)  # newest first
    assert {d["subscription_id"] for d in deliveries(client, merchant, subscription=sub_b)} == {
        sub_b
    }
    assert len(deliveries(client, merchant, subscription=sub_a)) == 4
    dead = deliveries(client, merchant, status="dead")
    assert len(dead) == 2 and {d["last_status"] for d in dead} == {400}
    assert len(deliveries(client, merchant, subscription=sub_a, status="succeeded")) == 3
    [rev] = deliveries(client, merchant, event_type="coupon.redemption_reversed")
    assert rev["subscription_id"] == sub_a
    window = deliveries(
        client,
        merchant,
        **{"from": iso_z(t0 + timedelta(seconds=10)), "to": iso_z(t0 + timedelta(seconds=30))},
    )
    assert len(window) == 4  # c2 and c3, to both subscriptions; `to` is exclusive
    assert deliveries(client, merchant, **{"from": iso_z(t0 + timedelta(hours=1))}) == []
    assert deliveries(client, merchant, subscription="sub_nonesuch") == []

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = client.get("/v1/deliveries", headers=merchant.auth(), params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [d["id"] for d in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4 and seen == [d["id"] for d in every]
    r = client.get("/v1/deliveries", headers=merchant.auth(), params={"status": "dead", "limit": 1})
    assert len(r.json()["items"]) == 1 and r.json()["next_cursor"]
    nxt = client.get(
        "/v1/deliveries",
        headers=merchant.auth(),
        params={"status": "dead", "limit": 1, "cursor": r.json()["next_cursor"]},
    )
    assert nxt.json()["next_cursor"] is None
    assert {r.json()["items"][0]["id"], nxt.json()["items"][0]["id"]} == {d["id"] for d in dead}

    bad = client.get("/v1/deliveries", headers=merchant.auth(), params={"status": "lost"})
    problem(bad, 422, "invalid_request")
    bad = client.get("/v1/deliveries", headers=merchant.auth(), params={"cursor": "%%%"})
    assert bad.json()["code"] == "invalid_cursor"
    bad = client.get("/v1/deliveries", headers=merchant.auth(), params={"limit": 0})
    problem(bad, 422, "invalid_request")
    bad = client.get("/v1/deliveries", headers=merchant.auth(), params={"from": "yesterday"})
    problem(bad, 422, "invalid_request")


def test_one_delivery_has_its_attempt_log(client, db, merchant, clock):
    sub = subscribe(client, merchant, retry_schedule=[1, 1])
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, code)
    answers = iter([httpx.Response(503, text="x" * 5000), httpx.Response(200, text="thanks")])

    def answer(request: httpx.Request) -> httpx.Response:
        time.sleep(0.05)
        return next(answers)

    starts = []
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=answer)
        with runtime(db, clock) as rt:
            starts.append(iso_z(clock.now))
            rt.drain()
            clock.advance(seconds=2)
            starts.append(iso_z(clock.now))
            rt.drain()
    [d] = deliveries(client, merchant, subscription=sub)
    full = delivery(client, merchant, d["id"])
    assert full["status"] == "succeeded" and full["attempts"] == 2
    assert full["event_type"] == "coupon.redeemed" and full["delivered_at"] == starts[1]
    first, second = full["attempt_log"]
    assert (first["attempt"], first["outcome"], first["http_status"]) == (1, "retry", 503)
    assert first["response_body"] == "x" * MAX_BODY_LOGGED  # truncated
    assert first["error"] == "HTTP 503"
    assert (second["attempt"], second["outcome"], second["http_status"]) == (2, "delivered", 200)
    assert second["response_body"] == "thanks" and second["error"] is None
    assert [first["started_at"], second["started_at"]] == starts
    for a in (first, second):
        assert isinstance(a["latency_ms"], int) and 50 <= a["latency_ms"] < 5000


def test_replay_only_dead_or_succeeded_deliveries(client, db, merchant, clock):
    sub = subscribe(client, merchant, events=["coupon.redeemed"])
    tpl = make_template(db, merchant, clock.now)
    [a] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, a)
    [pending] = deliveries(client, merchant, subscription=sub)
    auth = merchant.auth()
    r = client.post(f"/v1/deliveries/{pending['id']}/replay", headers=auth)
    assert problem(r, 409, "delivery_in_progress")["delivery_status"] == "pending"
    problem(
        client.post("/v1/deliveries/dlv_nonesuch/replay", headers=auth), 404, "delivery_not_found"
    )
    problem(client.get("/v1/deliveries/dlv_nonesuch", headers=auth), 404, "delivery_not_found")
    with respx.mock() as mock:
        route = mock.post(URL).mock(
            side_effect=[httpx.Response(503), httpx.Response(200), httpx.Response(200)]
        )
        drain(db, clock)  # 503: retrying
        r = client.post(f"/v1/deliveries/{pending['id']}/replay", headers=auth)
        assert problem(r, 409, "delivery_in_progress")["delivery_status"] == "retrying"
        clock.advance(minutes=1)
        drain(db, clock)  # 200: succeeded
        r = client.post(f"/v1/deliveries/{pending['id']}/replay", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending" and r.json()["delivered_at"] is None
        drain(db, clock)
    assert route.call_count == 3
    ids = {e["id"] for e in sent_events(route)}
    assert len(ids) == 1  # the same event, resent
    assert delivery(client, merchant, pending["id"])["status"] == "succeeded"


# --- who may see what ------------------------------------------------------------------------


def _routes(app) -> list[tuple[str, str]]:
    ops = []
    for route in app.routes:
        if route.path.startswith(("/v1/subscriptions", "/v1/deliveries")):
            for method in sorted(set(route.methods) - {"OPTIONS", "HEAD"}):
                ops.append((method, route.path))
    return sorted(ops)


def _world(client, db, merchant, clock):
    sub = subscribe(client, merchant)
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, code)
    [dlv] = deliveries(client, merchant, subscription=sub)
    return sub, dlv["id"]


BODIES = {
    ("POST", "/v1/subscriptions"): {
        "connector": "webhook",
        "config": {"url": URL2, "secret": SECRET2},
        "events": ["*"],
    },
    ("PATCH", "/v1/subscriptions/{subscription_id:str}"): {"description": "changed"},
}


def _call(client, method, route, auth, sub, dlv):
    path = re.sub(r"\{subscription_id:str\}", sub, route)
    path = re.sub(r"\{delivery_id:str\}", dlv, path)
    return client.request(method, path, headers=auth, json=BODIES.get((method, route)))


def test_store_keys_are_forbidden_everywhere(client, db, merchant, clock):
    sub, dlv = _world(client, db, merchant, clock)
    ops = _routes(client.app)
    assert len(ops) >= 11
    for store_key in merchant.store_keys.values():
        for method, route in ops:
            r = _call(client, method, route, merchant.auth(store_key), sub, dlv)
            problem(r, 403, "forbidden")
    assert [s["id"] for s in listed(client, merchant)] == [sub]
    s = subscription(client, merchant, sub)
    assert s["status"] == "active" and s["description"] is None
    assert delivery(client, merchant, dlv)["status"] == "pending"


def test_another_merchant_cannot_see_or_touch_them(client, db, merchant, clock):
    sub, dlv = _world(client, db, merchant, clock)
    other = make_merchant(db, clock.now, name="Other")
    auth = other.auth()
    for method, route in _routes(client.app):
        if "{" not in route:
            continue
        r = _call(client, method, route, auth, sub, dlv)
        code = "subscription_not_found" if "subscription_id" in route else "delivery_not_found"
        problem(r, 404, code)
    assert listed(client, other) == []
    assert deliveries(client, other) == []
    assert deliveries(client, other, subscription=sub) == []
    s = subscription(client, merchant, sub)
    assert s["status"] == "active" and s["description"] is None
    assert delivery(client, merchant, dlv)["status"] == "pending"
    # B's own subscription receives only B's events
    b_sub = subscribe(client, other, URL2)
    b_tpl = make_template(db, other, clock.now)
    [b_code] = issue(db, other, b_tpl, clock.now)
    redeem(client, other, b_code)
    with db.connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(deliveries_table)
            .where(deliveries_table.c.subscription_id == b_sub)
        ).scalar()
    assert n == 1
    assert [d["subscription_id"] for d in deliveries(client, other)] == [b_sub]
    assert [d["id"] for d in deliveries(client, merchant)] == [dlv]


def test_deleting_a_subscription_cancels_its_waiting_deliveries(client, db, merchant, clock):
    from sqlalchemy import select

    from hub.db.schema import deliveries

    r = client.post(
        "/v1/subscriptions",
        headers=merchant.auth(),
        json={
            "connector": "webhook",
            "config": {
                "url": "http://127.0.0.1:9/hook",
                "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "headers": {"Authorization": "Bearer erp-token-123"},
            },
            "events": ["*"],
        },
    )
    assert r.status_code == 201, r.text
    assert "erp-token-123" not in r.text and r.json()["config"]["headers"] == "***"
    sub = r.json()["id"]
    from tests.conftest import issue, make_template

    tpl = make_template(db, merchant, clock.now)
    issue(db, merchant, tpl, clock.now, count=2)
    assert client.delete(f"/v1/subscriptions/{sub}", headers=merchant.auth()).status_code == 200
    with db.connect() as conn:
        statuses = set(
            conn.execute(
                select(deliveries.c.status).where(deliveries.c.subscription_id == sub)
            ).scalars()
        )
    assert statuses == {"cancelled"}
    metrics = client.get("/metrics").text
    assert 'hub_deliveries{status="cancelled"}' in metrics
    assert sub not in metrics

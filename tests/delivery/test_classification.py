"""What the webhook connector sends, and how every kind of answer is classified.

The receiver is mocked with respx (it patches the transport of the runtime's ordinary
httpx client); deliveries run synchronously with ``Runtime.drain()`` on the test clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors.webhook import WebhookConnector, secret_key, sign
from hub.connectors import (
    MAX_RETRY_AFTER,
    Delivered,
    Failed,
    OutboundResponse,
    Retry,
    retry_after_seconds,
)
from hub.delivery import policy
from hub.delivery.runtime import Runtime
from tests.conftest import issue, make_template
from tests.delivery.support import (
    SECRET,
    URL,
    code_of,
    deliveries,
    delivery,
    drain,
    event_of,
    parse_time,
    redeem,
    runtime,
    subscribe,
)

ENVELOPE_KEYS = {"id", "type", "occurred_at", "recorded_at", "merchant_id", "data"}


# --- the request ------------------------------------------------------------------------


def test_request_is_a_signed_json_envelope(client, db, merchant, clock):
    sub = subscribe(client, merchant)
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    event_time = clock.now
    redeem(client, merchant, code)
    clock.advance(seconds=7)  # the attempt happens later than the event
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=httpx.Response(204))
        assert drain(db, clock) == 1
    assert route.call_count == 1
    req = route.calls.last.request
    assert req.method == "POST" and str(req.url) == URL
    assert req.headers["content-type"] == "application/json"

    body = json.loads(req.content)
    assert set(body) == ENVELOPE_KEYS
    [d] = deliveries(client, merchant, subscription=sub)
    assert body["id"] == d["event_id"] and body["id"].startswith("evt_")
    assert body["type"] == "coupon.redeemed"
    assert body["merchant_id"] == merchant.id
    assert parse_time(body["occurred_at"]) == event_time
    assert parse_time(body["recorded_at"]) == event_time
    assert body["data"]["code"] == code and body["data"]["store"] == "SH-001"
    assert body["data"]["status"] == "redeemed"

    assert req.headers["webhook-id"] == body["id"]
    assert req.headers["webhook-timestamp"] == str(int(clock.now.timestamp()))
    assert req.headers["webhook-signature"].startswith("v1,")
    headers = dict(req.headers)
    assert Webhook(SECRET).verify(req.content, headers) == body
    # the signature covers the body, the id and the timestamp, and needs the secret
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(req.content.replace(b"SH-001", b"SH-002"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(req.content, {**headers, "webhook-id": "evt_other"})
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another secret key!!").decode()).verify(
            req.content, headers
        )
    assert delivery(client, merchant, d["id"])["status"] == "succeeded"


def test_each_attempt_is_signed_with_its_own_time_and_the_same_id(client, db, merchant, clock):
    subscribe(client, merchant, retry_schedule=[1, 1])
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, code)
    times = []
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=[httpx.Response(503), httpx.Response(200)])
        with runtime(db, clock) as rt:
            times.append(int(clock.now.timestamp()))
            rt.drain()
            clock.advance(seconds=30)
            times.append(int(clock.now.timestamp()))
            rt.drain()
    first, second = (c.request for c in route.calls)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.content == second.content
    assert [int(r.headers["webhook-timestamp"]) for r in (first, second)] == times
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    for req in (first, second):
        assert Webhook(SECRET).verify(req.content, dict(req.headers))["id"] == event_of(req)["id"]


# --- every answer, end to end -----------------------------------------------------------

# status -> (delivery status, attempt outcome)
TABLE = {
    200: ("succeeded", "delivered"),
    201: ("succeeded", "delivered"),
    202: ("succeeded", "delivered"),
    204: ("succeeded", "delivered"),
    301: ("dead", "failed"),
    302: ("dead", "failed"),
    400: ("dead", "failed"),
    401: ("dead", "failed"),
    403: ("dead", "failed"),
    404: ("dead", "failed"),
    410: ("dead", "failed"),
    422: ("dead", "failed"),
    408: ("retrying", "retry"),
    429: ("retrying", "retry"),
    500: ("retrying", "retry"),
    502: ("retrying", "retry"),
    503: ("retrying", "retry"),
    504: ("retrying", "retry"),
}
ELSEWHERE = "https://elsewhere.example/moved"


def test_every_status_family_is_classified(client, db, merchant, clock, monkeypatch):
    monkeypatch.setattr(policy, "CIRCUIT_THRESHOLD", 1000)  # many failures in a row here
    sub = subscribe(client, merchant, events=["coupon.redeemed"])
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=len(TABLE))
    status_of = dict(zip(codes, TABLE, strict=True))
    for code in codes:
        redeem(client, merchant, code)

    def answer(request: httpx.Request) -> httpx.Response:
        status = status_of[code_of(request) or ""]
        headers = {"location": ELSEWHERE} if 300 <= status < 400 else {}
        return httpx.Response(status, headers=headers, text=f"answer {status}")

    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(URL).mock(side_effect=answer)
        moved = mock.route(host="elsewhere.example").mock(return_value=httpx.Response(200))
        assert drain(db, clock) == len(TABLE)  # one attempt each, nothing due again yet
    assert route.call_count == len(TABLE)
    assert moved.call_count == 0  # redirects are not followed

    items = deliveries(client, merchant, subscription=sub)
    assert len(items) == len(TABLE)
    by_code = {}
    for item in items:
        full = delivery(client, merchant, item["id"])
        [attempt] = full["attempt_log"]
        by_code[attempt["response_body"]] = (full, attempt)
    failures = []
    for status, (want_status, want_outcome) in TABLE.items():
        full, attempt = by_code[f"answer {status}"]
        got = (full["status"], attempt["outcome"], attempt["http_status"], full["last_status"])
        if got != (want_status, want_outcome, status, status):
            failures.append(f"HTTP {status}: {got}")
        if want_status == "retrying":
            assert parse_time(full["next_attempt_at"]) > clock.now
            assert full["last_error"] == f"HTTP {status}"
        if want_status == "dead":
            assert full["last_error"].startswith(f"HTTP {status}")
        if want_status == "succeeded":
            assert full["delivered_at"] is not None and full["last_error"] is None
    assert not failures, failures
    dead = {d["id"] for d in deliveries(client, merchant, status="dead")}
    assert len(dead) == 8


@pytest.mark.parametrize("status", sorted(TABLE))
def test_connector_classifies_the_status(status):
    outcome = WebhookConnector().classify(OutboundResponse(status, {}, b""), None)
    want = {"succeeded": Delivered, "dead": Failed, "retrying": Retry}[TABLE[status][0]]
    assert isinstance(outcome, want)


def test_connector_classifies_transport_errors_as_retry():
    outcome = WebhookConnector().classify(None, httpx.ConnectError("refused"))
    assert isinstance(outcome, Retry) and "ConnectError" in outcome.reason
    assert outcome.after is None


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout])
def test_transport_errors_retry_after_three_tries_in_the_attempt(client, db, merchant, clock,
                                                                 error):
    sub = subscribe(client, merchant, events=["coupon.redeemed"])
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, code)
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=error("receiver unreachable"))
        assert drain(db, clock) == 1
    assert route.call_count == 3  # tenacity's in-attempt retries, one delivery attempt
    [d] = deliveries(client, merchant, subscription=sub)
    assert d["status"] == "retrying" and d["attempts"] == 1
    assert d["last_status"] is None and error.__name__ in d["last_error"]
    assert parse_time(d["next_attempt_at"]) > clock.now
    [attempt] = delivery(client, merchant, d["id"])["attempt_log"]
    assert attempt["outcome"] == "retry" and attempt["http_status"] is None


def test_a_transient_error_inside_the_attempt_is_recovered(client, db, merchant, clock):
    sub = subscribe(client, merchant, events=["coupon.redeemed"])
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, code)
    with respx.mock() as mock:
        route = mock.post(URL).mock(
            side_effect=[httpx.ConnectError("reset"), httpx.ReadTimeout("slow"),
                         httpx.Response(200)]
        )
        assert drain(db, clock) == 1
    assert route.call_count == 3
    [d] = deliveries(client, merchant, subscription=sub)
    assert d["status"] == "succeeded" and d["attempts"] == 1


# --- Retry-After and the schedule ------------------------------------------------------


def _one_redemption(client, db, merchant, clock, **sub_extra):
    sub = subscribe(client, merchant, events=["coupon.redeemed"], **sub_extra)
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem(client, merchant, code)
    return sub


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_the_lower_bound(client, db, merchant, clock, status):
    sub = _one_redemption(client, db, merchant, clock, retry_schedule=[1, 1, 1])
    with respx.mock() as mock:
        route = mock.post(URL).mock(
            side_effect=[httpx.Response(status, headers={"Retry-After": "120"}),
                         httpx.Response(200)]
        )
        with runtime(db, clock) as rt:
            attempted_at = clock.now
            rt.drain()
            [d] = deliveries(client, merchant, subscription=sub)
            assert d["status"] == "retrying"
            next_at = parse_time(d["next_attempt_at"])
            # the schedule alone would wait at most 1 s; the receiver asked for 120
            assert attempted_at + timedelta(seconds=120) <= next_at
            assert next_at <= attempted_at + timedelta(seconds=121)
            clock.advance(seconds=100)
            assert rt.drain() == 0 and route.call_count == 1
            clock.advance(seconds=21)
            assert rt.drain() == 1
    assert route.call_count == 2
    assert deliveries(client, merchant, subscription=sub)[0]["status"] == "succeeded"


def test_retry_after_http_date_is_the_lower_bound(client, db, merchant, clock):
    sub = _one_redemption(client, db, merchant, clock, retry_schedule=[1, 1])
    # An HTTP-date is absolute: this runtime runs on the wall clock, like a real worker.
    wall = Runtime(db, clock=lambda: datetime.now(UTC))
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    try:
        with respx.mock() as mock:
            mock.post(URL).mock(
                return_value=httpx.Response(
                    503, headers={"Retry-After": format_datetime(when, usegmt=True)}
                )
            )
            assert wall.drain() == 1
    finally:
        wall.stop()
    [d] = deliveries(client, merchant, subscription=sub)
    assert d["status"] == "retrying"
    next_at = parse_time(d["next_attempt_at"])
    assert when <= next_at < when + timedelta(seconds=5)


def test_exhausted_schedule_goes_dead(client, db, merchant, clock):
    sub = _one_redemption(client, db, merchant, clock, retry_schedule=[1, 1])
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=httpx.Response(500, text="down"))
        with runtime(db, clock) as rt:
            statuses = []
            for _ in range(4):
                rt.drain()
                statuses.append(deliveries(client, merchant, subscription=sub)[0]["status"])
                clock.advance(seconds=2)
            clock.advance(days=2)
            assert rt.drain() == 0
    assert statuses == ["retrying", "retrying", "dead", "dead"]
    assert route.call_count == 3  # the first attempt and one per step of the schedule
    [d] = deliveries(client, merchant, status="dead")
    full = delivery(client, merchant, d["id"])
    assert full["attempts"] == 3 and full["last_status"] == 500
    assert [a["outcome"] for a in full["attempt_log"]] == ["retry"] * 3
    assert [a["attempt"] for a in full["attempt_log"]] == [1, 2, 3]


def test_default_schedule_spreads_retries_over_hours():
    total = sum(policy.DEFAULT_SCHEDULE)
    assert 12 * 3600 <= total <= 48 * 3600
    assert list(policy.DEFAULT_SCHEDULE) == sorted(policy.DEFAULT_SCHEDULE)


# --- pure units -------------------------------------------------------------------------


def test_next_delay_full_jitter_within_each_step():
    rng = random.Random(7)
    schedule = [10, 100, 1000]
    for attempts_made, step in enumerate(schedule, start=1):
        draws = [policy.next_delay(attempts_made, schedule, rng=rng) for _ in range(400)]
        delays = [d for d in draws if d is not None]
        assert len(delays) == len(draws) and all(0 <= d <= step for d in delays)
        # full jitter: uniform over [0, step], not bunched at the top
        assert min(delays) < 0.1 * step and max(delays) > 0.9 * step
        assert 0.4 * step < sum(delays) / len(delays) < 0.6 * step


def test_next_delay_is_none_after_the_schedule():
    assert policy.next_delay(2, [1, 1]) is not None
    assert policy.next_delay(3, [1, 1]) is None
    assert policy.next_delay(3, [1, 1], retry_after=5) is None
    n = len(policy.DEFAULT_SCHEDULE)
    assert policy.next_delay(n) is not None and policy.next_delay(n + 1) is None


def test_next_delay_uses_the_default_schedule_when_none_is_set():
    rng = random.Random(1)
    for attempts_made, step in enumerate(policy.DEFAULT_SCHEDULE, start=1):
        d = policy.next_delay(attempts_made, None, rng=rng)
        assert d is not None and 0 <= d <= step


def test_retry_after_is_a_lower_bound_of_the_delay():
    rng = random.Random(3)
    for _ in range(200):
        assert policy.next_delay(1, [10], retry_after=60, rng=rng) == 60
        d = policy.next_delay(1, [10], retry_after=4, rng=rng)
        assert d is not None and 4 <= d <= 10


def test_retry_after_header_values():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(" 7 ") == 7
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True),
                               now=now) == 90
    assert retry_after_seconds("Sun, 01 Mar 2026 12:05:00 GMT", now=now) == 300
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True),
                               now=now) == 0
    assert retry_after_seconds("-5") == 0
    assert retry_after_seconds(str(10 * 86400)) == MAX_RETRY_AFTER
    for junk in (None, "", "soon", "Mon, 99 Foo 2026"):
        assert retry_after_seconds(junk) is None


def test_classify_passes_retry_after_on():
    c = WebhookConnector()
    outcome = c.classify(OutboundResponse(429, {"Retry-After": "30"}, b""), None)
    assert isinstance(outcome, Retry) and outcome.after == 30
    outcome = c.classify(OutboundResponse(400, {"Retry-After": "30"}, b""), None)
    assert isinstance(outcome, Failed)


def test_sign_matches_the_standard_webhooks_test_vector():
    # The vector of the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, payload = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, msg_id, ts, payload) == expected
    reference = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), payload.decode())
    assert reference == expected
    # a bare base64 secret is the same key
    assert sign(secret.removeprefix("whsec_"), msg_id, ts, payload) == expected
    mac = hmac.new(secret_key(secret), f"{msg_id}.{ts}.".encode() + payload, hashlib.sha256)
    assert expected == "v1," + base64.b64encode(mac.digest()).decode()


def test_build_requests_is_deterministic_and_keeps_extra_headers():
    c = WebhookConnector()
    event = {"id": "evt_1", "type": "coupon.redeemed", "occurred_at": "2026-01-01T00:00:00.000Z",
             "recorded_at": "2026-01-01T00:00:00.000Z", "merchant_id": "mch_1", "data": {"a": 1}}
    config = {"url": URL, "secret": SECRET, "headers": {"x-tenant": "t1"}, "timeout": 3}
    now = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    [a] = c.build_requests(event, config, now=now)
    [b] = c.build_requests(event, config, now=now)
    assert a == b
    assert a.method == "POST" and a.url == URL and a.timeout == 3.0
    assert a.headers["x-tenant"] == "t1" and a.headers["webhook-timestamp"] == "1767225605"
    assert Webhook(SECRET).sign("evt_1", now, a.body.decode()) == a.headers["webhook-signature"]
    assert json.loads(a.body) == event

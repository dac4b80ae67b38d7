"""crm.webhook: the generic loyalty accrual message, signed per Standard Webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from connectors.crm.webhook import CrmWebhookConnector
from hub.connectors import Delivered, Failed, OutboundResponse, Retry
from hub.delivery.exchange import SessionCache, run_exchange
from hub.domain.errors import DomainError
from hub.testing import NOW, ScriptedTransport, sample_event

from .fakes import WEBHOOK_CONFIG

WH = CrmWebhookConnector()


def deliver(
    event: dict[str, Any],
    answer: OutboundResponse | None = None,
    config: dict[str, Any] | None = None,
):
    transport = ScriptedTransport(lambda r: answer or OutboundResponse(204, {}, b""))
    outcome, _ = run_exchange(
        WH,
        event,
        dict(config or WEBHOOK_CONFIG),
        now=NOW,
        transport=transport,
        sessions=SessionCache(),
        session_owner="sub_test",
    )
    return outcome, transport.sent


def test_a_redemption_posts_a_signed_credit_message():
    outcome, sent = deliver(sample_event("coupon.redeemed", kind="exchange"))
    assert outcome == Delivered()
    (request,) = sent
    assert (request.method, request.url) == ("POST", "https://crm.example/loyalty")
    assert json.loads(request.body) == {
        "id": "evt_01JDK000000000000000000007",
        "type": "loyalty.points",
        "member": "C-0001",
        "points": 88,
        "reason": "redemption",
        "redemption_id": "rdm_01JDK000000000000000000013",
        "occurred_at": "2026-11-25T06:30:00Z",
        "merchant_id": "mch_01JDK000000000000000000012",
        "source_event": "coupon.redeemed",
    }
    headers = dict(request.headers)
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "evt_01JDK000000000000000000007"
    assert headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    # a receiver verifies it with the reference Standard Webhooks library (which checks
    # the timestamp against its clock: sign at the current time)
    (fresh,) = WH.build_requests(
        sample_event("coupon.redeemed", kind="exchange"),
        dict(WEBHOOK_CONFIG),
        now=datetime.now(UTC),
    )
    verified = Webhook(WEBHOOK_CONFIG["secret"]).verify(fresh.body, dict(fresh.headers))
    assert verified["points"] == 88 and fresh.body == request.body


def test_a_reversal_posts_negative_points():
    _outcome, (request,) = deliver(sample_event("coupon.redemption_reversed", kind="exchange"))
    body = json.loads(request.body)
    assert body["points"] == -88 and body["reason"] == "reversal"
    assert body["source_event"] == "coupon.redemption_reversed"
    assert body["redemption_id"] == "rdm_01JDK000000000000000000013"


def test_extra_headers_and_timeout():
    config = {**WEBHOOK_CONFIG, "headers": {"x-api-key": "k3y"}, "timeout": 3}
    _, (request,) = deliver(sample_event("coupon.redeemed"), config=config)
    assert request.headers["x-api-key"] == "k3y" and request.timeout == 3.0


def test_no_customer_or_no_points_sends_nothing():
    event = sample_event("coupon.redeemed")
    event["data"]["customer"] = None
    assert deliver(event) == (Delivered(), [])
    config = {**WEBHOOK_CONFIG, "points": {"default": {"per_yuan": 0}}}
    assert deliver(sample_event("coupon.redeemed"), config=config) == (Delivered(), [])
    assert deliver(sample_event("coupon.voided")) == (Delivered(), [])


def test_a_malformed_event_fails_cleanly():
    event = sample_event("coupon.redeemed")
    del event["data"]["order"]
    outcome, sent = deliver(event)
    assert isinstance(outcome, Failed) and outcome.reason.startswith("cannot compute the points")
    assert sent == []


@pytest.mark.parametrize(
    "status,expected", [(200, Delivered), (500, Retry), (429, Retry), (400, Failed), (410, Failed)]
)
def test_answers_are_classified_like_the_hubs_default(status, expected):
    outcome, _ = deliver(sample_event("coupon.redeemed"), OutboundResponse(status, {}, b""))
    assert isinstance(outcome, expected)


def test_a_secret_that_is_not_base64_is_refused_and_headers_are_write_only():
    with pytest.raises(DomainError) as info:
        WH.check_config({**WEBHOOK_CONFIG, "secret": "whsec_not*base64*at*all!!"})
    assert info.value.code == "invalid_config"
    shown = WH.redact({**WEBHOOK_CONFIG, "headers": {"x-api-key": "k3y"}})
    assert shown["secret"] == shown["headers"] == "***"

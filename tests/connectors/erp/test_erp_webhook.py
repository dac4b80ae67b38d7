"""erp.webhook: stock movements as a signed generic JSON message."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from standardwebhooks.webhooks import Webhook

from connectors.erp.stock import StockError, UnmappedStore
from connectors.erp.webhook import ErpWebhookConnector, message
from connectors.webhook import sign
from hub.connectors import Delivered, Failed, OutboundRequest, OutboundResponse, Retry
from hub.delivery.exchange import SessionCache, run_exchange
from hub.domain.errors import DomainError
from hub.testing import NOW, ScriptedTransport, all_samples, sample_event

ERP = ErpWebhookConnector()
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL = "https://erp-adapter.example/hub/stock"
CONFIG: dict[str, Any] = {
    "url": URL,
    "secret": SECRET,
    "locations": {"SH-001": "WH-SH-001"},
    "sku_map": {"SKU-GIFT-1": "100042"},
}
GIFT = sample_event("coupon.redeemed", kind="exchange")
CASH = sample_event("coupon.redeemed", kind="threshold")
GIFT_BACK = sample_event("coupon.redemption_reversed", kind="exchange")


def ok(request: OutboundRequest) -> OutboundResponse:
    return OutboundResponse(202, {}, b"")


def deliver(
    event: dict[str, Any], config: dict[str, Any] | None = None, answer: Any = ok
) -> tuple[Any, ScriptedTransport]:
    transport = ScriptedTransport(answer)
    outcome, _ = run_exchange(
        ERP,
        copy.deepcopy(event),
        copy.deepcopy(config if config is not None else CONFIG),
        now=NOW,
        transport=transport,
        sessions=SessionCache(),
        session_owner="sub_test",
    )
    return outcome, transport


def test_a_gift_redemption_posts_one_signed_stock_movement() -> None:
    outcome, transport = deliver(GIFT)
    assert outcome == Delivered()
    [request] = transport.sent
    assert (request.method, request.url) == ("POST", URL)
    assert json.loads(request.body) == {
        "id": GIFT["id"],
        "type": "stock.movement",
        "occurred_at": GIFT["occurred_at"],
        "merchant_id": GIFT["merchant_id"],
        "movements": [
            {
                "sku": "100042",
                "qty": 1,
                "direction": "out",
                "store": "SH-001",
                "location": "WH-SH-001",
            }
        ],
        "source_event": "coupon.redeemed",
        "redemption_id": GIFT["data"]["redemption_id"],
    }
    timestamp = int(NOW.timestamp())
    assert request.headers == {
        "content-type": "application/json",
        "webhook-id": GIFT["id"],
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(SECRET, GIFT["id"], timestamp, request.body),
    }


def test_the_signature_verifies_with_the_standard_webhooks_library() -> None:
    now = datetime.now(UTC)
    [request] = ERP.build_requests(copy.deepcopy(GIFT), dict(CONFIG), now=now)
    verified = Webhook(SECRET).verify(request.body, dict(request.headers))
    assert verified["id"] == GIFT["id"] and verified["type"] == "stock.movement"


def test_a_reversal_moves_the_gift_back_in() -> None:
    _, transport = deliver(GIFT_BACK)
    body = json.loads(transport.sent[0].body)
    assert body["id"] == GIFT_BACK["id"] and body["source_event"] == "coupon.redemption_reversed"
    assert [(m["sku"], m["qty"], m["direction"]) for m in body["movements"]] == [
        ("100042", 1, "in")
    ]
    assert body["redemption_id"] == GIFT["data"]["redemption_id"]


def test_a_threshold_coupon_sends_nothing() -> None:
    outcome, transport = deliver(CASH)
    assert outcome == Delivered() and transport.sent == []
    assert ERP.build_requests(copy.deepcopy(CASH), dict(CONFIG), now=NOW) == []


@pytest.mark.parametrize(
    "event",
    [e for e in all_samples() if not e["type"].startswith("coupon.rede")],
    ids=lambda e: e["type"],
)
def test_events_without_stock_send_nothing(event: dict[str, Any]) -> None:
    outcome, transport = deliver(event, {**CONFIG, "move_stock_for_lines": True})
    assert outcome == Delivered() and transport.sent == []


def test_order_lines_when_configured() -> None:
    _, transport = deliver(CASH, {**CONFIG, "move_stock_for_lines": True})
    body = json.loads(transport.sent[0].body)
    assert [(m["sku"], m["qty"]) for m in body["movements"]] == [("SKU-TEA-1", 2), ("100042", 1)]


def test_without_locations_the_store_code_is_the_location() -> None:
    config = {"url": URL, "secret": SECRET}
    _, transport = deliver(GIFT, config)
    [movement] = json.loads(transport.sent[0].body)["movements"]
    assert movement["location"] == "SH-001" and movement["sku"] == "SKU-GIFT-1"


def test_a_location_may_be_an_object() -> None:
    config = {**CONFIG, "locations": {"SH-001": {"warehouse": "W1", "bin": 7}}}
    ERP.check_config(copy.deepcopy(config))
    _, transport = deliver(GIFT, config)
    [movement] = json.loads(transport.sent[0].body)["movements"]
    assert movement["location"] == {"warehouse": "W1", "bin": 7}


def test_an_unmapped_store_fails_naming_it_and_sends_nothing() -> None:
    config = {**CONFIG, "locations": {"BJ-002": "WH-BJ"}}
    outcome, transport = deliver(GIFT, config)
    assert isinstance(outcome, Failed) and "'SH-001'" in outcome.reason
    assert transport.sent == []
    with pytest.raises(UnmappedStore):
        ERP.build_requests(copy.deepcopy(GIFT), config, now=NOW)
    outcome, transport = deliver(GIFT, {**config, "unmapped_store": "skip"})
    assert outcome == Delivered() and transport.sent == []


def test_extra_headers_are_sent_but_never_replace_the_signature() -> None:
    config = {
        **CONFIG,
        "headers": {"Authorization": "Bearer adapter-token", "Webhook-Signature": "v1,forged"},
    }
    _, transport = deliver(GIFT, config)
    headers = transport.sent[0].headers
    assert headers["Authorization"] == "Bearer adapter-token"
    assert [k for k in headers if k.lower() == "webhook-signature"] == ["webhook-signature"]
    assert headers["webhook-signature"] != "v1,forged"


def test_the_timeout_is_configurable() -> None:
    _, transport = deliver(GIFT, {**CONFIG, "timeout": 3})
    assert transport.sent[0].timeout == 3.0


def test_a_message_needs_movements() -> None:
    with pytest.raises(StockError):
        message(copy.deepcopy(GIFT), dict(CONFIG), [], now=NOW)


@pytest.mark.parametrize(
    "answer,expected",
    [
        (OutboundResponse(200, {}, b"ok"), Delivered),
        (OutboundResponse(503, {"Retry-After": "60"}, b""), Retry),
        (OutboundResponse(409, {}, b"duplicate"), Failed),
    ],
)
def test_answers_are_read_the_default_way(answer: OutboundResponse, expected: type) -> None:
    outcome, _ = deliver(GIFT, answer=lambda _r: answer)
    assert isinstance(outcome, expected)


def test_config_is_checked() -> None:
    ERP.check_config(copy.deepcopy(CONFIG))
    with pytest.raises(DomainError) as info:
        ERP.check_config({"url": URL, "secret": "whsec_not base64!!"})
    assert info.value.extra["errors"][0]["field"] == "config.secret"
    with pytest.raises(DomainError):
        ERP.check_config({**CONFIG, "locations": {"SH-001": None}})
    shown = ERP.redact({**CONFIG, "headers": {"Authorization": "x"}})
    assert shown["secret"] == "***" and shown["headers"] == "***"


def test_over_http_to_the_adapter() -> None:
    with respx.mock() as router, httpx.Client() as client:
        route = router.post(URL).mock(return_value=httpx.Response(204))

        def transport(request: OutboundRequest) -> OutboundResponse:
            r = client.request(
                request.method, request.url, headers=dict(request.headers), content=request.body
            )
            return OutboundResponse(r.status_code, dict(r.headers), r.content)

        outcome, _ = run_exchange(
            ERP,
            copy.deepcopy(GIFT),
            dict(CONFIG),
            now=datetime.now(UTC),
            transport=transport,
            sessions=SessionCache(),
            session_owner="sub_http",
        )
    assert outcome == Delivered()
    sent = route.calls.last.request
    assert Webhook(SECRET).verify(sent.content, dict(sent.headers))["movements"][0]["qty"] == 1

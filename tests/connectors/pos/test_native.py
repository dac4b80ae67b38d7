"""``pos.native``: the hub's own JSON, read strictly, answered as it is."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from connectors.pos.native import NativePosConnector
from hub.connectors import InboundCommand, InboundResult
from hub.domain.cart import Line, Order
from hub.domain.commands import RedeemCommand
from hub.domain.errors import DomainError
from hub.services.problems import status_for
from hub.testing.events import GIFT_CODE
from hub.testing.payloads import REFUSALS, SUCCESS

NATIVE_REDEEM = (Path(__file__).parent / "fixtures" / "native_redeem.json").read_bytes()
native = NativePosConnector()
JSON = {"Content-Type": "application/json"}


def refused(body: bytes, operation: str = "redeem", headers: dict[str, str] | None = None):
    with pytest.raises(DomainError) as info:
        native.parse(operation, body, JSON if headers is None else headers)  # type: ignore[arg-type]
    return info.value


def test_redeem_is_the_native_request():
    headers = {"content-type": "application/json; charset=utf-8", "idempotency-key": "k-1"}
    command = native.parse("redeem", NATIVE_REDEEM, headers)
    assert command == InboundCommand(
        operation="redeem",
        request_id="k-1",
        redeem=RedeemCommand(
            code=GIFT_CODE,
            store="SH-001",
            channel="pos",
            order=Order(
                id="A-1001",
                amount=12800,
                lines=(Line("SKU-TEA-1", 2, 4400, "tea"), Line("SKU-GIFT-1", 1, 4000, "gift")),
            ),
            occurred_at=datetime(2026, 11, 25, 6, 30, tzinfo=UTC),
        ),
        store="SH-001",
    )
    assert native.parse("validate", NATIVE_REDEEM, headers).operation == "validate"


def test_defaults_of_the_native_request():
    body = b'{"code": "ABC", "order": {"id": "A-1", "amount": 100}}'
    command = native.parse("redeem", body, JSON)
    assert command.request_id is None  # no Idempotency-Key: the hub refuses as usual
    assert command.redeem == RedeemCommand(
        code="ABC", store=None, channel="pos", order=Order("A-1", 100, None)
    )


@pytest.mark.parametrize(
    "key,expected",
    [("k", "k"), (" k ", "k"), ("", None), ("x" * 200, "x" * 200), ("x" * 201, None)],
)
def test_the_idempotency_key_header_is_the_request_id(key, expected):
    for name in ("Idempotency-Key", "IDEMPOTENCY-KEY", "idempotency-key"):
        command = native.parse("redeem", NATIVE_REDEEM, {**JSON, name: key})
        assert command.request_id == expected


@pytest.mark.parametrize(
    "change,field",
    [
        ({"order": {"id": "A-1", "amount": "12800"}}, "order.amount"),  # no numeric strings
        ({"order": {"id": "A-1", "amount": 12.5}}, "order.amount"),
        ({"order": {"id": "A-1", "amount": -1}}, "order.amount"),
        (
            {
                "order": {
                    "id": "A-1",
                    "amount": 1,
                    "lines": [{"sku": "S", "qty": 0, "unit_price": 1}],
                }
            },
            "order.lines[0].qty",
        ),
        ({"store": "SH 001"}, "store"),
        ({"channel": "fax"}, "channel"),
        ({"occurred_at": "2026-11-25T06:30:00"}, "occurred_at"),  # naive
        ({"surprise": 1}, "body"),
    ],
)
def test_wrong_fields_are_refused_naming_them(change, field):
    body = {**json.loads(NATIVE_REDEEM), **change}
    err = refused(json.dumps(body).encode())
    assert err.code == "invalid_pos_payload" and status_for(err.code) == 422
    assert err.extra["errors"][0]["field"] == field
    assert err.message.startswith(f"{field}: ")


def test_missing_fields_are_refused():
    err = refused(b'{"order": {"id": "A-1", "amount": 1}}')
    assert err.code == "invalid_pos_payload" and "code" in err.message


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"<xml/>", b'{"code": "A",}'])
def test_broken_json_is_malformed(body):
    err = refused(body)
    assert err.code == "malformed_json" and status_for(err.code) == 400


def test_reverse_by_id_or_by_code():
    by_id = native.parse("reverse", b'{"redemption_id": "rdm_1", "reason": "refund"}', JSON)
    assert by_id == InboundCommand(operation="reverse", redemption_id="rdm_1", reason="refund")
    by_code = native.parse("reverse", json.dumps({"code": GIFT_CODE}).encode(), JSON)
    assert by_code.code == GIFT_CODE and by_code.redemption_id is None and by_code.reason is None
    assert refused(b"{}", "reverse").extra["errors"][0]["field"] == "redemption_id"
    both = b'{"redemption_id": "rdm_1", "code": "ABC"}'
    assert refused(both, "reverse").extra["errors"][0]["field"] == "code"
    assert refused(b'{"code": 12}', "reverse").extra["errors"][0]["field"] == "code"
    assert refused(b'{"code": "A", "reason": "' + b"r" * 501 + b'"}', "reverse").code == (
        "invalid_pos_payload"
    )


def test_media_type_and_size():
    err = refused(NATIVE_REDEEM, headers={"Content-Type": "text/plain"})
    assert err.code == "unsupported_media_type" and status_for(err.code) == 415
    assert native.parse("redeem", NATIVE_REDEEM, {}).redeem is not None  # the route checks
    err = refused(NATIVE_REDEEM + b" " * (64 * 1024))
    assert err.code == "payload_too_large" and status_for(err.code) == 413


@pytest.mark.parametrize("operation", ["redeem", "validate", "reverse"])
def test_reply_is_the_hub_answer(operation):
    result = SUCCESS[operation]
    reply = native.reply(operation, None, result)
    assert reply.status == result.status and reply.media_type == "application/json"
    assert msgspec.json.decode(reply.body) == result.body


@pytest.mark.parametrize("result", REFUSALS, ids=[r.code for r in REFUSALS])
def test_refusals_are_problem_documents(result: InboundResult):
    command = native.parse("redeem", NATIVE_REDEEM, JSON)
    reply = native.reply("redeem", command, result)
    assert reply.status == result.status and reply.media_type == "application/problem+json"
    assert json.loads(reply.body) == result.body

"""Rendering the hub's answers in each example vendor's reply format, with its error
codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from connectors.pos.mapped import (
    DEFAULT_MAPPINGS_DIR,
    MappedPosConnector,
    MappedVariant,
    MappingError,
)
from hub.connectors import InboundResult, PayloadError
from hub.services.problems import problem_for, status_for
from hub.testing.events import CASH_CODE, GIFT_CODE
from hub.testing.payloads import REFUSALS, SUCCESS

FIXTURES = Path(__file__).parent / "fixtures"
CONNECTOR = MappedPosConnector()
ACME = cast(MappedVariant, CONNECTOR.variant("acme"))
NIMBUS = cast(MappedVariant, CONNECTOR.variant("nimbus"))


def command(variant: Any, vendor: str, operation: str) -> Any:
    body = (FIXTURES / f"mapped_{vendor}_{operation}.json").read_bytes()
    return variant.parse(operation, body, {})


def problem(code: str, status: int, detail: str = "Refused.") -> InboundResult:
    return InboundResult(
        status,
        {
            "type": f"urn:redemption-hub:error:{code}",
            "title": detail,
            "status": status,
            "detail": detail,
            "code": code,
        },
    )


def rendered(variant: Any, vendor: str, operation: str, result: InboundResult) -> Any:
    reply = variant.reply(operation, command(variant, vendor, operation), result)
    assert reply.media_type == "application/json"
    return reply.status, json.loads(reply.body)


# ------------------------------------------------------------------ acme
def test_acme_redeem_success() -> None:
    assert rendered(ACME, "acme", "redeem", SUCCESS["redeem"]) == (
        200,
        {
            "ret": 0,
            "msg": "ok",
            "req_id": "ACME-SH001-T02-20261125-000187",
            "data": {
                "coupon_no": GIFT_CODE,
                "redeem_id": "rdm_01JDK000000000000000000013",
                "coupon_name": "gift",
                "discount_amt": "40.00",
                "pay_amt": "88.00",
                "redeem_time": "2026-11-25 14:30:00",
                "items": [{"sku_code": "SKU-GIFT-1", "discount_amt": "40.00"}],
            },
        },
    )


def test_acme_validate_success() -> None:
    assert rendered(ACME, "acme", "validate", SUCCESS["validate"]) == (
        200,
        {
            "ret": 0,
            "msg": "ok",
            "req_id": "ACME-SH001-T02-20261125-000186",
            "data": {
                "coupon_no": CASH_CODE,
                "coupon_name": "cash",
                "coupon_type": "threshold",
                "usable": True,
                "discount_amt": "20.00",
                "pay_amt": "108.00",
            },
        },
    )


def test_acme_reverse_success() -> None:
    assert rendered(ACME, "acme", "reverse", SUCCESS["reverse"]) == (
        200,
        {
            "ret": 0,
            "msg": "ok",
            "req_id": "ACME-SH001-T02-20261125-000203",
            "data": {
                "coupon_no": GIFT_CODE,
                "redeem_id": "rdm_01JDK000000000000000000013",
                "refund_amt": "40.00",
                "reverse_time": "2026-11-25 15:00:00",
            },
        },
    )


@pytest.mark.parametrize(
    "code, status, ret, msg",
    [
        ("coupon_not_found", 404, 1001, "券码不存在"),
        ("coupon_already_redeemed", 409, 1002, "券已核销"),
        ("coupon_expired", 422, 1003, "券已过期"),
        ("threshold_not_met", 422, 1008, "未达到使用门槛"),
        ("invalid_pos_payload", 422, 2002, "请求参数错误"),
        ("malformed_json", 400, 2002, "请求参数错误"),
        ("store_forbidden", 403, 4003, "无权操作此门店"),
        ("template_paused", 409, 9999, "系统繁忙，请稍后重试"),  # not listed: default
        ("internal_error", 500, 9999, "系统繁忙，请稍后重试"),
    ],
)
def test_acme_refusals_translate_the_error_code(code: str, status: int, ret: int, msg: str) -> None:
    assert rendered(ACME, "acme", "redeem", problem(code, status)) == (
        200,
        {"ret": ret, "msg": msg, "req_id": "ACME-SH001-T02-20261125-000187", "data": None},
    )


def test_acme_reversal_refusal() -> None:
    status, body = rendered(ACME, "acme", "reverse", problem("redemption_already_reversed", 409))
    assert (status, body["ret"], body["msg"]) == (200, 3003, "已冲正")


def test_a_reply_without_a_readable_request() -> None:
    reply = ACME.reply("redeem", None, problem("malformed_json", 400, "Not JSON."))
    assert reply.status == 200
    assert json.loads(reply.body) == {
        "ret": 2002,
        "msg": "请求参数错误",
        "req_id": None,
        "data": None,
    }
    assert "请求参数错误".encode() in reply.body  # UTF-8, not \\u escapes


# ------------------------------------------------------------------ nimbus
def test_nimbus_redeem_success() -> None:
    assert rendered(NIMBUS, "nimbus", "redeem", SUCCESS["redeem"]) == (
        200,
        {
            "code": 200,
            "success": True,
            "message": "SUCCESS",
            "requestId": "5f1c9a2e-7b3d-4e8f-a1c2-9d0e3b4a5c6d",
            "result": {
                "voucherCode": GIFT_CODE,
                "writeOffId": "rdm_01JDK000000000000000000013",
                "voucherName": "gift",
                "discountAmount": 4000,
                "payAmount": 8800,
                "writeOffTime": 1795588200000,
                "discountDetails": [{"goodsId": "SKU-GIFT-1", "discountAmount": 4000}],
            },
        },
    )


def test_nimbus_reverse_success() -> None:
    status, body = rendered(NIMBUS, "nimbus", "reverse", SUCCESS["reverse"])
    assert status == 200
    assert body["result"] == {
        "writeOffId": "rdm_01JDK000000000000000000013",
        "voucherCode": GIFT_CODE,
        "voucherStatus": "issued",
        "refundDiscount": 4000,
        "cancelTime": 1795590000000,
    }


@pytest.mark.parametrize(
    "code, status, vendor_code",
    [
        ("coupon_not_found", 404, "VOUCHER_NOT_FOUND"),
        ("coupon_already_redeemed", 409, "VOUCHER_ALREADY_USED"),
        ("threshold_not_met", 422, "ORDER_AMOUNT_NOT_ENOUGH"),
        ("idempotency_key_in_flight", 409, "REQUEST_PROCESSING"),
        ("internal_error", 500, "SYSTEM_ERROR"),
    ],
)
def test_nimbus_refusals_keep_the_hub_status(code: str, status: int, vendor_code: str) -> None:
    assert rendered(NIMBUS, "nimbus", "validate", problem(code, status, "Nope.")) == (
        status,
        {
            "code": status,
            "success": False,
            "errorCode": vendor_code,
            "message": "Nope.",  # no vendor message in this mapping: the hub's detail
            "requestId": "0b7e4d21-3c5a-4f69-8e12-7a9b6c5d4e3f",
            "result": None,
        },
    )


@pytest.mark.parametrize("variant", [ACME, NIMBUS], ids=["acme", "nimbus"])
@pytest.mark.parametrize("operation", ["redeem", "validate", "reverse"])
def test_every_refusal_renders_with_or_without_a_command(variant: Any, operation: str) -> None:
    vendor = variant.name.rsplit(".", 1)[1]
    cmd = command(variant, vendor, operation)
    for result in REFUSALS:
        for c in (cmd, None):
            reply = variant.reply(operation, c, result)
            assert reply.body and json.loads(reply.body)


# ------------------------------------------------------------------ the reply context
def test_the_reply_context() -> None:
    cmd = command(ACME, "acme", "redeem")
    failed = problem("coupon_already_redeemed", 409, "Redeemed already.")
    assert ACME.reply_context("redeem", cmd, failed) == {
        "ok": False,
        "status": 409,
        "operation": "redeem",
        "replayed": False,
        "request": json.loads((FIXTURES / "mapped_acme_redeem.json").read_text()),
        "result": dict(failed.body),
        "error": {
            "code": "coupon_already_redeemed",
            "status": 409,
            "detail": "Redeemed already.",
            "vendor_code": 1002,
            "vendor_message": "券已核销",
        },
    }
    ok = ACME.reply_context("redeem", None, SUCCESS["redeem"])
    assert ok["ok"] is True and ok["error"] is None and ok["request"] == {}


def mapping_with(tmp_path: Path, **reply: Any) -> Any:
    doc = yaml.safe_load((DEFAULT_MAPPINGS_DIR / "pos" / "acme.yaml").read_text("utf-8"))
    doc = json.loads(json.dumps(doc))
    doc["operations"]["redeem"]["reply"].update(reply)
    doc.pop("errors")
    (tmp_path / "pos").mkdir()
    (tmp_path / "pos" / "acme.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    return MappedPosConnector(tmp_path).variant("acme")


def test_without_an_errors_table_the_hub_code_is_the_vendor_code(tmp_path: Path) -> None:
    variant = mapping_with(tmp_path, status={"success": "hub", "failure": "hub"})
    reply = variant.reply("redeem", None, problem("coupon_expired", 422, "Expired."))
    assert reply.status == 422
    assert json.loads(reply.body)["ret"] == "coupon_expired"
    assert json.loads(reply.body)["msg"] == "Expired."
    assert variant.reply("redeem", None, SUCCESS["redeem"]).status == 201


def test_replayed_answers_are_visible_to_the_reply(tmp_path: Path) -> None:
    variant = mapping_with(tmp_path, success="{ret: `0`, replayed: replayed}")
    replay = InboundResult(201, SUCCESS["redeem"].body, replayed=True)
    assert json.loads(variant.reply("redeem", None, replay).body) == {"ret": 0, "replayed": True}


def test_a_reply_that_cannot_be_rendered_raises_a_mapping_error(tmp_path: Path) -> None:
    """The hub answers with its own problem document then (hub/services/inbound.py)."""
    variant = mapping_with(tmp_path, success="{ret: `0`, amt: to_yuan(result.code)}")
    with pytest.raises(MappingError) as info:
        variant.reply("redeem", None, SUCCESS["redeem"])
    assert info.value.path == "$.operations.redeem.reply.success"
    assert "to_yuan" in info.value.message


def test_a_null_reply_raises_a_mapping_error(tmp_path: Path) -> None:
    variant = mapping_with(tmp_path, success="result.nothing")
    with pytest.raises(MappingError, match="the reply expression gave null"):
        variant.reply("redeem", None, SUCCESS["redeem"])


def test_lone_surrogates_from_the_request_are_refused_and_escaped() -> None:
    """A lone surrogate cannot be stored (``invalid_characters``, as on every JSON
    route); the refusal still echoes the request id, escaped."""
    doc = json.loads((FIXTURES / "mapped_acme_redeem.json").read_text())
    body = json.dumps(doc).replace("ACME-SH001-T02-20261125-000187", "\\ud800x").encode()
    with pytest.raises(PayloadError) as info:
        ACME.parse("redeem", body, {})
    assert info.value.code == "invalid_characters"
    refused = InboundResult(status_for(info.value.code), problem_for(info.value))
    reply = ACME.reply("redeem", info.value.partial, refused)
    assert json.loads(reply.body)["req_id"] == "\ud800x"
    reply.body.decode("ascii")

"""Reading vendor requests through the example mappings: the exact commands, the refusals
(naming the mapping field and expression), and no exception but DomainError for any
input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.pos.mapped import MappedPosConnector, MappedVariant
from hub.connectors import InboundCommand
from hub.domain.cart import Line, Order
from hub.domain.commands import RedeemCommand
from hub.domain.errors import ERROR_CODES, DomainError
from hub.services.problems import status_for
from hub.testing.events import CASH_CODE, GIFT_CODE

FIXTURES = Path(__file__).parent / "fixtures"
CONNECTOR = MappedPosConnector()
ACME = CONNECTOR.variant("acme")
NIMBUS = CONNECTOR.variant("nimbus")
assert isinstance(ACME, MappedVariant) and isinstance(NIMBUS, MappedVariant)
VARIANTS = {"acme": ACME, "nimbus": NIMBUS}
OPERATIONS = ("redeem", "validate", "reverse")

TEA_ORDER = Order(
    id="A-1001",
    amount=12800,
    lines=(
        Line(sku="SKU-TEA-1", qty=2, unit_price=4400, category="tea"),
        Line(sku="SKU-GIFT-1", qty=1, unit_price=4000, category="gift"),
    ),
)
AT = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)


def fixture(vendor: str, operation: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"mapped_{vendor}_{operation}.json").read_text())
    return doc


def raw(vendor: str, operation: str) -> bytes:
    return (FIXTURES / f"mapped_{vendor}_{operation}.json").read_bytes()


def parse(variant: Any, operation: str, doc: Any, headers: dict[str, str] | None = None) -> Any:
    body = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    return variant.parse(operation, body, headers or {})


def refusal(variant: Any, operation: str, doc: Any, **kw: Any) -> DomainError:
    with pytest.raises(DomainError) as info:
        parse(variant, operation, doc, **kw)
    return info.value


# ------------------------------------------------------------------ exact commands
def test_acme_redeem_sample_gives_the_exact_command() -> None:
    assert ACME.parse("redeem", raw("acme", "redeem"), {}) == InboundCommand(
        operation="redeem",
        request_id="ACME-SH001-T02-20261125-000187",
        redeem=RedeemCommand(
            code=GIFT_CODE, store="SH-001", channel="pos", order=TEA_ORDER, occurred_at=AT
        ),
        store="SH-001",
        echo=fixture("acme", "redeem"),
    )


def test_acme_validate_sample_gives_the_exact_command() -> None:
    command = ACME.parse("validate", raw("acme", "validate"), {})
    assert command.operation == "validate"
    assert command.request_id == "ACME-SH001-T02-20261125-000186"
    assert command.redeem == RedeemCommand(
        code=CASH_CODE,
        store="SH-001",
        channel="pos",
        order=Order(id="A-1002", amount=12850, lines=None),  # "128.5" yuan
        occurred_at=datetime(2026, 11, 25, 6, 29, 41, tzinfo=UTC),  # 14:29:41 in Shanghai
    )


def test_acme_reverse_sample_gives_the_exact_command() -> None:
    assert ACME.parse("reverse", raw("acme", "reverse"), {}) == InboundCommand(
        operation="reverse",
        request_id="ACME-SH001-T02-20261125-000203",
        code=GIFT_CODE,
        redemption_id=None,
        store="SH-001",
        reason="顾客退货",
        echo=fixture("acme", "reverse"),
    )


def test_nimbus_redeem_sample_gives_the_exact_command() -> None:
    assert NIMBUS.parse("redeem", raw("nimbus", "redeem"), {}) == InboundCommand(
        operation="redeem",
        request_id="5f1c9a2e-7b3d-4e8f-a1c2-9d0e3b4a5c6d",
        redeem=RedeemCommand(
            code=GIFT_CODE, store="SH-001", channel="pos", order=TEA_ORDER, occurred_at=AT
        ),
        store="SH-001",
        echo=fixture("nimbus", "redeem"),
    )


def test_nimbus_validate_sample_gives_the_exact_command() -> None:
    command = NIMBUS.parse("validate", raw("nimbus", "validate"), {})
    assert command.request_id == "0b7e4d21-3c5a-4f69-8e12-7a9b6c5d4e3f"
    assert command.redeem == RedeemCommand(
        code=CASH_CODE,
        store="SH-001",
        channel="mini_program",  # channelType 2
        order=Order(id="A-1002", amount=12850, lines=None),
        occurred_at=datetime(2026, 11, 25, 6, 29, 41, tzinfo=UTC),
    )


def test_nimbus_reverse_sample_names_the_redemption() -> None:
    assert NIMBUS.parse("reverse", raw("nimbus", "reverse"), {}) == InboundCommand(
        operation="reverse",
        request_id="c2d4e6f8-1a3b-4c5d-9e7f-0a1b2c3d4e5f",
        code=None,
        redemption_id="rdm_01JDK000000000000000000013",
        store="SH-001",
        reason="refund",
        echo=fixture("nimbus", "reverse"),
    )


def test_nimbus_reverse_by_voucher_code() -> None:
    doc = fixture("nimbus", "reverse")
    doc["body"] = {"voucherCode": GIFT_CODE}
    command = parse(NIMBUS, "reverse", doc)
    assert (command.code, command.redemption_id, command.reason) == (GIFT_CODE, None, None)


# ------------------------------------------------------------------ accepted variations
@pytest.mark.parametrize(
    "total, fen",
    [
        ("128.00", 12800),
        ("128.5", 12850),
        ("128", 12800),
        (128.5, 12850),
        (19.99, 1999),
        (0, 0),
        (" 7.10 ", 710),
        ("0.01", 1),
    ],
)
def test_acme_amounts_in_yuan_become_exact_fen(total: Any, fen: int) -> None:
    doc = fixture("acme", "validate")
    doc["total_amt"] = total
    assert parse(ACME, "validate", doc).redeem.order.amount == fen


@pytest.mark.parametrize(
    "trade_time, expected",
    [
        ("2026-11-25 14:30:00", AT),
        ("2026-11-25T14:30:00", AT),
        ("2026-11-25T06:30:00Z", AT),
        ("2026-11-25T15:30:00+09:00", AT),
    ],
)
def test_acme_times_are_read_in_the_mapping_time_zone(trade_time: str, expected: datetime) -> None:
    doc = fixture("acme", "redeem")
    doc["trade_time"] = trade_time
    occurred = parse(ACME, "redeem", doc).redeem.occurred_at
    assert occurred == expected and occurred.tzinfo is UTC


def test_optional_fields_may_be_absent() -> None:
    doc = fixture("acme", "redeem")
    for key in ("items", "trade_time"):
        del doc[key]
    redeem = parse(ACME, "redeem", doc).redeem
    assert redeem.order.lines is None and redeem.occurred_at is None
    doc["items"] = []
    assert parse(ACME, "redeem", doc).redeem.order.lines == ()


def test_numbers_are_accepted_where_the_hub_wants_text() -> None:
    doc = fixture("acme", "redeem")
    doc["order_no"] = 1001
    doc["req_id"] = 187
    doc["items"][0]["sku_code"] = 6901234567890
    command = parse(ACME, "redeem", doc)
    assert command.redeem.order.id == "1001" and command.request_id == "187"
    assert command.redeem.order.lines[0].sku == "6901234567890"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/json"}, {"content-type": "Application/JSON; charset=UTF-8"}],
)
def test_json_content_types_are_accepted(headers: dict[str, str]) -> None:
    assert ACME.parse("redeem", raw("acme", "redeem"), headers).operation == "redeem"


def test_a_utf8_bom_is_tolerated() -> None:
    assert ACME.parse("redeem", b"\xef\xbb\xbf" + raw("acme", "redeem"), {}).request_id


# ------------------------------------------------------------------ refusals
def assert_invalid(err: DomainError, message: str) -> None:
    assert err.code == "invalid_pos_payload" and status_for(err.code) == 422
    assert err.message == message, err.message
    assert err.extra["errors"][0]["field"] == message.split(":")[0]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: d.pop("total_amt"),
            "request.amount: expected an amount in yuan, got null (from `total_amt`)",
        ),
        (
            lambda d: d.update(total_amt="128.555"),
            "request.amount: '128.555' yuan is not a whole number of fen (from `total_amt`)",
        ),
        (
            lambda d: d.update(total_amt="12,80"),
            "request.amount: expected a decimal amount, got '12,80' (from `total_amt`)",
        ),
        (
            lambda d: d.update(total_amt=0.1 + 0.2),
            "request.amount: 0.30000000000000004 yuan is not a whole number of fen "
            "(from `total_amt`)",
        ),
        (
            lambda d: d.update(total_amt="-1.00"),
            "request.amount: -100 fen is out of range (0 … 1000000000000) (from `total_amt`)",
        ),
        (
            lambda d: d.update(total_amt=True),
            "request.amount: expected a decimal amount, got true (from `total_amt`)",
        ),
        (
            lambda d: d.pop("coupon_no"),
            "request.code: expected text, got null (from `coupon_no`)",
        ),
        (
            lambda d: d.update(coupon_no=""),
            "request.code: expected text, got '' (from `coupon_no`)",
        ),
        (
            # a code field takes a coupon token too (up to 1,024 characters)
            lambda d: d.update(coupon_no="X" * 1025),
            "request.code: longer than 1024 characters (from `coupon_no`)",
        ),
        (
            lambda d: d.update(coupon_no={"code": GIFT_CODE}),
            "request.code: expected text, got an object (from `coupon_no`)",
        ),
        (
            lambda d: d.pop("shop_no"),
            "request.store: expected text, got null (from `shop_no`)",
        ),
        (
            lambda d: d.update(shop_no="SH 001"),
            "request.store: 'SH 001' is not a store code (from `shop_no`)",
        ),
        (
            lambda d: d.pop("req_id"),
            "request.request_id: expected text, got null (from `req_id`)",
        ),
        (
            lambda d: d.update(req_id="r" * 201),
            "request.request_id: longer than 200 characters (from `req_id`)",
        ),
        (
            lambda d: d.pop("order_no"),
            "request.order_id: expected text, got null (from `order_no`)",
        ),
        (
            lambda d: d.update(items={"sku_code": "SKU-TEA-1"}),
            "request.lines: expected an array, got an object (from `items`)",
        ),
        (
            lambda d: d.update(items=["SKU-TEA-1"]),
            "request.lines[0].sku: expected text, got null (from `sku_code`)",
        ),
        (
            lambda d: d["items"][1].update(qty=0),
            "request.lines[1].qty: expected a whole quantity 1 … 100000, got 0 (from `qty`)",
        ),
        (
            lambda d: d["items"][1].update(qty=1.5),
            "request.lines[1].qty: expected a whole quantity 1 … 100000, got 1.5 (from `qty`)",
        ),
        (
            lambda d: d["items"][0].update(price="44.001"),
            "request.lines[0].unit_price: '44.001' yuan is not a whole number of fen "
            "(from `price`)",
        ),
        (
            lambda d: d["items"][0].pop("price"),
            "request.lines[0].unit_price: expected an amount in yuan, got null (from `price`)",
        ),
        (
            lambda d: d.update(items=[d["items"][0]] * 501),
            "request.lines: more than 500 lines (from `items`)",
        ),
        (
            lambda d: d.update(trade_time="yesterday"),
            "request.occurred_at: expected an ISO 8601 time, got 'yesterday' (from `trade_time`)",
        ),
        (
            lambda d: d.update(trade_time=1795588200),
            "request.occurred_at: expected an ISO 8601 time, got 1795588200 (from `trade_time`)",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_acme_refusals_name_the_field_and_expression(change: Any, message: str) -> None:
    doc = fixture("acme", "redeem")
    change(doc)
    assert_invalid(refusal(ACME, "redeem", doc), message)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: d["body"]["order"].update(payableAmount="12800"),
            "request.amount: expected an amount in integer fen, got '12800' "
            "(from `body.order.payableAmount`)",
        ),
        (
            lambda d: d["body"]["order"].update(payableAmount=12800.5),
            "request.amount: expected an amount in integer fen, got 12800.5 "
            "(from `body.order.payableAmount`)",
        ),
        (
            lambda d: d["body"]["order"].update(payableAmount=10**12 + 1),
            "request.amount: 1000000000001 fen is out of range (0 … 1000000000000) "
            "(from `body.order.payableAmount`)",
        ),
        (
            lambda d: d.pop("body"),
            "request.code: expected text, got null (from `body.voucher.code`)",
        ),
        (
            lambda d: d["header"].update(timestamp="soon"),
            "request.occurred_at: from_epoch(): expected a Unix time, got 'soon' "
            "(from `from_epoch(header.timestamp, 'ms')`)",
        ),
        (
            lambda d: d["header"].update(timestamp={"ms": 1}),
            "request.occurred_at: In function from_epoch(), invalid type for value: "
            "{'ms': 1}, expected one of: ['number', 'string', 'null'], received: \"object\" "
            "(from `from_epoch(header.timestamp, 'ms')`)",
        ),
        (
            lambda d: d["body"]["order"]["items"][0].update(num=-2),
            "request.lines[0].qty: expected a whole quantity 1 … 100000, got -2 (from `num`)",
        ),
    ],
)
def test_nimbus_refusals_name_the_field_and_expression(change: Any, message: str) -> None:
    doc = fixture("nimbus", "redeem")
    change(doc)
    assert_invalid(refusal(NIMBUS, "redeem", doc), message)


def test_an_unknown_channel_is_refused() -> None:
    doc = fixture("nimbus", "redeem")
    doc["body"]["order"]["channelType"] = 9
    err = refusal(NIMBUS, "redeem", doc)
    assert err.code == "invalid_pos_payload"
    assert err.message.startswith(
        "request.channel: 'channelType 9' is not a channel (pos, mini_program, h5, app, web)"
    )
    assert err.extra["errors"][0]["expression"].startswith("lookup(")


def test_a_reversal_must_name_something() -> None:
    doc = fixture("nimbus", "reverse")
    doc["body"] = {"reason": "refund"}
    assert_invalid(
        refusal(NIMBUS, "reverse", doc),
        "request.code: a reversal names the coupon code or the redemption id; both are null "
        "(from `body.voucherCode`)",
    )


@pytest.mark.parametrize(
    "body, code, status",
    [
        (b"", "malformed_json", 400),
        (b"{", "malformed_json", 400),
        (b'{"req_id": "1",}', "malformed_json", 400),
        (b"\xff\xfe{}", "malformed_json", 400),
        (b'{"total_amt": NaN}', "malformed_json", 400),
        (b'{"total_amt": Infinity}', "malformed_json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "malformed_json", 400),
        (b"<xml/>", "malformed_json", 400),
        (b'{"total_amt": ' + b"1" * 5000 + b"}", "malformed_json", 400),
        (b"[]", "invalid_pos_payload", 422),
        (b"null", "invalid_pos_payload", 422),
        (b"12.5", "invalid_pos_payload", 422),
        (b'"text"', "invalid_pos_payload", 422),
        (b"{}", "invalid_pos_payload", 422),
    ],
)
@pytest.mark.parametrize("vendor", ["acme", "nimbus"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_garbage_is_refused(
    vendor: str, operation: str, body: bytes, code: str, status: int
) -> None:
    err = refusal(VARIANTS[vendor], operation, body)
    assert (err.code, status_for(err.code)) == (code, status)
    assert err.code in ERROR_CODES


def test_a_wrong_content_type_is_refused_with_415() -> None:
    err = refusal(ACME, "redeem", raw("acme", "redeem"), headers={"Content-Type": "text/xml"})
    assert (err.code, status_for(err.code)) == ("unsupported_media_type", 415)
    assert err.extra["accepted"] == ["application/json"]


def test_the_base_connector_serves_only_its_variants() -> None:
    with pytest.raises(DomainError) as info:
        CONNECTOR.parse("redeem", raw("acme", "redeem"), {})
    assert info.value.code == "invalid_pos_payload"
    assert "pos.mapped.<name>" in info.value.message and "acme" in info.value.message


# ------------------------------------------------------------------ nothing but DomainError
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=30,
)
FIELD_NAMES = st.sampled_from(
    [
        "req_id",
        "coupon_no",
        "shop_no",
        "order_no",
        "total_amt",
        "trade_time",
        "items",
        "sku_code",
        "qty",
        "price",
        "cat",
        "refund_reason",
        "header",
        "body",
        "voucher",
        "code",
        "order",
        "orderNo",
        "payableAmount",
        "channelType",
        "timestamp",
        "requestId",
        "storeCode",
        "goodsId",
        "num",
        "writeOffId",
        "voucherCode",
        "reason",
    ]
)
PLAUSIBLE = st.recursive(
    JSON,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FIELD_NAMES, inner, max_size=8),
    max_leaves=40,
)
CHECKED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_domain_errors(variant: Any, operation: str, body: bytes) -> None:
    try:
        command = variant.parse(operation, body, {})
    except DomainError as err:
        assert err.code in (
            "malformed_json",
            "invalid_pos_payload",
            "duplicate_json_key",
            "invalid_characters",
            "datetime_out_of_range",
        ), err.code
        assert status_for(err.code) in (400, 422)
        return
    assert isinstance(command, InboundCommand) and command.operation == operation
    if command.redeem is not None:
        order = command.redeem.order
        assert isinstance(order.amount, int) and not isinstance(order.amount, bool)
        for line in order.lines or ():
            assert isinstance(line.unit_price, int) and isinstance(line.qty, int)


@CHECKED
@given(
    body=st.binary(max_size=300),
    vendor=st.sampled_from(["acme", "nimbus"]),
    operation=st.sampled_from(OPERATIONS),
)
def test_arbitrary_bytes_give_a_command_or_a_domain_error(
    body: bytes, vendor: str, operation: str
) -> None:
    only_domain_errors(VARIANTS[vendor], operation, body)


@CHECKED
@given(
    doc=PLAUSIBLE, vendor=st.sampled_from(["acme", "nimbus"]), operation=st.sampled_from(OPERATIONS)
)
def test_arbitrary_json_gives_a_command_or_a_domain_error(
    doc: Any, vendor: str, operation: str
) -> None:
    only_domain_errors(VARIANTS[vendor], operation, json.dumps(doc).encode())


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _paths(value, (*prefix, i))
    return found


@CHECKED
@given(
    data=st.data(),
    vendor=st.sampled_from(["acme", "nimbus"]),
    operation=st.sampled_from(OPERATIONS),
)
def test_samples_with_any_part_replaced_give_a_command_or_a_domain_error(
    data: st.DataObject, vendor: str, operation: str
) -> None:
    doc = fixture(vendor, operation)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        target = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = data.draw(JSON)
    only_domain_errors(VARIANTS[vendor], operation, json.dumps(doc).encode())


@CHECKED
@given(text=st.text(max_size=40))
def test_any_text_in_a_field_gives_a_command_or_a_domain_error(text: str) -> None:
    for vendor, key in (("acme", "total_amt"), ("acme", "trade_time"), ("acme", "coupon_no")):
        doc = fixture(vendor, "redeem")
        doc[key] = text
        only_domain_errors(VARIANTS[vendor], "redeem", json.dumps(doc).encode())

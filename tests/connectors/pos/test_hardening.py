"""Hostile and random bodies: XML bombs and XXE are refused at once, limits hold, and no
input whatsoever makes ``parse`` raise anything but a DomainError."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.pos.native import NativePosConnector
from connectors.pos.poslog import ARTS_NS, PoslogConnector
from connectors.pos.xml import MAX_DEPTH, MAX_ELEMENTS, parse_xml
from hub.connectors import REQUEST_ID_MAX, InboundCommand
from hub.domain.errors import ERROR_CODES, DomainError
from hub.services.problems import status_for
from hub.testing import BILLION_LAUGHS, EXTERNAL_DTD, EXTERNAL_ENTITY
from hub.testing.payloads import REFUSALS, SUCCESS

FIXTURES = Path(__file__).parent / "fixtures"
OPERATIONS = ("redeem", "validate", "reverse")
native = NativePosConnector()
poslog = PoslogConnector()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE = {
    "billion laughs": BILLION_LAUGHS,
    "external entity": EXTERNAL_ENTITY,
    "external dtd": EXTERNAL_DTD,
    "internal dtd": b'<?xml version="1.0"?><!DOCTYPE POSLog []><POSLog/>',
    "parameter entity": b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">%p;]><r/>',
    "utf-16 bomb": BILLION_LAUGHS.decode().replace('<?xml version="1.0"?>', "").encode("utf-16"),
    "gbk bomb": BILLION_LAUGHS.replace(
        b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="GBK"?>'
    ),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_dtds_and_entities_are_refused_in_milliseconds(body):
    for operation in OPERATIONS:
        started = time.perf_counter()
        with pytest.raises(DomainError) as info:
            poslog.parse(operation, body, {"Content-Type": "application/xml"})  # type: ignore[arg-type]
        assert time.perf_counter() - started < 0.05
        assert info.value.code == "xml_forbidden" and status_for(info.value.code) == 400


def test_element_count_is_capped():
    parse_xml(b"<r>" + b"<a/>" * (MAX_ELEMENTS - 1) + b"</r>")  # exactly the limit
    flood = b"<r>" + b"<a/>" * MAX_ELEMENTS + b"</r>"
    started = time.perf_counter()
    with pytest.raises(DomainError) as info:
        poslog.parse("redeem", flood, {})
    assert time.perf_counter() - started < 0.5
    assert info.value.code == "invalid_pos_payload" and "10000 elements" in info.value.message


def test_depth_is_capped():
    parse_xml(b"<a>" * MAX_DEPTH + b"</a>" * MAX_DEPTH)
    with pytest.raises(DomainError) as info:
        parse_xml(b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1))
    assert info.value.code == "invalid_pos_payload" and "deeper" in info.value.message
    with pytest.raises(DomainError) as info:  # far deeper than that: still a clean refusal
        poslog.parse("redeem", b"<a>" * 50_000, {})
    assert info.value.code == "invalid_pos_payload"


def test_size_is_checked_before_parsing():
    with pytest.raises(DomainError) as info:
        parse_xml(b"<" * (256 * 1024 + 1))
    assert info.value.code == "payload_too_large" and status_for(info.value.code) == 413


@pytest.mark.parametrize(
    "body,code",
    [
        (b"", "malformed_xml"),
        (b"<a>", "malformed_xml"),
        (b"<a></b>", "malformed_xml"),
        (b"<p:a/>", "malformed_xml"),  # unbound prefix
        (b'<?xml version="1.0" encoding="SHIFT_JIS"?><a/>', "malformed_xml"),
        (b'<?xml version="1.0" encoding="nonsense"?><a/>', "malformed_xml"),
        (b"\x00<a/>", "malformed_xml"),
    ],
)
def test_broken_xml_is_malformed(body, code):
    with pytest.raises(DomainError) as info:
        parse_xml(body)
    assert info.value.code == code and status_for(code) == 400


# ---------------------------------------------------------------------------- fuzzing


def check_refusal(err: DomainError) -> None:
    assert err.code in ERROR_CODES
    assert status_for(err.code) in (400, 413, 415, 422)


def check_command(command: InboundCommand, operation: str, *, derives_amount: bool) -> None:
    assert command.operation == operation
    if command.request_id is not None:
        assert 0 < len(command.request_id) <= REQUEST_ID_MAX
    if command.redeem is not None:
        order = command.redeem.order
        assert isinstance(order.amount, int) and order.amount >= 0
        if order.lines and derives_amount:  # native passes the caller's amount on; the
            # hub then refuses a mismatch (order_amount_mismatch)
            assert order.amount == sum(ln.qty * ln.unit_price for ln in order.lines)
    else:
        assert operation == "reverse" and (command.code or command.redemption_id)


def run_everything(body: bytes, headers: dict[str, str]) -> None:
    for connector in (native, poslog):
        for operation in OPERATIONS:
            try:
                command = connector.parse(operation, body, headers)  # type: ignore[arg-type]
            except DomainError as err:
                check_refusal(err)
                continue
            check_command(command, operation, derives_amount=connector is poslog)
            for result in (SUCCESS[operation], *REFUSALS):
                reply = connector.reply(operation, command, result)  # type: ignore[arg-type]
                assert reply.body and 100 <= reply.status <= 599


@FUZZ
@given(st.binary(max_size=2000))
@example(b"<Transaction/>")
@example(b"\xef\xbb\xbf<POSLog/>")
def test_arbitrary_bytes(body):
    run_everything(body, {})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@FUZZ
@given(json_values)
def test_arbitrary_json(value):
    run_everything(json.dumps(value).encode(), {"Content-Type": "application/json"})


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


native_shaped = st.fixed_dictionaries(
    {"code": st.text(max_size=70) | st.integers()},
    optional={
        "store": st.text(max_size=70),
        "channel": st.sampled_from(["pos", "web", "fax"]),
        "occurred_at": st.sampled_from(["2026-11-25T06:30:00Z", "2026-11-25", "x"]),
        "order": st.fixed_dictionaries(
            {"id": st.text(max_size=10), "amount": st.integers() | st.text(max_size=5)},
            optional={
                "lines": _maybe(
                    st.lists(
                        st.fixed_dictionaries(
                            {
                                "sku": st.text(max_size=5),
                                "qty": st.integers(),
                                "unit_price": st.integers(),
                            },
                            optional={"category": _maybe(st.text(max_size=5))},
                        ),
                        max_size=3,
                    )
                )
            },
        ),
        "redemption_id": st.text(max_size=70),
        "reason": _maybe(st.text(max_size=600)),
    },
)


@FUZZ
@given(native_shaped)
def test_native_shaped_json(value):
    run_everything(json.dumps(value).encode(), {"Content-Type": "application/json"})


# random POSLog-ish trees: element names from the vocabulary, texts that are sometimes
# right and often wrong, random flags, three ways of writing the namespace
NAMES = [
    "POSLog",
    "Transaction",
    "BusinessUnit",
    "UnitID",
    "RetailStoreID",
    "WorkstationID",
    "SequenceNumber",
    "BusinessDayDate",
    "BeginDateTime",
    "EndDateTime",
    "RetailTransaction",
    "LineItem",
    "Sale",
    "ItemID",
    "Quantity",
    "RegularSalesUnitPrice",
    "ActualSalesUnitPrice",
    "ExtendedAmount",
    "MerchandiseHierarchy",
    "Coupon",
    "ScanCode",
    "CouponType",
    "RewardValue",
    "Total",
    "Return",
    "TransactionStatus",
    "Tender",
]
TEXTS = (
    st.sampled_from(
        [
            "",
            "1",
            "0",
            "2",
            "0.532",
            "44.00",
            "44.005",
            "-1",
            "SH-001",
            "POS01",
            "2026-11-25",
            "2026-11-25T14:30:00+08:00",
            "2026-11-25T14:30:00",
            "9999-12-31T23:59:59-23:59",
            "K7Q2M9XW4RTB8X",
            "a:b",
            "x" * 300,
        ]
    )
    | st.text(max_size=12)
    | st.decimals(allow_nan=True, places=3).map(str)
)
ATTRS = st.dictionaries(
    st.sampled_from(
        [
            "VoidFlag",
            "CancelFlag",
            "TrainingModeFlag",
            "Type",
            "Level",
            "TotalType",
            "TransactionStatus",
        ]
    ),
    st.sampled_from(["true", "false", "SKU", "Category", "TransactionGrandAmount", "Voided"]),
    max_size=2,
)


def _element(children: list[ET.Element]) -> st.SearchStrategy[ET.Element]:
    @st.composite
    def build(draw: st.DrawFn) -> ET.Element:
        el = ET.Element(draw(st.sampled_from(NAMES)), draw(ATTRS))
        el.text = draw(st.none() | TEXTS)
        el.extend(children)
        return el

    return build()


trees = st.recursive(
    _element([]),
    lambda inner: st.lists(inner, max_size=5).flatmap(_element),
    max_leaves=40,
)


def _serialise(root: ET.Element, style: str) -> bytes:
    if style == "prefixed":
        for el in root.iter():
            el.tag = f"{{{ARTS_NS}}}{el.tag}"
        ET.register_namespace("poslog", ARTS_NS)
    elif style == "default":
        root.set("xmlns", ARTS_NS)
    body: bytes = ET.tostring(root, encoding="utf-8")
    return body


@FUZZ
@given(trees, st.sampled_from(["plain", "prefixed", "default"]))
def test_arbitrary_poslog_trees(root, style):
    run_everything(_serialise(root, style), {"Content-Type": "application/xml"})


@FUZZ
@given(
    st.sampled_from(["v6_sale_coupon.xml", "v2_prefixed_sale.xml", "v6_post_void.xml"]),
    st.data(),
)
def test_mutated_fixtures(name, data):
    root = ET.fromstring((FIXTURES / name).read_bytes())
    elements = list(root.iter())
    for _ in range(data.draw(st.integers(1, 4))):
        target = data.draw(st.sampled_from(elements))
        action = data.draw(st.sampled_from(["text", "drop", "attr", "copy"]))
        if action == "text":
            target.text = data.draw(TEXTS)
        elif action == "attr":
            target.attrib.update(data.draw(ATTRS))
        elif action == "drop" and len(target):
            target.remove(data.draw(st.sampled_from(list(target))))
        elif action == "copy" and len(target):
            target.append(data.draw(st.sampled_from(list(target))))
    run_everything(ET.tostring(root, encoding="utf-8"), {"Content-Type": "application/xml"})

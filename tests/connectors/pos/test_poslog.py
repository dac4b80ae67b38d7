"""``pos.poslog``: what is read out of POSLog documents, and the acknowledgement written."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.pos import fen_to_yuan, yuan_to_fen
from connectors.pos.poslog import ARTS_NS, PoslogConnector
from hub.connectors import REQUEST_ID_MAX, InboundCommand, InboundResult
from hub.domain.cart import Line, Order
from hub.domain.errors import DomainError
from hub.services.problems import status_for
from hub.testing.events import CASH_CODE, GIFT_CODE
from hub.testing.payloads import REFUSALS, SUCCESS

FIXTURES = Path(__file__).parent / "fixtures"
XML = {"Content-Type": "application/xml"}
NS = {"p": ARTS_NS}
poslog = PoslogConnector()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def doc(
    lines: str,
    *,
    head: str = "<BusinessUnit><UnitID>SH-001</UnitID></BusinessUnit>"
    "<WorkstationID>POS01</WorkstationID><SequenceNumber>42</SequenceNumber>"
    "<BusinessDayDate>2026-11-25</BusinessDayDate>",
    tx_attrs: str = "",
    rt_attrs: str = "",
) -> bytes:
    return (
        f'<POSLog xmlns="{ARTS_NS}"><Transaction{tx_attrs}>{head}'
        f"<RetailTransaction{rt_attrs}>{lines}</RetailTransaction></Transaction></POSLog>"
    ).encode()


def sale(sku: str = "SKU-1", qty: str = "1", price: str = "10.00", extra: str = "") -> str:
    return (
        f"<LineItem><Sale><ItemID>{sku}</ItemID><Quantity>{qty}</Quantity>"
        f"<ActualSalesUnitPrice>{price}</ActualSalesUnitPrice>{extra}</Sale></LineItem>"
    )


def coupon(code: str = GIFT_CODE, attrs: str = "") -> str:
    return f"<LineItem{attrs}><Coupon><ScanCode>{code}</ScanCode></Coupon></LineItem>"


def refused(body: bytes, operation: str = "redeem", headers: dict[str, str] | None = None):
    with pytest.raises(DomainError) as info:
        poslog.parse(operation, body, XML if headers is None else headers)  # type: ignore[arg-type]
    return info.value


# ---------------------------------------------------------------------------- parse


def test_v6_sale_with_a_coupon_line():
    command = poslog.parse("redeem", fixture("v6_sale_coupon.xml"), XML)
    assert command.operation == "redeem"
    assert command.request_id == "poslog:SH-001:POS01:2026-11-25:123"
    assert command.store == "SH-001"
    redeem = command.redeem
    assert redeem is not None
    assert redeem.code == GIFT_CODE
    assert redeem.store == "SH-001" and redeem.channel == "pos"
    # 14:30 in Shanghai (+08:00) is 06:30 UTC
    assert redeem.occurred_at == datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
    assert redeem.order == Order(
        id="SH-001-POS01-2026-11-25-000123",
        amount=12800,  # 2 × 44.00 (the actual price, not the regular 48.00) + 40.00
        lines=(
            Line(sku="SKU-TEA-1", qty=2, unit_price=4400, category="tea"),  # Type="SKU"
            Line(sku="SKU-GIFT-1", qty=1, unit_price=4000, category="gift"),
        ),
    )  # the voided mug line (VoidFlag="true") is left out
    assert command.echo == {
        "store": "SH-001",
        "workstation": "POS01",
        "sequence": "123",
        "business_day": "2026-11-25",
        "scan_code": GIFT_CODE,
        "coupon_line": "4",
        "lines": ("1", "2"),
    }


def test_v2_prefixed_with_vendor_extensions():
    command = poslog.parse("validate", fixture("v2_prefixed_sale.xml"), XML)
    assert command.operation == "validate"
    # acme:SequenceNumber (another namespace) is not the transaction's sequence number
    assert command.request_id == "poslog:BJ-002:07:2026-11-24:4711"
    redeem = command.redeem
    assert redeem is not None
    assert redeem.code == CASH_CODE and redeem.store == "BJ-002"
    assert redeem.occurred_at is None  # 2.x times without an offset are not points in time
    assert redeem.order == Order(
        id="BJ-002-07-2026-11-24-004711",
        amount=2781,  # 6 × 3.50 + the weighed bananas at their line amount; not acme:Total
        lines=(
            Line(sku="6901028075831", qty=6, unit_price=350, category="beverages"),
            Line(sku="PLU-4011", qty=1, unit_price=681, category=None),
        ),
    )


def test_post_void_reverses_the_coupon_by_code():
    command = poslog.parse("reverse", fixture("v6_post_void.xml"), XML)
    assert command == InboundCommand(
        operation="reverse",
        request_id="poslog:SH-001:POS01:2026-11-25:130:reverse",
        code=GIFT_CODE,
        store="SH-001",
        reason="POSLog void 130",
        echo={
            "store": "SH-001",
            "workstation": "POS01",
            "sequence": "130",
            "business_day": "2026-11-25",
            "scan_code": GIFT_CODE,
            "coupon_line": "4",
        },
    )


def test_a_return_is_reversed_with_a_return_reason():
    body = doc("<LineItem><Return><ItemID>SKU-1</ItemID></Return></LineItem>" + coupon())
    command = poslog.parse("reverse", body, XML)
    assert command.reason == "POSLog return 42" and command.code == GIFT_CODE


def test_a_voided_transaction_does_not_redeem():
    err = refused(fixture("v6_post_void.xml"))
    assert err.code == "invalid_pos_payload"
    assert "Transaction/RetailTransaction/@TransactionStatus" in err.message
    err = refused(doc(sale() + coupon(), tx_attrs=' CancelFlag="true"'))
    assert err.code == "invalid_pos_payload"


def test_a_training_transaction_is_refused():
    err = refused(doc(sale() + coupon(), tx_attrs=' TrainingModeFlag="true"'))
    assert err.code == "invalid_pos_payload" and "@TrainingModeFlag" in err.message


def test_bare_transaction_root_without_namespace():
    body = (
        b"<Transaction><RetailStoreID>SH-001</RetailStoreID><SequenceNumber>7</SequenceNumber>"
        b"<EndDateTime>2026-11-25T14:30:00Z</EndDateTime><RetailTransaction>"
        + sale().encode()
        + coupon().encode()
        + b"</RetailTransaction></Transaction>"
    )
    command = poslog.parse("redeem", body, {})
    assert command.request_id == "poslog:SH-001::2026-11-25:7"  # day from EndDateTime
    assert command.redeem is not None
    assert command.redeem.order.id == "SH-001-2026-11-25-000007"
    assert command.redeem.occurred_at == datetime(2026, 11, 25, 14, 30, tzinfo=UTC)


def test_business_day_falls_back_to_the_local_date_written():
    head = (
        "<RetailStoreID>SH-001</RetailStoreID><SequenceNumber>7</SequenceNumber>"
        "<EndDateTime>2026-11-26T00:10:00+08:00</EndDateTime>"
    )
    command = poslog.parse("redeem", doc(sale() + coupon(), head=head), XML)
    assert command.echo["business_day"] == "2026-11-26"  # not the UTC date (25th)


def test_without_sale_lines_the_grand_total_is_the_amount():
    total = (
        '<Total TotalType="TransactionGrossAmount">99.00</Total>'
        '<Total TotalType="TransactionGrandAmount">88.50</Total>'
    )
    command = poslog.parse("redeem", doc(coupon() + total), XML)
    assert command.redeem is not None
    assert command.redeem.order.amount == 8850 and command.redeem.order.lines is None
    err = refused(doc(coupon()))
    assert "RetailTransaction/LineItem/Sale" in err.message


def test_unit_price_fallbacks():
    regular = "<LineItem><Sale><ItemID>A</ItemID><Quantity>3</Quantity>"
    regular += "<RegularSalesUnitPrice>2.50</RegularSalesUnitPrice></Sale></LineItem>"
    extended = "<LineItem><Sale><ItemID>B</ItemID><Quantity>4</Quantity>"
    extended += "<ExtendedAmount>10.00</ExtendedAmount></Sale></LineItem>"
    no_qty = "<LineItem><Sale><ItemID>C</ItemID>"
    no_qty += "<ActualSalesUnitPrice>1.00</ActualSalesUnitPrice></Sale></LineItem>"
    command = poslog.parse("redeem", doc(regular + extended + no_qty + coupon()), XML)
    assert command.redeem is not None
    assert command.redeem.order.lines == (
        Line("A", 3, 250),
        Line("B", 4, 250),
        Line("C", 1, 100),
    )
    assert command.redeem.order.amount == 750 + 1000 + 100


@pytest.mark.parametrize(
    "line,element",
    [
        (sale(price="44.005"), "LineItem[1]/Sale/ActualSalesUnitPrice"),
        (sale(price="1e3"), "LineItem[1]/Sale/ActualSalesUnitPrice"),
        (sale(price="-1.00"), "LineItem[1]/Sale/ActualSalesUnitPrice"),
        (sale(price="４４.00"), "LineItem[1]/Sale/ActualSalesUnitPrice"),  # fullwidth digits
        (sale(qty="0"), "LineItem[1]/Sale/Quantity"),
        (sale(qty="-2"), "LineItem[1]/Sale/Quantity"),
        (sale(qty="1.5"), "LineItem[1]/Sale/ExtendedAmount"),  # weighed, but no amount
        (sale(qty="100001"), "LineItem[1]/Sale/Quantity"),  # the hub's limit, named
        (sale(sku="X" * 129), "LineItem[1]/Sale/ItemID"),
        (
            sale(extra=f"<MerchandiseHierarchy>{'c' * 129}</MerchandiseHierarchy>"),
            "LineItem[1]/Sale/MerchandiseHierarchy",
        ),
        ("<LineItem><Sale><Quantity>1</Quantity></Sale></LineItem>", "LineItem[1]/Sale/ItemID"),
        (
            "<LineItem><Sale><ItemID>A</ItemID><Quantity>3</Quantity><ExtendedAmount>10.00"
            "</ExtendedAmount></Sale></LineItem>",
            "LineItem[1]/Sale/ActualSalesUnitPrice",
        ),
    ],
)
def test_bad_sale_lines_are_refused_naming_the_element(line, element):
    err = refused(doc(line + coupon()))
    assert err.code == "invalid_pos_payload" and status_for(err.code) == 422
    assert err.extra["errors"][0]["field"] == f"POSLog/Transaction/RetailTransaction/{element}"
    assert err.message.startswith(err.extra["errors"][0]["field"])


@pytest.mark.parametrize(
    "head,element",
    [
        (
            "<WorkstationID>1</WorkstationID><SequenceNumber>1</SequenceNumber>",
            "POSLog/Transaction/BusinessUnit/UnitID",
        ),
        (
            "<RetailStoreID>SH 001</RetailStoreID><SequenceNumber>1</SequenceNumber>",
            "POSLog/Transaction/BusinessUnit/UnitID",
        ),
        (
            "<RetailStoreID>SH-001</RetailStoreID><BusinessDayDate>2026-11-25</BusinessDayDate>",
            "POSLog/Transaction/SequenceNumber",
        ),
        (
            "<RetailStoreID>SH-001</RetailStoreID><SequenceNumber>1</SequenceNumber>",
            "POSLog/Transaction/BusinessDayDate",
        ),
        (
            "<RetailStoreID>S</RetailStoreID><SequenceNumber>1:2</SequenceNumber>"
            "<BusinessDayDate>2026-11-25</BusinessDayDate>",
            "POSLog/Transaction/SequenceNumber",
        ),
        (
            "<RetailStoreID>S</RetailStoreID><SequenceNumber>1</SequenceNumber>"
            f"<WorkstationID>{'W' * 25}</WorkstationID>"
            "<BusinessDayDate>2026-11-25</BusinessDayDate>",
            "POSLog/Transaction/WorkstationID",
        ),
        (
            "<RetailStoreID>S</RetailStoreID><SequenceNumber>1</SequenceNumber>"
            "<BusinessDayDate>25.11.2026</BusinessDayDate>",
            "POSLog/Transaction/BusinessDayDate",
        ),
        (
            "<RetailStoreID>S</RetailStoreID><SequenceNumber>1</SequenceNumber>"
            "<BusinessDayDate>2026-11-25</BusinessDayDate><EndDateTime>yesterday</EndDateTime>",
            "POSLog/Transaction/EndDateTime",
        ),
    ],
)
def test_bad_transaction_heads_are_refused_naming_the_element(head, element):
    err = refused(doc(sale() + coupon(), head=head))
    assert err.code == "invalid_pos_payload"
    assert err.extra["errors"][0]["field"] == element


def test_coupon_lines():
    err = refused(doc(sale()))
    assert "LineItem/Coupon/ScanCode" in err.message  # no coupon at all
    err = refused(doc(sale() + coupon(GIFT_CODE) + coupon(CASH_CODE)))
    assert "one coupon per transaction" in err.message
    err = refused(doc(sale() + "<LineItem><Coupon><CouponType>x</CouponType></Coupon></LineItem>"))
    assert err.extra["errors"][0]["field"].endswith("LineItem[2]/Coupon/ScanCode")
    # the same coupon scanned twice is one coupon; a voided coupon line does not count
    twice = poslog.parse("redeem", doc(sale() + coupon() + coupon()), XML)
    assert twice.redeem is not None and twice.redeem.code == GIFT_CODE
    voided = doc(sale() + coupon(CASH_CODE, ' VoidFlag="true"') + coupon(GIFT_CODE))
    command = poslog.parse("redeem", voided, XML)
    assert command.redeem is not None and command.redeem.code == GIFT_CODE


def test_root_and_transaction_count():
    assert refused(b"<Order/>").extra["errors"][0]["field"] == "Order"
    assert "no Transaction" in refused(f'<POSLog xmlns="{ARTS_NS}"/>'.encode()).message
    two = f'<POSLog xmlns="{ARTS_NS}"><Transaction/><Transaction/></POSLog>'.encode()
    assert "one Transaction per request" in refused(two).message


def test_elements_in_other_namespaces_are_ignored():
    head = (
        '<x:RetailStoreID xmlns:x="urn:vendor">EVIL</x:RetailStoreID>'
        "<RetailStoreID>SH-001</RetailStoreID><SequenceNumber>1</SequenceNumber>"
        "<BusinessDayDate>2026-11-25</BusinessDayDate>"
    )
    command = poslog.parse("redeem", doc(sale() + coupon(), head=head), XML)
    assert command.store == "SH-001"


def test_request_id_fits_at_the_longest():
    head = (
        f"<RetailStoreID>{'S' * 64}</RetailStoreID><WorkstationID>{'W' * 24}</WorkstationID>"
        f"<SequenceNumber>{'9' * 24}</SequenceNumber><BusinessDayDate>2026-11-25</BusinessDayDate>"
    )
    for operation in ("redeem", "reverse"):
        command = poslog.parse(operation, doc(sale() + coupon(), head=head), XML)
        assert command.request_id is not None and len(command.request_id) <= REQUEST_ID_MAX
    command = poslog.parse("redeem", doc(sale() + coupon(), head=head), XML)
    assert command.redeem is not None and len(command.redeem.order.id) <= 128


def test_gbk_encoded_documents_are_read():
    text = (
        '<?xml version="1.0" encoding="GBK"?>'
        f'<POSLog xmlns="{ARTS_NS}"><Transaction><RetailStoreID>SH-001</RetailStoreID>'
        "<SequenceNumber>8</SequenceNumber><BusinessDayDate>2026-11-25</BusinessDayDate>"
        "<RetailTransaction><LineItem><Sale><ItemID>SKU-1</ItemID>"
        "<MerchandiseHierarchy>茶叶</MerchandiseHierarchy><Description>龙井</Description>"
        "<ActualSalesUnitPrice>10.00</ActualSalesUnitPrice></Sale></LineItem>"
        f"{coupon()}</RetailTransaction></Transaction></POSLog>"
    )
    command = poslog.parse("redeem", text.encode("gbk"), XML)
    assert command.redeem is not None
    assert command.redeem.order.lines == (Line("SKU-1", 1, 1000, "茶叶"),)
    broken = text.encode("gbk").replace(b"SKU-1", b"SKU-\xff")  # not GBK after all
    assert refused(broken).code == "malformed_xml"


def test_media_type_and_size():
    body = fixture("v6_sale_coupon.xml")
    assert poslog.parse("redeem", body, {"content-type": "text/xml"}).redeem is not None
    err = refused(body, headers={"Content-Type": "application/json"})
    assert err.code == "unsupported_media_type" and status_for(err.code) == 415
    err = refused(body + b" " * (256 * 1024))
    assert err.code == "payload_too_large" and status_for(err.code) == 413


# ---------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    "text,fen",
    [
        ("44.00", 4400),
        ("44", 4400),
        ("0.5", 50),
        ("0.05", 5),
        ("44.000", 4400),
        (" 12.30 ", 1230),
        ("0", 0),
        ("9999999999.99", 999999999999),
    ],
)
def test_yuan_to_fen(text, fen):
    assert yuan_to_fen(text, "X") == fen


@pytest.mark.parametrize(
    "text",
    [
        "44.005",
        "0.001",
        "1e3",
        "NaN",
        "inf",
        "",
        "12,50",
        "-0.01",
        "1.",
        ".5",
        "10000000000.01",
        "＄1",
        "١٢",
    ],
)
def test_yuan_to_fen_refuses(text):
    with pytest.raises(DomainError) as info:
        yuan_to_fen(text, "Sale/ActualSalesUnitPrice")
    assert info.value.code == "invalid_pos_payload"
    assert info.value.message.startswith("Sale/ActualSalesUnitPrice: ")


@pytest.mark.parametrize(
    "fen,text",
    [
        (4000, "40.00"),
        (5, "0.05"),
        (0, "0.00"),
        (1375, "13.75"),
        (-250, "-2.50"),
        (10**12, "10000000000.00"),
    ],
)
def test_fen_to_yuan(fen, text):
    assert fen_to_yuan(fen) == text
    if fen >= 0:
        assert yuan_to_fen(text, "x") == fen


# ---------------------------------------------------------------------------- reply


def read(body: bytes) -> ET.Element:
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag == f"{{{ARTS_NS}}}POSLog"
    return root


def texts(root: ET.Element, path: str) -> list[str]:
    return [el.text or "" for el in root.findall(path, NS)]


def test_redeem_reply_puts_the_discount_on_the_discounted_lines():
    command = poslog.parse("redeem", fixture("v6_sale_coupon.xml"), XML)
    reply = poslog.reply("redeem", command, SUCCESS["redeem"])  # 40.00 off line index 1
    assert reply.status == 200 and reply.media_type == "application/xml"
    root = read(reply.body)
    tx = "p:Transaction"
    assert texts(root, f"{tx}/p:BusinessUnit/p:UnitID") == ["SH-001"]
    assert texts(root, f"{tx}/p:WorkstationID") == ["POS01"]
    assert texts(root, f"{tx}/p:SequenceNumber") == ["123"]
    assert texts(root, f"{tx}/p:BusinessDayDate") == ["2026-11-25"]
    assert texts(root, f"{tx}/p:Status") == ["Accepted"]
    items = root.findall(f"{tx}/p:RetailTransaction/p:LineItem", NS)
    assert len(items) == 2
    gift, coupon_line = items
    assert texts(gift, "p:SequenceNumber") == ["2"]  # the original line's number
    assert texts(gift, "p:Sale/p:ItemID") == ["SKU-GIFT-1"]
    amount = gift.find("p:Sale/p:RetailPriceModifier/p:Amount", NS)
    assert amount is not None and amount.text == "40.00" and amount.get("Action") == "Subtract"
    assert texts(gift, "p:Sale/p:RetailPriceModifier/p:ReasonCode") == ["COUPON"]
    assert texts(gift, "p:Sale/p:RetailPriceModifier/p:PromotionID") == [
        "tpl_01JDK000000000000000000017"
    ]
    assert texts(coupon_line, "p:SequenceNumber") == ["4"]
    assert texts(coupon_line, "p:Coupon/p:ScanCode") == [GIFT_CODE]
    assert texts(coupon_line, "p:Coupon/p:ReferenceID") == ["rdm_01JDK000000000000000000013"]
    assert coupon_line.find("p:RetailPriceModifier", NS) is None  # the lines carry it all
    total = root.find(f"{tx}/p:RetailTransaction/p:Total", NS)
    assert total is not None and total.text == "88.00"
    assert total.get("TotalType") == "TransactionGrandAmount"


def test_validate_reply_without_a_line_split_discounts_on_the_coupon_line():
    command = poslog.parse("validate", fixture("v2_prefixed_sale.xml"), XML)
    root = read(poslog.reply("validate", command, SUCCESS["validate"]).body)
    assert texts(root, "p:Transaction/p:Status") == ["Valid"]
    items = root.findall("p:Transaction/p:RetailTransaction/p:LineItem", NS)
    assert len(items) == 1
    assert texts(items[0], "p:Coupon/p:ScanCode") == [CASH_CODE]
    assert texts(items[0], "p:Coupon/p:ReferenceID") == []  # validate redeems nothing
    assert texts(items[0], "p:RetailPriceModifier/p:Amount") == ["20.00"]
    assert texts(root, "p:Transaction/p:RetailTransaction/p:Total") == ["108.00"]


def test_a_discount_the_lines_do_not_cover_goes_on_the_coupon_line():
    command = poslog.parse("redeem", fixture("v6_sale_coupon.xml"), XML)
    body = dict(SUCCESS["redeem"].body)
    body["discount"] = 2000
    body["lines"] = [{"index": 0, "sku": "SKU-TEA-1", "discount": 1375}]
    root = read(poslog.reply("redeem", command, InboundResult(201, body)).body)
    amounts = texts(root, ".//p:RetailPriceModifier/p:Amount")
    assert amounts == ["13.75", "6.25"]
    items = root.findall("p:Transaction/p:RetailTransaction/p:LineItem", NS)
    assert texts(items[0], "p:SequenceNumber") == ["1"]


def test_reverse_reply():
    command = poslog.parse("reverse", fixture("v6_post_void.xml"), XML)
    reply = poslog.reply("reverse", command, SUCCESS["reverse"])
    assert reply.status == 200
    root = read(reply.body)
    assert texts(root, "p:Transaction/p:SequenceNumber") == ["130"]
    assert texts(root, "p:Transaction/p:Status") == ["Reversed"]
    line = "p:Transaction/p:RetailTransaction/p:LineItem"
    assert texts(root, f"{line}/p:Coupon/p:ScanCode") == [GIFT_CODE]
    assert texts(root, f"{line}/p:Coupon/p:ReferenceID") == ["rdm_01JDK000000000000000000013"]
    assert texts(root, f"{line}/p:Coupon/p:CouponStatus") == ["issued"]
    amount = root.find(f"{line}/p:RetailPriceModifier/p:Amount", NS)
    assert amount is not None and amount.text == "40.00" and amount.get("Action") == "Add"


@pytest.mark.parametrize("result", REFUSALS, ids=[r.code for r in REFUSALS])
def test_refusals_carry_the_hub_code_and_status(result):
    command = poslog.parse("redeem", fixture("v6_sale_coupon.xml"), XML)
    reply = poslog.reply("redeem", command, result)
    assert reply.status == result.status and reply.media_type == "application/xml"
    root = read(reply.body)
    assert texts(root, "p:Transaction/p:Status") == ["Rejected"]
    reason = root.find("p:Transaction/p:Reason", NS)
    assert reason is not None
    assert reason.get("Code") == result.code and reason.text == result.body["detail"]
    assert root.find("p:Transaction/p:RetailTransaction", NS) is None
    assert texts(root, "p:Transaction/p:SequenceNumber") == ["123"]


def test_reply_without_a_command_echoes_nothing():
    reply = poslog.reply("redeem", None, REFUSALS[3])
    root = read(reply.body)
    assert reply.status == 422
    assert root.find("p:Transaction/p:BusinessUnit", NS) is None
    assert root.find("p:Transaction/p:SequenceNumber", NS) is None
    assert texts(root, "p:Transaction/p:Status") == ["Rejected"]
    ok = read(poslog.reply("redeem", None, SUCCESS["redeem"]).body)
    assert texts(ok, ".//p:Coupon/p:ScanCode") == [GIFT_CODE]  # from the hub's answer


def test_a_replayed_answer_is_the_first_reply_byte_for_byte():
    """The replay signal is the HTTP header the hub adds (``Idempotent-Replayed``), as on
    the JSON API; the document is the first one."""
    command = poslog.parse("redeem", fixture("v6_sale_coupon.xml"), XML)
    first = poslog.reply("redeem", command, SUCCESS["redeem"])
    replayed = InboundResult(201, SUCCESS["redeem"].body, replayed=True)
    again = poslog.reply("redeem", command, replayed)
    assert again.body == first.body and again.status == first.status


def test_reply_escapes_what_it_echoes():
    head = (
        "<RetailStoreID>SH-001</RetailStoreID><WorkstationID>&lt;T&amp;1&gt;</WorkstationID>"
        "<SequenceNumber>1</SequenceNumber><BusinessDayDate>2026-11-25</BusinessDayDate>"
    )
    command = poslog.parse("redeem", doc(sale() + coupon(), head=head), XML)
    detail = 'Bad <thing> & "quotes"'
    result = InboundResult(422, {"code": "threshold_not_met", "detail": detail, "status": 422})
    root = read(poslog.reply("redeem", command, result).body)
    assert texts(root, "p:Transaction/p:WorkstationID") == ["<T&1>"]
    assert texts(root, "p:Transaction/p:Reason") == [detail]


def test_reply_survives_odd_hub_bodies():
    command = poslog.parse("redeem", fixture("v6_sale_coupon.xml"), XML)
    odd = {"lines": [None, {"index": "x"}, {"index": 99, "discount": 5}], "discount": "7"}
    root = read(poslog.reply("redeem", command, InboundResult(201, odd)).body)
    assert texts(root, "p:Transaction/p:Status") == ["Accepted"]
    assert re.search(rb"<Amount", poslog.reply("redeem", None, InboundResult(200, {})).body)

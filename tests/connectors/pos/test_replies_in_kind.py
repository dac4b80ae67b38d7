"""POS replies in kind (issue 9, item 12), on SQLite and PostgreSQL.

* A mapped format's reply repeats the vendor's request id whenever the request was
  readable JSON — refusals of its payload (a wrong amount, a missing field, a bad time,
  a NUL, an unknown store …) included; only a body that is not JSON at all has nothing
  to repeat.
* A replayed answer carries ``Idempotent-Replayed: true`` in every POS format (native,
  POSLog, mapped), as on ``/v1/redemptions``, and is otherwise the first reply byte for
  byte — refusals replayed too.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.services.jsonio import iso
from tests.conftest import issue, make_template, order

FIXTURES = Path(__file__).parent / "fixtures"
NUL = "\u0000"


def acme(code: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "mapped_acme_redeem.json").read_text())
    doc.update(req_id=f"ACME-{uuid.uuid4().hex}", coupon_no=code,
               items=[{"sku_code": "SKU-TEA-1", "cat": "tea", "qty": 1, "price": "128.00"}])
    del doc["trade_time"]
    doc.update(changes)
    return doc


def nimbus(code: str, clock: Any, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "mapped_nimbus_redeem.json").read_text())
    doc["header"].update(requestId=str(uuid.uuid4()),
                         timestamp=int(clock.now.timestamp() * 1000))
    doc["body"]["voucher"]["code"] = code
    doc["body"]["order"]["items"] = [
        {"goodsId": "SKU-TEA-1", "categoryCode": "tea", "num": 1, "price": 12800}]
    for path, value in changes.items():
        node = doc
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return doc


def post(client: Any, merchant: Any, path: str, doc: Any, **headers: str) -> Any:
    content = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    h = {**merchant.auth(), "Content-Type": "application/json", **headers}
    return client.post(path, content=content, headers=h)


@pytest.fixture
def code(db, merchant, clock) -> str:
    [c] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    return c


ACME_PAYLOAD_ERRORS = {
    "yuan with three decimals": {"total_amt": "128.001"},
    "amount not a number": {"total_amt": {"yuan": 1}},
    "coupon missing": {"coupon_no": None},
    "store not a store code": {"shop_no": "SH 001!"},
    "store missing": {"shop_no": None},
    "line without a sku": {"items": [{"qty": 1, "price": "1.00"}]},
    "lines not a list": {"items": "many"},
    "time not a time": {"trade_time": "yesterday"},
    "time with no UTC instant": {"trade_time": "0001-01-01T00:00:00+14:00"},
    "a NUL in the order number": {"order_no": f"A{NUL}1"},
    "an unknown store": {"shop_no": "NOPE-1"},
    "a malformed code": {"coupon_no": "NOT-A-CODE"},
    "lines not adding up": {"items": [{"sku_code": "S", "qty": 1, "price": "1.00"}]},
}


@pytest.mark.parametrize("operation", ["redeem", "validate"])
@pytest.mark.parametrize("case", sorted(ACME_PAYLOAD_ERRORS))
def test_acme_refusals_echo_the_request_id(client, merchant, code, operation, case):
    doc = {k: v for k, v in acme(code, **ACME_PAYLOAD_ERRORS[case]).items() if v is not None}
    r = post(client, merchant, f"/v1/pos/pos.mapped.acme/{operation}", doc)
    assert r.status_code == 200, r.text  # ACME always answers 200, the outcome in `ret`
    reply = r.json()
    assert reply["ret"] != 0, reply
    assert reply["req_id"] == doc["req_id"], (case, reply)


NIMBUS_PAYLOAD_ERRORS = {
    "channel unknown": {"body.order.channelType": 9},
    "amount a string": {"body.order.payableAmount": "12800"},
    "voucher missing": {"body.voucher": None},
    "epoch out of range": {"header.timestamp": 10**20},
    "store not a store code": {"header.storeCode": "SH 001!"},
    "item quantity zero": {"body.order.items": [{"goodsId": "A", "num": 0, "price": 1}]},
    "a NUL where nothing reads it": {"header.deviceId": f"POS{NUL}"},
}


@pytest.mark.parametrize("case", sorted(NIMBUS_PAYLOAD_ERRORS))
def test_nimbus_refusals_echo_the_request_id(client, merchant, clock, code, case):
    doc = nimbus(code, clock, **NIMBUS_PAYLOAD_ERRORS[case])
    r = post(client, merchant, "/v1/pos/pos.mapped.nimbus/redeem", doc)
    assert 400 <= r.status_code < 500, r.text  # Nimbus answers with the hub's status
    reply = r.json()
    assert reply["success"] is False and reply["errorCode"], reply
    assert reply["requestId"] == doc["header"]["requestId"], (case, reply)


def test_only_a_body_that_is_not_json_has_no_request_id_to_echo(client, merchant, code):
    for raw in (b'{"req_id": "R-1", ', b"\xff\xfe", b"[1, 2]"):
        r = post(client, merchant, "/v1/pos/pos.mapped.acme/redeem", raw)
        assert r.status_code == 200 and r.json()["ret"] == 2002, r.text
        assert r.json()["req_id"] is None


# --- replays --------------------------------------------------------------------------------


def poslog(code: str, clock: Any, sequence: int = 123) -> bytes:
    doc = (FIXTURES / "v6_sale_coupon.xml").read_text()
    doc = re.sub(r"<((?:\w+:)?ScanCode)([^>]*)>[^<]+</\1>", rf"<\1\2>{code}</\1>", doc)
    at = iso(clock.now - timedelta(minutes=5))
    doc = re.sub(r"(<(?:\w+:)?(?:Begin|End)DateTime>)[^<]+(</)", rf"\g<1>{at}\2", doc)
    return doc.replace("<SequenceNumber>123</SequenceNumber>",
                       f"<SequenceNumber>{sequence}</SequenceNumber>", 1).encode()


def _formats(code: str, gift: str, clock: Any) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    native = {"code": code, "store": "SH-001", "order": order()}
    return {
        "pos.native": ("/v1/pos/pos.native/redeem", json.dumps(native).encode(),
                       {"Idempotency-Key": f"till-{uuid.uuid4().hex}"}),
        "pos.poslog": ("/v1/pos/pos.poslog/redeem", poslog(gift, clock),
                       {"Content-Type": "application/xml"}),
        "pos.mapped.acme": ("/v1/pos/pos.mapped.acme/redeem",
                            json.dumps(acme(code)).encode(), {}),
        "pos.mapped.nimbus": ("/v1/pos/pos.mapped.nimbus/redeem",
                              json.dumps(nimbus(code, clock)).encode(), {}),
    }


@pytest.mark.parametrize("fmt", ["pos.native", "pos.poslog", "pos.mapped.acme",
                                 "pos.mapped.nimbus"])
def test_a_replay_says_so_in_the_header_and_is_the_first_reply(
    client, db, merchant, clock, fmt
):
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    [gift] = issue(db, merchant, make_template(db, merchant, clock.now - timedelta(hours=1), {
        "benefit": {"kind": "exchange", "sku": "SKU-GIFT-1", "qty": 1, "price": 0},
        "validity": {"type": "relative", "days": 30}}), clock.now - timedelta(hours=1))
    path, body, headers = _formats(code, gift, clock)[fmt]
    first = post(client, merchant, path, body, **headers)
    assert first.status_code in (200, 201), first.text
    assert "Idempotent-Replayed" not in first.headers
    again = post(client, merchant, path, body, **headers)
    assert again.headers.get("Idempotent-Replayed") == "true", (fmt, dict(again.headers))
    assert again.status_code == first.status_code
    assert again.content == first.content  # byte for byte
    assert again.headers["content-type"] == first.headers["content-type"]


@pytest.mark.parametrize("fmt", ["pos.native", "pos.poslog", "pos.mapped.acme",
                                 "pos.mapped.nimbus"])
def test_a_replayed_refusal_says_so_too(client, db, merchant, clock, fmt):
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    voided = client.post(f"/v1/coupons/{code}/void", json={}, headers=merchant.auth())
    assert voided.status_code == 200, voided.text
    path, body, headers = _formats(code, code, clock)[fmt]
    first = post(client, merchant, path, body, **headers)
    again = post(client, merchant, path, body, **headers)
    assert "Idempotent-Replayed" not in first.headers, first.text
    assert re.search(r"coupon_voided|VOUCHER_INVALID|\"ret\":1005", first.text), first.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (again.status_code, again.content) == (first.status_code, first.content)

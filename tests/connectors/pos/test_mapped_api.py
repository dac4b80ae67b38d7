"""``POST /v1/pos/pos.mapped.<name>/<operation>``: the example mappings end to end
through the API (SQLite and PostgreSQL), idempotent on the vendor's request id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from tests.conftest import Clock, Merchant, issue, make_template

FIXTURES = Path(__file__).parent / "fixtures"


def body(vendor: str, operation: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"mapped_{vendor}_{operation}.json").read_text())
    doc.update(changes)
    return doc


def post(client: Any, m: Merchant, connector: str, operation: str, doc: Any) -> httpx.Response:
    content = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    headers = {**m.auth(), "Content-Type": "application/json"}
    response: httpx.Response = client.post(
        f"/v1/pos/{connector}/{operation}", content=content, headers=headers
    )
    return response


def shanghai(clock: Clock, m: Merchant) -> str:
    return clock.now.astimezone(m.tz).strftime("%Y-%m-%d %H:%M:%S")


def test_acme_redeem_retry_conflict_validate_and_reverse(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    template = make_template(db, merchant, clock.now)  # 满100减20
    first, second = issue(db, merchant, template, clock.now, count=2)
    redeem = body("acme", "redeem", coupon_no=first, trade_time=shanghai(clock, merchant), items=[])
    del redeem["items"]

    r = post(client, merchant, "pos.mapped.acme", "redeem", redeem)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    reply = r.json()
    assert reply["ret"] == 0 and reply["msg"] == "ok"
    assert reply["req_id"] == redeem["req_id"]
    assert reply["data"]["coupon_no"] == first
    assert reply["data"]["discount_amt"] == "20.00" and reply["data"]["pay_amt"] == "108.00"
    assert reply["data"]["redeem_id"].startswith("rdm_")

    # the terminal retries with the same req_id: the same answer, not a conflict
    again = post(client, merchant, "pos.mapped.acme", "redeem", redeem)
    assert again.status_code == 200 and again.json() == reply

    # a new request for the same coupon: ACME's "already redeemed"
    other = {**redeem, "req_id": redeem["req_id"] + "-2"}
    conflict = post(client, merchant, "pos.mapped.acme", "redeem", other).json()
    assert (conflict["ret"], conflict["msg"], conflict["data"]) == (1002, "券已核销", None)

    check = body("acme", "validate", coupon_no=second, trade_time=shanghai(clock, merchant))
    checked = post(client, merchant, "pos.mapped.acme", "validate", check)
    assert checked.status_code == 200 and checked.json()["ret"] == 0, checked.text
    assert checked.json()["data"]["usable"] is True
    assert checked.json()["data"]["discount_amt"] == "20.00"

    reversed_ = post(
        client, merchant, "pos.mapped.acme", "reverse", body("acme", "reverse", coupon_no=first)
    )
    assert reversed_.status_code == 200, reversed_.text
    assert reversed_.json()["ret"] == 0
    assert reversed_.json()["data"]["redeem_id"] == reply["data"]["redeem_id"]


def test_acme_garbage_and_unknown_coupons_answer_in_acme_format(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    r = post(client, merchant, "pos.mapped.acme", "redeem", b"{not json")
    assert r.status_code == 200
    assert r.json() == {"ret": 2002, "msg": "请求参数错误", "req_id": None, "data": None}

    r = post(
        client, merchant, "pos.mapped.acme", "redeem", body("acme", "redeem", total_amt="1.001")
    )
    assert r.status_code == 200 and r.json()["ret"] == 2002

    # the sample's code was never issued here
    unknown = body("acme", "validate", trade_time=shanghai(clock, merchant))
    r = post(client, merchant, "pos.mapped.acme", "validate", unknown)
    assert r.json()["ret"] == 1001 and r.json()["msg"] == "券码不存在"


def test_nimbus_redeem_and_reverse_by_write_off_id(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    template = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, template, clock.now)
    redeem = body("nimbus", "redeem")
    redeem["header"]["timestamp"] = int(clock.now.timestamp() * 1000)
    redeem["body"]["voucher"]["code"] = code
    redeem["body"]["order"].pop("items")

    r = post(client, merchant, "pos.mapped.nimbus", "redeem", redeem)
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert r.json()["success"] is True and result["discountAmount"] == 2000
    assert result["payAmount"] == 10800

    again = body("nimbus", "redeem")
    again["header"] = {**redeem["header"], "requestId": "another-request"}
    again["body"] = redeem["body"]
    conflict = post(client, merchant, "pos.mapped.nimbus", "redeem", again)
    assert conflict.status_code == 409  # nimbus replies with the hub's status
    assert conflict.json()["errorCode"] == "VOUCHER_ALREADY_USED"

    cancel = body("nimbus", "reverse")
    cancel["body"]["writeOffId"] = result["writeOffId"]
    r = post(client, merchant, "pos.mapped.nimbus", "reverse", cancel)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["voucherStatus"] == "issued"


def test_unknown_mappings_and_operations_are_404(client: Any, merchant: Merchant) -> None:
    for connector in ("pos.mapped.nope", "pos.mapped"):
        r = post(client, merchant, connector, "redeem", body("acme", "redeem"))
        assert r.status_code == 404, (connector, r.text)

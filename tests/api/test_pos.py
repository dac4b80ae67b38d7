"""POS formats over HTTP (``POST /v1/pos/{connector}/{operation}``), on SQLite and
PostgreSQL: each format redeems a real coupon and gets its reply in kind, with the same
exactly-once contract as ``/v1/redemptions`` (the vendor's request id is the key)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from hub.connectors import InboundConnector, load_connectors
from hub.db.schema import redemptions
from hub.testing import BILLION_LAUGHS, EXTERNAL_DTD, EXTERNAL_ENTITY, GARBAGE
from tests.conftest import issue, make_template

FIXTURES = Path(__file__).resolve().parents[1] / "connectors" / "pos" / "fixtures"
NS = {"a": "http://www.nrf-arts.org/IXRetail/namespace/"}
XML = {"Content-Type": "application/xml"}
EXCHANGE_SPEC = {
    "benefit": {"kind": "exchange", "sku": "SKU-GIFT-1", "qty": 1, "price": 0},
    "validity": {"type": "relative", "days": 30},
}


def _times(doc: str, clock: Any, minutes_ago: int = 5) -> str:
    """The fixture's till times moved to just before the test clock."""
    at = (clock.now - timedelta(minutes=minutes_ago)).isoformat()
    return re.sub(r"(<(?:\w+:)?(?:Begin|End)DateTime>)[^<]+(</)", rf"\g<1>{at}\2", doc)


def poslog(name: str, code: str, clock: Any, sequence: int | None = None) -> bytes:
    doc = (FIXTURES / name).read_text()
    doc = re.sub(r"<((?:\w+:)?ScanCode)([^>]*)>[^<]+</\1>", rf"<\1\2>{code}</\1>", doc)
    if sequence is not None:  # the transaction's own number, not the line numbers
        doc = doc.replace(
            "<SequenceNumber>123</SequenceNumber>",
            f"<SequenceNumber>{sequence}</SequenceNumber>",
            1,
        )
    return _times(doc, clock).encode()


def xml_of(r: Any) -> ET.Element:
    assert r.headers["content-type"].startswith("application/xml"), r.headers
    return ET.fromstring(r.content)


def count_redemptions(db: Any) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(redemptions)).scalar_one())


@pytest.fixture
def gift_code(db, merchant, clock) -> str:
    issued_at = clock.now - timedelta(hours=1)  # before the till's transaction time
    tpl = make_template(db, merchant, issued_at, EXCHANGE_SPEC, name="Free gift box")
    [code] = issue(db, merchant, tpl, issued_at)
    return code


# --- pos.native ------------------------------------------------------------------------------


def test_native_redeem_is_the_native_api_with_its_idempotency(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    body = {"code": code, "store": "SH-001", "order": {"id": "N-1", "amount": 12800}}
    headers = {**merchant.auth(), "Idempotency-Key": "till-7-000123"}
    check = client.post("/v1/pos/pos.native/validate", json=body, headers=merchant.auth())
    assert check.status_code == 200 and check.json()["discount"] == 2000
    first = client.post("/v1/pos/pos.native/redeem", json=body, headers=headers)
    again = client.post("/v1/pos/pos.native/redeem", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["discount"] == 2000 and again.content == first.content
    assert (
        again.headers["Idempotent-Replayed"] == "true"
        and "Idempotent-Replayed" not in first.headers
    )
    assert count_redemptions(db) == 1
    # reverse by the coupon code (the POS knows no redemption id)
    undo = client.post(
        "/v1/pos/pos.native/reverse",
        json={"code": code, "reason": "refund"},
        headers={**merchant.auth(), "Idempotency-Key": "till-7-000124"},
    )
    assert undo.status_code == 201 and undo.json()["coupon_status"] == "issued"
    assert undo.json()["redemption_id"] == first.json()["redemption_id"]


def test_native_refusals_are_problem_documents(client, merchant):
    r = client.post(
        "/v1/pos/pos.native/redeem",
        json={"code": "nope"},
        headers={**merchant.auth(), "Idempotency-Key": "k1"},
    )
    assert r.status_code in (400, 422)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] in ("invalid_request", "invalid_pos_payload", "code_malformed")


# --- pos.poslog ------------------------------------------------------------------------------


def test_poslog_sale_redeems_and_answers_in_poslog(client, db, merchant, clock, gift_code):
    doc = poslog("v6_sale_coupon.xml", gift_code, clock)
    r = client.post("/v1/pos/pos.poslog/redeem", content=doc, headers={**merchant.auth(), **XML})
    assert r.status_code == 200, r.text
    root = xml_of(r)
    assert root.findtext("a:Transaction/a:Status", namespaces=NS) == "Accepted"
    assert root.findtext("a:Transaction/a:SequenceNumber", namespaces=NS) == "123"
    assert root.findtext(".//a:UnitID", namespaces=NS) == "SH-001"
    amounts = [a.text for a in root.iterfind(".//a:RetailPriceModifier/a:Amount", NS)]
    assert amounts == ["40.00"]  # the gift box line, free
    assert root.findtext(".//a:Coupon/a:ReferenceID", namespaces=NS).startswith("rdm_")
    # the till resends the same transaction: same answer, still one redemption
    again = client.post(
        "/v1/pos/pos.poslog/redeem", content=doc, headers={**merchant.auth(), **XML}
    )
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == r.content
    assert "Idempotent-Replayed" not in r.headers
    assert count_redemptions(db) == 1
    # another transaction presenting the same coupon: refused, in POSLog, saying why
    other = poslog("v6_sale_coupon.xml", gift_code, clock, sequence=124)
    refused = client.post(
        "/v1/pos/pos.poslog/redeem", content=other, headers={**merchant.auth(), **XML}
    )
    assert refused.status_code == 409
    reason = xml_of(refused).find("a:Transaction/a:Reason", NS)
    assert reason is not None and reason.get("Code") == "coupon_already_redeemed"
    # the post-void reverses it
    void = poslog("v6_post_void.xml", gift_code, clock)
    undone = client.post(
        "/v1/pos/pos.poslog/reverse", content=void, headers={**merchant.auth(), **XML}
    )
    assert undone.status_code == 200, undone.text
    assert xml_of(undone).findtext(".//a:CouponStatus", namespaces=NS) == "issued"


def test_poslog_2x_shape_with_prefixes_validates(client, db, merchant, clock):
    issued_at = clock.now - timedelta(hours=1)
    spec = {
        "benefit": {"kind": "percentage", "percent_off": 10},
        "validity": {"type": "relative", "days": 30},
    }
    [code] = issue(db, merchant, make_template(db, merchant, issued_at, spec), issued_at)
    doc = poslog("v2_prefixed_sale.xml", code, clock).replace(b"BJ-002", b"SH-001")
    r = client.post("/v1/pos/pos.poslog/validate", content=doc, headers={**merchant.auth(), **XML})
    assert r.status_code == 200, r.text
    root = xml_of(r)
    assert root.findtext("a:Transaction/a:Status", namespaces=NS) == "Valid"
    assert root.findtext("a:Transaction/a:SequenceNumber", namespaces=NS) == "4711"
    amounts = [a.text for a in root.iterfind(".//a:RetailPriceModifier/a:Amount", NS)]
    assert sum(Decimal(a) for a in amounts) == Decimal("2.78")  # 10 % of 27.81, floored


def test_poslog_store_key_of_another_store_is_refused_in_kind(client, merchant, clock, gift_code):
    doc = poslog("v6_sale_coupon.xml", gift_code, clock)
    r = client.post(
        "/v1/pos/pos.poslog/redeem",
        content=doc,
        headers={**merchant.auth(merchant.store_keys["SH-002"]), **XML},
    )
    assert r.status_code == 403
    assert xml_of(r).find("a:Transaction/a:Reason", NS).get("Code") == "store_forbidden"


@pytest.mark.parametrize(
    "attack",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
def test_poslog_xml_attacks_are_refused(client, merchant, attack):
    r = client.post("/v1/pos/pos.poslog/redeem", content=attack, headers={**merchant.auth(), **XML})
    assert r.status_code == 400
    assert xml_of(r).find("a:Transaction/a:Reason", NS).get("Code") == "xml_forbidden"
    assert b"root:" not in r.content  # /etc/passwd never read


def test_poslog_wants_xml(client, merchant):
    r = client.post("/v1/pos/pos.poslog/redeem", json={"code": "x"}, headers=merchant.auth())
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    assert "application/xml" in r.json()["accepted"]


# --- pos.mapped ------------------------------------------------------------------------------


def _mapped_samples() -> list[tuple[str, Path]]:
    found = []
    mapped = load_connectors().get("pos.mapped")
    for variant in mapped.variants() if mapped else ():
        for path in sorted(FIXTURES.glob(f"mapped_{variant}_redeem*.json")):
            found.append((variant, path))
    return found


def _with_code(value: Any, old: str, new: str, clock: Any) -> Any:
    """The sample with our coupon, and its till time moved to just before the test clock
    (ISO times, "yyyy-mm-dd hh:mm:ss" local times and epoch milliseconds)."""
    at = clock.now - timedelta(minutes=5)
    local = at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    text = json.dumps(value, ensure_ascii=False).replace(old, new)
    text = re.sub(r'"\d{4}-\d{2}-\d{2}T[^"]+"', f'"{at.isoformat()}"', text)
    text = re.sub(r'"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"', f'"{local}"', text)
    text = re.sub(r"\b1[78]\d{11}\b", str(int(at.timestamp() * 1000)), text)
    return json.loads(text)


@pytest.mark.parametrize(
    "variant,path", _mapped_samples(), ids=lambda v: str(getattr(v, "name", v))
)
def test_each_mapped_vendor_redeems_and_answers_in_kind(client, db, merchant, clock, variant, path):
    issued_at = clock.now - timedelta(hours=1)
    tpl = make_template(db, merchant, issued_at)
    [code] = issue(db, merchant, tpl, issued_at)
    sample = json.loads(path.read_text())
    connector = load_connectors()["pos.mapped"].variant(variant)
    parsed = connector.parse("redeem", path.read_bytes(), {"content-type": "application/json"})
    assert parsed.redeem is not None
    body = _with_code(sample, parsed.redeem.code, code, clock)
    url = f"/v1/pos/pos.mapped.{variant}/redeem"
    r = client.post(url, json=body, headers=merchant.auth())
    assert r.status_code < 300, r.text
    assert r.headers["content-type"].startswith("application/json")
    again = client.post(url, json=body, headers=merchant.auth())
    assert again.content == r.content  # the vendor's request id made it idempotent
    assert count_redemptions(db) == 1
    other = _with_code(sample, parsed.redeem.code, code, clock)
    refused = client.post(url, json=_rekey(other), headers=merchant.auth())
    assert refused.content != r.content  # a refusal in the vendor's own shape
    assert "coupon_already_redeemed" not in refused.text or "code" in refused.text


def _rekey(body: Any) -> Any:
    """The same request under a new vendor request id (every id-looking string changed)."""
    text = json.dumps(body)
    for old in set(
        re.findall(r'"(?:req|request|trace|serial|txn)[A-Za-z_]*": "([^"]+)"', text, re.I)
    ):
        text = text.replace(old, uuid.uuid4().hex[:16])
    return json.loads(text)


def test_there_are_two_mapped_vendor_examples():
    assert len({v for v, _ in _mapped_samples()}) >= 2


# --- every inbound connector, every operation: unknowns, garbage ----------------------------


def inbound() -> list[tuple[str, str, str]]:
    out = []
    for c in load_connectors().values():
        impls = [c.variant(v) for v in c.variants()] or [c]
        for impl in impls:
            if not isinstance(impl, InboundConnector):  # outbound: serves no POS route
                continue
            for op in impl.operations:
                out.append((impl.name, op, impl.media_types[0]))
    return sorted(out)


def test_unknown_connector_or_operation_is_404(client, merchant):
    for path in (
        "/v1/pos/pos.nonesuch/redeem",
        "/v1/pos/pos.native/explode",
        "/v1/pos/erp.sap/redeem",
        "/v1/pos/pos.mapped.nonesuch/redeem",
    ):
        r = client.post(path, json={}, headers=merchant.auth())
        assert r.status_code == 404 and r.json()["code"] == "not_found", path


def test_every_inbound_connector_refuses_garbage_in_kind(client, merchant):
    routes = inbound()
    assert {n for n, _, _ in routes} >= {"pos.native", "pos.poslog"}
    failures = []
    for name, op, media in routes:
        for body in GARBAGE:
            r = client.post(
                f"/v1/pos/{name}/{op}",
                content=body,
                headers={
                    **merchant.auth(),
                    "Content-Type": media,
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )
            # vendors that always answer 200 carry the refusal in the body
            refused = 400 <= r.status_code < 500 or (
                name.startswith("pos.mapped.") and r.status_code == 200
            )
            if not refused or b"Traceback" in r.content or not r.content:
                failures.append(f"{name}/{op} {body[:30]!r}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)
    assert count_redemptions(client.app.state.hub.engine) == 0

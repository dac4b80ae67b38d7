"""The API is the edge: rules know no HTTP (issue 10).

* A refusal names a code; its HTTP status is looked up once, from the error table
  (``hub.services.problems.HTTP_STATUS``), for the API's answers, the stored idempotent
  replies and the POS replies alike.
* The services build no HTTP strings: the edge names the operations the idempotency
  records and stored problem documents carry, spelled as before (so a key stored by an
  earlier release still replays).
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import select

from hub.api.dto import RedeemIn
from hub.db.schema import idempotency_keys
from hub.services import problems
from tests.conftest import issue, make_template, order

ROOT = Path(__file__).resolve().parents[2]
HTTP_STRING = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /")


def _http_strings(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        parts: list[ast.expr] = []
        if isinstance(node, ast.JoinedStr):
            parts = node.values[:1]
        elif isinstance(node, ast.Constant):
            parts = [node]
        for part in parts:
            if (
                isinstance(part, ast.Constant)
                and isinstance(part.value, str)
                and HTTP_STRING.match(part.value)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {part.value!r}")
    return found


def test_the_services_build_no_http_strings():
    found = [s for p in sorted((ROOT / "hub" / "services").rglob("*.py")) for s in _http_strings(p)]
    assert not found, found
    # the scan finds what it looks for (the edge names the operations)
    assert _http_strings(ROOT / "hub" / "api" / "redemptions.py")


def _stored(db: Any, key: str) -> tuple[str, str, int]:
    with db.connect() as conn:
        row = conn.execute(
            select(
                idempotency_keys.c.endpoint,
                idempotency_keys.c.request_hash,
                idempotency_keys.c.response_status,
            ).where(idempotency_keys.c.key.in_((key, f"pos.native:{key}")))
        ).one()
    return str(row.endpoint), str(row.request_hash), int(row.response_status)


def _fingerprint(name: str, canonical: bytes) -> str:
    return hashlib.sha256(name.encode() + b"\0" + canonical).hexdigest()


def test_idempotency_records_name_the_operations_as_before(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    native, pos = issue(db, merchant, tpl, clock.now, count=2)
    body = {"code": native, "store": "SH-001", "order": order(12800)}
    r = client.post(
        "/v1/redemptions", json=body, headers={**merchant.auth(), "Idempotency-Key": "e-1"}
    )
    assert r.status_code == 201, r.text
    rid = r.json()["redemption_id"]
    endpoint, digest, status = _stored(db, "e-1")
    canonical = msgspec.json.encode(msgspec.convert(body, RedeemIn))  # as the handler does
    assert (endpoint, status) == ("POST /v1/redemptions", 201)
    assert digest == _fingerprint(endpoint, canonical)

    r = client.post(
        f"/v1/redemptions/{rid}/reversal",
        json={"reason": "refund"},
        headers={**merchant.auth(), "Idempotency-Key": "e-2"},
    )
    assert r.status_code == 201, r.text
    endpoint, digest, _ = _stored(db, "e-2")
    assert endpoint == f"POST /v1/redemptions/{rid}/reversal"
    assert digest == _fingerprint(endpoint, msgspec.json.encode({"reason": "refund"}))

    # the POS route runs under the native API's operation names (one contract)
    pos_body = {"code": pos, "store": "SH-001", "order": order(12800)}
    r = client.post(
        "/v1/pos/pos.native/redeem",
        json=pos_body,
        headers={**merchant.auth(), "Idempotency-Key": "e-3"},
    )
    assert r.status_code == 201, r.text
    assert _stored(db, "e-3")[0] == "POST /v1/redemptions"
    pos_rid = r.json()["redemption_id"]
    r = client.post(
        "/v1/pos/pos.native/reverse",
        json={"code": pos, "reason": "refund"},
        headers={**merchant.auth(), "Idempotency-Key": "e-4"},
    )
    assert r.status_code == 201, r.text
    assert _stored(db, "e-4")[0] == f"POST /v1/redemptions/{pos_rid}/reversal"


def test_a_stored_refusal_keeps_its_instance(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    body = {"code": code, "store": "SH-001", "order": order(100)}  # below the threshold
    headers = {**merchant.auth(), "Idempotency-Key": "e-5"}
    first = client.post("/v1/redemptions", json=body, headers=headers)
    again = client.post("/v1/redemptions", json=body, headers=headers)
    assert first.status_code == again.status_code == 422
    assert first.json()["instance"] == "/v1/redemptions" and again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.fixture
def refused_status(monkeypatch: pytest.MonkeyPatch) -> int:
    """The table is the one place the status comes from: change it, and every way out
    (the API, the stored replies, the POS replies) answers with the new status."""
    monkeypatch.setitem(problems.HTTP_STATUS, "threshold_not_met", 418)
    return 418


def test_every_way_out_looks_the_status_up_in_the_table(
    client, db, merchant, clock, refused_status
):
    tpl = make_template(db, merchant, clock.now)
    a, b, c = issue(db, merchant, tpl, clock.now, count=3)
    small = order(100)  # below the threshold: threshold_not_met
    # the API's exception handler (validate raises the refusal)
    r = client.post(
        "/v1/redemptions/validate",
        json={"code": a, "store": "SH-001", "order": small},
        headers=merchant.auth(),
    )
    assert (r.status_code, r.json()["code"], r.json()["status"]) == (
        refused_status,
        "threshold_not_met",
        refused_status,
    )
    # the stored idempotent reply (the redeem stores its refusal)
    r = client.post(
        "/v1/redemptions",
        json={"code": b, "store": "SH-001", "order": small},
        headers={**merchant.auth(), "Idempotency-Key": "e-6"},
    )
    assert (r.status_code, r.json()["status"]) == (refused_status, refused_status)
    assert _stored(db, "e-6")[2] == refused_status
    # the POS reply
    r = client.post(
        "/v1/pos/pos.native/redeem",
        json={"code": c, "store": "SH-001", "order": small},
        headers={**merchant.auth(), "Idempotency-Key": "e-7"},
    )
    assert (r.status_code, r.json()["code"]) == (refused_status, "threshold_not_met")


# --- each body decoded once ------------------------------------------------------------------


def test_strict_bodies_are_decoded_once(client, db, merchant, clock, monkeypatch):
    """The redeem, validate, template, issue and product bodies: litestar's lenient decode
    does not run; the strict decoder runs once, straight into the handler's type."""
    from litestar import Request

    from hub.api import strict as strict_mod

    lenient: list[str] = []
    decoded: list[type] = []
    original_json = Request.json
    original_strict = strict_mod.strict

    async def spy_json(self: Any) -> Any:
        lenient.append(self.url.path)
        return await original_json(self)

    def spy_strict(raw: bytes, type_: type) -> Any:
        decoded.append(type_)
        return original_strict(raw, type_)

    monkeypatch.setattr(Request, "json", spy_json)
    monkeypatch.setattr(strict_mod, "strict", spy_strict)
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    redeem = {"code": code, "store": "SH-001", "order": order(12800)}
    template = {
        "name": "once",
        "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
        "validity": {"type": "relative", "days": 30},
    }
    auth = merchant.auth()
    calls = [
        ("/v1/redemptions/validate", redeem, auth, 200, "RedeemIn"),
        ("/v1/redemptions", redeem, {**auth, "Idempotency-Key": "once"}, 201, "RedeemIn"),
        ("/v1/templates", template, auth, 201, "TemplateIn"),
        (f"/v1/templates/{tpl}/coupons", {"count": 2}, auth, 201, "IssueIn"),
        ("/v1/products", {"sku": "S-1", "name": "Tea", "category": "tea", "price": 100}, auth,
         201, "ProductIn"),
    ]  # fmt: skip
    for path, body, headers, status, type_name in calls:
        decoded.clear()
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == status, r.text
        assert [t.__name__ for t in decoded] == [type_name], path
    assert lenient == []
    # still strict: a numeric string is no amount
    bad = {**redeem, "order": {"id": "A-1", "amount": "12800"}}
    r = client.post("/v1/redemptions/validate", json=bad, headers=auth)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")
    assert r.json()["errors"][0]["field"] == "order.amount"
    # trailing bytes after the object are malformed JSON, whatever the object holds
    r = client.post(
        "/v1/redemptions/validate",
        content=b"{} x",
        headers={**auth, "Content-Type": "application/json"},
    )
    assert (r.status_code, r.json()["code"]) == (400, "malformed_json")
    # an unknown or a missing field is named by its own path
    r = client.post("/v1/redemptions/validate", json={**redeem, "x": 1}, headers=auth)
    assert r.json()["errors"][0]["field"] == "x"
    r = client.post("/v1/templates", json={}, headers=auth)
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "name")

"""One behaviour on SQLite and PostgreSQL, whatever the input (issue 9, item 11).

* A NUL character (``\\u0000``, ``%00``) in any text — any JSON body of any route, a
  query parameter, a path segment, a header, a POS vendor payload — is refused with 422
  ``invalid_characters`` on both databases (PostgreSQL cannot store it; SQLite would).
* A key repeated in one JSON object — any JSON body, any route, the POS JSON formats —
  is 400 ``duplicate_json_key``; a repeated ``Idempotency-Key`` header is 400
  ``idempotency_key_repeated``.
* Validate never says ``valid`` for a body that redeem refuses: the same bodies go
  through both (the native API and the POS formats) and must agree, outcome and code.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from sqlalchemy import func, select

from hub.api.app import create_app
from hub.api.hardening import _reads_body
from hub.db.schema import idempotency_keys, redemptions
from hub.services.guard import Guard, Limits
from hub.services.jsonio import iso
from hub.services.settings import Settings
from tests.conftest import THRESHOLD_SPEC, issue, make_template, order

FIXTURES = Path(__file__).resolve().parents[1] / "connectors" / "pos" / "fixtures"
NUL = "\u0000"
BODY_METHODS = ("POST", "PUT", "PATCH")
FILL = {"connector": "pos.native", "operation": "redeem"}


def body_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path with its parameters filled in) of every operation reading a body."""
    out = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, _kw) in route.route_handler_map.items():
            if method in BODY_METHODS and _reads_body(handler):
                path = re.sub(r"\{(\w+):\w+\}",
                              lambda m: FILL.get(m.group(1), "X"), route.path)
                out.append((method, path))
    return sorted(set(out))


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    doc = r.json()
    assert doc["code"] == code, doc
    return dict(doc)


def count(db: Any, table: Any) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def send_raw(client: Any, method: str, path: str, body: bytes,
             headers: list[tuple[str, str]]) -> httpx.Response:
    """A request with header fields exactly as listed (repeats kept, any bytes)."""
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            return await c.request(method, path, content=body, headers=headers)

    return anyio.run(go)


# --- NUL characters -----------------------------------------------------------------------


def test_every_json_route_refuses_a_nul_anywhere_in_its_body(client, db, merchant):
    routes = body_routes(client.app)
    assert len(routes) >= 14, routes
    for method, path in routes:
        for body in ({"name": f"a{NUL}b"}, {"order": {"id": NUL}}, [f"{NUL}"], {f"k{NUL}": 1}):
            r = client.request(method, path, json=body,
                               headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex})
            problem(r, 422, "invalid_characters")
    assert count(db, idempotency_keys) == 0  # nothing reached a service


def test_a_nul_in_each_field_of_real_bodies_is_refused_and_nothing_is_stored(
    client, db, merchant, clock
):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    bodies: dict[str, Any] = {
        "/v1/redemptions": {"code": code, "store": "SH-001", "channel": "pos",
                            "order": order(lines=[{"sku": "T", "category": "tea", "qty": 1,
                                                   "unit_price": 12800}])},
        "/v1/redemptions/validate": {"code": code, "store": "SH-001", "order": order()},
        "/v1/stores": {"code": "NEW-1", "name": "New store"},
        "/v1/products": {"sku": "SKU-N", "name": "New", "category": "tea", "price": 100},
        "/v1/customers": {"external_id": "C-9", "name": "Name", "phone": "123"},
        "/v1/templates": {"name": "T", **THRESHOLD_SPEC,
                          "usage": {"skus": ["A"], "categories": ["tea"], "stores": ["SH-001"]}},
        "/v1/keys": {"role": "analyst", "name": "BI", "stores": ["SH-001"]},
        "/v1/subscriptions": {"connector": "webhook", "events": ["coupon.redeemed"],
                              "config": {"url": "https://example.com/h", "secret": "s" * 32},
                              "description": "d"},
        f"/v1/coupons/{code}/void": {"reason": "why"},
        f"/v1/coupons/{code}/claim": {"customer": "M0001"},
        f"/v1/templates/{tpl}/coupons": {"customers": ["M0001"]},
        "/v1/pos/pos.native/redeem": {"code": code, "store": "SH-001", "order": order()},
        "/v1/orders/redeem": {"codes": [code], "store": "SH-001", "channel": "pos",
                              "order": order(lines=[{"sku": "T", "category": "tea", "qty": 1,
                                                     "unit_price": 12800}])},
    }

    def leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        if isinstance(doc, dict):
            for k, v in doc.items():
                yield from leaves(v, (*path, k))
        elif isinstance(doc, list):
            for i, v in enumerate(doc):
                yield from leaves(v, (*path, i))
        elif isinstance(doc, str):
            yield path

    def with_nul(doc: Any, path: tuple[Any, ...]) -> Any:
        doc = json.loads(json.dumps(doc))
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = node[path[-1]][:1] + NUL + node[path[-1]][1:]
        return doc

    before = {t.name: count(db, t) for t in (redemptions, idempotency_keys)}
    checked = 0
    for path, body in bodies.items():
        for leaf in leaves(body):
            r = client.post(path, json=with_nul(body, leaf),
                            headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex})
            doc = problem(r, 422, "invalid_characters")
            assert doc["errors"][0]["field"].replace("[", ".").split(".")[-1].rstrip("]") == (
                str(leaf[-1])), (path, leaf, doc)
            checked += 1
    assert checked >= 30
    assert {t.name: count(db, t) for t in (redemptions, idempotency_keys)} == before
    got = client.get(f"/v1/coupons/{code}", headers=merchant.auth()).json()
    assert got["status"] == "issued"


@pytest.mark.parametrize("url", [
    "/v1/coupons/AB%00CD",
    "/v1/redemptions?store=SH%00",
    "/v1/redemptions?template=%00",
    "/v1/deliveries?subscription=%00",
    "/v1/audit?action=%00",
    "/v1/templates/tpl%00",
    "/v1/keys?x=%00",
])
def test_a_nul_in_the_url_is_refused(client, merchant, url):
    problem(client.get(url, headers=merchant.auth()), 422, "invalid_characters")


def test_a_nul_in_a_header_is_refused(client, merchant, clock, db):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    body = json.dumps({"code": code, "store": "SH-001", "order": order()}).encode()
    for path in ("/v1/redemptions", "/v1/pos/pos.native/redeem"):
        headers = [*merchant.auth().items(), ("Content-Type", "application/json"),
                   ("Idempotency-Key", f"k{NUL}1")]
        problem(send_raw(client, "POST", path, body, headers), 422, "invalid_characters")
    assert count(db, idempotency_keys) == 0


def _acme(code: str, **changes: Any) -> dict[str, Any]:
    doc = json.loads((FIXTURES / "mapped_acme_redeem.json").read_text())
    doc.update(req_id=uuid.uuid4().hex, coupon_no=code, trade_time=None,
               items=[{"sku_code": "SKU-TEA-1", "cat": "tea", "qty": 1, "price": "128.00"}])
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def test_pos_payloads_with_a_nul_are_refused_in_kind(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    auth = {**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex}
    native = {"code": code, "store": "SH-001", "order": order(order_id=f"A{NUL}")}
    problem(client.post("/v1/pos/pos.native/validate", json=native, headers=auth), 422,
            "invalid_characters")
    for op in ("redeem", "validate"):
        doc = _acme(code, order_no=f"A-{NUL}1")
        r = client.post(f"/v1/pos/pos.mapped.acme/{op}", json=doc, headers=merchant.auth())
        assert r.status_code == 200 and r.json()["ret"] == 2002, r.text  # ACME: bad params
        assert r.json()["req_id"] == doc["req_id"]  # the refusal echoes the request id
    nimbus = json.loads((FIXTURES / "mapped_nimbus_redeem.json").read_text())
    nimbus["body"]["voucher"]["code"] = code
    nimbus["header"]["deviceId"] = f"POS{NUL}"  # a field the mapping does not even read
    r = client.post("/v1/pos/pos.mapped.nimbus/redeem", json=nimbus, headers=merchant.auth())
    assert r.status_code == 422 and r.json()["errorCode"] == "PARAM_ERROR", r.text
    assert r.json()["requestId"] == nimbus["header"]["requestId"]
    # XML 1.0 cannot carry a NUL at all: refused as malformed, never stored
    xml = (FIXTURES / "v6_sale_coupon.xml").read_text().replace("SH-001", "SH-&#0;01")
    r = client.post("/v1/pos/pos.poslog/redeem", content=xml.encode(),
                    headers={**merchant.auth(), "Content-Type": "application/xml"})
    assert r.status_code == 400 and 'Code="malformed_xml"' in r.text, r.text
    assert count(db, redemptions) == 0


def test_a_product_price_beyond_the_column_is_refused_on_both(client, db, merchant):
    """products.price is a 32-bit integer: PostgreSQL refused more (as a NUL-character
    error), SQLite stored it. Now both refuse it as a field error, and take the most."""
    body = {"sku": "BIG", "name": "n", "category": "c", "price": 2**31}
    r = client.post("/v1/products", json=body, headers=merchant.auth())
    doc = problem(r, 422, "invalid_request")
    assert doc["errors"][0]["field"] == "price"
    r = client.post("/v1/products", json={**body, "price": 2**31 - 1}, headers=merchant.auth())
    assert r.status_code == 201, r.text


# --- duplicate keys and repeated Idempotency-Key headers -----------------------------------


def test_every_json_route_refuses_duplicate_keys(client, db, merchant):
    for method, path in body_routes(client.app):
        for raw in (b'{"a": 1, "a": 2}', b'{"order": {"id": "1", "id": "2"}}',
                    b'[{"x": {"y": [{"k": 1, "k": 1}]}}]'):
            r = client.request(method, path, content=raw, headers={
                **merchant.auth(), "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex})
            doc = problem(r, 400, "duplicate_json_key")
            assert doc["key"] in ("a", "id", "k")
    assert count(db, idempotency_keys) == 0


def test_pos_json_formats_refuse_duplicate_keys(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    native = (b'{"code": "%s", "code": "%s", "store": "SH-001", "order": {"id": "1", '
              b'"amount": 12800}}' % (code.encode(), code.encode()))
    r = client.post("/v1/pos/pos.native/redeem", content=native, headers={
        **merchant.auth(), "Content-Type": "application/json", "Idempotency-Key": "dup-1"})
    problem(r, 400, "duplicate_json_key")
    acme = json.dumps(_acme(code))[:-1] + f', "coupon_no": "{code}"}}'
    r = client.post("/v1/pos/pos.mapped.acme/redeem", content=acme.encode(),
                    headers={**merchant.auth(), "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["ret"] == 2002, r.text
    nimbus = (FIXTURES / "mapped_nimbus_redeem.json").read_text().replace(
        '"version": "2.3"', '"version": "2.3", "storeCode": "BJ-001"')
    r = client.post("/v1/pos/pos.mapped.nimbus/redeem", content=nimbus.encode(),
                    headers={**merchant.auth(), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["errorCode"] == "PARAM_ERROR", r.text
    assert count(db, redemptions) == 0


@pytest.mark.parametrize("path", ["/v1/redemptions", "/v1/redemptions/X/reversal",
                                  "/v1/pos/pos.native/redeem", "/v1/redemptions/validate"])
def test_a_repeated_idempotency_key_header_is_refused(client, db, merchant, clock, path):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    body = json.dumps({"code": code, "store": "SH-001", "order": order()}).encode()
    for keys in (("k-1", "k-2"), ("same", "same")):
        headers = [*merchant.auth().items(), ("Content-Type", "application/json"),
                   *(("Idempotency-Key", k) for k in keys)]
        doc = problem(send_raw(client, "POST", path, body, headers), 400,
                      "idempotency_key_repeated")
        assert "Idempotency-Key" in doc["detail"]
    assert count(db, redemptions) == 0 and count(db, idempotency_keys) == 0


# --- validate agrees with redeem ----------------------------------------------------------


@pytest.fixture
def open_client(db, clock) -> Iterator[TestClient[Any]]:
    """The app with the guessing guard off: a dry run's failure must not block the redeem
    that follows it (that is the guard's business, tested on its own)."""
    settings_ = Settings(guard=Guard(Limits(max_per_key=0, max_per_address=0)))
    with TestClient(create_app(db, settings=settings_, clock=clock)) as c:
        yield c


def outcome(r: Any) -> tuple[str, str]:
    """("ok" | "refused", code) of a native answer."""
    assert r.status_code < 500, r.text
    doc = r.json()
    if r.status_code < 300:
        return "ok", ""
    return "refused", str(doc["code"])


def agree(client: Any, auth: dict[str, str], body: Any, *, raw: bytes | None = None,
          base: str = "/v1/redemptions") -> tuple[str, str]:
    """Validate, then redeem the same body; they must agree. Returns the outcome."""
    content = raw if raw is not None else json.dumps(body).encode()
    headers = {**auth, "Content-Type": "application/json"}
    redeem_path = base if base == "/v1/redemptions" else f"{base}/redeem"
    check = client.post(f"{base}/validate", content=content, headers=headers)
    done = client.post(redeem_path, content=content,
                       headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    v, r = outcome(check), outcome(done)
    assert v == r, (body if raw is None else raw, check.text, done.text)
    if v[0] == "ok":
        assert check.json()["status"] == "valid" and done.json()["status"] == "redeemed"
        assert check.json()["discount"] == done.json()["discount"]
    return v


class Pool:
    """Coupons of several kinds, issued a day ago; each example may take any of them."""

    def __init__(self, db: Any, merchant: Any, clock: Any) -> None:
        then = clock.now - timedelta(days=1)
        specs = {
            "threshold": THRESHOLD_SPEC,
            "tea": {"benefit": {"kind": "percentage", "percent_off": 15},
                    "validity": {"type": "relative", "days": 30},
                    "usage": {"categories": ["tea"]}},
            "gift": {"benefit": {"kind": "exchange", "sku": "GIFT", "qty": 1},
                     "validity": {"type": "relative", "days": 30}},
            "ended": {"benefit": THRESHOLD_SPEC["benefit"],
                      "validity": {"type": "fixed", "start": iso(then),
                                   "end": iso(clock.now - timedelta(hours=1))}},
            "sh002": {**THRESHOLD_SPEC, "usage": {"stores": ["SH-002"]}},
        }
        self.codes = {
            kind: issue(db, merchant, make_template(db, merchant, then, spec, name=kind), then,
                        count=20)
            for kind, spec in specs.items()
        }

    def take(self, kind: str, i: int) -> str:
        return self.codes[kind][i % 20]


LINES = st.lists(
    st.fixed_dictionaries({
        "sku": st.sampled_from(["TEA-1", "GIFT", "BAK-1", "x" * 129]),
        "qty": st.integers(0, 3),
        "unit_price": st.integers(-1, 9000),
    }, optional={"category": st.sampled_from(["tea", "bakery", ""])}),
    max_size=3,
)
OFFSETS = {"now-1h": -timedelta(hours=1), "now-6d": -timedelta(days=6),
           "now-8d": -timedelta(days=8), "now+4m": timedelta(minutes=4),
           "now+6m": timedelta(minutes=6), "ended-30m": -timedelta(minutes=90)}
TIMES = st.sampled_from([
    None, *OFFSETS, "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
    "2026-13-01T00:00:00Z", "2026-11-25T08:00:00",
])


def _time(token: str | None, clock: Any) -> str | None:
    """A time token as sent: relative to the clock (``ended-30m``: half an hour before the
    "ended" coupons' window closed), or the literal string."""
    if token in OFFSETS:
        return iso(clock.now + OFFSETS[token])
    return token


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_validate_and_redeem_agree_on_any_body(open_client, db, merchant, clock, data):
    pool = getattr(test_validate_and_redeem_agree_on_any_body, "pool", None)
    if pool is None or pool.db is not db or pool.merchant is not merchant:
        pool = Pool(db, merchant, clock)
        pool.db, pool.merchant = db, merchant  # type: ignore[attr-defined]
        test_validate_and_redeem_agree_on_any_body.pool = pool  # type: ignore[attr-defined]
    kind = data.draw(st.sampled_from(["threshold", "tea", "gift", "ended", "sh002", "bad"]))
    i = data.draw(st.integers(0, 19))
    code = "NOT-A-CODE" if kind == "bad" else pool.take(kind, i)
    lines = data.draw(st.none() | LINES)
    amount = data.draw(st.sampled_from([
        "lines", 12800, 0, -1, 10**12, 10**12 + 1, "12800", 12800.5]))
    if amount == "lines":
        amount = sum(ln["qty"] * ln["unit_price"] for ln in lines or [])
    body: dict[str, Any] = {
        "code": data.draw(st.sampled_from([code, code.lower(), f" {code}", code[:-1]])),
        "order": {"id": data.draw(st.sampled_from(["A-1", "", "x" * 129, f"A{NUL}"])),
                  "amount": amount},
    }
    if lines is not None:
        body["order"]["lines"] = lines
    store = data.draw(st.sampled_from(["SH-001", "SH-002", "NOPE", None, "bad store"]))
    if store is not None:
        body["store"] = store
    channel = data.draw(st.sampled_from([None, "pos", "app", "fax"]))
    if channel is not None:
        body["channel"] = channel
    when = _time(data.draw(TIMES), clock)
    if when is not None:
        body["occurred_at"] = when
    if data.draw(st.booleans()):
        body["extra"] = 1
    key = data.draw(st.sampled_from(["admin", "SH-001", "SH-002"]))
    auth = merchant.auth(None if key == "admin" else merchant.store_keys[key])
    base = data.draw(st.sampled_from(["/v1/redemptions", "/v1/pos/pos.native"]))
    agree(open_client, auth, body, base=base)


@pytest.mark.parametrize("raw", [
    b'{"code": "%(c)s", "code": "%(c)s", "store": "SH-001", "order": {"id": "1", "amount": 1}}',
    b'{"code": "%(c)s", "store": "SH-001", "order": {"id": "1\\u0000", "amount": 12800}}',
    b'{"code": "%(c)s", "store": "SH-001", "order": {"id": "1", "amount": 12800}, '
    b'"occurred_at": "0001-01-01T00:00:00+14:00"}',
    b'{"code": "%(c)s", "store": "SH-001", "order": {"id": "1", "amount": 12800, '
    b'"lines": [{"sku": "A", "qty": 1, "unit_price": 100}]}}',
    b'{"code": "%(c)s", "store": "SH-001", "order": {"id": "1", "amount": 12800}} x',
    b'{"code": "%(c)s", "store": "SH-001", "order": {"id": "\\ud800", "amount": 12800}}',
])
def test_validate_and_redeem_agree_on_hostile_bodies(open_client, db, merchant, clock, raw):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    body = raw % {b"c": code.encode()}
    for base in ("/v1/redemptions", "/v1/pos/pos.native"):
        assert agree(open_client, merchant.auth(), None, raw=body, base=base)[0] == "refused"
    assert count(db, redemptions) == 0


def _acme_code(r: Any) -> tuple[str, str]:
    assert r.status_code < 500, r.text
    ret = r.json()["ret"]
    return ("ok", "") if ret == 0 else ("refused", str(ret))


@pytest.mark.parametrize("changes", [
    {}, {"total_amt": "1.00"}, {"total_amt": "128.001"}, {"shop_no": "NOPE"},
    {"trade_time": "0001-01-01T00:00:00+14:00"}, {"trade_time": "2020-01-01 00:00:00"},
    {"order_no": f"A{NUL}"}, {"items": [{"sku_code": "S", "qty": 1, "price": "1.00"}]},
    {"coupon_no": "XXXX"}, {"req_id": "r" * 201},
])
def test_mapped_validate_and_redeem_agree(open_client, db, merchant, clock, changes):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    doc = _acme(code, **changes)
    check = open_client.post("/v1/pos/pos.mapped.acme/validate", json=doc,
                             headers=merchant.auth())
    done = open_client.post("/v1/pos/pos.mapped.acme/redeem", json=doc, headers=merchant.auth())
    assert _acme_code(check) == _acme_code(done), (changes, check.text, done.text)
    assert check.json()["req_id"] == done.json()["req_id"] == doc["req_id"][:200] or (
        changes.get("req_id"))


def _poslog(code: str, clock: Any, **subs: str) -> bytes:
    doc = (FIXTURES / "v6_sale_coupon.xml").read_text()
    doc = re.sub(r"<((?:\w+:)?ScanCode)([^>]*)>[^<]+</\1>", rf"<\1\2>{code}</\1>", doc)
    at = iso(clock.now - timedelta(minutes=5))
    doc = re.sub(r"(<(?:\w+:)?(?:Begin|End)DateTime>)[^<]+(</)", rf"\g<1>{at}\2", doc)
    for old, new in subs.items():
        doc = doc.replace(old, new)
    return doc.encode()


@pytest.mark.parametrize("subs", [
    {}, {"SH-001": "SH-002"}, {"SH-001": "NOPE"}, {"<SequenceNumber>123": "<SequenceNumber>9"},
])
def test_poslog_validate_and_redeem_agree(open_client, db, merchant, clock, subs):
    tpl = make_template(db, merchant, clock.now - timedelta(hours=1), {
        "benefit": {"kind": "exchange", "sku": "SKU-GIFT-1", "qty": 1, "price": 0},
        "validity": {"type": "relative", "days": 30}})
    [code] = issue(db, merchant, tpl, clock.now - timedelta(hours=1))
    doc = _poslog(code, clock, **subs)
    headers = {**merchant.auth(), "Content-Type": "application/xml"}

    def status(r: Any) -> tuple[int, str | None]:
        assert r.status_code < 500, r.text
        m = re.search(r'<Reason Code="([^"]+)"', r.text)
        return r.status_code, m.group(1) if m else None

    check = open_client.post("/v1/pos/pos.poslog/validate", content=doc, headers=headers)
    done = open_client.post("/v1/pos/pos.poslog/redeem", content=doc, headers=headers)
    assert status(check) == status(done), (subs, check.text, done.text)


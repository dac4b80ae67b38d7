"""Every error code of ``hub.domain.errors.ERROR_CODES``, produced through the HTTP API.

Each scenario is registered with ``@produces(code)`` and run by ``test_error_scenario``,
which checks the RFC 9457 problem document (status, media type, ``type``, ``title``,
``detail``, ``status``, ``code``). ``test_every_code_is_produced_or_declared_unreachable``
proves that the scenarios plus ``UNREACHABLE_OVER_HTTP`` are exactly the catalogue, so a
new code cannot be added without a test here. The fuzz tests at the end send garbage to
every endpoint and require a 4xx problem document, never a 500.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from sqlalchemy import Engine, insert, select, text

from hub.db.schema import coupons, idempotency_keys
from hub.domain.codes import ALPHABET, display, generate_code
from hub.domain.errors import ERROR_CODES
from hub.services import idempotency
from hub.services.keys import create_key
from hub.services.problems import PROBLEM_MEDIA_TYPE, TYPE_BASE, status_for
from hub.testing import EXTERNAL_ENTITY
from tests.conftest import THRESHOLD_SPEC, Clock, Merchant, issue, make_template, order

# Codes that no HTTP request can produce today, each with the reason.
UNREACHABLE_OVER_HTTP: dict[str, str] = {
    "coupon_not_redeemed": "a redemption in status 'redeemed' always points at a coupon in "
    "status 'redeemed' (void needs 'issued'), so the reversal's state check never refuses",
    "internal_error": "only an unexpected exception answers 500; the fuzz tests below prove "
    "that bad input never does",
    "offline_not_allowed": "a terminal's refusal while offline (hub.domain.offline."
    "offline_refusal, hub.client); online, a token of an offline: false template (x: 0) is "
    "redeemed as its code is, since the hub itself judges it",
}

REDEEM_LIMIT = 64 * 1024


# --- helpers ----------------------------------------------------------------------------


def new_key() -> str:
    return uuid.uuid4().hex


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def media_type(r: httpx.Response) -> str:
    return r.headers.get("content-type", "").split(";")[0].strip()


def assert_problem(r: httpx.Response, code: str) -> dict[str, Any]:
    """``r`` is the RFC 9457 document for ``code`` with the catalogue's status and title."""
    status, title = status_for(code), ERROR_CODES[code]
    assert r.status_code == status, r.text
    assert media_type(r) == PROBLEM_MEDIA_TYPE, r.headers
    body = r.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == TYPE_BASE + code
    assert body["title"] == title
    assert isinstance(body["detail"], str) and body["detail"].strip()
    if "instance" in body:
        assert body["instance"] == r.request.url.path
    lowered = r.text.lower()
    assert "traceback" not in lowered and "sqlalchemy" not in lowered and "psycopg" not in lowered
    return body


def names_field(body: dict[str, Any], name: str) -> bool:
    """True when the problem's ``errors`` name ``name`` (as the field or in its message)."""
    return any(
        e["field"] == name or e["field"].endswith("." + name) or f"`{name}`" in e["message"]
        for e in body.get("errors", [])
    )


@dataclass
class Env:
    client: Any
    db: Engine
    m: Merchant
    clock: Clock

    @property
    def admin(self) -> dict[str, str]:
        return self.m.auth()

    def store_auth(self, store: str = "SH-001") -> dict[str, str]:
        return self.m.auth(self.m.store_keys[store])

    def template(self, **changes: Any) -> str:
        return make_template(self.db, self.m, self.clock.now, {**THRESHOLD_SPEC, **changes})

    def coupon(self, **changes: Any) -> str:
        [code] = issue(self.db, self.m, self.template(**changes), self.clock.now)
        return code

    def issue_to(self, template_id: str, *customers: str) -> list[str]:
        r = self.post(f"/v1/templates/{template_id}/coupons", {"customers": list(customers)})
        assert r.status_code == 201, r.text
        return [c["code"] for c in r.json()["coupons"]]

    def redeem(
        self,
        code: str,
        *,
        auth: dict[str, str] | None = None,
        key: str | None = None,
        path: str = "/v1/redemptions",
        **fields: Any,
    ) -> httpx.Response:
        body = {"code": code, "store": "SH-001", "order": order(), **fields}
        headers = dict(auth or self.admin)
        if path == "/v1/redemptions":
            headers["Idempotency-Key"] = key or new_key()
        return self.client.post(path, json=body, headers=headers)

    def validate(self, code: str, **kw: Any) -> httpx.Response:
        return self.redeem(code, path="/v1/redemptions/validate", **kw)

    def reverse(self, rid: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**self.admin, "Idempotency-Key": key or new_key()}
        return self.client.post(f"/v1/redemptions/{rid}/reversal", headers=headers, **kw)

    def post(self, path: str, body: Any = None, auth: dict[str, str] | None = None, **kw: Any):
        return self.client.post(path, json=body, headers=auth or self.admin, **kw)

    def get(self, path: str, auth: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return self.client.get(path, headers=auth or self.admin, **kw)

    def raw(self, path: str, content: Any, **headers: str) -> httpx.Response:
        h = {**self.admin, "Content-Type": "application/json", **headers}
        return self.client.post(path, content=content, headers=h)

    def coupon_status(self, code: str) -> str:
        with self.db.connect() as conn:
            return str(
                conn.execute(select(coupons.c.status).where(coupons.c.code == code)).scalar()
            )


@pytest.fixture
def env(client, db, merchant, clock) -> Env:
    return Env(client, db, merchant, clock)


def fixed(env: Env, start_days: float, end_days: float) -> dict[str, str]:
    now = env.clock.now
    return {
        "type": "fixed",
        "start": iso(now + timedelta(days=start_days)),
        "end": iso(now + timedelta(days=end_days)),
    }


def wrong_check_character(code: str) -> str:
    other = next(c for c in ALPHABET if c != code[-1])
    return code[:-1] + other


# --- scenario registry --------------------------------------------------------------------

Scenario = Callable[[Env], httpx.Response]
SCENARIOS: list[Any] = []


def produces(code: str) -> Callable[[Scenario], Scenario]:
    assert code in ERROR_CODES, f"{code} is not in the catalogue"

    def register(fn: Scenario) -> Scenario:
        SCENARIOS.append(pytest.param(code, fn, id=f"{code}-{fn.__name__}"))
        return fn

    return register


# --- request shape --------------------------------------------------------------------------


@produces("malformed_json")
def truncated_json(env: Env) -> httpx.Response:
    return env.raw("/v1/redemptions", b'{"code": "AB', **{"Idempotency-Key": new_key()})


@produces("malformed_json")
def trailing_garbage_on_validate(env: Env) -> httpx.Response:
    return env.raw("/v1/redemptions/validate", b'{"code": "X"} trailing')


@produces("malformed_json")
def invalid_utf8_on_templates(env: Env) -> httpx.Response:
    return env.raw("/v1/templates", b'{"name": "\xff\xfe"}')


@produces("malformed_json")
def nested_too_deeply(env: Env) -> httpx.Response:
    # msgspec raises RecursionError here; it used to answer 500.
    depth = 20_000
    return env.raw("/v1/redemptions", b"[" * depth + b"]" * depth, **{"Idempotency-Key": "d"})


@produces("malformed_json")
def objects_nested_too_deeply(env: Env) -> httpx.Response:
    depth = 5_000
    return env.raw("/v1/stores", b'{"a":' * depth + b"1" + b"}" * depth)


@produces("invalid_request")
def wrong_type_names_the_field(env: Env) -> httpx.Response:
    r = env.redeem(env.coupon(), order={"id": "A-1", "amount": "twelve thousand"})
    assert r.json()["errors"][0]["field"] == "order.amount"
    return r


@produces("invalid_request")
def fractional_fen(env: Env) -> httpx.Response:
    r = env.redeem(env.coupon(), order={"id": "A-1", "amount": 12800.5})
    assert r.json()["errors"][0]["field"] == "order.amount"
    return r


@produces("invalid_request")
def boolean_for_a_string(env: Env) -> httpx.Response:
    r = env.validate(env.coupon(), store=True)
    assert r.json()["errors"][0]["field"] == "store"
    return r


@produces("invalid_request")
def wrong_type_in_a_line(env: Env) -> httpx.Response:
    lines = [{"sku": "TEA-01", "qty": 0, "unit_price": 6400}]
    r = env.validate(env.coupon(), order=order(0, lines))
    assert r.json()["errors"][0]["field"] == "order.lines[0].qty"
    return r


@produces("invalid_request")
def unknown_top_level_field(env: Env) -> httpx.Response:
    r = env.redeem(env.coupon(), coupon_id="zzz")
    assert names_field(r.json(), "coupon_id"), r.json()
    return r


@produces("invalid_request")
def unknown_nested_field(env: Env) -> httpx.Response:
    r = env.redeem(env.coupon(), order={**order(), "tip": 5})
    assert names_field(r.json(), "tip"), r.json()
    return r


@produces("invalid_request")
def missing_field(env: Env) -> httpx.Response:
    body = {"store": "SH-001", "order": order()}
    r = env.client.post(
        "/v1/redemptions", json=body, headers={**env.admin, "Idempotency-Key": new_key()}
    )
    assert names_field(r.json(), "code"), r.json()
    return r


@produces("invalid_request")
def missing_nested_field(env: Env) -> httpx.Response:
    r = env.validate(env.coupon(), order={"amount": 12800})
    assert names_field(r.json(), "id"), r.json()
    return r


@produces("invalid_request")
def no_body_at_all(env: Env) -> httpx.Response:
    r = env.client.post("/v1/redemptions", headers={**env.admin, "Idempotency-Key": new_key()})
    assert "body" in r.json()["detail"].lower()
    return r


@produces("invalid_request")
def unknown_channel(env: Env) -> httpx.Response:
    r = env.redeem(env.coupon(), channel="fax")
    assert r.json()["errors"][0]["field"] == "channel"
    return r


@produces("invalid_request")
def occurred_at_without_offset(env: Env) -> httpx.Response:
    r = env.redeem(env.coupon(), occurred_at="2026-01-01T08:00:00")
    assert r.json()["errors"][0]["field"] == "occurred_at"
    return r


@produces("invalid_request")
def query_parameter_of_the_wrong_type(env: Env) -> httpx.Response:
    r = env.get("/v1/redemptions?limit=abc")
    assert r.json()["errors"][0]["field"] == "limit"
    return r


@produces("invalid_request")
def query_parameter_out_of_range(env: Env) -> httpx.Response:
    r = env.get("/v1/redemptions?limit=201")
    assert r.json()["errors"][0]["field"] == "limit"
    return r


@produces("invalid_request")
def naive_time_in_query(env: Env) -> httpx.Response:
    r = env.get("/v1/redemptions", params={"from": "2026-01-01T00:00:00"})
    assert r.json()["errors"][0]["field"] == "from"
    return r


@produces("invalid_request")
def unknown_benefit_kind(env: Env) -> httpx.Response:
    body = {**THRESHOLD_SPEC, "name": "x", "benefit": {"kind": "lottery"}}
    r = env.post("/v1/templates", body)
    assert r.json()["errors"][0]["field"] == "benefit.kind"
    return r


@produces("invalid_request")
def issue_nothing(env: Env) -> httpx.Response:
    r = env.post(f"/v1/templates/{env.template()}/coupons", {})
    assert r.json()["errors"][0]["field"] == "count"
    return r


@produces("invalid_request")
def store_code_with_bad_characters(env: Env) -> httpx.Response:
    r = env.post("/v1/stores", {"code": "SH 001/x", "name": "Bad"})
    assert r.json()["errors"][0]["field"] == "code"
    return r


@produces("invalid_request")
def product_sku_longer_than_stored(env: Env) -> httpx.Response:
    # the column holds 64 characters; a longer SKU used to answer 500 on PostgreSQL
    r = env.post("/v1/products", {"sku": "S" * 65, "name": "n", "category": "c", "price": 1})
    assert r.json()["errors"][0]["field"] == "sku"
    return r


@produces("payload_too_large")
def redeem_body_over_64_kib(env: Env) -> httpx.Response:
    raw = json.dumps({"code": env.coupon(), "store": "SH-001", "order": order()}).encode()
    body = raw + b" " * (REDEEM_LIMIT + 1 - len(raw))
    r = env.raw("/v1/redemptions", body, **{"Idempotency-Key": new_key()})
    assert len(body) == REDEEM_LIMIT + 1
    return r


@produces("payload_too_large")
def validate_body_over_64_kib(env: Env) -> httpx.Response:
    return env.raw("/v1/redemptions/validate", b'{"code": "' + b"A" * 70_000 + b'"}')


@produces("payload_too_large")
def chunked_body_over_64_kib(env: Env) -> httpx.Response:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 8_000

    return env.raw("/v1/redemptions", chunks(), **{"Idempotency-Key": new_key()})


@produces("payload_too_large")
def issue_body_over_2_mib(env: Env) -> httpx.Response:
    body = json.dumps({"customers": ["M0001"] * 300_000}).encode()
    assert len(body) > 2 * 1024 * 1024
    return env.raw(f"/v1/templates/{env.template()}/coupons", body)


@produces("payload_too_large")
def store_body_over_1_mib(env: Env) -> httpx.Response:
    # the default for JSON endpoints without their own limit
    body = json.dumps({"code": "BIG-1", "name": "x" * (1024 * 1024)}).encode()
    return env.raw("/v1/stores", body)


@produces("uri_too_long")
def query_string_over_8_kib(env: Env) -> httpx.Response:
    return env.get("/v1/redemptions?cursor=" + "A" * 9000)


@produces("headers_too_large")
def headers_over_16_kib(env: Env) -> httpx.Response:
    return env.get("/v1/templates", auth={**env.admin, "X-Padding": "p" * 17_000})


@produces("headers_too_large")
def more_than_100_header_fields(env: Env) -> httpx.Response:
    many = {f"X-Field-{i}": "1" for i in range(101)}
    return env.get("/v1/templates", auth={**env.admin, **many})


@produces("unsupported_media_type")
def form_body_to_a_json_endpoint(env: Env) -> httpx.Response:
    return env.raw("/v1/stores", b"code=NEW-2&name=New", **{"Content-Type": "text/plain"})


@produces("malformed_json")
def nested_deeper_than_64_levels(env: Env) -> httpx.Response:
    r = env.raw("/v1/subscriptions", b'{"config":' + b"[" * 65 + b"]" * 65 + b"}")
    assert "64" in r.json()["detail"]
    return r


@produces("idempotency_key_required")
def redeem_without_key(env: Env) -> httpx.Response:
    body = {"code": env.coupon(), "store": "SH-001", "order": order()}
    return env.client.post("/v1/redemptions", json=body, headers=env.admin)


@produces("idempotency_key_required")
def reversal_without_key(env: Env) -> httpx.Response:
    return env.post("/v1/redemptions/rdm_x/reversal", {"reason": "refund"})


@produces("idempotency_key_invalid")
def key_of_256_characters(env: Env) -> httpx.Response:
    return env.redeem(env.coupon(), key="k" * 256)


@produces("idempotency_key_invalid")
def empty_key(env: Env) -> httpx.Response:
    body = {"code": env.coupon(), "store": "SH-001", "order": order()}
    return env.client.post(
        "/v1/redemptions", json=body, headers={**env.admin, "Idempotency-Key": ""}
    )


@produces("idempotency_key_invalid")
def blank_key_on_reversal(env: Env) -> httpx.Response:
    return env.reverse("rdm_x", key="   ")


@produces("idempotency_key_reused")
def same_key_different_body(env: Env) -> httpx.Response:
    code = env.coupon()
    assert env.redeem(code, key="pos-1").status_code == 201
    r = env.redeem(code, key="pos-1", order=order(20000))
    assert "Idempotent-Replayed" not in r.headers
    return r


@produces("idempotency_key_reused")
def same_key_other_endpoint(env: Env) -> httpx.Response:
    first = env.redeem(env.coupon(), key="pos-2")
    assert first.status_code == 201
    return env.reverse(first.json()["redemption_id"], key="pos-2")


@produces("idempotency_key_in_flight")
def key_with_a_pending_record(env: Env) -> httpx.Response:
    """A record without a response is one whose request is still running."""
    code = env.coupon()
    now = env.clock.now
    with env.db.begin() as conn:
        conn.execute(
            insert(idempotency_keys).values(
                api_key_id=env.m.principal.key_id,
                key="busy",
                endpoint="POST /v1/redemptions",
                request_hash="0" * 64,
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    r = env.redeem(code, key="busy")
    assert env.coupon_status(code) == "issued"
    return r


@produces("idempotency_key_in_flight")
def key_locked_by_a_running_transaction(env: Env) -> httpx.Response:
    """PostgreSQL: the first request holds an advisory lock on the key until it commits."""
    if env.db.dialect.name != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's; SQLite serialises writers instead")
    code = env.coupon()
    lock_id = idempotency._lock_id(env.m.principal.key_id, "held")
    with env.db.connect() as conn, conn.begin():
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
        r = env.redeem(code, key="held")
    # the refusal left nothing behind: once the lock is gone the same key works
    assert env.redeem(code, key="held").status_code == 201
    return r


@produces("code_malformed")
def code_of_the_wrong_shape(env: Env) -> httpx.Response:
    return env.redeem("ABC")


@produces("code_malformed")
def code_with_a_wrong_check_character(env: Env) -> httpx.Response:
    code = env.coupon()
    r = env.redeem(wrong_check_character(code))
    assert env.coupon_status(code) == "issued"
    return r


@produces("code_malformed")
def code_with_two_characters_swapped(env: Env) -> httpx.Response:
    code = env.coupon()
    i = next(i for i in range(len(code) - 1) if code[i] != code[i + 1])
    swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
    return env.validate(swapped)


@produces("code_malformed")
def code_with_confusable_letters_on_lookup(env: Env) -> httpx.Response:
    return env.get("/v1/coupons/" + "O" * 13 + "1")


@produces("code_malformed")
def malformed_code_on_claim(env: Env) -> httpx.Response:
    return env.post("/v1/coupons/NOT-A-CODE/claim", {"customer": "M0001"})


@produces("invalid_cursor")
def cursor_that_is_not_base64_json(env: Env) -> httpx.Response:
    return env.get("/v1/redemptions?cursor=zzz")


@produces("invalid_cursor")
def cursor_with_a_naive_time(env: Env) -> httpx.Response:
    raw = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00","rdm_x"]').decode().rstrip("=")
    return env.get(f"/v1/redemptions?cursor={raw}")


@produces("invalid_cursor")
def cursor_of_the_wrong_shape(env: Env) -> httpx.Response:
    raw = base64.urlsafe_b64encode(b'{"at": 1}').decode()
    return env.get("/v1/redemptions", params={"cursor": raw})


@produces("not_found")
def unknown_path(env: Env) -> httpx.Response:
    return env.get("/v1/nothing-here")


@produces("not_found")
def unknown_path_without_a_key(env: Env) -> httpx.Response:
    return env.client.post("/v1/no-such-thing/redeem", json={})


@produces("method_not_allowed")
def delete_on_redemptions(env: Env) -> httpx.Response:
    r = env.client.delete("/v1/redemptions", headers=env.admin)
    allowed = {m.strip() for m in r.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed and "DELETE" not in allowed
    return r


@produces("method_not_allowed")
def put_on_a_template(env: Env) -> httpx.Response:
    r = env.client.put(f"/v1/templates/{env.template()}", json={}, headers=env.admin)
    assert "GET" in r.headers["allow"]
    return r


# --- auth ---------------------------------------------------------------------------------


@produces("unauthorized")
def no_authorization_header(env: Env) -> httpx.Response:
    r = env.client.get("/v1/merchant")
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    return r


@produces("unauthorized")
def unknown_key(env: Env) -> httpx.Response:
    r = env.client.get("/v1/merchant", headers={"Authorization": "Bearer hk.key_nope.secret"})
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    return r


@produces("forbidden")
def store_key_creating_a_template(env: Env) -> httpx.Response:
    body = {**THRESHOLD_SPEC, "name": "sneaky"}
    r = env.post("/v1/templates", body, auth=env.store_auth())
    assert env.get("/v1/templates").json()["items"] == []
    return r


@produces("forbidden")
def store_key_listing_customers(env: Env) -> httpx.Response:
    return env.get("/v1/customers", auth=env.store_auth())


@produces("store_forbidden")
def store_key_redeeming_at_another_store(env: Env) -> httpx.Response:
    code = env.coupon()
    r = env.redeem(code, auth=env.store_auth("SH-001"), store="SH-002")
    assert "SH-002" in r.json()["detail"]
    assert env.coupon_status(code) == "issued"
    return r


@produces("store_forbidden")
def store_key_validating_at_another_store(env: Env) -> httpx.Response:
    return env.validate(env.coupon(), auth=env.store_auth("BJ-001"), store="SH-001")


@produces("too_many_failed_attempts")
def guessing_codes_until_blocked(env: Env) -> httpx.Response:
    limit = env.client.app.state.hub.settings.guard.limits.max_per_key
    auth = env.store_auth("SH-002")
    for _ in range(limit):
        assert env.get(f"/v1/coupons/{generate_code()}", auth=auth).status_code == 404
    r = env.validate(env.coupon(), auth=auth, store=None)  # a valid code, refused too
    assert int(r.headers["Retry-After"]) == r.json()["retry_after"] > 0
    return r


# --- staff on a phone (sign-in codes, shift sessions) -----------------------------------------


def staff_member(env: Env, name: str = "Li Lei") -> str:
    r = env.post("/v1/stores/SH-001/staff", {"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def staff_session(env: Env, staff_id: str) -> dict[str, str]:
    code = env.post(f"/v1/staff/{staff_id}/sign-in-codes").json()["code"]
    r = env.client.post("/v1/staff/sessions", json={"code": code})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@produces("sign_in_code_invalid")
def sign_in_with_an_unknown_code(env: Env) -> httpx.Response:
    return env.client.post("/v1/staff/sessions", json={"code": "WXYZ-2345"})


@produces("sign_in_code_invalid")
def sign_in_with_a_used_code(env: Env) -> httpx.Response:
    code = env.post(f"/v1/staff/{staff_member(env)}/sign-in-codes").json()["code"]
    assert env.client.post("/v1/staff/sessions", json={"code": code}).status_code == 201
    return env.client.post("/v1/staff/sessions", json={"code": code})


@produces("staff_disabled")
def redeem_with_a_disabled_staff_members_session(env: Env) -> httpx.Response:
    sid = staff_member(env)
    auth = staff_session(env, sid)
    assert env.post(f"/v1/staff/{sid}/disable").status_code == 200
    return env.redeem(env.coupon(), auth=auth, store=None)


@produces("session_expired")
def redeem_after_the_shift_ended(env: Env) -> httpx.Response:
    auth = staff_session(env, staff_member(env))
    env.clock.advance(hours=12)
    return env.redeem(env.coupon(), auth=auth, store=None)


@produces("staff_not_found")
def read_an_unknown_staff_member(env: Env) -> httpx.Response:
    return env.get("/v1/staff/stf_01M90JQDNCHQRWJY59W378F02X")


@produces("staff_not_found")
def another_stores_key_hands_out_a_code(env: Env) -> httpx.Response:
    sid = staff_member(env)
    return env.post(f"/v1/staff/{sid}/sign-in-codes", auth=env.store_auth("SH-002"))


@produces("staff_inactive")
def a_code_for_a_disabled_staff_member(env: Env) -> httpx.Response:
    sid = staff_member(env)
    assert env.post(f"/v1/staff/{sid}/disable").status_code == 200
    return env.post(f"/v1/staff/{sid}/sign-in-codes")


# --- redemption outcomes ------------------------------------------------------------------


@produces("coupon_not_found")
def redeem_unknown_code(env: Env) -> httpx.Response:
    return env.redeem(generate_code())


@produces("coupon_not_found")
def look_up_unknown_code(env: Env) -> httpx.Response:
    return env.get(f"/v1/coupons/{generate_code()}")


@produces("coupon_not_found")
def void_unknown_code(env: Env) -> httpx.Response:
    return env.post(f"/v1/coupons/{generate_code()}/void")


@produces("coupon_already_redeemed")
def redeem_twice_says_when_and_where(env: Env) -> httpx.Response:
    code = env.coupon()
    first = env.redeem(code, auth=env.store_auth("SH-002"), store=None)
    assert first.status_code == 201, first.text
    r = env.redeem(code, store="SH-001")
    body = r.json()
    assert body["redeemed_store"] == "SH-002"
    assert body["redeemed_at"] == first.json()["redeemed_at"]
    assert "SH-002" in body["detail"]
    return r


@produces("coupon_already_redeemed")
def validate_after_an_offline_redeem(env: Env) -> httpx.Response:
    code = env.coupon(validity=fixed(env, -10, 10))
    at = env.clock.now - timedelta(hours=2)
    first = env.redeem(code, store="BJ-001", occurred_at=iso(at))
    assert first.status_code == 201, first.text
    r = env.validate(code)
    body = r.json()
    assert body["redeemed_store"] == "BJ-001"
    assert datetime.fromisoformat(body["redeemed_at"]) == at
    assert "BJ-001" in body["detail"]
    return r


@produces("coupon_expired")
def relative_window_passed(env: Env) -> httpx.Response:
    code = env.coupon()
    env.clock.advance(days=31)
    r = env.redeem(code)
    assert "valid_until" in r.json()
    assert env.coupon_status(code) == "issued"
    return r


@produces("coupon_expired")
def fixed_window_ended(env: Env) -> httpx.Response:
    # made and issued while the window was open (a template that has already ended is
    # refused at creation: no coupon of it could ever be used)
    then = env.clock.now - timedelta(days=20)
    spec = {**THRESHOLD_SPEC, "validity": fixed(env, -10, -1)}
    [code] = issue(env.db, env.m, make_template(env.db, env.m, then, spec), then)
    return env.validate(code)


@produces("coupon_not_yet_valid")
def fixed_window_not_started(env: Env) -> httpx.Response:
    r = env.redeem(env.coupon(validity=fixed(env, 1, 10)))
    assert "valid_from" in r.json()
    return r


@produces("coupon_not_yet_valid")
def relative_window_starting_later(env: Env) -> httpx.Response:
    spec = {"type": "relative", "days": 7, "start_after_days": 2}
    return env.validate(env.coupon(validity=spec))


@produces("coupon_voided")
def redeem_a_voided_coupon(env: Env) -> httpx.Response:
    code = env.coupon()
    assert env.post(f"/v1/coupons/{code}/void", {"reason": "mistake"}).status_code == 200
    return env.redeem(code)


@produces("store_not_allowed")
def store_outside_the_coupon_stores(env: Env) -> httpx.Response:
    code = env.coupon(usage={"stores": ["BJ-001"]})
    r = env.redeem(code, store="SH-001")
    assert "SH-001" in r.json()["detail"]
    assert env.redeem(code, store="BJ-001").status_code == 201
    return r


@produces("channel_not_allowed")
def channel_outside_the_coupon_channels(env: Env) -> httpx.Response:
    code = env.coupon(usage={"channels": ["mini_program"]})
    r = env.redeem(code, channel="pos")
    assert env.validate(code, channel="mini_program").status_code == 200
    return r


@produces("outside_usable_time")
def wrong_weekday(env: Env) -> httpx.Response:
    today = env.clock.now.astimezone(env.m.tz).isoweekday()
    days = [d for d in range(1, 8) if d != today]
    return env.redeem(env.coupon(usage={"weekdays": days}))


@produces("outside_usable_time")
def wrong_hour(env: Env) -> httpx.Response:
    local = env.clock.now.astimezone(env.m.tz)
    start, end = (local.hour + 2) % 24, (local.hour + 3) % 24
    hours = [{"start": f"{start:02d}:00", "end": f"{end:02d}:00"}]
    return env.validate(env.coupon(usage={"hours": hours}))


@produces("threshold_not_met")
def order_below_threshold(env: Env) -> httpx.Response:
    r = env.redeem(env.coupon(), order=order(9999))
    body = r.json()
    assert (body["threshold"], body["eligible_amount"]) == (10000, 9999)
    return r


@produces("no_eligible_items")
def no_line_in_the_coupon_categories(env: Env) -> httpx.Response:
    lines = [{"sku": "BUN-01", "category": "food", "qty": 2, "unit_price": 6400}]
    return env.redeem(env.coupon(usage={"categories": ["drinks"]}), order=order(12800, lines))


@produces("order_lines_required")
def product_rules_without_lines(env: Env) -> httpx.Response:
    return env.validate(env.coupon(usage={"skus": ["TEA-01"]}), order=order(12800))


@produces("order_amount_mismatch")
def lines_do_not_add_up(env: Env) -> httpx.Response:
    lines = [{"sku": "TEA-01", "qty": 2, "unit_price": 6400}]
    r = env.redeem(env.coupon(), order=order(12000, lines))
    body = r.json()
    assert (body["amount"], body["lines_total"]) == (12000, 12800)
    return r


@produces("exchange_item_missing")
def exchange_sku_not_in_the_order(env: Env) -> httpx.Response:
    code = env.coupon(benefit={"kind": "exchange", "sku": "TEA-01"})
    lines = [{"sku": "BUN-01", "qty": 1, "unit_price": 800}]
    r = env.redeem(code, order=order(800, lines))
    assert r.json()["sku"] == "TEA-01"
    return r


@produces("store_not_found")
def admin_names_an_unknown_store(env: Env) -> httpx.Response:
    r = env.redeem(env.coupon(), store="XX-999")
    assert r.json()["store"] == "XX-999"
    return r


@produces("sale_conflict")
def an_order_reported_again_with_another_amount(env: Env) -> httpx.Response:
    sale = {"order_id": "S-1", "store": "SH-001", "channel": "pos", "amount": 5600,
            "occurred_at": "2026-11-25T08:00:00Z"}  # fmt: skip
    r = env.client.post("/v1/sales", json={"orders": [sale]}, headers=env.admin)
    assert r.status_code == 200, r.text
    return env.client.post(
        "/v1/sales", json={"orders": [{**sale, "amount": 5700}]}, headers=env.admin
    )


@produces("store_required")
def admin_names_no_store(env: Env) -> httpx.Response:
    return env.redeem(env.coupon(), store=None)


@produces("store_required")
def admin_validates_without_store(env: Env) -> httpx.Response:
    return env.validate(env.coupon(), store=None)


@produces("occurred_at_in_future")
def occurred_in_the_future(env: Env) -> httpx.Response:
    code = env.coupon()
    r = env.redeem(code, occurred_at=iso(env.clock.now + timedelta(minutes=10)))
    assert env.coupon_status(code) == "issued"
    return r


@produces("occurred_at_too_old")
def occurred_eight_days_ago(env: Env) -> httpx.Response:
    return env.validate(env.coupon(), occurred_at=iso(env.clock.now - timedelta(days=8)))


# --- the order quote (POST /v1/orders/quote) --------------------------------------------------


def quote(env: Env, auth: dict[str, str] | None = None, **fields: Any) -> httpx.Response:
    body = {"store": "SH-001", "order": order(), **fields}
    return env.post("/v1/orders/quote", {k: v for k, v in body.items() if v is not None}, auth)


@produces("duplicate_coupon")
def quote_with_a_code_twice(env: Env) -> httpx.Response:
    code = env.coupon()
    r = quote(env, codes=[code, display(code).lower()])  # the same coupon, spelt two ways
    assert r.json()["coupon"] == code
    return r


@produces("too_many_coupons")
def quote_with_more_than_fifty_codes(env: Env) -> httpx.Response:
    r = quote(env, codes=[generate_code() for _ in range(51)])
    assert r.json()["limit"] == 50
    return r


@produces("store_required")
def admin_quotes_without_store(env: Env) -> httpx.Response:
    return quote(env, store=None, codes=[env.coupon()])


@produces("store_not_found")
def quote_at_an_unknown_store(env: Env) -> httpx.Response:
    return quote(env, store="XX-999", customer="M0001")


@produces("store_forbidden")
def store_key_quotes_at_another_store(env: Env) -> httpx.Response:
    return quote(env, env.store_auth("SH-001"), store="SH-002", customer="M0001")


@produces("not_found")
def quote_for_an_unknown_customer(env: Env) -> httpx.Response:
    return quote(env, customer="NOBODY")


@produces("invalid_request")
def quote_without_codes_or_customer(env: Env) -> httpx.Response:
    r = quote(env)
    assert names_field(r.json(), "customer"), r.text
    return r


@produces("invalid_request")
def quote_on_an_unknown_channel(env: Env) -> httpx.Response:
    return quote(env, channel="fax", customer="M0001")


@produces("forbidden")
def app_key_quotes_on_a_channel_it_lacks(env: Env) -> httpx.Response:
    app = create_key(env.db, env.m.id, "app", env.clock.now, channels=["h5"]).token
    return quote(env, env.m.auth(app), channel="pos", customer="M0001")


@produces("forbidden")
def analyst_quotes(env: Env) -> httpx.Response:
    analyst = create_key(env.db, env.m.id, "analyst", env.clock.now).token
    return quote(env, env.m.auth(analyst), customer="M0001")


# --- reversal -------------------------------------------------------------------------------


@produces("redemption_not_found")
def reverse_unknown_redemption(env: Env) -> httpx.Response:
    return env.reverse("rdm_does_not_exist", json={"reason": "refund"})


@produces("redemption_not_found")
def reverse_with_an_absurdly_long_id(env: Env) -> httpx.Response:
    # used to answer 500 on PostgreSQL (the id did not fit the idempotency record)
    return env.reverse("R" * 5000)


@produces("redemption_already_reversed")
def reverse_twice_with_new_keys(env: Env) -> httpx.Response:
    rid = env.redeem(env.coupon()).json()["redemption_id"]
    assert env.reverse(rid).status_code == 201
    env.clock.advance(minutes=1)
    r = env.reverse(rid)
    assert "reversed_at" in r.json()
    return r


# --- orders: several coupons on one order (POST /v1/orders/redeem) -------------------------

STACKS = {"combines_with": ["exchange", "percentage", "threshold"], "max_per_order": 5}


def redeem_order(env: Env, codes: list[str], key: str | None = None) -> httpx.Response:
    body = {"codes": codes, "store": "SH-001", "channel": "pos", "order": order()}
    headers = {**env.admin, "Idempotency-Key": key or new_key()}
    return env.client.post("/v1/orders/redeem", json=body, headers=headers)


def reverse_order(env: Env, order_redemption_id: str) -> httpx.Response:
    headers = {**env.admin, "Idempotency-Key": new_key()}
    return env.client.post(f"/v1/orders/{order_redemption_id}/reversal", headers=headers)


@produces("coupons_not_combinable")
def an_exclusive_coupon_with_another(env: Env) -> httpx.Response:
    shared, exclusive = env.coupon(stacking=STACKS), env.coupon()
    r = redeem_order(env, [shared, exclusive])
    assert r.json()["coupons"] == [shared, exclusive]
    assert env.coupon_status(shared) == "issued"
    return r


@produces("too_many_coupons")
def more_coupons_than_the_template_allows(env: Env) -> httpx.Response:
    tpl = env.template(stacking={**STACKS, "max_per_order": 2})
    codes = issue(env.db, env.m, tpl, env.clock.now, count=3)
    return redeem_order(env, codes)


@produces("too_many_coupons")
def more_coupons_than_the_hub_allows(env: Env) -> httpx.Response:
    tpl = env.template(stacking={**STACKS, "max_per_order": None})
    return redeem_order(env, issue(env.db, env.m, tpl, env.clock.now, count=11))


@produces("duplicate_coupon")
def one_coupon_twice_in_an_order(env: Env) -> httpx.Response:
    code = env.coupon(stacking=STACKS)
    r = redeem_order(env, [code, display(code)])
    assert r.json()["coupons"] == [code]
    return r


@produces("order_redemption_not_found")
def reverse_an_unknown_order(env: Env) -> httpx.Response:
    return reverse_order(env, "ord_01JDK000000000000000000099")


@produces("order_redemption_not_found")
def read_an_unknown_order(env: Env) -> httpx.Response:
    return env.get("/v1/orders/" + "O" * 300)


@produces("order_already_reversed")
def reverse_an_order_twice(env: Env) -> httpx.Response:
    made = redeem_order(env, [env.coupon(stacking=STACKS), env.coupon(stacking=STACKS)])
    assert made.status_code == 201, made.text
    oid = made.json()["order_redemption_id"]
    assert reverse_order(env, oid).status_code == 201
    r = reverse_order(env, oid)
    assert "reversed_at" in r.json()
    return r


@produces("illegal_transition")
def reverse_one_coupon_of_an_order(env: Env) -> httpx.Response:
    made = redeem_order(env, [env.coupon(stacking=STACKS), env.coupon(stacking=STACKS)])
    first = made.json()["coupons"][0]["redemption_id"]
    r = env.reverse(first)
    assert r.json()["order_redemption_id"] == made.json()["order_redemption_id"]
    return r


# --- state machine --------------------------------------------------------------------------


@produces("illegal_transition")
def void_twice(env: Env) -> httpx.Response:
    code = env.coupon()
    assert env.post(f"/v1/coupons/{code}/void").status_code == 200
    r = env.post(f"/v1/coupons/{code}/void")
    assert (r.json()["state"], r.json()["action"]) == ("voided", "void")
    return r


@produces("illegal_transition")
def void_a_redeemed_coupon(env: Env) -> httpx.Response:
    code = env.coupon()
    assert env.redeem(code).status_code == 201
    r = env.post(f"/v1/coupons/{code}/void")
    assert env.coupon_status(code) == "redeemed"
    return r


# --- issuing and catalogue ------------------------------------------------------------------


@produces("invalid_template")
def fixed_window_ending_before_it_starts(env: Env) -> httpx.Response:
    body = {**THRESHOLD_SPEC, "name": "x", "validity": fixed(env, 10, 1)}
    r = env.post("/v1/templates", body)
    assert r.json()["field"] == "validity.end"
    return r


@produces("invalid_template")
def empty_hour_range(env: Env) -> httpx.Response:
    body = {**THRESHOLD_SPEC, "name": "x", "usage": {"hours": [{"start": "10:00", "end": "10:00"}]}}
    r = env.post("/v1/templates", body)
    assert r.json()["field"] == "usage.hours[0]"
    return r


@produces("invalid_template")
def exclusive_template_with_a_limit_above_one(env: Env) -> httpx.Response:
    body = {**THRESHOLD_SPEC, "name": "x", "stacking": {"combines_with": [], "max_per_order": 3}}
    r = env.post("/v1/templates", body)
    assert r.json()["field"] == "stacking.max_per_order"
    return r


@produces("invalid_template")
def template_reminding_twice_the_same_day(env: Env) -> httpx.Response:
    body = {**THRESHOLD_SPEC, "name": "x", "remind_days_before": [3, 1, 3]}
    r = env.post("/v1/templates", body)
    assert r.json()["field"] == "remind_days_before"
    return r


@produces("invalid_request")
def template_reminding_more_than_a_year_before(env: Env) -> httpx.Response:
    body = {**THRESHOLD_SPEC, "name": "x", "remind_days_before": [400]}
    r = env.post("/v1/templates", body)
    assert r.json()["errors"][0]["field"] == "remind_days_before[0]", r.text
    return r


@produces("invalid_request")
def template_combining_with_an_unknown_kind(env: Env) -> httpx.Response:
    body = {**THRESHOLD_SPEC, "name": "x", "stacking": {"combines_with": ["voucher"]}}
    r = env.post("/v1/templates", body)
    assert r.json()["errors"][0]["field"] == "stacking.combines_with[0]", r.text
    return r


@produces("template_not_found")
def get_unknown_template(env: Env) -> httpx.Response:
    return env.get("/v1/templates/tpl_does_not_exist")


@produces("template_not_found")
def issue_on_unknown_template(env: Env) -> httpx.Response:
    return env.post("/v1/templates/tpl_does_not_exist/coupons", {"count": 1})


@produces("template_not_found")
def pause_unknown_template(env: Env) -> httpx.Response:
    return env.post("/v1/templates/tpl_does_not_exist/pause")


@produces("template_paused")
def issue_on_paused_template(env: Env) -> httpx.Response:
    tpl = env.template()
    assert env.post(f"/v1/templates/{tpl}/pause").json()["status"] == "paused"
    r = env.post(f"/v1/templates/{tpl}/coupons", {"count": 1})
    assert env.get(f"/v1/templates/{tpl}").json()["issued_count"] == 0
    return r


@produces("template_out_of_stock")
def issue_beyond_total_quantity(env: Env) -> httpx.Response:
    tpl = env.template(total_quantity=3)
    assert env.post(f"/v1/templates/{tpl}/coupons", {"count": 2}).status_code == 201
    r = env.post(f"/v1/templates/{tpl}/coupons", {"count": 2})
    assert r.json()["remaining"] == 1
    assert env.get(f"/v1/templates/{tpl}").json()["issued_count"] == 2
    return r


@produces("per_customer_limit_reached")
def issue_twice_to_one_customer(env: Env) -> httpx.Response:
    tpl = env.template(per_customer_limit=1)
    path = f"/v1/templates/{tpl}/coupons"
    assert env.post(path, {"customers": ["M0001"]}).status_code == 201
    r = env.post(path, {"customers": ["M0002", "M0001"]})
    assert r.json()["limit"] == 1
    return r


@produces("per_customer_limit_reached")
def claim_beyond_the_limit(env: Env) -> httpx.Response:
    tpl = env.template(per_customer_limit=1)
    env.issue_to(tpl, "M0003")
    [spare] = issue(env.db, env.m, tpl, env.clock.now)
    return env.post(f"/v1/coupons/{spare}/claim", {"customer": "M0003"})


def campaign(env: Env, start_in: timedelta = timedelta(hours=-1), days: int = 7,
             total: int = 5, per_customer: int = 1) -> str:
    start = env.clock.now + start_in
    r = env.post("/v1/campaigns", {
        "template_id": env.template(), "channels": ["h5"], "starts_at": iso(start),
        "ends_at": iso(start + timedelta(days=days)), "total": total,
        "per_customer": per_customer})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def claim_from(env: Env, campaign_id: str, customer: str = "M0001") -> httpx.Response:
    return env.client.post(f"/v1/campaigns/{campaign_id}/claims", json={"customer": customer},
                           headers={**env.admin, "Idempotency-Key": new_key()})


@produces("campaign_not_found")
def claim_from_an_unknown_campaign(env: Env) -> httpx.Response:
    return claim_from(env, "cmp_01JD0000000000000000000000")


def claim_token(env: Env, campaign_id: str) -> str:
    return str(env.get(f"/v1/campaigns/{campaign_id}").json()["claim_token"])


@produces("campaign_not_found")
def claim_by_an_unknown_claim_token(env: Env) -> httpx.Response:
    return env.client.post("/v1/campaigns/by-token/pQ7x1ZzKq2d3mVbN9tY0wR5sU8eH4cLf/claims",
                           json={"customer": "M0001"},
                           headers={**env.admin, "Idempotency-Key": new_key()})


@produces("campaign_not_found")
def read_by_token_a_campaign_of_other_channels(env: Env) -> httpx.Response:
    token = claim_token(env, campaign(env))  # channels: h5
    web = create_key(env.db, env.m.id, "app", env.clock.now, channels=["web"])
    r = env.get(f"/v1/campaigns/by-token/{token}", auth=env.m.auth(web.token))
    assert r.json()["detail"] == "No campaign with this claim token."  # as an unknown one
    return r


@produces("campaign_not_started")
def claim_before_the_campaign_opens(env: Env) -> httpx.Response:
    r = claim_from(env, campaign(env, start_in=timedelta(hours=2)))
    assert r.json()["starts_at"]
    return r


@produces("campaign_ended")
def claim_after_the_campaign_closed(env: Env) -> httpx.Response:
    cid = campaign(env, days=1)
    env.clock.advance(days=1)
    return claim_from(env, cid)


@produces("campaign_sold_out")
def claim_the_last_coupon_twice(env: Env) -> httpx.Response:
    cid = campaign(env, total=1)
    assert claim_from(env, cid, "M0001").status_code == 201
    return claim_from(env, cid, "M0002")


@produces("claim_limit_reached")
def claim_twice_for_one_customer(env: Env) -> httpx.Response:
    cid = campaign(env, per_customer=1)
    assert claim_from(env, cid).status_code == 201
    r = claim_from(env, cid)
    assert r.json()["limit"] == 1
    return r


@produces("customer_not_found")
def issue_to_unknown_customer(env: Env) -> httpx.Response:
    r = env.post(f"/v1/templates/{env.template()}/coupons", {"customers": ["M0001", "NOPE"]})
    assert r.json()["customers"] == ["NOPE"]
    return r


@produces("customer_not_found")
def claim_for_unknown_customer(env: Env) -> httpx.Response:
    return env.post(f"/v1/coupons/{env.coupon()}/claim", {"customer": "NOPE"})


@produces("coupon_already_claimed")
def claim_a_held_coupon(env: Env) -> httpx.Response:
    [code] = env.issue_to(env.template(), "M0001")
    r = env.post(f"/v1/coupons/{code}/claim", {"customer": "M0002"})
    assert env.get(f"/v1/coupons/{code}").json()["holder"] == "M0001"
    return r


# --- transfers to a friend ---------------------------------------------------------------------


def gift(env: Env, holder: str = "M0001", **changes: Any) -> str:
    [code] = env.issue_to(env.template(transferable=True, **changes), holder)
    return code


def offer(env: Env, code: str, customer: str = "M0001", **body: Any) -> httpx.Response:
    return env.client.post(f"/v1/coupons/{code}/transfers", json={"customer": customer, **body},
                           headers={**env.admin, "Idempotency-Key": new_key()})


def offered(env: Env, code: str, customer: str = "M0001", **body: Any) -> str:
    r = offer(env, code, customer, **body)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


@produces("coupon_not_transferable")
def offer_a_coupon_of_a_template_that_forbids_it(env: Env) -> httpx.Response:
    [code] = env.issue_to(env.template(), "M0001")
    return offer(env, code)


@produces("coupon_not_transferable_now")
def offer_a_coupon_offered_already(env: Env) -> httpx.Response:
    code = gift(env)
    offered(env, code)
    r = offer(env, code)
    assert r.json()["reason"] == "offered"
    return r


@produces("coupon_not_transferable_now")
def offer_a_redeemed_coupon(env: Env) -> httpx.Response:
    code = gift(env)
    assert env.redeem(code).status_code == 201
    r = offer(env, code)
    assert r.json()["reason"] == "redeemed"
    return r


@produces("not_coupon_holder")
def offer_someone_elses_coupon(env: Env) -> httpx.Response:
    return offer(env, gift(env, "M0001"), "M0002")


@produces("not_coupon_holder")
def cancel_someone_elses_offer(env: Env) -> httpx.Response:
    token = offered(env, gift(env))
    return env.post(f"/v1/transfers/{token}/cancel", {"customer": "M0002"})


@produces("transfer_not_found")
def accept_an_unknown_token(env: Env) -> httpx.Response:
    return env.post("/v1/transfers/pQ7x1ZzKq2d3mVbN9tY0wR5sU8eH4cLf/accept",
                    {"customer": "M0002"})


@produces("transfer_expired")
def accept_a_lapsed_offer(env: Env) -> httpx.Response:
    token = offered(env, gift(env), ttl_seconds=60)
    env.clock.advance(seconds=60)
    r = env.post(f"/v1/transfers/{token}/accept", {"customer": "M0002"})
    assert r.json()["expires_at"]
    return r


@produces("transfer_closed")
def accept_a_cancelled_offer(env: Env) -> httpx.Response:
    token = offered(env, gift(env))
    assert env.post(f"/v1/transfers/{token}/cancel", {"customer": "M0001"}).status_code == 200
    return env.post(f"/v1/transfers/{token}/accept", {"customer": "M0002"})


@produces("transfer_closed")
def accept_an_offer_someone_else_accepted(env: Env) -> httpx.Response:
    token = offered(env, gift(env))
    assert env.post(f"/v1/transfers/{token}/accept", {"customer": "M0002"}).status_code == 200
    r = env.post(f"/v1/transfers/{token}/accept", {"customer": "M0003"})
    assert r.json()["offer_status"] == "accepted"
    return r


@produces("transfer_to_self")
def accept_ones_own_offer(env: Env) -> httpx.Response:
    token = offered(env, gift(env))
    return env.post(f"/v1/transfers/{token}/accept", {"customer": "M0001"})


@produces("per_customer_limit_reached")
def accept_beyond_the_limit(env: Env) -> httpx.Response:
    tpl = env.template(transferable=True, per_customer_limit=1)
    mine, _theirs = env.issue_to(tpl, "M0001", "M0002")
    return env.post(f"/v1/transfers/{offered(env, mine)}/accept", {"customer": "M0002"})


@produces("customer_not_found")
def accept_for_an_unknown_customer(env: Env) -> httpx.Response:
    token = offered(env, gift(env))
    return env.post(f"/v1/transfers/{token}/accept", {"customer": "NOPE"})


def reserve(env: Env, *codes: str, **fields: Any) -> httpx.Response:
    body = {"codes": list(codes), "store": "SH-001", "channel": "web", "order": order(),
            **fields}
    return env.client.post("/v1/reservations", json=body,
                           headers={**env.admin, "Idempotency-Key": new_key()})


def reservation_act(env: Env, rid: str, verb: str) -> httpx.Response:
    return env.client.post(f"/v1/reservations/{rid}/{verb}",
                           headers={**env.admin, "Idempotency-Key": new_key()})


def held_reservation(env: Env, *codes: str, ttl: int = 900) -> str:
    r = reserve(env, *(codes or (env.coupon(),)), ttl_seconds=ttl)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@produces("coupon_reserved")
def redeem_a_coupon_held_for_an_online_order(env: Env) -> httpx.Response:
    code = env.coupon()
    held_reservation(env, code)
    r = env.redeem(code)
    assert r.json()["held_until"]
    return r


@produces("coupon_reserved")
def reserve_a_coupon_another_reservation_holds(env: Env) -> httpx.Response:
    code = env.coupon()
    held_reservation(env, code)
    return reserve(env, code)


@produces("reservation_not_found")
def release_an_unknown_reservation(env: Env) -> httpx.Response:
    return reservation_act(env, "rsv_01JD0000000000000000000000", "release")


@produces("reservation_not_found")
def read_an_unknown_reservation(env: Env) -> httpx.Response:
    return env.get("/v1/reservations/rsv_01JD0000000000000000000000")


@produces("reservation_expired")
def release_after_the_hold_lapsed(env: Env) -> httpx.Response:
    rid = held_reservation(env, ttl=60)
    env.clock.advance(seconds=60)
    return reservation_act(env, rid, "release")


@produces("reservation_released")
def release_a_released_reservation(env: Env) -> httpx.Response:
    rid = held_reservation(env)
    assert reservation_act(env, rid, "release").status_code == 200
    return reservation_act(env, rid, "release")


@produces("reservation_released")
def confirm_a_released_reservation(env: Env) -> httpx.Response:
    rid = held_reservation(env)
    assert reservation_act(env, rid, "release").status_code == 200
    return reservation_act(env, rid, "confirm")


@produces("reservation_expired")
def confirm_after_the_hold_lapsed(env: Env) -> httpx.Response:
    rid = held_reservation(env, ttl=60)
    env.clock.advance(seconds=60)
    return reservation_act(env, rid, "confirm")


@produces("reservation_confirmed")
def release_a_confirmed_reservation(env: Env) -> httpx.Response:
    rid = held_reservation(env)
    assert reservation_act(env, rid, "confirm").status_code == 201
    return reservation_act(env, rid, "release")


@produces("reservation_confirmed")
def confirm_twice(env: Env) -> httpx.Response:
    rid = held_reservation(env)
    assert reservation_act(env, rid, "confirm").status_code == 201
    return reservation_act(env, rid, "confirm")


@produces("too_many_coupons")
def reserve_eleven_coupons(env: Env) -> httpx.Response:
    return reserve(env, *issue(env.db, env.m, env.template(), env.clock.now, count=11))


@produces("duplicate_coupon")
def reserve_one_coupon_twice(env: Env) -> httpx.Response:
    code = env.coupon()
    return reserve(env, code, code)


@produces("coupons_not_combinable")
def reserve_two_exclusive_coupons(env: Env) -> httpx.Response:
    return reserve(env, env.coupon(), env.coupon())


@produces("already_exists")
def duplicate_store_code(env: Env) -> httpx.Response:
    return env.post("/v1/stores", {"code": "SH-001", "name": "Again"})


@produces("already_exists")
def duplicate_product_sku(env: Env) -> httpx.Response:
    product = {"sku": "TEA-01", "name": "Tea", "category": "drinks", "price": 1200}
    assert env.post("/v1/products", product).status_code == 201
    return env.post("/v1/products", product)


@produces("already_exists")
def duplicate_customer(env: Env) -> httpx.Response:
    return env.post("/v1/customers", {"external_id": "M0001"})


@produces("batch_too_large")
def count_of_10001(env: Env) -> httpx.Response:
    tpl = env.template()
    r = env.post(f"/v1/templates/{tpl}/coupons", {"count": 10_001})
    assert r.json()["max"] == 10_000
    assert env.get(f"/v1/templates/{tpl}").json()["issued_count"] == 0
    return r


@produces("batch_too_large")
def count_far_beyond_any_integer(env: Env) -> httpx.Response:
    # [None] * count was built before the check: 10**30 answered 500
    return env.post(f"/v1/templates/{env.template()}/coupons", {"count": 10**30})


@produces("batch_too_large")
def customers_list_of_10001(env: Env) -> httpx.Response:
    customers = [f"M{i:05d}" for i in range(10_001)]
    return env.post(f"/v1/templates/{env.template()}/coupons", {"customers": customers})


# --- coupon tokens (the offline QR, hub.domain.offline) -------------------------------------


def coupon_token(env: Env, code: str, auth: dict[str, str] | None = None) -> str:
    r = env.get(f"/v1/coupons/{code}/token", auth)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


@produces("token_malformed")
def token_that_is_not_base64url_json(env: Env) -> httpx.Response:
    return env.redeem("HT1.not*base64.at-all")


@produces("token_signature_invalid")
def token_with_another_coupons_signature(env: Env) -> httpx.Response:
    mine, other = coupon_token(env, env.coupon()), coupon_token(env, env.coupon())
    return env.validate(mine.rpartition(".")[0] + "." + other.rpartition(".")[2])


@produces("token_unknown_key")
def token_signed_with_a_key_the_hub_never_made(env: Env) -> httpx.Response:
    from hub.domain.offline import TokenClaims
    from hub.signing import generate_keypair, sign

    private, _ = generate_keypair()
    now = env.clock.now
    claims = TokenClaims("ok_NOTAKEYOFTHISHUB", env.m.id, env.coupon(), "tpl_X", None,
                         now - timedelta(days=1), now + timedelta(days=1), now)
    return env.get(f"/v1/coupons/{sign(private, claims)}")


@produces("token_wrong_merchant")
def token_of_another_merchant(env: Env) -> httpx.Response:
    from tests.conftest import make_merchant

    other = make_merchant(env.db, env.clock.now, name="Other Tea")
    code = issue(env.db, other, make_template(env.db, other, env.clock.now), env.clock.now)[0]
    return env.redeem(coupon_token(env, code, other.auth()))


@produces("token_expired")
def token_presented_after_its_window(env: Env) -> httpx.Response:
    token = coupon_token(env, env.coupon())  # valid 30 days
    env.clock.advance(days=31)
    return env.post("/v1/pos/pos.native/redeem", {"code": token, "order": order()},
                    auth={**env.store_auth(), "Idempotency-Key": new_key()})
# --- offline sync and conflicts (POST /v1/redemptions/sync) -----------------------------------


def offline_item(env: Env, code: str, key: str) -> dict[str, Any]:
    return {"idempotency_key": key, "code": code, "store": "SH-001", "order": order(),
            "occurred_at": iso(env.clock.now - timedelta(minutes=5))}


def synced_conflict(env: Env) -> tuple[str, dict[str, Any]]:
    """A coupon redeemed online at SH-002, then synced from SH-001: (conflict id, item)."""
    code = env.coupon(validity=fixed(env, -1, 10))
    assert env.redeem(code, auth=env.store_auth("SH-002"), store="SH-002").status_code == 201
    it = offline_item(env, code, new_key())
    r = env.post("/v1/redemptions/sync", {"items": [it]}, auth=env.store_auth())
    assert r.status_code == 200, r.text
    [got] = r.json()["items"]
    assert got["outcome"] == "conflict", got
    return str(got["conflict_id"]), it


@produces("offline_conflict")
def online_retry_of_a_synced_conflict(env: Env) -> httpx.Response:
    # the item's stored answer, replayed to the till's online retry with the same key
    conflict_id, it = synced_conflict(env)
    body = {k: v for k, v in it.items() if k != "idempotency_key"}
    r = env.client.post("/v1/redemptions", json=body,
                        headers={**env.store_auth(), "Idempotency-Key": it["idempotency_key"]})
    assert r.json()["conflict_id"] == conflict_id and r.json()["redeemed_store"] == "SH-002"
    return r


@produces("conflict_not_found")
def unknown_conflict(env: Env) -> httpx.Response:
    return env.get("/v1/conflicts/cfl_01M8ZSESAWB775ZJ6S5JAA1C69")


@produces("conflict_settled")
def settle_a_settled_conflict(env: Env) -> httpx.Response:
    conflict_id, _ = synced_conflict(env)
    path = f"/v1/conflicts/{conflict_id}/settle"
    body = {"settlement": "refunded"}
    first = env.post(path, body, auth={**env.admin, "Idempotency-Key": new_key()})
    assert first.status_code == 200, first.text
    return env.post(path, body, auth={**env.admin, "Idempotency-Key": new_key()})


@produces("too_many_items")
def sync_of_101_items(env: Env) -> httpx.Response:
    items = [offline_item(env, "ABCD-EFGH-JKLM-N", new_key()) for _ in range(101)]
    return env.post("/v1/redemptions/sync", {"items": items}, auth=env.store_auth())


# --- subscriptions and deliveries ---------------------------------------------------------

HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def subscription_body(**changes: Any) -> dict[str, Any]:
    return {
        "connector": "webhook",
        "config": {"url": "https://receiver.example/hook", "secret": HOOK_SECRET},
        "events": ["coupon.redeemed"],
        **changes,
    }


def env_subscription(env: Env) -> str:
    r = env.post("/v1/subscriptions", subscription_body())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@produces("unknown_connector")
def subscribe_an_unknown_connector(env: Env) -> httpx.Response:
    r = env.post("/v1/subscriptions", subscription_body(connector="erp.nonesuch"))
    assert "webhook" in r.json()["known"]
    return r


@produces("invalid_config")
def subscription_config_without_url(env: Env) -> httpx.Response:
    r = env.post("/v1/subscriptions", subscription_body(config={"secret": HOOK_SECRET}))
    assert r.json()["errors"][0]["field"] == "config.url"
    return r


@produces("invalid_config")
def subscription_secret_not_base64(env: Env) -> httpx.Response:
    bad = {"url": "https://receiver.example/hook", "secret": "whsec_" + "A" * 17}
    r = env.post("/v1/subscriptions", subscription_body(config=bad))
    assert r.json()["errors"][0]["field"] == "config.secret"
    return r


@produces("invalid_config")
def subscription_config_patched_to_a_bad_url(env: Env) -> httpx.Response:
    sub = env_subscription(env)
    r = env.client.patch(f"/v1/subscriptions/{sub}", json={"config": {"url": 42}},
                         headers=env.admin)
    assert HOOK_SECRET[6:] not in r.text
    return r


@produces("url_not_allowed")
def subscription_config_patched_to_a_forbidden_url(env: Env) -> httpx.Response:
    sub = env_subscription(env)
    r = env.client.patch(f"/v1/subscriptions/{sub}", json={"config": {"url": "ftp://x"}},
                         headers=env.admin)
    assert HOOK_SECRET[6:] not in r.text
    return r


@produces("unknown_event_type")
def subscribe_to_an_unknown_event_type(env: Env) -> httpx.Response:
    return env.post("/v1/subscriptions", subscription_body(events=["coupon.redeemed", "x.y"]))


@produces("store_not_found")
def subscription_filter_on_an_unknown_store(env: Env) -> httpx.Response:
    return env.post("/v1/subscriptions", subscription_body(filter={"stores": ["XX-404"]}))


@produces("subscription_not_found")
def get_an_unknown_subscription(env: Env) -> httpx.Response:
    return env.get("/v1/subscriptions/sub_nonesuch")


@produces("subscription_not_found")
def resume_a_deleted_subscription(env: Env) -> httpx.Response:
    sub = env_subscription(env)
    assert env.client.delete(f"/v1/subscriptions/{sub}", headers=env.admin).status_code == 200
    return env.post(f"/v1/subscriptions/{sub}/resume")


@produces("delivery_not_found")
def get_an_unknown_delivery(env: Env) -> httpx.Response:
    return env.get("/v1/deliveries/dlv_nonesuch")


@produces("delivery_not_found")
def replay_an_unknown_delivery(env: Env) -> httpx.Response:
    return env.post("/v1/deliveries/dlv_nonesuch/replay")


@produces("delivery_in_progress")
def replay_a_pending_delivery(env: Env) -> httpx.Response:
    env_subscription(env)
    assert env.redeem(env.coupon()).status_code == 201
    [pending] = env.get("/v1/deliveries").json()["items"]
    assert pending["status"] == "pending"
    r = env.post(f"/v1/deliveries/{pending['id']}/replay")
    assert r.json()["delivery_status"] == "pending"
    return r


@produces("forbidden")
def store_key_listing_deliveries(env: Env) -> httpx.Response:
    return env.get("/v1/deliveries", auth=env.store_auth())


@produces("forbidden")
def store_key_creating_a_subscription(env: Env) -> httpx.Response:
    return env.post("/v1/subscriptions", subscription_body(), auth=env.store_auth())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("validate", {"order": {"id": "A-1", "amount": "12800"}}),
        ("validate", {"order": {"id": "A-1", "amount": "1e4"}}),
        (
            "redeem",
            {
                "order": {
                    "id": "A-1",
                    "amount": 900,
                    "lines": [{"sku": "X", "qty": "1", "unit_price": 900}],
                }
            },
        ),
    ],
)
def test_numbers_as_strings_are_refused(env: Env, path: str, body: dict) -> None:
    """Amounts are JSON integers: litestar's lenient coercion of "12800" is not accepted."""
    code = env.coupon()
    if path == "validate":
        r = env.validate(code, order=body["order"])
    else:
        r = env.client.post(
            "/v1/redemptions",
            json={"code": code, "store": "SH-001", **body},
            headers={**env.m.auth(), "Idempotency-Key": "strict-1"},
        )
    assert_problem(r, "invalid_request")
    field = r.json()["errors"][0]["field"]
    assert field in ("order.amount", "order.lines[0].qty")


# --- the tests ----------------------------------------------------------------------------


# --- times, characters, duplicates (issue 9, items 9 and 11) -------------------------------


@produces("datetime_out_of_range")
def occurred_at_with_no_utc_instant(env: Env) -> httpx.Response:
    return env.redeem(env.coupon(), occurred_at="0001-01-01T00:00:00+14:00")


@produces("datetime_out_of_range")
def key_expiring_after_the_last_utc_instant(env: Env) -> httpx.Response:
    return env.post("/v1/keys", {"role": "analyst", "expires_at": "9999-12-31T23:59:59-14:00"})


@produces("duplicate_json_key")
def redeem_body_naming_the_code_twice(env: Env) -> httpx.Response:
    body = b'{"code": "A", "code": "B", "store": "SH-001", "order": {"id": "1", "amount": 1}}'
    return env.raw("/v1/redemptions", body, **{"Idempotency-Key": new_key()})


@produces("invalid_characters")
def nul_in_an_order_id(env: Env) -> httpx.Response:
    body = {"code": env.coupon(), "store": "SH-001", "order": order(order_id="A\u0000")}
    return env.post("/v1/redemptions/validate", body)


def send_raw_headers(env: Env, path: str, body: bytes, headers: list[tuple[str, str]]):
    """POST with header fields exactly as listed, repeats kept (the TestClient joins
    repeated fields into one, as uvicorn does not)."""
    import anyio

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=env.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            return await c.post(path, content=body, headers=headers)

    return anyio.run(go)


@produces("idempotency_key_repeated")
def two_idempotency_keys(env: Env) -> httpx.Response:
    body = json.dumps({"code": env.coupon(), "store": "SH-001", "order": order()}).encode()
    headers = [*env.admin.items(), ("Content-Type", "application/json"),
               ("Idempotency-Key", "k-1"), ("Idempotency-Key", "k-2")]
    return send_raw_headers(env, "/v1/redemptions", body, headers)


# --- the database (issue 9, item 13) ---------------------------------------------------------


@produces("database_busy")
def every_pool_connection_taken(env: Env) -> httpx.Response:
    from litestar.testing import TestClient

    from hub.api.app import create_app
    from hub.db.engine import make_engine

    url = env.db.url.render_as_string(hide_password=False)
    small = make_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.05)
    try:
        with TestClient(create_app(small, clock=env.clock)) as client, small.connect():
            return client.get("/v1/merchant", headers=env.admin)
    finally:
        small.dispose()


@produces("database_unavailable")
def database_not_answering(env: Env) -> httpx.Response:
    from litestar.testing import TestClient

    from hub.api.app import create_app
    from hub.db.engine import make_engine

    dead = make_engine("postgresql://postgres@127.0.0.1:9/none?connect_timeout=2",
                       pool_size=1, max_overflow=0)
    try:
        with TestClient(create_app(dead, clock=env.clock)) as client:
            return client.get("/v1/merchant", headers=env.admin)
    finally:
        dead.dispose()


@produces("draining")
def ready_while_the_process_drains(env: Env) -> httpx.Response:
    """After SIGTERM (tests/test_cli_scaleout.py runs the real thing)."""
    from hub.api.ops import DRAINING

    DRAINING.set()
    try:
        return env.client.get("/ready")
    finally:
        DRAINING.clear()


# --- POS formats (POST /v1/pos/{connector}/{operation}) ------------------------------------

POSLOG = "/v1/pos/pos.poslog/redeem"


@produces("invalid_pos_payload")
def pos_reversal_naming_no_redemption(env: Env) -> httpx.Response:
    return env.post("/v1/pos/pos.native/reverse", {"reason": "refund"})


@produces("unsupported_media_type")
def pos_json_to_the_xml_format(env: Env) -> httpx.Response:
    return env.raw(POSLOG, b'{"code": "x"}')


@produces("malformed_xml")
def pos_truncated_xml(env: Env) -> httpx.Response:
    return env.raw(POSLOG, b"<POSLog><Transaction>", **{"Content-Type": "application/xml"})


@produces("xml_forbidden")
def pos_xml_with_an_external_entity(env: Env) -> httpx.Response:
    return env.raw(POSLOG, EXTERNAL_ENTITY, **{"Content-Type": "application/xml"})


# --- photos (POST /v1/scan) -------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` pixels (nothing decodes that far)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@produces("image_too_large")
def scan_of_a_png_claiming_a_gigapixel(env: Env) -> httpx.Response:
    return env.raw("/v1/scan", _png_claiming(40_000, 40_000), **{"Content-Type": "image/png"})


@produces("image_unreadable")
def scan_of_text_sent_as_png(env: Env) -> httpx.Response:
    return env.raw("/v1/scan", b"not an image at all\n", **{"Content-Type": "image/png"})


@produces("image_unreadable")
def scan_of_a_truncated_png(env: Env) -> httpx.Response:
    return env.raw("/v1/scan", _png_claiming(64, 64)[:40], **{"Content-Type": "image/png"})


@produces("unsupported_media_type")
def scan_of_a_gif(env: Env) -> httpx.Response:
    return env.raw("/v1/scan", b"GIF89a\x01\x00\x01\x00", **{"Content-Type": "image/gif"})


@produces("payload_too_large")
def scan_of_a_photo_over_8_mib(env: Env) -> httpx.Response:
    return env.raw("/v1/scan", b"\xff" * (8 * 1024 * 1024 + 1), **{"Content-Type": "image/jpeg"})


def assert_refusal(r: httpx.Response, code: str) -> None:
    """A problem document, or — for POS formats that answer in XML — the vendor's reply
    with the catalogue's status and the code (POSLog: ``Transaction/Reason/@Code``)."""
    if media_type(r) != "application/xml":
        assert_problem(r, code)
        return
    assert r.status_code == status_for(code), r.text
    reason = ET.fromstring(r.content).find(".//{*}Reason")
    assert reason is not None and reason.get("Code") == code, r.text
    assert reason.text and "traceback" not in r.text.lower()


@pytest.mark.parametrize(("code", "scenario"), SCENARIOS)
def test_error_scenario(env: Env, code: str, scenario: Scenario) -> None:
    r = scenario(env)
    assert_refusal(r, code)


def test_every_code_is_produced_or_declared_unreachable() -> None:
    produced = {p.values[0] for p in SCENARIOS}
    assert produced.isdisjoint(UNREACHABLE_OVER_HTTP), produced & set(UNREACHABLE_OVER_HTTP)
    missing = set(ERROR_CODES) - produced - set(UNREACHABLE_OVER_HTTP)
    assert not missing, f"no HTTP scenario produces {sorted(missing)}"
    assert produced | set(UNREACHABLE_OVER_HTTP) == set(ERROR_CODES)


# --- limits: just inside is accepted ----------------------------------------------------------


def test_limits_just_inside_are_accepted(env: Env) -> None:
    """The other side of the boundaries above: each of these succeeds."""
    raw = json.dumps({"code": env.coupon(), "store": "SH-001", "order": order()}).encode()
    body = raw + b" " * (REDEEM_LIMIT - len(raw))
    r = env.raw("/v1/redemptions", body, **{"Idempotency-Key": "k" * 255})
    assert r.status_code == 201, r.text
    soon = iso(env.clock.now + timedelta(minutes=4))
    assert env.redeem(env.coupon(), occurred_at=soon).status_code == 201
    old = iso(env.clock.now - timedelta(days=6, hours=23))
    r = env.redeem(env.coupon(validity=fixed(env, -10, 10)), occurred_at=old)
    assert r.status_code == 201, r.text
    tpl = env.template()
    r = env.post(f"/v1/templates/{tpl}/coupons", {"count": 10_000})
    assert r.status_code == 201 and r.json()["issued"] == 10_000
    lowered = display(env.coupon()).lower()  # "abcd-efgh-…" is normalised, not malformed
    assert env.get(f"/v1/coupons/{lowered}").status_code == 200


def test_a_refusal_is_replayed_with_its_problem_document(env: Env) -> None:
    code = generate_code()
    first = env.redeem(code, key="pos-9")
    again = env.redeem(code, key="pos-9")
    assert_problem(first, "coupon_not_found")
    assert_problem(again, "coupon_not_found")
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"


# --- fuzz: nothing ever answers 500 -------------------------------------------------------------


GARBAGE_BODIES: list[bytes] = [
    b"",
    b"null",
    b"true",
    b"[]",
    b"[1, 2, 3]",
    b"-1",
    b"123456789012345678901234567890123456789012345678901234567890",
    b"1e999",
    b"NaN",
    b'"a string where an object belongs"',
    b"{}",
    b'{"code": {"nested": []}, "order": "not an object"}',
    b'{"order": {"id": null, "amount": 1e300, "lines": {"sku": 1}}}',
    b'{"name": null, "benefit": [], "validity": 5, "count": -99999999999999999999}',
    b'{"a": "\\u0000", "code": "\\u0000", "customer": "\\u0000", "external_id": "\\u0000"}',
    b'{"\xff": 1}',
    b"[" * 30_000 + b"]" * 30_000,
    b'{"a":' * 6_000 + b"1" + b"}" * 6_000,
    b'{"code": "' + "码".encode() * 1000 + b'"}',
]


def _post_routes(env: Env) -> list[str]:
    return sorted(
        {
            r.path
            for r in env.client.app.routes
            if "POST" in getattr(r, "methods", ()) and not r.path.startswith("/schema")
        }
    )


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+):\w+\}", lambda m: values[m.group(1)], path)


def assert_client_error(r: httpx.Response, what: str) -> None:
    assert 400 <= r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    assert media_type(r) == PROBLEM_MEDIA_TYPE, what
    body = r.json()
    assert body["code"] in ERROR_CODES and body["status"] == r.status_code, what


def test_garbage_bodies_on_every_post_endpoint(env: Env) -> None:
    """Every POST route (read from the app), every garbage body → a 4xx problem document.

    Path parameters name things that do not exist, so no garbage can succeed.
    """
    absent = {"code": generate_code(), "template_id": "tpl_absent", "redemption_id": "rdm_absent",
              "subscription_id": "sub_absent", "delivery_id": "dlv_absent",
              "connector": "pos.absent", "operation": "redeem", "key_id": "key_absent",
              "campaign_id": "cmp_absent", "token": "absent-token-0000000000000000",
              "reservation_id": "rsv_absent",
              "order_redemption_id": "ord_absent",
              "claim_token": "absent-claim-token-000000000000",
              "conflict_id": "cfl_absent", "staff_id": "stf_absent", "store": "ABSENT-1"}
    routes = _post_routes(env)
    assert "/v1/redemptions" in routes and len(routes) >= 10
    failures = []
    for route in routes:
        for body in GARBAGE_BODIES:
            r = env.raw(_fill(route, absent), body, **{"Idempotency-Key": new_key()})
            try:
                assert_client_error(r, f"{route} {body[:40]!r}")
            except (AssertionError, ValueError, KeyError) as exc:
                failures.append(str(exc))
    assert not failures, "\n".join(failures)


WEIRD_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    1.5,
    10**30,
    -(10**30),
    "",
    "\u0000",
    "x\u0000y",
    "x" * 5000,
    "😀",
    "2026-13-45T99:99:99Z",
    [],
    [None],
    {},
    {"unexpected": 1},
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value (dict keys and list indices), the root excluded."""
    if isinstance(value, dict | list):
        items: Any = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))


def _mutations(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for path in list(_paths(body)):
        for value in WEIRD_VALUES:
            changed = copy.deepcopy(body)
            node = changed
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
            yield f"{'.'.join(map(str, path))}={value!r:.30}", changed
        dropped = copy.deepcopy(body)
        node = dropped
        for k in path[:-1]:
            node = node[k]
        if isinstance(node, dict):
            del node[path[-1]]
            yield f"-{'.'.join(map(str, path))}", dropped


def _valid_bodies(env: Env) -> tuple[dict[str, str], dict[str, list[dict[str, Any]]]]:
    tpl = env.template()
    codes = issue(env.db, env.m, tpl, env.clock.now, count=5)
    rid = env.redeem(codes[0]).json()["redemption_id"]
    spare_key = create_key(env.db, env.m.id, "analyst", env.clock.now, name="spare").id
    redeem = {
        "code": codes[1],
        "store": "SH-001",
        "channel": "pos",
        "occurred_at": iso(env.clock.now),
        "order": order(
            12800, [{"sku": "TEA-01", "category": "drinks", "qty": 2, "unit_price": 6400}]
        ),
    }
    template = {
        "name": "fuzz",
        "benefit": {"kind": "percentage", "percent_off": 15, "threshold": 100, "cap": 500},
        "validity": fixed(env, 0, 10),
        "usage": {
            "weekdays": [1, 2],
            "hours": [{"start": "09:00", "end": "21:00"}],
            "skus": ["TEA-01"],
            "categories": ["drinks"],
            "stores": ["SH-001"],
            "channels": ["pos"],
        },
        "total_quantity": 100,
        "per_customer_limit": 2,
        "transferable": True,
    }
    exchange = {
        "name": "fuzz-x",
        "benefit": {"kind": "exchange", "sku": "TEA-01", "qty": 1, "price": 0, "threshold": 0},
        "validity": {"type": "relative", "days": 3, "start_after_days": 1},
    }
    subscription = subscription_body(
        config={"url": "https://receiver.example/hook", "secret": HOOK_SECRET,
                "headers": {"x-tenant": "t1"}, "timeout": 5},
        events=["coupon.redeemed", "coupon.redemption_reversed"],
        filter={"stores": ["SH-001"], "templates": [tpl]},
        retry_schedule=[5, 60],
        description="fuzz",
    )
    sub = env.post("/v1/subscriptions", subscription).json()["id"]
    [extra] = issue(env.db, env.m, tpl, env.clock.now)
    assert env.redeem(extra).status_code == 201  # gives the subscription a delivery
    delivery_id = env.get("/v1/deliveries").json()["items"][0]["id"]
    stacked = issue(env.db, env.m, env.template(stacking=STACKS), env.clock.now, count=4)
    made = redeem_order(env, stacked[2:])
    assert made.status_code == 201, made.text
    params = {"code": codes[2], "template_id": tpl, "redemption_id": rid,
              "subscription_id": sub, "delivery_id": delivery_id,
              "connector": "pos.native", "operation": "redeem", "key_id": spare_key,
              "campaign_id": campaign(env, total=100, per_customer=100),
              "token": offered(env, gift(env)),
              "reservation_id": held_reservation(env),
              "order_redemption_id": made.json()["order_redemption_id"],
              "claim_token": claim_token(env, campaign(env, total=100, per_customer=100)),
              "conflict_id": synced_conflict(env)[0],
              "store": "SH-001", "staff_id": staff_member(env)}
    sign_in_code = env.post(f"/v1/staff/{params['staff_id']}/sign-in-codes").json()["code"]
    camp = {"template_id": tpl, "name": "fuzz", "channels": ["h5", "web"],
            "starts_at": iso(env.clock.now), "ends_at": iso(env.clock.now + timedelta(days=2)),
            "total": 10, "per_customer": 2, "daily_window": {"start": "00:00", "end": "23:59"}}
    bodies = {
        "/v1/campaigns": [camp],
        "/v1/campaigns/{campaign_id:str}/claims": [{"customer": "M0001", "channel": "h5"}],
        "/v1/campaigns/by-token/{claim_token:str}/claims": [{"customer": "M0002",
                                                             "channel": "h5"}],
        "/v1/redemptions": [redeem],
        "/v1/redemptions/validate": [{**redeem, "code": codes[3]}],
        "/v1/redemptions/{redemption_id:str}/reversal": [{"reason": "refund"}],
        "/v1/coupons/{code:str}/claim": [{"customer": "M0001"}],
        "/v1/coupons/{code:str}/void": [{"reason": "mistake"}],
        "/v1/coupons/{code:str}/transfers": [{"customer": "M0001", "ttl_seconds": 3600}],
        "/v1/transfers/{token:str}/accept": [{"customer": "M0002"}],
        "/v1/transfers/{token:str}/cancel": [{"customer": "M0001"}],
        "/v1/templates": [template, exchange],
        "/v1/templates/{template_id:str}/coupons": [
            {"count": 1, "channel": "pos"},
            {"customers": ["M0002", "M0003"]},
        ],
        "/v1/templates/{template_id:str}/pause": [],
        "/v1/templates/{template_id:str}/resume": [],
        "/v1/stores": [{"code": "NEW-1", "name": "New store"}],
        "/v1/products": [{"sku": "TEA-01", "name": "Tea", "category": "drinks", "price": 1200}],
        "/v1/customers": [{"external_id": "C-1", "name": "Zhang", "phone": "13800000000"}],
        "/v1/subscriptions": [subscription],
        "/v1/subscriptions/{subscription_id:str}/pause": [],
        "/v1/subscriptions/{subscription_id:str}/resume": [],
        "/v1/subscriptions/{subscription_id:str}/replay-dead": [],
        "/v1/keys": [{"role": "analyst", "name": "fuzz", "stores": ["SH-001"],
                      "expires_at": iso(env.clock.now + timedelta(days=30))},
                     {"role": "store", "store": "SH-002"}],
        "/v1/keys/{key_id:str}/revoke": [],
        "/v1/deliveries/{delivery_id:str}/replay": [],
        "/v1/pos/{connector:str}/{operation:str}": [{**redeem, "code": codes[4]}],
        "/v1/orders/quote": [
            {"store": "SH-001", "channel": "pos", "order": redeem["order"],
             "codes": [codes[3], codes[4]]},
            {"store": "SH-001", "channel": "pos", "customer": "M0001", "order": order()},
        ],
        "/v1/reservations": [{"codes": issue(env.db, env.m, tpl, env.clock.now, count=2),
                              "store": "SH-001", "channel": "web", "ttl_seconds": 600,
                              "order": redeem["order"]}],
        "/v1/reservations/{reservation_id:str}/confirm": [],
        "/v1/reservations/{reservation_id:str}/release": [],
        "/v1/orders/redeem": [{**{k: v for k, v in redeem.items() if k != "code"},
                               "codes": stacked[:2]}],
        "/v1/orders/{order_redemption_id:str}/reversal": [{"reason": "refund"}],
        "/v1/redemptions/sync": [{"terminal_id": "T-01", "items": [
            {**redeem, "code": codes[4], "idempotency_key": new_key(), "offline_discount": 2000}
        ]}],
        "/v1/conflicts/{conflict_id:str}/settle": [{"settlement": "refunded"}],
        "/v1/scan": [],  # an image, never JSON (tests/api/test_scan.py fuzzes it)
        "/v1/stores/{store:str}/staff": [{"name": "Fuzz", "external_id": "HR-FUZZ"}],
        "/v1/staff/{staff_id:str}/sign-in-codes": [],
        "/v1/staff/{staff_id:str}/disable": [],
        "/v1/staff/{staff_id:str}/enable": [],
        "/v1/staff/sessions": [{"code": sign_in_code}],
        "/v1/sales": [{"orders": [{"order_id": "S-F1", "store": "SH-001", "channel": "pos",
                                   "customer": "M0001", "amount": 5600,
                                   "occurred_at": iso(env.clock.now)}]}],
    }
    return params, bodies


def test_every_field_of_every_post_body_mutated(env: Env) -> None:
    """Each field of a valid body replaced by odd values or dropped: never a 500.

    Some mutations are still valid (the request then succeeds), and a NUL character is
    stored by SQLite but refused by PostgreSQL, so here any status below 500 is fine as
    long as errors are problem documents.
    """
    params, bodies = _valid_bodies(env)
    assert set(bodies) == set(_post_routes(env)), "add a valid body for the new POST route"
    failures = []
    for route, samples in bodies.items():
        path = _fill(route, params)
        for sample in samples:
            for what, body in _mutations(sample):
                r = env.client.post(
                    path, json=body, headers={**env.admin, "Idempotency-Key": new_key()}
                )
                ok = r.status_code < 500 and (
                    r.status_code < 400 or media_type(r) == PROBLEM_MEDIA_TYPE
                )
                if not ok:
                    failures.append(f"{route} {what}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)


ODD_SEGMENTS = ["%00", "x%00y", "R" * 3000, "%FF%FE", "..%2F..", "%E2%80%AE", "%20", "😀"]
ODD_QUERIES = {
    "/v1/redemptions": [
        "limit=-1",
        "limit=0",
        "limit=99999999999999999999999",
        "from=yesterday",
        "to=%00",
        "from=2026-01-01T00:00:00%2B25:00",
        "cursor=%00",
        "cursor=" + "A" * 3000,
        "store=%00",
        "template=%00",
        "channel=%00",
        "status=%00",
        "store=" + "S" * 3000,
    ],
    "/v1/customers": ["limit=0", "limit=x", "limit=1001", "after=%00", "after=" + "a" * 3000],
}


def test_odd_path_segments_and_queries(env: Env) -> None:
    """Odd path parameters and query values on every route: 4xx problem or a normal 200."""
    failures = []
    for route in env.client.app.routes:
        if route.path.startswith("/schema") or "{" not in route.path:
            continue
        for method in sorted(set(route.methods) - {"OPTIONS", "HEAD"}):
            for seg in ODD_SEGMENTS:
                path = re.sub(r"\{\w+:\w+\}", seg, route.path)
                r = env.client.request(
                    method,
                    path,
                    json={},
                    headers={**env.admin, "Idempotency-Key": new_key()},
                )
                try:
                    assert_client_error(r, f"{method} {path[:80]}")
                except (AssertionError, ValueError, KeyError) as exc:
                    failures.append(str(exc))
    for path, queries in ODD_QUERIES.items():
        for q in queries:
            r = env.get(f"{path}?{q}")
            if r.status_code != 200:
                try:
                    assert_client_error(r, f"GET {path}?{q[:60]}")
                except (AssertionError, ValueError, KeyError) as exc:
                    failures.append(str(exc))
    assert not failures, "\n".join(failures)

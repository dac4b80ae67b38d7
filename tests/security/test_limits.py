"""Hostile input: size and nesting limits, strict content types, CORS, security headers.

The limits are those of ``hub.api.hardening`` (and the README's "Hostile input"): bodies
1 MiB by default (64 KiB on /v1/redemptions, 256 KiB on the POS route, 2 MiB for
issuing), JSON nested at most 64 levels, request headers at most 16 KiB and 100 fields,
URLs (path and query) at most 8 KiB. Each is tested just inside and just outside, through
the TestClient and, where the HTTP parser matters, through uvicorn on loopback.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine

from hub.api.app import create_app
from hub.api.hardening import (
    API_CSP,
    DEFAULT_MAX_BODY,
    DOCS_CSP,
    EXTRA_PROBLEMS,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    MAX_JSON_DEPTH,
    MAX_REQUEST_HEAD,
    MAX_URL_BYTES,
    cors_config,
    json_depth_exceeds,
)
from hub.api.pos import POS_MAX_BODY
from hub.api.redemptions import REDEEM_MAX_BODY
from hub.api.serving import server_config
from hub.services.problems import PROBLEM_MEDIA_TYPE, status_for
from tests.conftest import (
    Clock,
    Merchant,
    free_port,
    issue,
    make_template,
    order,
    serve_in_thread,
)

JSON = {"Content-Type": "application/json"}


def assert_problem(r: httpx.Response, code: str) -> dict[str, Any]:
    status = status_for(code)
    assert r.status_code == status, f"{r.status_code} {r.text[:300]}"
    assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), r.headers
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["status"] == status, body
    return body


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    """``depth`` levels: objects and arrays alternating, e.g. {"a":[{"a":[1]}]}."""
    opens = b"".join(b'{"a":' if i % 2 == 0 else b"[" for i in range(depth))
    closes = b"".join(b"}" if i % 2 == 0 else b"]" for i in reversed(range(depth)))
    return opens + leaf + closes


# --- JSON nesting depth ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        (b"[]", False),
        (nested(MAX_JSON_DEPTH), False),
        (nested(MAX_JSON_DEPTH + 1), True),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), True),
        (b"[" * 100_000 + b"]" * 100_000, True),
        # brackets inside strings are text, escaped quotes do not end a string
        (b'["' + b"[" * 500 + b'"]', False),
        (b'{"k": "\\"' + b"{" * 500 + b'"}', False),
        (b'["\\\\"' + b", [" * 70 + b"]" * 70 + b"]", True),
        # many shallow brackets are fine
        (b"[" + b"[1]," * 5000 + b"[1]]", False),
        # unbalanced text is the decoder's to refuse
        (b"]" * 200 + b"[" * 200, False),
    ],
)
def test_json_depth(text: bytes, deep: bool) -> None:
    assert json_depth_exceeds(text) is deep


@pytest.mark.parametrize(
    "text",
    [
        b'"\\"' * 300_000,  # an unterminated string full of escaped quotes
        b"[" * 100 + b'"\\"' * 300_000 + b"\\",
        b"[" * 1_000_000,
        b"[]" * 500_000,
        b"[" * 70 + b'"",' * 300_000,
    ],
)
def test_json_depth_check_is_linear(text: bytes) -> None:
    started = time.perf_counter()
    json_depth_exceeds(text)
    assert time.perf_counter() - started < 0.5


def test_nesting_limit_over_http(client: TestClient[Any], merchant: Merchant) -> None:
    h = {**merchant.auth(), **JSON}
    inside = client.post(
        "/v1/stores", content=b'{"code": "N-1", "x": ' + nested(63) + b"}", headers=h
    )
    assert_problem(inside, "invalid_request")  # parsed; `x` is an unknown field
    outside = client.post(
        "/v1/stores", content=b'{"code": "N-1", "x": ' + nested(64) + b"}", headers=h
    )
    assert "nested deeper than 64" in assert_problem(outside, "malformed_json")["detail"]
    started = time.perf_counter()
    huge = b"[" * 30_000 + b"]" * 30_000  # fits in the 64 KiB of redeem
    r = client.post("/v1/redemptions", content=huge, headers={**h, "Idempotency-Key": "deep"})
    assert_problem(r, "malformed_json")
    assert time.perf_counter() - started < 1
    # the POS route's JSON formats get the same check (a store key: tills use it)
    pos = {**merchant.auth(merchant.store_keys["SH-001"]), **JSON}
    r = client.post("/v1/pos/pos.native/validate", content=nested(200), headers=pos)
    assert r.status_code == 400, r.text


# --- body sizes ------------------------------------------------------------------------------


def test_default_body_limit_is_1_mib(client: TestClient[Any], merchant: Merchant) -> None:
    h = {**merchant.auth(), **JSON}
    head, tail = b'{"external_id": "C-1", "name": "', b'"}'
    filler = DEFAULT_MAX_BODY - len(head) - len(tail)
    inside = client.post("/v1/customers", content=head + b"n" * filler + tail, headers=h)
    assert_problem(inside, "invalid_request")  # read and decoded: the name is too long
    outside = client.post("/v1/customers", content=head + b"n" * (filler + 1) + tail, headers=h)
    assert_problem(outside, "payload_too_large")


def test_route_limits(client: TestClient[Any], merchant: Merchant) -> None:
    h = {**merchant.auth(), **JSON, "Idempotency-Key": "big"}
    r = client.post("/v1/redemptions/validate", content=b" " * (REDEEM_MAX_BODY + 1), headers=h)
    assert_problem(r, "payload_too_large")
    # the POS route takes 256 KiB (POSLog XML); its JSON formats keep 64 KiB themselves
    till = {**merchant.auth(merchant.store_keys["SH-001"]), "Content-Type": "application/xml"}
    doc = b"<POSLog>" + b" " * (POS_MAX_BODY - 17) + b"</POSLog>"
    inside = client.post("/v1/pos/pos.poslog/validate", content=doc, headers=till)
    assert len(doc) == POS_MAX_BODY and inside.status_code != 413, inside.text
    outside = client.post("/v1/pos/pos.poslog/validate", content=doc + b" ", headers=till)
    assert_problem(outside, "payload_too_large")


# --- content types ---------------------------------------------------------------------------


def _body_routes(app: Any) -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for route in app.routes
        for method in route.methods & {"POST", "PUT", "PATCH"}
        if route.path.startswith("/v1/") and not route.path.startswith("/v1/pos/")
    )


def _fill(path: str) -> str:
    return re.sub(r"\{\w+:\w+\}", "absent", path)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
        "application/json; charset=latin-1",
        None,
    ],
)
def test_every_json_endpoint_refuses_other_media_types(
    client: TestClient[Any], merchant: Merchant, content_type: str | None
) -> None:
    routes = _body_routes(client.app)
    assert ("POST", "/v1/redemptions") in routes and len(routes) >= 15
    headers = {**merchant.auth(), "Idempotency-Key": "ct"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    # every body route takes JSON but the photo scan, which takes images
    from hub.services.scan import MEDIA_TYPES

    accepts = {("POST", "/v1/scan"): list(MEDIA_TYPES)}
    for method, path in routes:
        r = client.request(method, _fill(path), content=b'{"a": 1}', headers=headers)
        body = assert_problem(r, "unsupported_media_type")
        expected = accepts.get((method, path), ["application/json"])
        assert body["accepted"] == expected, (method, path)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON; Charset=UTF-8",
        "application/merge-patch+json",
    ],
)
def test_json_media_types_are_accepted(
    client: TestClient[Any], merchant: Merchant, content_type: str
) -> None:
    r = client.post(
        "/v1/stores",
        content=b'{"code": "CT-1", "name": "Content type"}',
        headers={**merchant.auth(), "Content-Type": content_type},
    )
    assert r.status_code == 201, r.text


def test_a_post_without_a_body_needs_no_content_type(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    r = client.post(f"/v1/templates/{tpl}/pause", headers=merchant.auth())
    assert r.status_code == 200, r.text


def test_the_pos_route_keeps_its_own_media_types(
    client: TestClient[Any], merchant: Merchant
) -> None:
    till = merchant.auth(merchant.store_keys["SH-001"])
    xml = client.post(
        "/v1/pos/pos.poslog/validate",
        content=b"<POSLog><Transaction>",
        headers={**till, "Content-Type": "application/xml"},
    )
    # read by the connector (and answered in kind), not refused as non-JSON
    assert xml.status_code == 400 and xml.headers["content-type"] == "application/xml"
    assert b"malformed_xml" in xml.content
    text = client.post(
        "/v1/pos/pos.native/validate", content=b"{}", headers={**till, "Content-Type": "text/plain"}
    )
    assert "pos.native takes" in assert_problem(text, "unsupported_media_type")["detail"]


# --- headers and URLs ------------------------------------------------------------------------


def test_header_limits(client: TestClient[Any], merchant: Merchant) -> None:
    auth = merchant.auth()
    room = MAX_HEADER_BYTES - 1024  # the client's own headers fit in the rest
    assert client.get("/v1/templates", headers={**auth, "X-Pad": "p" * room}).status_code == 200
    r = client.get("/v1/templates", headers={**auth, "X-Pad": "p" * MAX_HEADER_BYTES})
    assert_problem(r, "headers_too_large")
    few = {f"X-F{i}": "1" for i in range(MAX_HEADER_FIELDS - 10)}
    assert client.get("/v1/templates", headers={**auth, **few}).status_code == 200
    many = {f"X-F{i}": "1" for i in range(MAX_HEADER_FIELDS + 1)}
    assert_problem(client.get("/v1/templates", headers={**auth, **many}), "headers_too_large")
    # before authentication: a key is no way around it, nor is its absence
    assert_problem(client.get("/v1/templates", headers=many), "headers_too_large")


def test_url_limit(client: TestClient[Any], merchant: Merchant) -> None:
    path = "/v1/templates?pad="
    inside = client.get(path + "p" * (MAX_URL_BYTES - len(path)), headers=merchant.auth())
    assert inside.status_code == 200, inside.text
    outside = client.get(path + "p" * (MAX_URL_BYTES - len(path) + 1), headers=merchant.auth())
    assert_problem(outside, "uri_too_long")
    assert_problem(client.get("/v1/coupons/" + "C" * MAX_URL_BYTES), "uri_too_long")


@pytest.fixture
def hardened_server(db: Engine, clock: Clock) -> Iterator[str]:
    """The app under uvicorn with the parser limit ``hub serve`` uses."""
    port = free_port()
    config = server_config(
        create_app(db, clock=clock), 10, host="127.0.0.1", port=port, log_level="critical"
    )
    with serve_in_thread(config):
        yield f"http://127.0.0.1:{port}"


def test_limits_through_uvicorn(hardened_server: str, merchant: Merchant) -> None:
    with httpx.Client(base_url=hardened_server, headers=merchant.auth(), timeout=30) as http:
        assert http.get("/v1/templates").status_code == 200
        # above the app's limit, below the parser's: the app's problem document
        r = http.get("/v1/templates", headers={"X-Pad": "p" * (MAX_HEADER_BYTES + 4096)})
        assert_problem(r, "headers_too_large")
        assert_problem(http.get("/v1/templates?pad=" + "p" * MAX_URL_BYTES), "uri_too_long")
    # a head that grows past the parser's limit without ending (slowloris-like): uvicorn
    # drops it before the app sees anything, with a plain 400
    host, port = hardened_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: hub\r\nX-Pad: " + b"p" * (MAX_REQUEST_HEAD + 1)
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    with httpx.Client(base_url=hardened_server, headers=merchant.auth(), timeout=30) as http:
        assert http.get("/v1/templates").status_code == 200  # and the server goes on


# --- CORS ------------------------------------------------------------------------------------

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
}


def test_cors_config_from_the_environment() -> None:
    assert cors_config({}) is None
    assert cors_config({"HUB_CORS_ORIGINS": " , "}) is None
    config = cors_config({"HUB_CORS_ORIGINS": "https://pos.example, https://shop.example/"})
    assert config is not None
    assert config.allow_origins == ["https://pos.example", "https://shop.example"]
    assert config.allow_credentials is False


def test_cors_is_off_by_default(
    client: TestClient[Any], merchant: Merchant, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = {"Origin": "https://pos.example"}
    preflight = client.options("/v1/redemptions", headers={**origin, **PREFLIGHT})
    assert not any(h.startswith("access-control-") for h in preflight.headers)
    r = client.get("/v1/templates", headers={**merchant.auth(), **origin})
    assert r.status_code == 200
    assert not any(h.startswith("access-control-") for h in r.headers)


def test_cors_for_the_configured_origins(
    db: Engine, merchant: Merchant, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_CORS_ORIGINS", "https://pos.example,https://shop.example")
    with TestClient(create_app(db, clock=clock)) as client:
        ok = client.options(
            "/v1/redemptions", headers={"Origin": "https://shop.example", **PREFLIGHT}
        )
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == "https://shop.example"
        allowed = ok.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "idempotency-key"} <= set(allowed.split(", "))
        r = client.get(
            "/v1/templates", headers={**merchant.auth(), "Origin": "https://pos.example"}
        )
        assert r.headers["access-control-allow-origin"] == "https://pos.example"
        assert "Idempotent-Replayed" in r.headers["access-control-expose-headers"]
        other = {"Origin": "https://evil.example"}
        refused = client.options("/v1/redemptions", headers={**other, **PREFLIGHT})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        r = client.get("/v1/templates", headers={**merchant.auth(), **other})
        assert "access-control-allow-origin" not in r.headers


# --- security headers ------------------------------------------------------------------------


def _assert_secured(r: httpx.Response, what: str, *, docs: bool = False) -> None:
    assert r.headers.get("x-content-type-options") == "nosniff", what
    assert r.headers.get("referrer-policy") == "no-referrer", what
    assert r.headers.get("x-frame-options") == "DENY", what
    html = r.headers.get("content-type", "").startswith("text/html")
    csp = DOCS_CSP if docs and html else API_CSP
    assert r.headers.get("content-security-policy") == csp, what
    if docs:
        assert "cache-control" not in r.headers, what
    else:
        assert r.headers.get("cache-control") == "no-store", what


def test_security_headers_on_every_kind_of_response(
    client: TestClient[Any], db: Engine, merchant: Merchant, clock: Clock
) -> None:
    auth = merchant.auth()
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    redeem = {"code": code, "store": "SH-001", "order": order()}
    api = {
        "200": client.get("/v1/templates", headers=auth),
        "201": client.post(
            "/v1/redemptions", json=redeem, headers={**auth, "Idempotency-Key": "s"}
        ),
        "replay": client.post(
            "/v1/redemptions", json=redeem, headers={**auth, "Idempotency-Key": "s"}
        ),
        "401": client.get("/v1/templates"),
        "404 route": client.get("/v1/nothing-here", headers=auth),
        "405": client.delete("/v1/templates", headers=auth),
        "415": client.post("/v1/stores", content=b"x", headers={**auth, "Content-Type": "text/x"}),
        "431": client.get("/v1/templates", headers={f"X-{i}": "1" for i in range(200)}),
        "health": client.get("/health"),
        "metrics": client.get("/metrics"),
        "options": client.options("/v1/templates"),
    }
    for what, r in api.items():
        _assert_secured(r, what)
    assert api["replay"].headers["idempotent-replayed"] == "true"
    for path in ("/schema/openapi.json", "/schema", "/schema/swagger"):
        _assert_secured(client.get(path), path, docs=True)


def test_the_docs_policy_allows_what_the_docs_pages_load(client: TestClient[Any]) -> None:
    """Every script, style and icon the documentation pages reference comes from the hub
    itself, which the docs policy allows ('self'); no page loads anything from a CDN
    (issue 9 item 15; tests/api/test_openapi.py fetches each asset)."""
    directives = dict(d.strip().split(" ", 1) for d in DOCS_CSP.split(";"))
    for path in ("/schema", "/schema/swagger"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-security-policy"] == DOCS_CSP
        refs = re.findall(r"<(script|link)[^>]*?(?:src|href)=['\"]([^'\"]+)", page.text)
        assert refs
        for tag, url in refs:
            assert url.startswith("/") and not url.startswith("//"), (path, url)
            kind = "script-src" if tag == "script" else "style-src"
            assert "'self'" in directives[kind], (path, url)
    assert "https:" not in DOCS_CSP and "http:" not in DOCS_CSP
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-inline'" not in API_CSP and "default-src 'none'" in API_CSP


# --- the OpenAPI document lists the problems ----------------------------------------------


def test_every_operation_documents_its_problems(client: TestClient[Any]) -> None:
    doc = client.get("/schema/openapi.json").json()
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            checked += 1
            responses = op["responses"]
            what = f"{method.upper()} {path}"
            assert {"414", "431"} <= responses.keys(), what
            if not path.startswith(("/health", "/ready", "/metrics")):
                assert {"401", "403"} <= responses.keys(), what
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= responses.keys(), what
            for status, response in responses.items():
                content = response.get("content")
                if status.startswith("4") and content is not None:
                    if path.startswith("/v1/pos/"):  # or in the connector's own format
                        assert PROBLEM_MEDIA_TYPE in content, (what, status)
                        continue
                    assert list(content) == [PROBLEM_MEDIA_TYPE], (what, status)
    assert checked >= 40
    routes = {(m, r.path) for r in client.app.routes for m in r.methods}
    assert set(EXTRA_PROBLEMS) <= routes, set(EXTRA_PROBLEMS) - routes

"""The OpenAPI document is complete, and the documentation pages work offline.

Issue 9 items 14 and 15. The client generated from the document, and schemathesis with
every check and stateful links, are in ``tests/api/test_openapi_client.py`` and
``tests/security/test_schemathesis.py``.
"""

from __future__ import annotations

import re
import secrets
from html.parser import HTMLParser
from typing import Any

import msgspec
import pytest
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from hub.api.hardening import DOCS_CSP

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@pytest.fixture
def doc(client: TestClient[Any]) -> dict[str, Any]:
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = doc["components"]["schemas"][name]
    return schema


def _untyped(doc: dict[str, Any], schema: dict[str, Any] | None) -> list[str]:
    """Why ``schema`` says nothing about a body's shape (empty when it does).

    A schema is untyped when it is missing, or an object (or typeless) schema with no
    ``properties`` and no typed ``additionalProperties``; a ``oneOf``/``anyOf`` is typed
    when each branch is. The only exception is a branch marked ``x-vendor-format`` (a POS
    vendor's own JSON, shaped by its mapping file) next to typed branches.
    """
    if not schema:
        return ["no schema"]
    schema = _resolve(doc, schema)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            branches = [_resolve(doc, b) for b in schema[key]]
            typed = [b for b in branches if not b.get("x-vendor-format")]
            if not typed:
                return [f"{key} of vendor formats only"]
            return [why for b in typed for why in _untyped(doc, b)]
    if "allOf" in schema:
        return [why for b in schema["allOf"] for why in _untyped(doc, b)]
    kind = schema.get("type")
    if kind in ("string", "integer", "number", "boolean", "array", "null"):
        return []
    if schema.get("properties"):
        return []
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra and not _untyped(doc, extra):
        return []
    return [f"bare object {schema}"]


def test_every_success_response_has_a_real_schema(doc: dict[str, Any]) -> None:
    """Item 14: every 2xx response of every operation documents its body's shape (before:
    31 of 42 were an untyped object)."""
    bad: list[str] = []
    checked = 0
    for method, path, op in _operations(doc):
        for status, response in op["responses"].items():
            if not status.startswith("2"):
                continue
            content = response.get("content")
            if not content:
                bad.append(f"{method.upper()} {path} {status}: no content")
                continue
            for media, body in content.items():
                checked += 1
                for why in _untyped(doc, body.get("schema")):
                    bad.append(f"{method.upper()} {path} {status} {media}: {why}")
    assert checked >= 42
    assert not bad, "\n".join(bad)


def test_the_schema_walker_spots_untyped_responses(doc: dict[str, Any]) -> None:
    """The walker above is not vacuous: litestar's schema for ``dict[str, Any]`` (what
    31 operations had before) and an empty schema are reported."""
    assert _untyped(doc, {"additionalProperties": {}, "type": "object"})
    assert _untyped(doc, {"type": "object"})
    assert _untyped(doc, None)
    assert _untyped(doc, {"anyOf": [{"type": "object", "x-vendor-format": True}]})
    assert not _untyped(doc, {"$ref": "#/components/schemas/TemplateOut"})


def test_bodies_that_refuse_unknown_fields_say_so(
    client: TestClient[Any], doc: dict[str, Any]
) -> None:
    """``additionalProperties: false`` on every request body struct (and nested struct)
    that refuses unknown fields; and the refusal is real."""
    schemas = doc["components"]["schemas"]
    strict: set[str] = set()
    for route in client.app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is None:
                continue
            for t in _structs(msgspec.inspect.type_info(data.annotation)):
                if t.forbid_unknown_fields:
                    strict.add(t.cls.__name__)
    assert {"RedeemIn", "OrderIn", "LineIn", "TemplateIn", "ThresholdIn", "KeyIn"} <= strict
    for name in strict:
        assert schemas[name].get("additionalProperties") is False, name
    for method, path, op in _operations(doc):
        media = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        ref = media.get("schema", {}).get("$ref", "")
        if ref:
            name = ref.rsplit("/", 1)[1]
            assert schemas[name].get("additionalProperties") is False, (method, path)


def _structs(t: msgspec.inspect.Type, seen: set[type] | None = None) -> list[Any]:
    seen = set() if seen is None else seen
    out: list[Any] = []
    if isinstance(t, msgspec.inspect.StructType):
        if t.cls in seen:
            return out
        seen.add(t.cls)
        out.append(t)
        for f in t.fields:
            out += _structs(f.type, seen)
    elif isinstance(t, msgspec.inspect.UnionType):
        for member in t.types:
            out += _structs(member, seen)
    elif isinstance(t, msgspec.inspect.ListType):
        out += _structs(t.item_type, seen)
    elif isinstance(t, msgspec.inspect.Metadata):
        out += _structs(t.type, seen)
    return out


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/v1/redemptions"), ("post", "/v1/redemptions/{redemption_id}/reversal")],
)
def test_idempotency_key_is_required_where_it_is(
    doc: dict[str, Any], client: TestClient[Any], merchant: Any, method: str, path: str
) -> None:
    params = doc["paths"][path][method]["parameters"]
    [key] = [p for p in params if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and key["required"] is True
    assert key["schema"]["minLength"] == 1 and key["schema"]["maxLength"] == 255
    # ... and the server does refuse a request without it
    url = path.replace("{redemption_id}", "rdm_01M8YG2Q3NCJ4Y3ZC2P24WBRMZ")
    r = client.post(url, json={"code": "X", "order": {"id": "1", "amount": 1}}
                    if path == "/v1/redemptions" else {}, headers=merchant.auth())  # fmt: skip
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"


def test_path_parameters_carry_their_patterns(doc: dict[str, Any]) -> None:
    from hub.domain.codes import generate_code
    from hub.domain.ids import new_id

    found: dict[str, dict[str, Any]] = {}
    for _method, _path, op in _operations(doc):
        for p in op.get("parameters", []):
            if p["in"] == "path":
                found[p["name"]] = p["schema"]
                assert p["required"] is True
                assert "pattern" in p["schema"] or "enum" in p["schema"], p
    code = re.compile(found["code"]["pattern"])
    real = generate_code()
    assert code.match(real) and code.match(real.lower()) and not code.match("0" + real[1:])
    for name, prefix in {
        "template_id": "tpl",
        "subscription_id": "sub",
        "delivery_id": "dlv",
        "redemption_id": "rdm",
        "key_id": "key",
    }.items():
        assert re.match(found[name]["pattern"], new_id(prefix)), name
        assert not re.match(found[name]["pattern"], new_id("xxx")), name
    token = re.compile(found["token"]["pattern"])  # transfer offers' secrets
    assert token.match(secrets.token_urlsafe(24)) and not token.match("a/b")
    assert "pos.mapped.acme" in found["connector"]["enum"]
    assert "coupon.redeemed" in found["event_type"]["enum"]


def test_query_and_header_parameters_are_never_null(doc: dict[str, Any]) -> None:
    for method, path, op in _operations(doc):
        for p in op.get("parameters", []):
            assert {"type": "null"} not in p["schema"].get("oneOf", []), (method, path, p)


def test_pos_route_documents_its_bodies_per_content_type(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v1/pos/{connector}/{operation}"]["post"]
    content = op["requestBody"]["content"]
    assert set(content) == {"application/json", "application/xml", "text/xml"}
    branches = [b.get("$ref", "") for b in content["application/json"]["schema"]["anyOf"]]
    assert "#/components/schemas/RedeemIn" in branches
    assert content["text/xml"]["schema"]["type"] == "string"
    reply = op["responses"]["200"]["content"]
    assert {"application/json", "application/xml"} <= set(reply)


def test_no_generated_examples(client: TestClient[Any]) -> None:
    """litestar's random examples ("DwEkQQHiBrmXZcSFtoJx") are junk for a reader."""
    text = client.get("/schema/openapi.json").text
    assert '"examples"' not in text and '"example"' not in text
    assert "DwEkQQHiBrmXZcSFtoJx" not in text


def test_create_responses_link_to_their_resources(doc: dict[str, Any]) -> None:
    ids = {op["operationId"]: (m, p) for m, p, op in _operations(doc)}
    templates = doc["paths"]["/v1/templates"]["post"]["responses"]["201"]["links"]
    assert ids[templates["GetTemplate"]["operationId"]] == ("get", "/v1/templates/{template_id}")
    subs = doc["paths"]["/v1/subscriptions"]["post"]["responses"]["201"]["links"]
    targets = {ids[link["operationId"]] for link in subs.values()}
    assert {
        ("get", "/v1/subscriptions/{subscription_id}"),
        ("patch", "/v1/subscriptions/{subscription_id}"),
        ("delete", "/v1/subscriptions/{subscription_id}"),
    } <= targets
    for links in (templates, subs):
        for link in links.values():
            assert link["operationId"] in ids


def test_options_lists_every_method_of_the_path(
    client: TestClient[Any], doc: dict[str, Any], merchant: Any
) -> None:
    """Item 14: litestar's OPTIONS answer listed the methods of the first handler of a
    path only (``GET, OPTIONS`` on a path that also takes PATCH and DELETE)."""
    checked = 0
    for path, item in doc["paths"].items():
        documented = {m.upper() for m in item if m in HTTP_METHODS}
        url = re.sub(r"\{[^}]+\}", "x", path)
        r = client.options(url, headers=merchant.auth())
        assert r.status_code == 204, (path, r.status_code)
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert allowed - {"OPTIONS", "HEAD"} == documented, (path, allowed, documented)
        checked += 1
    assert checked >= 30
    r = client.options("/v1/subscriptions/sub_x")
    assert r.headers["allow"] == "DELETE, GET, OPTIONS, PATCH"


# --- item 15: the documentation pages work offline ----------------------------------------


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("src", "href"):
            if a.get(name):
                self.refs.append((tag, str(a[name])))
        self._in_script = tag == "script" and not a.get("src")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


EXPECTED_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
def test_docs_pages_reference_no_other_host(client: TestClient[Any], page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == DOCS_CSP
    assert "http://" not in r.text and "https://" not in r.text
    parser = _Refs()
    parser.feed(r.text)
    assert parser.inline_scripts == 0  # script-src 'self' would block it
    scripts = [u for t, u in parser.refs if t == "script"]
    assert any(u.endswith("swagger-ui-bundle.js") for u in scripts)
    for _tag, url in parser.refs:
        assert url.startswith("/schema/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        ext = "." + url.rsplit(".", 1)[1]
        assert asset.headers["content-type"].split(";")[0] == EXPECTED_TYPES[ext], url
        assert asset.content
    # the page's script loads the document from here
    assert client.get("/schema/openapi.json").status_code == 200


def test_docs_policy_names_no_other_host() -> None:
    for directive in DOCS_CSP.split(";"):
        for source in directive.split()[1:]:
            assert source in ("'none'", "'self'", "'unsafe-inline'", "data:"), directive
    assert "script-src 'self';" in DOCS_CSP


def test_vendored_assets_are_the_pinned_release() -> None:
    from hub.api.openapi import STATIC_DIR, SWAGGER_UI_VERSION

    folder = STATIC_DIR / "swagger-ui"
    assert SWAGGER_UI_VERSION in (folder / "VERSION").read_text()
    assert "Apache License" in (folder / "LICENSE").read_text()
    bundle = (folder / "swagger-ui-bundle.js").read_bytes()
    assert len(bundle) > 1_000_000 and b"SwaggerUIBundle" in bundle
    assert b"sourceMappingURL" not in (folder / "swagger-ui.css").read_bytes()


def test_redeem_problems_name_their_codes(doc: dict[str, Any]) -> None:
    responses = doc["paths"]["/v1/redemptions"]["post"]["responses"]
    assert "`idempotency_key_required`" in responses["400"]["description"]
    assert "`coupon_already_redeemed`" in responses["409"]["description"]
    assert "`threshold_not_met`" in responses["422"]["description"]
    for status in ("400", "409", "422"):
        assert list(responses[status]["content"]) == ["application/problem+json"]

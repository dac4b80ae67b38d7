"""The OpenAPI document and the documentation pages, complete and offline.

* :func:`ok` documents a handler's success body when the handler returns a plain dict
  built by a service (the types live in :mod:`hub.api.dto`).
* :func:`complete_document` finishes what litestar generates, once, before the document
  is first served (``/schema/openapi.json`` and ``/schema/openapi.yaml``):

  - request bodies as msgspec (the decoder) describes them: exact constraints, and
    ``additionalProperties: false`` wherever a struct refuses unknown fields;
  - ``Idempotency-Key`` ``required: true``, 1–255 characters, where the hub requires it;
  - path parameters with their patterns (coupon codes, prefixed ids) or values (event
    types, POS connectors and operations); query and header parameters never "null";
  - the POS route's request bodies per content type and its replies;
  - ``links`` from the responses that create or list resources to the operations that
    take their ids (clients and schemathesis' stateful tests follow them);
  - no generated examples.

* :func:`openapi_config`: Swagger UI at ``/schema`` (and ``/schema/swagger``), served
  with its scripts and styles from the package (``hub/api/static/swagger-ui``, see the
  ``VERSION`` file there) under ``/schema/assets``: the pages work offline and the
  documentation's Content-Security-Policy names no other host.
* :func:`allow_every_method` (a ``before_send`` hook): ``OPTIONS`` answers list every
  method of the path (litestar's own answer lists those of the first handler only).
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
from litestar import Litestar, Request, Router
from litestar.datastructures import MutableScopeHeaders
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from litestar.types import Message, Scope

import hub
from hub.domain.codes import ALPHABET

DOCS_PATH: Final = "/schema"
ASSETS_PATH: Final = f"{DOCS_PATH}/assets"
STATIC_DIR: Final = Path(__file__).parent / "static"
SWAGGER_UI_VERSION: Final = "5.35.0"  # hub/api/static/swagger-ui/VERSION

_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def ok(data: Any, description: str = "Request fulfilled") -> ResponseSpec:
    """The success response of a handler whose body has the shape ``data``."""
    return ResponseSpec(data_container=data, description=description, generate_examples=False)


# --- parameters ----------------------------------------------------------------------------

_CODE_CHAR = "[" + ALPHABET + "".join(c.lower() for c in ALPHABET if c.isalpha()) + "]"
CODE_PATTERN: Final = f"^(?:{_CODE_CHAR}-?){{13}}{_CODE_CHAR}$"
# a coupon token (the offline QR, hub.domain.offline) stands wherever a code does
TOKEN_OR_CODE_PATTERN: Final = (
    f"^(?:(?:{_CODE_CHAR}-?){{13}}{_CODE_CHAR}|HT1\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+)$"
)
_ULID = "[0-9A-HJKMNP-TV-Z]{26}"
ID_PREFIXES: Final = {
    "template_id": "tpl",
    "subscription_id": "sub",
    "delivery_id": "dlv",
    "redemption_id": "rdm",
    "key_id": "key",
    "campaign_id": "cmp",
    "reservation_id": "rsv",
    "order_redemption_id": "ord",
    "conflict_id": "cfl",
    "staff_id": "stf",
}
IDEMPOTENCY_KEY: Final = "Idempotency-Key"
IDEMPOTENCY_SCHEMA: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "1–255 characters, unique per operation you mean; a retry repeats it.",
}
# Operations that refuse a request without the header (400 idempotency_key_required).
IDEMPOTENT_OPERATIONS: Final = frozenset(
    {
        ("post", "/v1/redemptions"),
        ("post", "/v1/redemptions/{redemption_id}/reversal"),
        ("post", "/v1/campaigns/{campaign_id}/claims"),
        ("post", "/v1/campaigns/by-token/{claim_token}/claims"),
        ("post", "/v1/coupons/{code}/transfers"),
        ("post", "/v1/reservations"),
        ("post", "/v1/reservations/{reservation_id}/confirm"),
        ("post", "/v1/reservations/{reservation_id}/release"),
        ("post", "/v1/orders/redeem"),
        ("post", "/v1/orders/{order_redemption_id}/reversal"),
        ("put", "/v1/offline/rules"),
        ("post", "/v1/conflicts/{conflict_id}/settle"),
    }
)


def _path_parameter_schemas() -> dict[str, dict[str, Any]]:
    from hub.connectors import (
        OPERATIONS,
        AnyConnector,
        InboundConnector,
        get_connector,
        load_connectors,
    )
    from hub.events.schemas import DATA_SCHEMAS
    from hub.services.tokens import TOKEN_PATTERN

    def serves(c: AnyConnector) -> bool:
        return isinstance(c, InboundConnector) and bool(c.operations)

    inbound: list[str] = []
    for connector in load_connectors().values():
        inbound += [connector.name] if serves(connector) and not connector.variants() else []
        for v in connector.variants():
            if serves(get_connector(f"{connector.name}.{v}")):
                inbound.append(f"{connector.name}.{v}")
    inbound.sort()
    schemas: dict[str, dict[str, Any]] = {
        "code": {
            "type": "string",
            "pattern": TOKEN_OR_CODE_PATTERN,
            "description": "A coupon code: 14 characters (13 random and a check character) "
            f"from {ALPHABET}, any case, optionally grouped with dashes "
            "(TQZB-32SG-KUNH-V5). Scanner suffixes and full-width input are normalised. "
            "Or the coupon's token (HT1.…, its offline QR code, at most 1024 characters).",
        },
        "event_type": {"type": "string", "enum": sorted(DATA_SCHEMAS)},
        "operation": {"type": "string", "enum": list(OPERATIONS)},
        "customer": {
            "type": "string",
            "pattern": "^[^/\\x00]{1,128}$",
            "description": "A customer's external id (the merchant's member id).",
        },
        "token": {
            "type": "string",
            "pattern": TOKEN_PATTERN,
            "description": "A transfer offer's secret token (as the offer answered it).",
        },
        "claim_token": {
            "type": "string",
            "pattern": TOKEN_PATTERN,
            "description": "A campaign's claim token, the shareable link's secret "
            "(as the campaign's creation answered it).",
        },
    }
    if inbound:
        schemas["connector"] = {
            "type": "string",
            "enum": inbound,
            "description": "An inbound (POS) connector; `hub connectors list` names them.",
        }
    for name, prefix in ID_PREFIXES.items():
        schemas[name] = {"type": "string", "pattern": f"^{prefix}_{_ULID}$"}
    return schemas


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"oneOf": [X, {"type": "null"}], …}`` → X with the siblings (a parameter sent in
    a URL or header is never null). An enum that lists null stays: litestar reads the
    query value ``null`` as "not given" there."""
    options = schema.get("oneOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(options):
            rest = {k: v for k, v in schema.items() if k != "oneOf"}
            return {**kept[0], **rest}
    return schema


def _finish_parameters(method: str, path: str, op: dict[str, Any]) -> None:
    path_schemas = _path_parameter_schemas()
    params: list[dict[str, Any]] = op.get("parameters", [])
    for param in params:
        where, name = param.get("in"), param.get("name")
        schema = _not_null(param.get("schema", {}))
        if where == "path" and name in path_schemas:
            schema = {**schema, **path_schemas[name]}
        if where == "query" and name == "cursor":
            schema = {
                **schema,
                "minLength": 1,
                "description": "`next_cursor` of the previous page (opaque)",
            }
        if where == "query" and name == "status" and path == "/v1/deliveries":
            from hub.services.subscriptions import DELIVERY_STATUSES

            schema = {**schema, "enum": list(DELIVERY_STATUSES)}
        if where == "header" and name == IDEMPOTENCY_KEY:
            schema = dict(IDEMPOTENCY_SCHEMA)
            required = (method, path) in IDEMPOTENT_OPERATIONS
            param["required"] = required
        param["schema"] = schema
        if where == "path":
            param["required"] = True


# --- the codes each problem status can carry ----------------------------------------------

_REDEEM_CODES: Final = (
    "malformed_json", "idempotency_key_required", "idempotency_key_invalid",
    "invalid_request", "idempotency_key_reused", "idempotency_key_in_flight",
    "code_malformed", "coupon_not_found", "coupon_already_redeemed", "coupon_expired",
    "coupon_not_yet_valid", "coupon_voided", "store_not_allowed", "channel_not_allowed",
    "outside_usable_time", "threshold_not_met", "no_eligible_items", "order_lines_required",
    "order_amount_mismatch", "exchange_item_missing", "store_not_found", "store_required",
    "occurred_at_in_future", "occurred_at_too_old", "store_forbidden", "forbidden",
    "unauthorized", "payload_too_large", "unsupported_media_type",
    "too_many_failed_attempts",
)  # fmt: skip
_NO_IDEMPOTENCY: Final = frozenset(
    {"idempotency_key_required", "idempotency_key_invalid", "idempotency_key_reused",
     "idempotency_key_in_flight"}
)  # fmt: skip
PROBLEM_CODES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("post", "/v1/redemptions"): _REDEEM_CODES,
    ("post", "/v1/redemptions/validate"): tuple(
        c for c in _REDEEM_CODES if c not in _NO_IDEMPOTENCY
    ),
    ("post", "/v1/redemptions/{redemption_id}/reversal"): (
        "malformed_json", "idempotency_key_required", "idempotency_key_invalid",
        "invalid_request", "idempotency_key_reused", "idempotency_key_in_flight",
        "redemption_not_found", "redemption_already_reversed", "coupon_not_redeemed",
        "illegal_transition", "store_forbidden", "forbidden", "unauthorized",
        "payload_too_large", "unsupported_media_type",
    ),
}  # fmt: skip


def _document_codes(method: str, path: str, op: dict[str, Any]) -> None:
    """Name the ``code`` values each problem status of the operation carries (in the
    description, not as an enum: a new refusal must not break existing clients)."""
    from hub.services.problems import HTTP_STATUS

    codes = PROBLEM_CODES.get((method, path))
    if not codes:
        return
    for status, response in op.get("responses", {}).items():
        mine = [c for c in codes if str(HTTP_STATUS.get(c, 0)) == status]
        if mine and status[0] == "4":
            response["description"] = (
                response.get("description", "").rstrip().rstrip(".")
                + ". Codes include: "
                + ", ".join(f"`{c}`" for c in mine)
                + "."
            )


# --- request bodies ------------------------------------------------------------------------


def request_body_schemas(app: Litestar) -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the request bodies, as msgspec (the decoder) sees them.

    They replace litestar's: msgspec's are exact where litestar's lose constraints of
    nested types (``list[StoreCode]`` items lost their length and pattern) and they
    carry ``additionalProperties: false`` wherever a struct refuses unknown fields.
    """
    types: list[Any] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None and data.annotation not in types:
                types.append(data.annotation)
    _, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    return components


def _pos_body(components: dict[str, Any]) -> dict[str, Any]:
    components.setdefault(
        "PosNativeReverseIn",
        {
            "title": "PosNativeReverseIn",
            "type": "object",
            "description": "pos.native reverse: the redemption id or the code, not both.",
            "properties": {
                "redemption_id": {"type": "string", "pattern": f"^rdm_{_ULID}$"},
                "code": {"type": "string", "minLength": 1, "maxLength": 64},
                "reason": {"type": "string", "maxLength": 500},
            },
            "additionalProperties": False,
        },
    )
    vendor_json = {
        "title": "PosVendorJson",
        "type": "object",
        "description": "A mapped vendor's JSON (`pos.mapped.<name>`): the fields its mapping "
        "in mappings/pos/ reads (e.g. acme: req_id, shop_no, coupon_no, order_no, total_amt).",
        "additionalProperties": True,
        "x-vendor-format": True,
    }
    components.setdefault("PosVendorJson", vendor_json)
    xml = {
        "type": "string",
        "description": "`pos.poslog`: an ARTS/NRF POSLog `<POSLog>` document (UTF-8).",
    }
    return {
        "required": True,
        "description": "In the connector's format. `pos.native` takes the `/v1/redemptions` "
        "JSON (`RedeemIn`; reverse: `PosNativeReverseIn`), a mapped connector its vendor's "
        "JSON, `pos.poslog` POSLog XML.",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/RedeemIn"},
                        {"$ref": "#/components/schemas/PosNativeReverseIn"},
                        {"$ref": "#/components/schemas/PosVendorJson"},
                    ]
                }
            },
            "application/xml": {"schema": xml},
            "text/xml": {"schema": xml},
        },
    }


def _pos_reply(components: dict[str, Any], description: str) -> dict[str, Any]:
    vendor = {
        "title": "PosVendorReply",
        "type": "object",
        "description": "A mapped vendor's reply, shaped by its mapping "
        "(e.g. acme: {ret, msg, req_id, data}).",
        "additionalProperties": True,
        "x-vendor-format": True,
    }
    components.setdefault("PosVendorReply", vendor)
    return {
        "description": f"{description}, in the connector's format",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/RedemptionOut"},
                        {"$ref": "#/components/schemas/ValidationOut"},
                        {"$ref": "#/components/schemas/ReversalOut"},
                        {"$ref": "#/components/schemas/PosVendorReply"},
                    ]
                }
            },
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
            "application/xml": {
                "schema": {"type": "string", "description": "a POSLog `<POSLog>` reply"}
            },
        },
    }


def _finish_pos(op: dict[str, Any], components: dict[str, Any]) -> None:
    op["requestBody"] = _pos_body(components)
    op.setdefault("parameters", []).append(
        {
            "name": IDEMPOTENCY_KEY,
            "in": "header",
            "required": False,
            "description": "The request id for connectors whose body has none (pos.native); "
            "connectors whose body carries one (a mapped vendor's req_id) ignore it.",
            "schema": {"type": "string"},
        }
    )
    for status, response in list(op.get("responses", {}).items()):
        if "content" not in response and status[0] in "2":
            op["responses"][status] = _pos_reply(components, "The outcome")
        elif "content" not in response:
            content = _pos_reply(components, response.get("description", ""))["content"]
            response["content"] = content


# --- links ---------------------------------------------------------------------------------

# (method, path, status) of a response → (the target's path parameter, the runtime
# expression that gives it, [(link name, target method, target path)])
_T = "/v1/templates/{template_id}"
_S = "/v1/subscriptions/{subscription_id}"
_C = "/v1/coupons/{code}"
_D = "/v1/deliveries/{delivery_id}"
LINKS: Final[dict[tuple[str, str, str], tuple[str, str, list[tuple[str, str, str]]]]] = {
    ("post", "/v1/templates", "201"): (
        "template_id",
        "$response.body#/id",
        [
            ("GetTemplate", "get", _T),
            ("PauseTemplate", "post", f"{_T}/pause"),
            ("ResumeTemplate", "post", f"{_T}/resume"),
            ("IssueCoupons", "post", f"{_T}/coupons"),
        ],
    ),
    ("post", f"{_T}/coupons", "201"): (
        "code",
        "$response.body#/coupons/0/code",
        [
            ("GetCoupon", "get", _C),
            ("ClaimCoupon", "post", f"{_C}/claim"),
            ("VoidCoupon", "post", f"{_C}/void"),
        ],
    ),
    ("post", "/v1/subscriptions", "201"): (
        "subscription_id",
        "$response.body#/id",
        [
            ("GetSubscription", "get", _S),
            ("UpdateSubscription", "patch", _S),
            ("PauseSubscription", "post", f"{_S}/pause"),
            ("ResumeSubscription", "post", f"{_S}/resume"),
            ("ReplayDead", "post", f"{_S}/replay-dead"),
            ("DeleteSubscription", "delete", _S),
        ],
    ),
    ("post", "/v1/redemptions", "201"): (
        "redemption_id",
        "$response.body#/redemption_id",
        [("ReverseRedemption", "post", "/v1/redemptions/{redemption_id}/reversal")],
    ),
    ("get", "/v1/deliveries", "200"): (
        "delivery_id",
        "$response.body#/items/0/id",
        [("GetDelivery", "get", _D), ("ReplayDelivery", "post", f"{_D}/replay")],
    ),
    ("post", "/v1/keys", "201"): (
        "key_id",
        "$response.body#/id",
        [("RevokeKey", "post", "/v1/keys/{key_id}/revoke")],
    ),
}


def _finish_links(paths: dict[str, Any]) -> None:
    for (method, path, status), (parameter, expression, links) in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        out = response.setdefault("links", {})
        for name, t_method, t_path in links:
            target = paths.get(t_path, {}).get(t_method)
            if target is None or "operationId" not in target:
                continue
            out[name] = {
                "operationId": target["operationId"],
                "parameters": {parameter: expression},
            }


# --- the whole document --------------------------------------------------------------------


def _strip_examples(node: Any, parent_key: str = "") -> None:
    """Drop generated ``examples``/``example`` (not properties that happen to be named so)."""
    if isinstance(node, dict):
        if parent_key != "properties":
            node.pop("examples", None)
            node.pop("example", None)
        for key, value in node.items():
            _strip_examples(value, key)
    elif isinstance(node, list):
        for item in node:
            _strip_examples(item, parent_key)


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in _METHODS and isinstance(op, dict):
                yield method, path, op


def _finish_sync(components: dict[str, Any]) -> None:
    """``POST /v1/redemptions/sync`` reads each item on its own: an item that is not a
    ``SyncItemIn`` is refused alone (in the 200 answer), so the body's schema takes any
    item and at most 100 (``too_many_items``)."""
    sync_in = components.get("SyncIn")
    if sync_in is None:
        return
    sync_in["properties"]["items"] = {
        "type": "array",
        "maxItems": 100,
        "items": {
            "anyOf": [
                {"$ref": "#/components/schemas/SyncItemIn"},
                {"description": "Any other item is refused alone: outcome `refused`."},
            ]
        },
    }


def complete_document(doc: dict[str, Any], app: Litestar) -> None:
    """Finish litestar's document in place (see the module's docstring)."""
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    _strip_examples(doc)
    components.update(request_body_schemas(app))
    _finish_sync(components)
    for method, path, op in _operations(doc):
        _finish_parameters(method, path, op)
        _document_codes(method, path, op)
        if path == "/v1/pos/{connector}/{operation}":
            _finish_pos(op, components)
        if (method, path) in IDEMPOTENT_OPERATIONS:
            for status, response in op.get("responses", {}).items():
                if status.startswith("2"):
                    response.setdefault("headers", {})["Idempotent-Replayed"] = {
                        "description": "`true` when this is the stored answer to an earlier "
                        "request with the same Idempotency-Key",
                        "schema": {"type": "string", "enum": ["true"]},
                    }
    ready_503 = doc["paths"].get("/ready", {}).get("get", {}).get("responses", {}).get("503")
    if ready_503 is not None:  # a draining process answers problem+json `draining`
        ready_503.setdefault("content", {})["application/problem+json"] = {
            "schema": {"$ref": "#/components/schemas/Problem"}
        }
    _finish_links(doc["paths"])


class _Completing:
    """Render plugins that serve the document complete (finished once per app)."""

    _done: set[int]

    def completed(self, request: Request[Any, Any, Any], doc: dict[str, Any]) -> dict[str, Any]:
        if id(doc) not in self._done:
            complete_document(doc, request.app)
            self._done.add(id(doc))
        return doc


class CompleteJsonRenderPlugin(_Completing, JsonRenderPlugin):
    def __init__(self) -> None:
        super().__init__()
        self._done = set()

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.completed(request, openapi_schema))


class CompleteYamlRenderPlugin(_Completing, YamlRenderPlugin):
    def __init__(self) -> None:
        super().__init__()
        self._done = set()

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.completed(request, openapi_schema))


class OfflineSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Swagger UI from the package: no CDN, no inline script (the page loads the
    document from ``openapi.json`` next to it)."""

    def __init__(self) -> None:
        super().__init__(path="/swagger", version=SWAGGER_UI_VERSION)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        root = html.escape(str(request.scope.get("root_path", "")).rstrip("/"), quote=True)
        assets = f"{root}{ASSETS_PATH}"
        title = html.escape(str(openapi_schema["info"]["title"]))
        page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui/swagger-ui.css">
<link rel="stylesheet" href="{assets}/docs.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}{DOCS_PATH}/openapi.json"></div>
<script src="{assets}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{assets}/docs.js"></script>
</body>
</html>
"""
        return page.encode()

    def receive_router(self, router: Router) -> None:
        """No OAuth2 redirect page: the API uses bearer keys."""


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Redemption Hub",
        version=hub.__version__,
        path=DOCS_PATH,
        description="Coupon redemption (核销) API. Amounts are integer fen. Errors are "
        "RFC 9457 problem+json with a stable `code`.",
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="http", scheme="bearer", description="API key: `hk.<key id>.<secret>`"
                )
            }
        ),
        security=[{"apiKey": []}],
        create_examples=False,
        render_plugins=[
            OfflineSwaggerRenderPlugin(),
            CompleteJsonRenderPlugin(),
            CompleteYamlRenderPlugin(),
        ],
    )


def assets_router() -> Router:
    """The documentation pages' scripts, styles and icon, from the package."""
    return create_static_files_router(
        path=ASSETS_PATH, directories=[STATIC_DIR], include_in_schema=False, name="docs-assets"
    )


# --- OPTIONS -------------------------------------------------------------------------------


def allow_header_map(app: Litestar) -> dict[str, str]:
    """Path template → the ``Allow`` value that lists every method of the path."""
    return {
        route.path_format: ", ".join(sorted(route.methods))
        for route in app.routes
        if isinstance(route, HTTPRoute)
    }


async def allow_every_method(message: Message, scope: Scope) -> None:
    """``before_send`` hook: an ``OPTIONS`` answer's ``Allow`` names every method."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    headers = MutableScopeHeaders.from_message(message)
    if "allow" not in headers:
        return
    allow = getattr(scope["app"].state, "allow_headers", None)
    template = scope.get("path_template")
    if allow is not None and template in allow:
        headers["allow"] = allow[template]


__all__ = [
    "allow_every_method",
    "allow_header_map",
    "assets_router",
    "complete_document",
    "ok",
    "openapi_config",
]

"""Hostile input: size limits, strict content types, CORS and security headers.

* :class:`HardeningMiddleware` (first in the app's middleware, so before authentication)
  refuses a URL longer than :data:`MAX_URL_BYTES` (414 ``uri_too_long``), a header
  section larger than :data:`MAX_HEADER_BYTES` or with more than
  :data:`MAX_HEADER_FIELDS` fields (431 ``headers_too_large``), and a POST/PUT/PATCH
  body on a JSON endpoint that is not ``application/json`` or ``application/*+json``
  in UTF-8 (415 ``unsupported_media_type``). The POS route keeps its own per-connector
  check (its formats include XML).
* :class:`HubRequest` refuses JSON nested deeper than :data:`MAX_JSON_DEPTH` levels
  (400 ``malformed_json``) before anything decodes it.
* Body sizes: :data:`DEFAULT_MAX_BODY` for every endpoint unless the route says
  otherwise (64 KiB on ``/v1/redemptions``, 256 KiB on the POS route, 2 MiB for
  issuing); litestar enforces them (413 ``payload_too_large``).
* :func:`security_headers` (a ``before_send`` hook) puts the security headers on every
  response, 404s included.
* :func:`cors_config`: CORS is off unless ``HUB_CORS_ORIGINS`` names the origins.
* :func:`document_problems`: every operation of the OpenAPI document lists the problem
  responses it can answer, so clients (and schemathesis) can rely on it.
* :data:`MAX_REQUEST_HEAD`: the HTTP parser's own cap (``hub serve`` passes it to
  uvicorn), above the app's limits so the app answers with a problem document; beyond
  it uvicorn answers a plain 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.dto import Problem
from hub.api.jsoncheck import check_json_body
from hub.api.permissions import PUBLIC_PREFIXES
from hub.domain.errors import DomainError, refuse
from hub.services.jsonio import invalid_characters
from hub.services.problems import PROBLEM_MEDIA_TYPE
from hub.settings import env

KIB: Final = 1024
DEFAULT_MAX_BODY: Final = 1024 * KIB  # routes may set less (redeem 64 KiB) or more (issue)
MAX_JSON_DEPTH: Final = 64
MAX_URL_BYTES: Final = 8 * KIB  # path and query string, as sent
MAX_HEADER_BYTES: Final = 16 * KIB  # names and values, plus 4 bytes a field (": ", CRLF)
MAX_HEADER_FIELDS: Final = 100
# uvicorn (h11) refuses a request line plus headers above this with a plain 400 before
# the app sees it (``h11_max_incomplete_event_size``; its default is 16 KiB); it is above
# the app's limits so that the app answers in problem+json.
MAX_REQUEST_HEAD: Final = 64 * KIB

BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
# Routes that read bodies in their own formats and check Content-Type themselves.
OWN_MEDIA_TYPE_PREFIXES: Final = ("/v1/pos/", "/v1/scan")  # POS formats; images
JSON_MEDIA_TYPES: Final = ("application/json",)

# --- security headers ----------------------------------------------------------------------

API_CSP: Final = "default-src 'none'; frame-ancestors 'none'"
# The documentation pages under /schema (Swagger UI at /schema and /schema/swagger) load
# their scripts, styles and icon from the hub itself (/schema/assets, shipped in the
# package: hub.api.openapi), never from another host, and run no inline script. Styles
# may be inline (Swagger UI sets style attributes); images may be data: URLs (its icons).
DOCS_CSP: Final = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; "
    "font-src 'self' data:; "
    "connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOCS_PREFIX: Final = "/schema"
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def media_type_of(content_type: str | None) -> tuple[str, dict[str, str]]:
    """``"Application/JSON; charset=UTF-8"`` → ``("application/json", {"charset": "utf-8"})``."""
    if not content_type:
        return "", {}
    main, *rest = content_type.split(";")
    params = {}
    for part in rest:
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip().strip('"').lower()
    return main.strip().lower(), params


def is_json_media_type(media_type: str) -> bool:
    return media_type in JSON_MEDIA_TYPES or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


_SECURITY_RAW: Final = tuple((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items())
_CSP: Final = b"content-security-policy"
_CACHE_CONTROL: Final = b"cache-control"
_CONTENT_TYPE: Final = b"content-type"
_API_CSP: Final = API_CSP.encode()
_DOCS_CSP: Final = DOCS_CSP.encode()


def secure(message: Message, path: str) -> None:
    """The security headers on a ``http.response.start`` message (those the response
    does not set itself), working on the raw header list: one pass over it."""
    raw: Any = message.get("headers")
    headers: list[tuple[bytes, bytes]] = raw if isinstance(raw, list) else list(raw or ())
    message["headers"] = headers  # type: ignore[typeddict-unknown-key]
    present = set()
    content_type = b""
    for name, value in headers:
        lowered = name.lower()
        present.add(lowered)
        if lowered == _CONTENT_TYPE:
            content_type = value
    for name, value in _SECURITY_RAW:
        if name not in present:
            headers.append((name, value))
    docs = path == DOCS_PREFIX or path.startswith(DOCS_PREFIX + "/")
    if _CSP not in present:
        html = docs and media_type_of(content_type.decode("latin-1"))[0] == "text/html"
        headers.append((_CSP, _DOCS_CSP if html else _API_CSP))
    if not docs and _CACHE_CONTROL not in present:
        headers.append((_CACHE_CONTROL, b"no-store"))


async def security_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: the security headers on every response of the app."""
    if message["type"] == "http.response.start":
        secure(message, str(scope.get("path", "")))


# --- request checks -----------------------------------------------------------------------


class HardeningMiddleware:
    """URL and header limits for every route; JSON-only bodies on JSON endpoints."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            self.check(scope)
        await self.app(scope, receive, send)

    @staticmethod
    def check(scope: Scope) -> None:
        """One pass over the headers: their number and size (431 ``headers_too_large``),
        a NUL character in one (422 ``invalid_characters``), a repeated
        ``Idempotency-Key`` (400 ``idempotency_key_repeated``: which one counts would be
        the server's guess), and whether a body comes and in which media type. The URL:
        its length (414 ``uri_too_long``) and NUL characters."""
        raw_path = scope.get("raw_path") or str(scope.get("path", "")).encode()
        raw_path = raw_path.partition(b"?")[0]  # some servers (the TestClient) include it
        query = scope.get("query_string", b"")
        url_bytes = len(raw_path) + (1 + len(query) if query else 0)
        if url_bytes > MAX_URL_BYTES:
            raise refuse(
                "uri_too_long",
                f"The URL takes {url_bytes} bytes; at most {MAX_URL_BYTES}.",
            )
        raw: list[tuple[bytes, bytes]] = scope.get("headers", [])  # type: ignore[assignment]
        if len(raw) > MAX_HEADER_FIELDS:
            raise refuse(
                "headers_too_large",
                f"The request has {len(raw)} header fields; at most {MAX_HEADER_FIELDS}.",
            )
        size = 0
        keys = 0
        has_body = False
        content_type: bytes | None = None
        first: DomainError | None = None  # the first bad header, in the request's order
        for name, value in raw:
            size += len(name) + len(value) + 4
            if first is None and b"\x00" in value:
                first = invalid_characters(
                    f"header {name.decode('latin-1')[:60]}", "a NUL character"
                )
            lowered = name.lower()
            if lowered == b"idempotency-key":
                keys += 1
                if keys == 2 and first is None:
                    first = refuse(
                        "idempotency_key_repeated", "Send one Idempotency-Key header, not several."
                    )
            elif lowered == b"content-type":
                if content_type is None:
                    content_type = value
            elif lowered == b"transfer-encoding" or (
                lowered == b"content-length" and value.strip() != b"0"
            ):
                has_body = True
        if size > MAX_HEADER_BYTES:
            raise refuse(
                "headers_too_large",
                f"The request headers take {size} bytes; at most {MAX_HEADER_BYTES}.",
            )
        for where, value in (("path", raw_path), ("query", query)):
            if b"\x00" in value or b"%00" in value:
                raise invalid_characters(where, "a NUL character (%00)")
        if first is not None:
            raise first
        if not has_body or str(scope.get("method", "GET")).upper() not in BODY_METHODS:
            return
        if str(scope.get("path", "")).startswith(OWN_MEDIA_TYPE_PREFIXES):
            return
        sent_type = content_type.decode("latin-1") if content_type is not None else None
        media, params = media_type_of(sent_type)
        charset = params.get("charset", "utf-8")
        if not is_json_media_type(media) or charset not in ("utf-8", "utf8"):
            sent = sent_type.strip() if sent_type else "no Content-Type"
            raise refuse(
                "unsupported_media_type",
                f"Send the body as application/json (UTF-8), not {sent[:100]}.",
                accepted=["application/json"],
            )


# --- JSON nesting depth -------------------------------------------------------------------

# A JSON string (from its opening quote to its closing one, or to the end of an
# unterminated one: linear time, no backtracking), and the two kinds of bracket pairs.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects deeper than ``limit``.

    Runs in C-speed passes over the bytes, before any decoding: strings are cut out,
    only brackets kept, and innermost pairs removed ``limit`` times; a pair left after
    that was nested deeper. Malformed text (unbalanced brackets) is left to the decoder.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        reduced = _INNERMOST_PAIR.sub(b"", brackets)
        if reduced == brackets:
            return False
        brackets = reduced
    return _INNERMOST_PAIR.search(brackets) is not None


class HubRequest(Request[Any, Any, Any]):
    """The app's request class: every JSON body is checked here, once, before any
    decoder sees it — nesting deeper than :data:`MAX_JSON_DEPTH` (400
    ``malformed_json``), a key repeated in one object (400 ``duplicate_json_key``), a
    NUL character or lone surrogate in any text (422 ``invalid_characters``; PostgreSQL
    refuses them, SQLite stores them). The POS route leaves its bodies to the connector
    and :mod:`hub.services.inbound`, which answer in the vendor's format."""

    async def body(self) -> bytes:
        body = await super().body()
        if not body:
            return body
        media, _ = media_type_of(self.headers.get("content-type"))
        if media and not is_json_media_type(media):
            return body
        if len(body) > 2 * MAX_JSON_DEPTH and json_depth_exceeds(body):
            raise refuse(
                "malformed_json",
                f"JSON is malformed: nested deeper than {MAX_JSON_DEPTH} levels.",
            )
        if not str(self.scope.get("path", "")).startswith(OWN_MEDIA_TYPE_PREFIXES):
            check_json_body(body)
        return body


# --- CORS ---------------------------------------------------------------------------------


def cors_config(environ: Mapping[str, str] | None = None) -> CORSConfig | None:
    """CORS for the origins in ``HUB_CORS_ORIGINS`` (comma-separated); off when unset."""
    raw = env("HUB_CORS_ORIGINS", environ) or ""
    origins = [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        expose_headers=["Idempotent-Replayed"],
        allow_credentials=False,
        max_age=600,
    )


# --- OpenAPI: the problems each operation can answer --------------------------------------

PROBLEM_DESCRIPTIONS: Final[Mapping[int, str]] = {
    400: "Malformed request: the body is not JSON (or nests deeper than 64 levels, or "
    "repeats a key), or a header or cursor is malformed or repeated (`code` says which).",
    401: "`unauthorized`: a missing, unknown or revoked API key.",
    403: "`forbidden` or `store_forbidden`: the key's role or store may not do this.",
    404: "No such resource for this merchant (`code` says which kind).",
    409: "Conflicts with the resource's current state (`code` says how).",
    413: "`payload_too_large`: the body is larger than this endpoint accepts.",
    414: "`uri_too_long`: the URL (path and query) is longer than 8 KiB.",
    415: "`unsupported_media_type`: send the body as `application/json` (UTF-8).",
    422: "A field is missing, of the wrong type or out of range (`errors` names it), "
    "text holds a NUL character (`invalid_characters`), or a business rule refuses the "
    "request (`code` says which).",
    431: "`headers_too_large`: more than 16 KiB or 100 fields of request headers.",
    503: "`database_busy` or `database_unavailable`: no database connection right now; "
    "nothing was changed. Retry after `Retry-After` seconds (same Idempotency-Key).",
}

# Statuses that depend on what a service does, beyond those derived from the route's
# shape in :func:`problem_statuses` (method, path, query and body parameters).
EXTRA_PROBLEMS: Final[Mapping[tuple[str, str], frozenset[int]]] = {
    ("POST", "/v1/stores"): frozenset({409}),  # already_exists
    ("POST", "/v1/products"): frozenset({409}),
    ("POST", "/v1/customers"): frozenset({409}),
    # template_paused, template_out_of_stock, per_customer_limit_reached
    ("POST", "/v1/templates/{template_id:str}/coupons"): frozenset({409}),
    ("GET", "/v1/coupons/{code:str}"): frozenset({422}),  # code_malformed
    ("POST", "/v1/coupons/{code:str}/claim"): frozenset({409}),  # coupon_already_claimed
    ("POST", "/v1/coupons/{code:str}/void"): frozenset({409}),  # illegal_transition, …
    ("POST", "/v1/deliveries/{delivery_id:str}/replay"): frozenset({409}),
}


def problem_spec(status: int) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_MEDIA_TYPE,
        description=f"Problem (RFC 9457). {PROBLEM_DESCRIPTIONS[status]}",
        generate_examples=False,
    )


def problem_statuses(
    method: str, path: str, *, path_params: bool, query_params: bool, reads_body: bool
) -> set[int]:
    """The 4xx statuses an operation can answer by its shape alone."""
    # any request: a NUL in the URL or a header (422 invalid_characters), a repeated
    # Idempotency-Key header (400 idempotency_key_repeated)
    statuses = {400, 414, 422, 431}
    if path != "/health":  # everything else reads the database (a busy pool: 503)
        statuses.add(503)
    if not path.startswith(PUBLIC_PREFIXES):
        statuses |= {401, 403}
    if path_params:
        # litestar documents a 400 for every operation with parameters; this app's 400s
        # (a malformed header, cursor or Content-Length) are problem documents too
        statuses |= {400, 404}
    if query_params:
        statuses |= {400, 422}
    if method in BODY_METHODS:
        statuses |= {400, 415}
        if reads_body:
            statuses |= {400, 413, 422}
    return statuses | set(EXTRA_PROBLEMS.get((method, path), ()))


def _reads_body(handler: Any) -> bool:
    params = handler.parsed_fn_signature.parameters
    return "data" in params or "raw_body" in params


def document_problems(app: Litestar) -> None:
    """Add the problem responses of every operation to its handler's ``responses``.

    Responses a handler documents itself win. Runs before the OpenAPI document is first
    built (litestar builds it on the first request for it).
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith(DOCS_PREFIX):
            continue
        for method, (handler, kwargs_model) in route.route_handler_map.items():
            if method in ("OPTIONS", "HEAD") or not handler.resolve_include_in_schema():
                continue
            statuses = problem_statuses(
                method,
                route.path,
                path_params=bool(kwargs_model.expected_path_params),
                query_params=bool(kwargs_model.expected_query_params),
                reads_body=_reads_body(handler),
            )
            own = dict(handler.responses or {})
            handler.responses = {
                **{s: problem_spec(s) for s in sorted(statuses) if s not in own},
                **own,
            }

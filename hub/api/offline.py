"""Offline redemption (离线核销): the keys document terminals fetch, the offline rules,
and a coupon's token and QR code (hub/services/offline_keys.py, coupon_tokens.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, put
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Meta, Struct

from hub.api.client import client_address
from hub.api.openapi import ok
from hub.api.params import IdempotencyKey
from hub.api.responses import problem_docs, send, too_many_docs
from hub.api.state import hub, principal
from hub.domain.offline import MAX_OFFLINE_SECONDS_CAP
from hub.services import coupon_tokens, offline_keys


class OfflineKeyOut(Struct):
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    alg: Literal["EdDSA"]
    use: Literal["sig"]
    kid: str
    x: Annotated[str, Meta(description="the raw 32-byte public key, unpadded base64url")]
    status: Literal["active", "retired"]
    created_at: str
    retired_at: str | None


class OfflineRulesOut(Struct):
    max_count: int
    max_discount: Annotated[int, Meta(description="fen")]
    max_offline_seconds: int


class OfflineTemplateOut(Struct):
    id: str
    name: str
    kind: str
    rules: Annotated[
        dict[str, Any],
        Meta(description="the template's rules as the template API shows them "
             "(hub.domain.template_codec reads them)"),
    ]  # fmt: skip
    offline: bool


class OfflineKeysOut(Struct):
    merchant: str
    timezone: Annotated[str, Meta(description="the merchant's IANA time zone (usable hours)")]
    keys: list[OfflineKeyOut]
    rules: OfflineRulesOut
    templates: list[OfflineTemplateOut]
    fetched_at: str
    refresh_after: Annotated[int, Meta(description="seconds until a terminal fetches again")]


class OfflineRulesIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The merchant's offline limits per terminal; a member left out takes its default."""

    max_count: Annotated[int, Meta(ge=0, le=100_000)] | None = None
    max_discount: Annotated[int, Meta(ge=0, le=10**11)] | None = None
    max_offline_seconds: Annotated[int, Meta(ge=0, le=MAX_OFFLINE_SECONDS_CAP)] | None = None


class OfflineRulesDoc(Struct):
    rules: OfflineRulesOut


class CouponTokenOut(Struct):
    token: Annotated[str, Meta(description="HT1.<payload>.<signature>, at most 1024 characters")]
    kid: str
    code: str
    expires_at: str


class OfflineController(Controller):
    path = "/v1/offline"
    tags = ["offline"]

    @get(
        "/keys",
        sync_to_thread=True,
        summary="The keys terminals verify coupon tokens with, the offline rules and the "
        "templates redeemable offline",
        responses={200: ok(OfflineKeysOut)} | problem_docs(401, 403),
    )
    def keys(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        h = hub(request)
        return offline_keys.keys_document(h.engine, principal(request), h.clock())

    @put(
        "/rules",
        sync_to_thread=True,
        status_code=200,
        summary="Set the merchant's offline limits (what a terminal may accept offline)",
        responses={200: ok(OfflineRulesDoc)} | problem_docs(400, 401, 403, 409, 422),
    )
    def rules(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[OfflineRulesIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        h = hub(request)
        doc = {
            name: getattr(data, name)
            for name in ("max_count", "max_discount", "max_offline_seconds")
            if getattr(data, name) is not None
        }
        return send(
            offline_keys.put_rules(
                h.engine, principal(request), doc, idempotency_key, h.clock(),
                operation="PUT /v1/offline/rules",
            )
        )  # fmt: skip


class CouponTokenController(Controller):
    path = "/v1/coupons"
    tags = ["coupons"]

    @get(
        "/{code:str}/token",
        sync_to_thread=True,
        summary="The coupon's signed token (what its offline QR code carries)",
        responses={200: ok(CouponTokenOut)} | problem_docs(401, 403, 404, 409, 422)
        | too_many_docs(),
    )
    def token(
        self,
        request: Request[Any, Any, Any],
        code: FromPath[str],
        customer: FromQuery[str | None] = None,
    ) -> Response[dict[str, Any]]:
        return Response(_token(request, code, customer), headers=_NO_STORE)

    @get(
        "/{code:str}/qr.svg",
        sync_to_thread=True,
        summary="The coupon's QR code (its token), SVG",
        media_type="image/svg+xml",
        responses=problem_docs(401, 403, 404, 409, 422) | too_many_docs(),
    )
    def qr_svg(
        self,
        request: Request[Any, Any, Any],
        code: FromPath[str],
        customer: FromQuery[str | None] = None,
        scale: FromQuery[str | None] = None,
        error: FromQuery[str | None] = None,
        border: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        return _qr(request, "svg", code, customer, scale, error, border)

    @get(
        "/{code:str}/qr.png",
        sync_to_thread=True,
        summary="The coupon's QR code (its token), PNG",
        media_type="image/png",
        responses=problem_docs(401, 403, 404, 409, 422) | too_many_docs(),
    )
    def qr_png(
        self,
        request: Request[Any, Any, Any],
        code: FromPath[str],
        customer: FromQuery[str | None] = None,
        scale: FromQuery[str | None] = None,
        error: FromQuery[str | None] = None,
        border: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        return _qr(request, "png", code, customer, scale, error, border)


# a token is a bearer credential for its coupon: never kept by a cache on the way
_NO_STORE = {"Cache-Control": "no-store"}


def _token(request: Request[Any, Any, Any], code: str, customer: str | None) -> dict[str, Any]:
    h = hub(request)
    return coupon_tokens.coupon_token(
        h.engine, principal(request), code, h.clock(), customer=customer,
        guard=h.settings.guard, client=client_address(request),
    )  # fmt: skip


def _qr(
    request: Request[Any, Any, Any],
    kind: str,
    code: str,
    customer: str | None,
    scale: str | None,
    error: str | None,
    border: str | None,
) -> Response[bytes]:
    options = coupon_tokens.qr_options(kind, scale, error, border)  # 422 before any look-up
    token = _token(request, code, customer)["token"]
    return Response(
        coupon_tokens.qr_image(token, options),
        media_type=coupon_tokens.MEDIA_TYPES[kind],
        headers=_NO_STORE,
    )

"""Coupon look-up (status and history) and claiming an unassigned coupon."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody

from hub.api.client import client_address
from hub.api.dto import ClaimIn, ClaimOut, CouponOut, VoidIn, VoidOut
from hub.api.openapi import ok
from hub.api.responses import too_many_docs
from hub.api.state import hub, principal, run_db
from hub.services import issuing, queries


class CouponController(Controller):
    path = "/v1/coupons"
    tags = ["coupons"]

    @get(
        "/{code:str}",
        summary="A coupon's status, rules and history",
        responses={200: ok(CouponOut)} | too_many_docs(),
    )
    async def get_coupon(
        self, request: Request[Any, Any, Any], code: FromPath[str]
    ) -> dict[str, Any]:
        h = hub(request)
        # behind the guessing defence: unknown or mistyped codes count, a blocked key gets 429
        return await run_db(
            request,
            queries.coupon_status,
            h.engine,
            principal(request),
            code,
            h.clock(),
            guard=h.settings.guard,
            client=client_address(request),
        )

    @post(
        "/{code:str}/claim",
        sync_to_thread=True,
        status_code=200,
        summary="Give an unassigned coupon to a customer",
        responses={200: ok(ClaimOut), **too_many_docs()},
    )
    def claim(
        self, request: Request[Any, Any, Any], code: FromPath[str], data: JSONBody[ClaimIn]
    ) -> dict[str, Any]:
        h = hub(request)
        return issuing.claim_coupon(
            h.engine,
            principal(request),
            code,
            data.customer,
            h.clock(),
            guard=h.settings.guard,
            client=client_address(request),
        )

    @post(
        "/{code:str}/void",
        sync_to_thread=True,
        status_code=200,
        summary="Void an issued coupon (final; it can never be redeemed)",
        responses={200: ok(VoidOut), **too_many_docs()},
    )
    def void(
        self,
        request: Request[Any, Any, Any],
        code: FromPath[str],
        data: JSONBody[VoidIn | None] = None,
    ) -> dict[str, Any]:
        h = hub(request)
        return issuing.void_coupon(
            h.engine,
            principal(request),
            code,
            (data or VoidIn()).reason,
            h.clock(),
            guard=h.settings.guard,
            client=client_address(request),
        )

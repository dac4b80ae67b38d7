"""Coupon look-up (status and history) and claiming an unassigned coupon."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody

from hub.api.dto import ClaimIn, VoidIn
from hub.api.state import hub, principal, run_db
from hub.services import issuing, queries


class CouponController(Controller):
    path = "/v1/coupons"
    tags = ["coupons"]

    @get("/{code:str}", summary="A coupon's status, rules and history")
    async def get_coupon(
        self, request: Request[Any, Any, Any], code: FromPath[str]
    ) -> dict[str, Any]:
        h = hub(request)
        return await run_db(
            request, queries.coupon_status, h.engine, principal(request), code, h.clock()
        )

    @post(
        "/{code:str}/claim",
        sync_to_thread=True,
        status_code=200,
        summary="Give an unassigned coupon to a customer",
    )
    def claim(
        self, request: Request[Any, Any, Any], code: FromPath[str], data: JSONBody[ClaimIn]
    ) -> dict[str, Any]:
        h = hub(request)
        return issuing.claim_coupon(h.engine, principal(request), code, data.customer, h.clock())

    @post(
        "/{code:str}/void",
        sync_to_thread=True,
        status_code=200,
        summary="Void an issued coupon (final; it can never be redeemed)",
    )
    def void(
        self,
        request: Request[Any, Any, Any],
        code: FromPath[str],
        data: JSONBody[VoidIn | None] = None,
    ) -> dict[str, Any]:
        h = hub(request)
        return issuing.void_coupon(
            h.engine, principal(request), code, (data or VoidIn()).reason, h.clock()
        )

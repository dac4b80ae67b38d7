"""Several coupons on one order, all or nothing: redeem, read back, reverse."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from hub.api.client import client_address
from hub.api.dto import (
    OrderRedeemIn,
    OrderRedemptionOut,
    OrderRedemptionView,
    OrderReversalOut,
    ReversalIn,
)
from hub.api.openapi import ok
from hub.api.params import IdempotencyKey
from hub.api.redemptions import REDEEM_MAX_BODY
from hub.api.responses import problem_docs, send, too_many_docs
from hub.api.state import hub, principal, run_db
from hub.api.strict import Strict
from hub.services import orders as svc
from hub.services.redeem import Operation

ORDER_REDEEM = Operation(name="POST /v1/orders/redeem", instance="/v1/orders/redeem")


def order_reversal(order_redemption_id: str) -> Operation:
    """The reversal of ``order_redemption_id`` as this API names it."""
    instance = f"/v1/orders/{order_redemption_id}/reversal"
    return Operation(name=f"POST {instance}", instance=instance)


def to_spec(data: OrderRedeemIn) -> svc.OrderRedeemSpec:
    return svc.OrderRedeemSpec(
        codes=tuple(data.codes),
        store=data.store,
        channel=data.channel,
        order=data.order.to_order(),
        occurred_at=data.occurred_at,
    )


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["orders"]
    request_max_body_size = REDEEM_MAX_BODY

    @post(
        "/redeem",
        status_code=201,
        summary="Redeem several coupons on one order, all or nothing, once per Idempotency-Key",
        responses={201: ok(OrderRedemptionOut)}
        | problem_docs(400, 401, 403, 404, 409, 413, 422)
        | too_many_docs(),
        dto=Strict[OrderRedeemIn],
        return_dto=None,
    )
    async def redeem(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[OrderRedeemIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        h = hub(request)
        result = await run_db(
            request,
            svc.redeem_order,
            h.engine,
            principal(request),
            to_spec(data),
            idempotency_key=idempotency_key,
            canonical_body=msgspec.json.encode(data),
            now=h.clock(),
            operation=ORDER_REDEEM,
            settings=h.settings,
            client=client_address(request),
        )
        return send(result)

    @get(
        "/{order_redemption_id:str}",
        sync_to_thread=True,
        summary="An order redemption: its coupons, discounts and status",
        responses={200: ok(OrderRedemptionView)} | problem_docs(401, 403, 404),
    )
    def read(
        self, request: Request[Any, Any, Any], order_redemption_id: FromPath[str]
    ) -> dict[str, Any]:
        return svc.get_order_redemption(
            hub(request).engine, principal(request), order_redemption_id
        )

    @post(
        "/{order_redemption_id:str}/reversal",
        status_code=201,
        summary="Reverse every coupon of an order redemption in one go; idempotent",
        responses={201: ok(OrderReversalOut)} | problem_docs(400, 401, 403, 404, 409, 422),
    )
    async def reverse(
        self,
        request: Request[Any, Any, Any],
        order_redemption_id: FromPath[str],
        data: JSONBody[ReversalIn | None] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        h = hub(request)
        body = data or ReversalIn()
        result = await run_db(
            request,
            svc.reverse_order,
            h.engine,
            principal(request),
            order_redemption_id,
            body.reason,
            idempotency_key=idempotency_key,
            canonical_body=msgspec.json.encode(body),
            now=h.clock(),
            operation=order_reversal(order_redemption_id),
            settings=h.settings,
        )
        return send(result)

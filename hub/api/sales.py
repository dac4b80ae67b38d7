"""``POST /v1/sales``: orders reported to the hub, with or without a coupon (what the
average order without a coupon and repeat purchases are computed from)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, post
from litestar.params import JSONBody
from msgspec import Meta, Struct

from hub.api.dto import Channel, Fen, StoreCode, UtcTime
from hub.api.openapi import ok
from hub.api.responses import problem_docs
from hub.api.state import hub, principal
from hub.api.strict import Strict
from hub.services import sales as svc

OrderId = Annotated[str, Meta(min_length=1, max_length=128)]
CustomerId = Annotated[str, Meta(min_length=1, max_length=128)]


class SaleIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    order_id: OrderId
    channel: Channel
    amount: Fen
    occurred_at: UtcTime
    store: StoreCode | None = None  # a store key's own store when omitted
    customer: CustomerId | None = None


class SalesIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    orders: Annotated[list[SaleIn], Meta(min_length=1, max_length=svc.MAX_ORDERS)]


class SaleStatusOut(Struct):
    order_id: str
    status: Literal["recorded", "replayed"]


class SalesOut(Struct):
    orders: list[SaleStatusOut]
    recorded: int
    replayed: int


class SalesController(Controller):
    path = "/v1/sales"
    tags = ["analytics"]

    @post(
        "/",
        sync_to_thread=True,
        status_code=200,
        summary="Report orders (with or without a coupon), up to 500 per call; idempotent "
        "per order id (same content: replayed; other content: 409 sale_conflict, nothing "
        "of the call stored)",
        responses={200: ok(SalesOut)} | problem_docs(400, 401, 403, 409, 422),
        dto=Strict[SalesIn],
        return_dto=None,
    )
    def report(self, request: Request[Any, Any, Any], data: JSONBody[SalesIn]) -> SalesOut:
        h = hub(request)
        specs = [
            svc.SaleSpec(
                order_id=o.order_id,
                store=o.store,
                channel=o.channel,
                customer=o.customer,
                amount=o.amount,
                occurred_at=o.occurred_at,
            )
            for o in data.orders
        ]
        out = svc.record_sales(h.engine, principal(request), specs, h.clock(), h.settings)
        return SalesOut(
            orders=[SaleStatusOut(**o) for o in out["orders"]],
            recorded=out["recorded"],
            replayed=out["replayed"],
        )

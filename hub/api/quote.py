"""The order quote (自动抵扣): every candidate coupon on a cart and the best combination."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.params import JSONBody

from hub.api.client import client_address
from hub.api.dto import QuoteIn, QuoteOut
from hub.api.openapi import ok
from hub.api.responses import problem_docs, too_many_docs
from hub.api.state import hub, principal, run_db
from hub.api.strict import Strict
from hub.services import quote as svc

QUOTE_MAX_BODY = 64 * 1024  # as the redeem: 500 lines and 50 codes fit


def to_command(data: QuoteIn) -> svc.QuoteCommand:
    return svc.QuoteCommand(
        store=data.store,
        channel=data.channel,
        order=data.order.to_order(),
        customer=data.customer,
        codes=None if data.codes is None else tuple(data.codes),
    )


class QuoteController(Controller):
    path = "/v1/orders/quote"
    tags = ["checkout"]
    request_max_body_size = QUOTE_MAX_BODY

    @post(
        "/",
        status_code=200,
        summary="Quote an order: each candidate coupon alone, and the best combination",
        description=(
            "Candidates are `codes` or, without them, the `customer`'s usable coupons. "
            "Nothing changes; unknown codes count for the guessing guard as a validate's."
        ),
        responses={200: ok(QuoteOut)}
        | problem_docs(400, 401, 403, 404, 413, 422)
        | too_many_docs(),
        dto=Strict[QuoteIn],
        return_dto=None,
    )
    async def quote(self, request: Request[Any, Any, Any], data: JSONBody[QuoteIn]) -> QuoteOut:
        h = hub(request)
        body = await run_db(
            request,
            svc.quote,
            h.engine,
            principal(request),
            to_command(data),
            h.clock(),
            h.settings,
            client_address(request),
        )
        return msgspec.convert(body, QuoteOut)

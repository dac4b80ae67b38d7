"""A customer's wallet: their coupons, soonest expiry first."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.params import FromPath, FromQuery, QueryParameter

from hub.api.dto import WalletPage
from hub.api.openapi import ok
from hub.api.responses import problem_docs
from hub.api.state import hub, principal
from hub.services import wallet


class WalletController(Controller):
    path = "/v1/customers/{customer:str}/coupons"
    tags = ["customers"]

    @get(
        "/",
        sync_to_thread=True,
        summary="A customer's coupons, soonest expiry first, each usable now or why not",
        responses={200: ok(WalletPage)} | problem_docs(400, 401, 403, 404, 422),
    )
    def list(
        self,
        request: Request[Any, Any, Any],
        customer: FromPath[str],
        status: FromQuery[Literal["usable", "used", "expired", "all"]] = "usable",
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        h = hub(request)
        return wallet.list_wallet(
            h.engine, principal(request), customer, h.clock(),
            status=status, limit=limit, cursor=cursor,
        )

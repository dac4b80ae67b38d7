"""Redeem, validate, reverse and list redemptions (the POS-facing endpoints)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from hub.api.client import client_address
from hub.api.dto import (
    RedeemIn,
    RedemptionOut,
    RedemptionPage,
    ReversalIn,
    ReversalOut,
    ValidationOut,
)
from hub.api.params import IdempotencyKey, Since, Until, query_time
from hub.api.responses import problem_docs, send, too_many_docs
from hub.api.state import hub, principal, run_hot
from hub.api.strict import Strict
from hub.connectors import redeem_command
from hub.services import queries
from hub.services import redeem as svc
from hub.services.commands import RedeemCommand

REDEEM_MAX_BODY = 64 * 1024
_PROBLEMS: dict[int, Any] = {}


def reversal(redemption_id: str) -> svc.Operation:
    """The reversal of ``redemption_id`` as this API names it."""
    instance = f"/v1/redemptions/{redemption_id}/reversal"
    return svc.Operation(name=f"POST {instance}", instance=instance)


# How the services' idempotency records and stored problem documents name the redeem
# and reversal operations: the routes' own spelling (the POS route runs them under it).
REDEMPTION_OPERATIONS = svc.Operations(
    redeem=svc.Operation(name="POST /v1/redemptions", instance="/v1/redemptions"),
    reverse=reversal,
)


def to_command(data: JSONBody[RedeemIn]) -> RedeemCommand:
    return redeem_command(data)  # as a POS connector does: one translation


class RedemptionController(Controller):
    path = "/v1/redemptions"
    tags = ["redemptions"]
    request_max_body_size = REDEEM_MAX_BODY

    @post(
        "/",
        status_code=201,
        responses=problem_docs(400, 401, 403, 404, 409, 413, 422) | too_many_docs(),
        summary="Redeem a coupon (核销), exactly once per Idempotency-Key",
        dto=Strict[RedeemIn],
        return_dto=None,
    )
    async def redeem(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RedeemIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RedemptionOut]:
        h = hub(request)
        result = await run_hot(
            request,
            svc.redeem,
            principal(request),
            to_command(data),
            idempotency_key=idempotency_key,
            canonical_body=msgspec.json.encode(data),
            now=h.clock(),
            operation=REDEMPTION_OPERATIONS.redeem,
            settings=h.settings,
            client=client_address(request),
        )
        return send(result)  # type: ignore[return-value]

    @post(
        "/validate",
        status_code=200,
        responses=problem_docs(400, 401, 403, 404, 409, 413, 422) | too_many_docs(),
        summary="Dry run: every redeem check, no change",
        dto=Strict[RedeemIn],
        return_dto=None,
    )
    async def validate(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RedeemIn],
    ) -> ValidationOut:
        h = hub(request)
        body = await run_hot(
            request,
            svc.validate,
            principal(request),
            to_command(data),
            h.clock(),
            h.settings,
            client_address(request),
        )
        return msgspec.convert(body, ValidationOut)

    @post(
        "/{redemption_id:str}/reversal",
        status_code=201,
        responses=problem_docs(400, 401, 404, 409, 422),
        summary="Reverse (refund/void) a redemption; idempotent",
    )
    async def reverse(
        self,
        request: Request[Any, Any, Any],
        redemption_id: FromPath[str],
        data: JSONBody[ReversalIn | None] = None,
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key", required=False, description="Required. 1–255 characters."
            ),
        ] = None,
    ) -> Response[ReversalOut]:
        h = hub(request)
        body = data or ReversalIn()
        result = await run_hot(
            request,
            svc.reverse,
            principal(request),
            redemption_id,
            body.reason,
            idempotency_key=idempotency_key,
            canonical_body=msgspec.json.encode(body),
            now=h.clock(),
            operation=REDEMPTION_OPERATIONS.reverse(redemption_id),
            settings=h.settings,
        )
        return send(result)  # type: ignore[return-value]

    @get(
        "/",
        sync_to_thread=True,
        responses=problem_docs(400, 401, 422),
        summary="List redemptions, newest first (cursor pagination)",
    )
    def list(
        self,
        request: Request[Any, Any, Any],
        store: FromQuery[str | None] = None,
        since: Since = None,
        until: Until = None,
        template: FromQuery[str | None] = None,
        channel: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        staff: Annotated[
            str | None,
            QueryParameter(description="A staff member's id (stf_…): the redemptions they made"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> RedemptionPage:
        h = hub(request)
        f = queries.RedemptionFilter(
            store=store,
            since=query_time("from", since),
            until=query_time("to", until),
            template=template,
            channel=channel,
            status=status,
            staff=staff,
        )
        page = queries.list_redemptions(h.engine, principal(request), f, limit, cursor)
        return msgspec.convert(page, RedemptionPage)

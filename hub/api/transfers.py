"""Transfers to a friend (转赠): offer a coupon, accept or cancel the offer by its token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from hub.api.client import client_address
from hub.api.dto import TransferCustomerIn, TransferOfferIn, TransferOfferOut, TransferOut
from hub.api.openapi import ok
from hub.api.params import IdempotencyKey
from hub.api.responses import problem_docs, send, too_many_docs
from hub.api.state import hub, principal
from hub.api.strict import Strict
from hub.services import transfers


def _change_docs() -> dict[int, ResponseSpec]:
    """What an accept or a cancel answers."""
    return {200: ok(TransferOut)} | problem_docs(400, 401, 403, 404, 409, 422) | too_many_docs()


def _by_token(
    request: Request[Any, Any, Any],
    change: Callable[..., dict[str, Any]],
    token: str,
    customer: str,
) -> dict[str, Any]:
    """``change`` (accept, cancel) to the offer behind ``token`` by ``customer``, now,
    behind the guessing guard."""
    h = hub(request)
    return change(
        h.engine, principal(request), token, customer, h.clock(),
        guard=h.settings.guard, client=client_address(request),
    )  # fmt: skip


class TransferController(Controller):
    path = "/v1"
    tags = ["customers"]

    @post(
        "/coupons/{code:str}/transfers",
        sync_to_thread=True,
        status_code=201,
        summary="Offer a coupon to a friend: a secret token to share, valid for ttl_seconds",
        responses={201: ok(TransferOfferOut)}
        | problem_docs(400, 401, 403, 404, 409, 422)
        | too_many_docs(),
        dto=Strict[TransferOfferIn],
        return_dto=None,
    )
    def offer(
        self,
        request: Request[Any, Any, Any],
        code: FromPath[str],
        data: JSONBody[TransferOfferIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        h = hub(request)
        return send(transfers.offer(
            h.engine, principal(request), code, data.customer, data.ttl_seconds,
            idempotency_key, h.clock(), operation="POST /v1/coupons/{code}/transfers",
            guard=h.settings.guard, client=client_address(request),
        ))

    @get(
        "/transfers/{token:str}",
        sync_to_thread=True,
        summary="A transfer offer by its token (the code masked)",
        responses={200: ok(TransferOut)} | problem_docs(401, 403, 404) | too_many_docs(),
    )
    def read(self, request: Request[Any, Any, Any], token: FromPath[str]) -> dict[str, Any]:
        h = hub(request)
        return transfers.get_transfer(
            h.engine, principal(request), token, h.clock(),
            guard=h.settings.guard, client=client_address(request),
        )

    @post(
        "/transfers/{token:str}/accept",
        sync_to_thread=True,
        status_code=200,
        summary="Accept an offer: the customer becomes the coupon's holder "
        "(the same customer again gets the same answer)",
        responses=_change_docs(),
        dto=Strict[TransferCustomerIn],
        return_dto=None,
    )
    def accept(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        data: JSONBody[TransferCustomerIn],
    ) -> dict[str, Any]:
        return _by_token(request, transfers.accept, token, data.customer)

    @post(
        "/transfers/{token:str}/cancel",
        sync_to_thread=True,
        status_code=200,
        summary="Withdraw an open offer (the customer who made it)",
        responses=_change_docs(),
        dto=Strict[TransferCustomerIn],
        return_dto=None,
    )
    def cancel(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        data: JSONBody[TransferCustomerIn],
    ) -> dict[str, Any]:
        return _by_token(request, transfers.cancel, token, data.customer)

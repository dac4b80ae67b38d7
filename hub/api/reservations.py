"""Reservations: coupons held for an online order while the customer pays."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from hub.api.client import client_address
from hub.api.dto import (
    OrderRedemptionOut,
    ReservationHeldOut,
    ReservationIn,
    ReservationOut,
)
from hub.api.openapi import ok
from hub.api.params import IdempotencyKey
from hub.api.responses import problem_docs, send, too_many_docs
from hub.api.state import hub, principal
from hub.api.strict import Strict
from hub.services import redeem as rd
from hub.services import reservations as svc
from hub.services.commands import HttpResult

RESERVE_MAX_BODY = 64 * 1024


def _operation(reservation_id: str, verb: str) -> rd.Operation:
    instance = f"/v1/reservations/{reservation_id}/{verb}"
    return rd.Operation(name=f"POST {instance}", instance=instance)


# How the idempotency records and stored problem documents name the operations.
RESERVATION_OPERATIONS = svc.Operations(
    create=rd.Operation(name="POST /v1/reservations", instance="/v1/reservations"),
    confirm=lambda rid: _operation(rid, "confirm"),
    release=lambda rid: _operation(rid, "release"),
)


def to_command(data: ReservationIn) -> svc.ReservationCommand:
    return svc.ReservationCommand(
        codes=tuple(data.codes),
        store=data.store,
        channel=data.channel,
        order=data.order.to_order(),
        ttl=timedelta(seconds=data.ttl_seconds),
    )


def _once(
    request: Request[Any, Any, Any],
    run: Callable[..., HttpResult],
    *args: Any,
    idempotency_key: str | None,
    operation: rd.Operation,
    **kw: Any,
) -> Response[bytes]:
    """Run the reservation service ``run`` (create, confirm, release) once per
    Idempotency-Key for this request's caller, now, and send its answer."""
    h = hub(request)
    return send(
        run(
            h.engine,
            principal(request),
            *args,
            idempotency_key=idempotency_key,
            now=h.clock(),
            operation=operation,
            settings=h.settings,
            **kw,
        )
    )


class ReservationController(Controller):
    path = "/v1/reservations"
    tags = ["reservations"]
    request_max_body_size = RESERVE_MAX_BODY

    @post(
        "/",
        sync_to_thread=True,
        status_code=201,
        summary="Hold coupons for an online order while the customer pays, all or nothing",
        responses={201: ok(ReservationHeldOut)}
        | problem_docs(400, 401, 403, 404, 409, 413, 422)
        | too_many_docs(),
        dto=Strict[ReservationIn],
        return_dto=None,
    )
    def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ReservationIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        return _once(
            request,
            svc.create,
            to_command(data),
            idempotency_key=idempotency_key,
            operation=RESERVATION_OPERATIONS.create,
            canonical_body=msgspec.json.encode(data),
            client=client_address(request),
        )

    @get(
        "/{reservation_id:str}",
        sync_to_thread=True,
        summary="A reservation: its status (a lapsed hold reads expired) and its coupons",
        responses={200: ok(ReservationOut)} | problem_docs(401, 403, 404),
    )
    def read(
        self, request: Request[Any, Any, Any], reservation_id: FromPath[str]
    ) -> dict[str, Any]:
        h = hub(request)
        return svc.get(h.engine, principal(request), reservation_id, h.clock())

    @post(
        "/{reservation_id:str}/confirm",
        sync_to_thread=True,
        status_code=201,
        summary="Turn the hold into the redemption of its coupons as one order",
        responses={201: ok(OrderRedemptionOut)}
        | problem_docs(400, 401, 403, 404, 409, 422)
        | too_many_docs(),
    )
    def confirm(
        self,
        request: Request[Any, Any, Any],
        reservation_id: FromPath[str],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        return _once(
            request,
            svc.confirm,
            reservation_id,
            idempotency_key=idempotency_key,
            operation=RESERVATION_OPERATIONS.confirm(reservation_id),
            client=client_address(request),
        )

    @post(
        "/{reservation_id:str}/release",
        sync_to_thread=True,
        status_code=200,
        summary="End the hold before payment: the coupons are free again",
        responses={200: ok(ReservationOut)} | problem_docs(400, 401, 403, 404, 409, 422),
    )
    def release(
        self,
        request: Request[Any, Any, Any],
        reservation_id: FromPath[str],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        return _once(
            request,
            svc.release,
            reservation_id,
            idempotency_key=idempotency_key,
            operation=RESERVATION_OPERATIONS.release(reservation_id),
        )

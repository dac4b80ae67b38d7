"""Subscriptions and their deliveries (dead letters, replay)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from hub.api.dto import (
    DeliveryDetail,
    DeliveryPage,
    ReplayDeadOut,
    SubscriptionDeleted,
    SubscriptionIn,
    SubscriptionList,
    SubscriptionOut,
    SubscriptionPatch,
)
from hub.api.openapi import ok
from hub.api.params import Since, Until, query_time
from hub.api.state import hub, principal
from hub.services import subscriptions as svc


class SubscriptionController(Controller):
    path = "/v1/subscriptions"
    tags = ["subscriptions"]

    @post(
        "/",
        sync_to_thread=True,
        summary="Subscribe a connector to events",
        responses={201: ok(SubscriptionOut)},
    )
    def create(
        self, request: Request[Any, Any, Any], data: JSONBody[SubscriptionIn]
    ) -> dict[str, Any]:
        h = hub(request)
        return svc.create(
            h.engine,
            principal(request),
            connector=data.connector,
            config=data.config,
            events=list(data.events),
            flt=msgspec.to_builtins(data.filter) if data.filter else None,
            retry_schedule=data.retry_schedule,
            description=data.description,
            now=h.clock(),
        )

    @get(
        "/",
        sync_to_thread=True,
        summary="List subscriptions (secrets never shown)",
        responses={200: ok(SubscriptionList)},
    )
    def list(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"items": svc.list_all(hub(request).engine, principal(request))}

    @get(
        "/{subscription_id:str}",
        sync_to_thread=True,
        summary="One subscription",
        responses={200: ok(SubscriptionOut)},
    )
    def get_one(
        self, request: Request[Any, Any, Any], subscription_id: FromPath[str]
    ) -> dict[str, Any]:
        return svc.get(hub(request).engine, principal(request), subscription_id)

    @patch(
        "/{subscription_id:str}",
        sync_to_thread=True,
        summary="Change a subscription",
        responses={200: ok(SubscriptionOut)},
    )
    def update(
        self,
        request: Request[Any, Any, Any],
        subscription_id: FromPath[str],
        data: JSONBody[SubscriptionPatch],
        raw_body: NamedDependency[bytes],
    ) -> dict[str, Any]:
        h = hub(request)
        fields_set = set(msgspec.json.decode(raw_body or b"{}"))
        return svc.update_subscription(
            h.engine,
            principal(request),
            subscription_id,
            config=data.config,
            events=list(data.events) if data.events is not None else None,
            flt=msgspec.to_builtins(data.filter) if data.filter else None,
            retry_schedule=data.retry_schedule,
            description=data.description,
            now=h.clock(),
            fields_set=fields_set,
        )

    @post(
        "/{subscription_id:str}/pause",
        sync_to_thread=True,
        status_code=200,
        summary="Pause deliveries (they queue up and go out on resume)",
        responses={200: ok(SubscriptionOut)},
    )
    def pause(
        self, request: Request[Any, Any, Any], subscription_id: FromPath[str]
    ) -> dict[str, Any]:
        h = hub(request)
        return svc.set_status(h.engine, principal(request), subscription_id, "paused", h.clock())

    @post(
        "/{subscription_id:str}/resume",
        sync_to_thread=True,
        status_code=200,
        summary="Resume deliveries (also closes an open circuit)",
        responses={200: ok(SubscriptionOut)},
    )
    def resume(
        self, request: Request[Any, Any, Any], subscription_id: FromPath[str]
    ) -> dict[str, Any]:
        h = hub(request)
        return svc.set_status(h.engine, principal(request), subscription_id, "active", h.clock())

    @delete(
        "/{subscription_id:str}",
        sync_to_thread=True,
        status_code=200,
        summary="Delete a subscription (its pending deliveries are not sent)",
        responses={200: ok(SubscriptionDeleted)},
    )
    def remove(
        self, request: Request[Any, Any, Any], subscription_id: FromPath[str]
    ) -> dict[str, Any]:
        h = hub(request)
        return svc.set_status(h.engine, principal(request), subscription_id, "deleted", h.clock())

    @post(
        "/{subscription_id:str}/replay-dead",
        sync_to_thread=True,
        status_code=200,
        summary="Replay every dead delivery of this subscription",
        responses={200: ok(ReplayDeadOut)},
    )
    def replay_dead(
        self, request: Request[Any, Any, Any], subscription_id: FromPath[str]
    ) -> dict[str, Any]:
        h = hub(request)
        return svc.replay_dead(h.engine, principal(request), subscription_id, h.clock())


class DeliveryController(Controller):
    path = "/v1/deliveries"
    tags = ["deliveries"]

    @get(
        "/",
        sync_to_thread=True,
        summary="Deliveries, newest first (e.g. ?status=dead)",
        responses={200: ok(DeliveryPage)},
    )
    def list(
        self,
        request: Request[Any, Any, Any],
        subscription: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        event_type: FromQuery[str | None] = None,
        since: Since = None,
        until: Until = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        cursor: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        return svc.list_deliveries(
            hub(request).engine,
            principal(request),
            subscription=subscription,
            status=status,
            event_type=event_type,
            since=query_time("from", since),
            until=query_time("to", until),
            limit=limit,
            cursor=cursor,
        )

    @get(
        "/{delivery_id:str}",
        sync_to_thread=True,
        summary="One delivery with its attempt log",
        responses={200: ok(DeliveryDetail)},
    )
    def get_one(
        self, request: Request[Any, Any, Any], delivery_id: FromPath[str]
    ) -> dict[str, Any]:
        return svc.get_delivery(hub(request).engine, principal(request), delivery_id)

    @post(
        "/{delivery_id:str}/replay",
        sync_to_thread=True,
        status_code=200,
        summary="Send a dead (or delivered) delivery again, same event id",
        responses={200: ok(DeliveryDetail)},
    )
    def replay(self, request: Request[Any, Any, Any], delivery_id: FromPath[str]) -> dict[str, Any]:
        h = hub(request)
        return svc.replay(h.engine, principal(request), delivery_id, h.clock())

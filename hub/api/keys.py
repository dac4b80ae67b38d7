"""API keys over the API: create (the token is shown once), list, revoke. Admin only."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct

from hub.api.auth import forget_key
from hub.api.dto import Channel, KeyCreated, KeyList, KeyOut, Name, StoreCode, UtcTime
from hub.api.openapi import ok
from hub.api.state import hub, principal
from hub.services import keys


class KeyIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    role: Literal["admin", "store", "integrator", "analyst", "app"]
    name: Name | None = None
    store: StoreCode | None = None  # store keys: their store
    stores: Annotated[list[StoreCode], Meta(min_length=1, max_length=500)] | None = None
    expires_at: UtcTime | None = None
    # app keys: the channels they act on (default: every channel)
    channels: Annotated[list[Channel], Meta(min_length=1, max_length=5)] | None = None


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["keys"]

    @post(
        "/",
        sync_to_thread=True,
        status_code=201,
        summary="Create an API key; the token is in this answer only",
        responses={201: ok(KeyCreated)},
    )
    def create(self, request: Request[Any, Any, Any], data: JSONBody[KeyIn]) -> dict[str, Any]:
        h, p = hub(request), principal(request)
        p.require("admin")
        made = keys.create_key(
            h.engine,
            p.merchant_id,
            data.role,
            h.clock(),
            store_code=data.store,
            name=data.name or "",
            store_codes=data.stores,
            expires_at=data.expires_at,
            created_by=p,
            channels=data.channels,
        )
        [view] = [k for k in keys.list_keys(h.engine, p, h.clock()) if k["id"] == made.id]
        return {**view, "token": made.token}

    @get(
        "/",
        sync_to_thread=True,
        summary="List the merchant's API keys (never their tokens)",
        responses={200: ok(KeyList)},
    )
    def list(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        h = hub(request)
        return {"items": keys.list_keys(h.engine, principal(request), h.clock())}

    @post(
        "/{key_id:str}/revoke",
        sync_to_thread=True,
        status_code=200,
        summary="Revoke an API key (within seconds in every process)",
        responses={200: ok(KeyOut)},
    )
    def revoke(self, request: Request[Any, Any, Any], key_id: FromPath[str]) -> dict[str, Any]:
        h = hub(request)
        revoked = keys.revoke_key(h.engine, principal(request), key_id, h.clock())
        forget_key(key_id)  # at once in this process; the others within CACHE_SECONDS
        return revoked

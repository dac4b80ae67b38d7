"""Staff on a phone over the API: staff members of a store, their single-use sign-in
codes, and the shift sessions the codes are exchanged for.

``POST /v1/staff/sessions`` is the one route that takes no API key (the sign-in code
is the credential; the guessing guard counts wrong codes per client address). Every
other route here is in the role table (hub/api/permissions.py) like the rest.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct

from hub.api.auth import forget_key, forget_staff
from hub.api.client import client_address
from hub.api.dto import Name, StoreCode, Time
from hub.api.openapi import ok
from hub.api.responses import problem_docs, too_many_docs
from hub.api.state import hub, principal
from hub.services import staff as svc
from hub.services import staff_sessions as sessions

STAFF_MAX_BODY = 16 * 1024
ExternalId = Annotated[str, Meta(min_length=1, max_length=128)]


class StaffIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name
    external_id: ExternalId | None = None  # the merchant's own id (unique when given)


class SignInIn(Struct, forbid_unknown_fields=True):
    code: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=64,
            description="The 8-character sign-in code (ABCD-EFGH; any case, dashes and "
            "spaces ignored)",
        ),
    ]


class StaffOut(Struct, kw_only=True):
    id: str
    store: str
    name: str
    external_id: str | None
    status: Literal["active", "disabled"]
    created_at: Time
    disabled_at: Time | None


class StaffList(Struct, kw_only=True):
    items: list[StaffOut]


class StaffRef(Struct, kw_only=True):
    id: str
    name: str


class SignInCodeOut(Struct, kw_only=True):
    code: Annotated[str, Meta(description="ABCD-EFGH: single use; shown in this answer only")]
    expires_at: Time
    staff: StaffRef
    store: str


class SessionStore(Struct, kw_only=True):
    code: str
    name: str


class SessionMerchant(Struct, kw_only=True):
    name: str
    timezone: str


class SessionOut(Struct, kw_only=True):
    expires_at: Annotated[
        str, Meta(description="The shift's end: min(sign-in + 12 h, the next local 04:00)")
    ]
    staff: StaffRef
    store: SessionStore
    merchant: SessionMerchant


class SessionCreated(SessionOut, kw_only=True):
    token: Annotated[
        str,
        Meta(description="`hs_…`: send it as `Authorization: Bearer hs_…`; in this answer only"),
    ]


class StaffController(Controller):
    path = "/v1"
    tags = ["staff"]
    request_max_body_size = STAFF_MAX_BODY

    @post(
        "/stores/{store:str}/staff",
        sync_to_thread=True,
        status_code=201,
        summary="Create a staff member of a store",
        responses={201: ok(StaffOut)} | problem_docs(409),  # already_exists
    )
    def create(
        self, request: Request[Any, Any, Any], store: FromPath[StoreCode], data: JSONBody[StaffIn]
    ) -> dict[str, Any]:
        h = hub(request)
        return svc.create_staff(
            h.engine, principal(request), store, data.name, h.clock(), data.external_id
        )

    @get(
        "/stores/{store:str}/staff",
        sync_to_thread=True,
        summary="List a store's staff (a store key: its own store)",
        responses={200: ok(StaffList)},
    )
    def list(self, request: Request[Any, Any, Any], store: FromPath[StoreCode]) -> dict[str, Any]:
        return {"items": svc.list_staff(hub(request).engine, principal(request), store)}

    @get(
        "/staff/{staff_id:str}",
        sync_to_thread=True,
        summary="A staff member",
        responses={200: ok(StaffOut)},
    )
    def read(self, request: Request[Any, Any, Any], staff_id: FromPath[str]) -> dict[str, Any]:
        return svc.get_staff(hub(request).engine, principal(request), staff_id)

    @post(
        "/staff/{staff_id:str}/disable",
        sync_to_thread=True,
        status_code=200,
        summary="Disable a staff member: their sessions end at once (a lost phone)",
        responses={200: ok(StaffOut)},
    )
    def disable(self, request: Request[Any, Any, Any], staff_id: FromPath[str]) -> dict[str, Any]:
        h = hub(request)
        view = svc.disable_staff(h.engine, principal(request), staff_id, h.clock())
        forget_staff(staff_id)  # at once in this process; the others within CACHE_SECONDS
        return view

    @post(
        "/staff/{staff_id:str}/enable",
        sync_to_thread=True,
        status_code=200,
        summary="Enable a disabled staff member (they sign in again with a new code)",
        responses={200: ok(StaffOut)},
    )
    def enable(self, request: Request[Any, Any, Any], staff_id: FromPath[str]) -> dict[str, Any]:
        h = hub(request)
        return svc.enable_staff(h.engine, principal(request), staff_id, h.clock())

    @post(
        "/staff/{staff_id:str}/sign-in-codes",
        sync_to_thread=True,
        status_code=201,
        summary="Hand a staff member a single-use sign-in code (valid 10 minutes)",
        responses={201: ok(SignInCodeOut)} | problem_docs(404, 409),  # staff_inactive
    )
    def sign_in_code(
        self, request: Request[Any, Any, Any], staff_id: FromPath[str]
    ) -> dict[str, Any]:
        h = hub(request)
        return svc.create_sign_in_code(h.engine, principal(request), staff_id, h.clock())

    @post(
        "/staff/sessions",
        sync_to_thread=True,
        status_code=201,
        summary="Sign in with a sign-in code (no API key): a session until the shift ends",
        responses={201: ok(SessionCreated)} | problem_docs(401) | too_many_docs(),
        opt={"exclude_from_auth": True},
    )
    def sign_in(self, request: Request[Any, Any, Any], data: JSONBody[SignInIn]) -> dict[str, Any]:
        h = hub(request)
        return sessions.sign_in(
            h.engine, h.settings.guard, data.code, h.clock(), client_address(request)
        )

    @get(
        "/staff/me",
        sync_to_thread=True,
        summary="The staff session of the bearer token",
        responses={200: ok(SessionOut)} | problem_docs(404),  # not a staff session
    )
    def me(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return sessions.me(hub(request).engine, principal(request))

    @delete(
        "/staff/sessions/current",
        sync_to_thread=True,
        status_code=204,
        summary="Sign out: end the staff session of the bearer token",
        responses=problem_docs(404),  # not a staff session
    )
    def sign_out(self, request: Request[Any, Any, Any]) -> None:
        h = hub(request)
        p = principal(request)
        sessions.sign_out(h.engine, p, h.clock())
        forget_key(p.key_id)

"""``GET /v1/audit``: the merchant's audit log, newest first (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import FromQuery, QueryParameter

from hub.api.dto import AuditPage
from hub.api.openapi import ok
from hub.api.params import Since, Until, query_time
from hub.api.state import hub, principal
from hub.services import audit


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]

    @get(
        "/",
        sync_to_thread=True,
        summary="Who changed what, when and from where (append-only; newest first)",
        responses={200: ok(AuditPage)},
    )
    def list(
        self,
        request: Request[Any, Any, Any],
        action: FromQuery[str | None] = None,
        actor: Annotated[str | None, QueryParameter(description="the acting API key's id")] = None,
        target: Annotated[str | None, QueryParameter(description="the target's id")] = None,
        since: Since = None,
        until: Until = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        f = audit.AuditFilter(
            action=action,
            actor=actor,
            target=target,
            since=query_time("from", since),
            until=query_time("to", until),
        )
        return audit.list_entries(hub(request).engine, principal(request), f, limit, cursor)

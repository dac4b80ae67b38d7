"""``GET /v1/alerts`` and the caller's address for the guessing defence."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery, QueryParameter

from hub.api.dto import Problem
from hub.api.params import Since, Until, query_time
from hub.api.state import hub, principal
from hub.services import alerts

Severity = Literal["warning", "critical"]


def client_address(request: Request[Any, Any, Any]) -> str | None:
    """The client's address: the TCP peer, or the ``X-Forwarded-For`` client when the
    peer is one of ``HUB_TRUSTED_PROXIES``."""
    peer = request.client.host if request.client is not None else None
    return hub(request).settings.guard.client_address(peer, request.headers.get("x-forwarded-for"))


def too_many_docs() -> dict[int, ResponseSpec]:
    """The 429 a guarded endpoint may answer, for its OpenAPI responses."""
    return {
        429: ResponseSpec(
            data_container=Problem,
            media_type="application/problem+json",
            description="`too_many_failed_attempts`: too many unknown or mistyped codes "
            "from this key or address; see Retry-After",
        )
    }


class AlertOut(msgspec.Struct):
    id: str
    alert: str
    severity: str
    message: str
    details: dict[str, Any]
    occurred_at: str
    store: str | None = None


class AlertPage(msgspec.Struct):
    items: list[AlertOut]
    next_cursor: str | None


class AlertController(Controller):
    path = "/v1/alerts"
    tags = ["alerts"]

    @get(
        "/",
        sync_to_thread=True,
        summary="Alerts (alert.raised events), newest first (cursor pagination)",
        description="Kinds: `code_enumeration_suspected` (a key or address was blocked "
        "for guessing codes), `repeat_redemption_attempt` (a redeemed code presented "
        "again, or one code tried at several stores, within the repeat window), "
        "`subscription_circuit_open`.",
    )
    def list(
        self,
        request: Request[Any, Any, Any],
        alert: Annotated[
            str | None, QueryParameter(description="Alert kind", max_length=64)
        ] = None,
        severity: FromQuery[Severity | None] = None,
        since: Since = None,
        until: Until = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> AlertPage:
        f = alerts.AlertFilter(
            alert=alert,
            severity=severity,
            since=query_time("from", since),
            until=query_time("to", until),
        )
        page = alerts.list_alerts(hub(request).engine, principal(request), f, limit, cursor)
        return msgspec.convert(page, AlertPage)

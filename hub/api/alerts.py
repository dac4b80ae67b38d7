"""``GET /v1/alerts``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get
from litestar.params import FromQuery, QueryParameter

from hub.api.params import Since, Until, query_time
from hub.api.state import hub, principal
from hub.services import alerts

Severity = Literal["warning", "critical"]


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

"""The published JSON Schemas of outgoing events (envelope and each event type)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.params import FromPath

from hub.api.dto import EventSchemas, JsonSchema
from hub.api.openapi import ok
from hub.domain.errors import refuse
from hub.events import schemas


class EventsController(Controller):
    path = "/v1/events"
    tags = ["events"]

    @get(
        "/schemas",
        sync_to_thread=False,
        summary="JSON Schemas (draft 2020-12) of the event envelope and of every event type",
        responses={200: ok(EventSchemas)},
    )
    def list_schemas(self) -> dict[str, Any]:
        return schemas.all_schemas()

    @get(
        "/schemas/{event_type:str}",
        sync_to_thread=False,
        summary="JSON Schema of one event type (the envelope with its data)",
        responses={200: ok(JsonSchema)},
    )
    def one_schema(self, event_type: FromPath[str]) -> dict[str, Any]:
        try:
            return schemas.schema_for(event_type)
        except schemas.UnknownEventType:
            raise refuse(
                "not_found",
                f"No event type {event_type}; known: {', '.join(schemas.DATA_SCHEMAS)}.",
            ) from None

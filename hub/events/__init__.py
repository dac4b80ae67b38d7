"""The published contract of outgoing events: JSON Schemas of the envelope and each type."""

from __future__ import annotations

from hub.events.schemas import (
    DATA_SCHEMAS,
    ENVELOPE_SCHEMA,
    InvalidEvent,
    UnknownEventType,
    all_schemas,
    schema_for,
    validate_event,
)

__all__ = [
    "DATA_SCHEMAS",
    "ENVELOPE_SCHEMA",
    "InvalidEvent",
    "UnknownEventType",
    "all_schemas",
    "schema_for",
    "validate_event",
]

"""JSON encoding shared by responses, stored replies and events (deterministic, fast),
and the one check every JSON body goes through (duplicate keys, NUL characters),
re-exported from :mod:`hub.domain.jsontext`, where connectors reach it too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from hub.domain.jsontext import (
    check_json_text,
    check_strings,
    check_text,
    invalid_characters,
    no_duplicate_keys,
)

_encoder = msgspec.json.Encoder()


def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with a ``Z`` suffix and millisecond precision."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(value: Any) -> bytes:
    return _encoder.encode(value)


__all__ = [
    "check_json_text",
    "check_strings",
    "check_text",
    "dumps",
    "invalid_characters",
    "iso",
    "no_duplicate_keys",
]

"""JSON encoding shared by responses, stored replies and events (deterministic, fast)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with a ``Z`` suffix and millisecond precision."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(value: Any) -> bytes:
    return _encoder.encode(value)

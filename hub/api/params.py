"""Parameters several endpoints share: the ``from``/``to`` time window of the lists and
the ``Idempotency-Key`` header of the exactly-once writes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar.params import HeaderParameter, QueryParameter

from hub.domain.errors import refuse
from hub.domain.validity import to_utc

Since = Annotated[
    str | None,
    QueryParameter(
        name="from", description="time ≥ this (ISO 8601 with offset)", format="date-time"
    ),
]
Until = Annotated[
    str | None,
    QueryParameter(name="to", description="time < this (ISO 8601 with offset)", format="date-time"),
]

# The header of a write that replays its first answer (redeem, claim, ...); the services
# refuse a missing or malformed key with ``idempotency_key_required``/``_invalid``.
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="Required. 1–255 characters; retries with the same key and body "
        "replay the first response.",
    ),
]


def query_time(name: str, raw: str | None) -> datetime | None:
    """An ISO 8601 time with an offset from the query string, or a 422 naming ``name``."""
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise refuse(
            "invalid_request",
            f"{name} must be an ISO 8601 time with an offset, e.g. 2026-11-25T08:00:00Z",
            errors=[{"field": name, "message": "not an ISO 8601 time"}],
        ) from None
    if value.tzinfo is None:
        raise refuse(
            "invalid_request",
            f"{name} needs a time zone offset",
            errors=[{"field": name, "message": "naive time"}],
        )
    # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC: it used to answer 500
    return to_utc(value, name)

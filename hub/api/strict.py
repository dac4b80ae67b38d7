"""Strict body decoding: JSON types must match exactly (no "12800" for 12800).

Litestar converts request bodies leniently (``strict=False``: numeric strings become
integers). For money that is a trap, so handlers whose bodies carry amounts decode the
raw body again strictly with msgspec and refuse a mismatch with ``invalid_request``
naming the field. The raw body comes from the ``raw_body`` dependency (litestar has
already read and cached it for ``data``).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from hub.domain.errors import refuse

T = TypeVar("T")
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


async def raw_body(request: Request[Any, Any, Any]) -> bytes:
    return await request.body()


def strict(raw: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        m = _PATH.search(message)
        field = (m.group(1) if m else "") or "body"
        raise refuse(
            "invalid_request", f"{field}: {message}", errors=[{"field": field, "message": message}]
        ) from None
    except msgspec.DecodeError as exc:
        raise refuse("malformed_json", str(exc)) from None

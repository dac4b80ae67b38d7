"""JSON text the hub refuses although JSON decoders accept it: a key repeated in one
object (which value counts would depend on the decoder) and text holding a NUL
character or a lone UTF-16 surrogate (PostgreSQL cannot store it, SQLite would).

One check for every JSON body, whichever route or connector reads it (POS connectors
call :func:`check_json_text` / :func:`check_strings` from here)."""

from __future__ import annotations

import json
from typing import Any

from hub.domain.errors import DomainError, refuse

_ESCAPE = b"\\u"


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for :func:`json.loads`: 400 ``duplicate_json_key`` for a key
    repeated in one object (which value counts would depend on the decoder)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise refuse(
                "duplicate_json_key",
                f"The key {_shown(key)!r} appears more than once in one JSON object.",
                key=_shown(key),
            )
        out[key] = value
    return out


def _shown(text: str) -> str:
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()[:100]


def _path(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{_shown(part)}" if text else _shown(part)
    return text or "body"


def _bad_text(value: str) -> str | None:
    if "\x00" in value:
        return "a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone UTF-16 surrogate"
    return None


def _find_bad_text(doc: Any, parts: tuple[str | int, ...] = ()) -> tuple[str, str] | None:
    """(field path, what) of the first text (key or value) the database cannot store."""
    if isinstance(doc, str):
        what = _bad_text(doc)
        return (_path(parts), what) if what else None
    if isinstance(doc, dict):
        for key, value in doc.items():
            what = _bad_text(key)
            if what:
                return _path((*parts, key)), f"{what} in a key"
            found = _find_bad_text(value, (*parts, key))
            if found:
                return found
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found = _find_bad_text(value, (*parts, i))
            if found:
                return found
    return None


def invalid_characters(field: str, what: str) -> DomainError:
    """``invalid_characters`` (422): text PostgreSQL cannot store (and SQLite would), so
    both refuse it the same way."""
    message = f"contains {what}, which cannot be stored"
    return refuse(
        "invalid_characters",
        f"{field}: {message}.",
        errors=[{"field": field, "message": message}],
    )


def check_text(value: str, field: str) -> None:
    """Refuse one text value (a header, a query parameter) as :func:`check_json_text`."""
    what = _bad_text(value)
    if what:
        raise invalid_characters(field, what)


def check_strings(doc: Any) -> None:
    """422 ``invalid_characters`` naming the first key or text value of a decoded JSON
    document that holds a NUL character or a lone surrogate."""
    found = _find_bad_text(doc)
    if found:
        raise invalid_characters(*found)


def check_json_text(body: bytes) -> Any:
    """Refuse what JSON decoders accept but the hub must not: a key repeated in one
    object (400 ``duplicate_json_key``: which value counts would depend on the decoder)
    and text with a NUL character or a lone surrogate (422 ``invalid_characters``:
    PostgreSQL refuses them, SQLite stores them). Returns the decoded document, or
    ``None`` when the body is not JSON (its decoder then says why).

    One pass of the C decoder; the walk over strings runs only when the body has a
    ``\\u`` escape (the only way to write either character in valid UTF-8 JSON)."""
    if not body:
        return None
    try:
        doc = json.loads(body.decode("utf-8-sig"), object_pairs_hook=no_duplicate_keys)
    except (ValueError, RecursionError):  # malformed or not UTF-8: the decoder's to say
        return None
    if _ESCAPE in body:
        check_strings(doc)
    return doc


__all__ = [
    "check_json_text",
    "check_strings",
    "check_text",
    "invalid_characters",
    "no_duplicate_keys",
]

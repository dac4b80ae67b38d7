"""The JSON text check of every request body (:func:`hub.domain.jsontext.check_json_text`:
a key repeated in one object, NUL characters and lone surrogates), cheaply for the
common body.

``check_json_text`` decodes the body with :func:`json.loads` and a Python hook per
object, about ten times what msgspec's decoder takes. A body without a backslash holds no
escape, so none of its text can hold a NUL character or a lone surrogate (raw, both are
invalid JSON or invalid UTF-8, which the decoder refuses), and its keys are written as
they are: then a key is repeated in some object exactly when the body's key tokens
(a JSON string followed by ``:``, counted in C) outnumber the keys
of the decoded objects. Anything else — a backslash, a body the fast decoder refuses, a
count that differs — takes the full check, which names the repeated key or the field.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from hub.services.jsonio import check_json_text

# Without a backslash no string holds a quote, so every quote delimits a string: '":' is
# a key's end (or a string starting with a colon: counted too many, which only sends the
# body to the full check), and a quote, spaces and a colon a key written with spaces
# before its colon (then every string is matched, keys or not, to count the keys).
_KEY_END: Final = b'":'
_SPACED_COLON: Final = re.compile(rb'"\s+:')
_STRINGS: Final = re.compile(rb'"[^"]*"(\s*:)?')
_decode = msgspec.json.Decoder().decode
_SLOW: Final = object()


def _keys(doc: Any) -> int:
    """How many keys the decoded document's objects hold, all levels."""
    n = 0
    stack = [doc]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            n += len(item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return n


def _key_tokens(body: bytes) -> int:
    """The key tokens of a body without a backslash (at least as many as it has)."""
    if _SPACED_COLON.search(body) is None:
        return body.count(_KEY_END)
    strings = _STRINGS.findall(body)  # per string: b"" or the colon after it
    return len(strings) - strings.count(b"")


def check_json_body(body: bytes) -> None:
    """Refuse the body as :func:`hub.domain.jsontext.check_json_text` does (same codes and
    messages), by the fast path when it can decide."""
    if b"\\" not in body:
        try:
            doc = _decode(body)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            doc = _SLOW
        if doc is not _SLOW and _key_tokens(body) == _keys(doc):
            return
    check_json_text(body)


__all__ = ["check_json_body"]

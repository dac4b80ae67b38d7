"""The fast JSON text check of request bodies (hub/api/jsoncheck.py) refuses exactly what
the full check (hub/domain/jsontext.py) refuses, with the same code and message."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.api import jsoncheck
from hub.api.jsoncheck import check_json_body
from hub.domain.errors import DomainError
from hub.domain.jsontext import check_json_text


def outcome(check: Any, body: bytes) -> tuple[str, str] | None:
    try:
        check(body)
    except DomainError as exc:
        return exc.code, str(exc)
    return None


CASES = [
    b'{"code":"ABCD","order":{"id":"A-1","amount":12800}}',
    b'{"code":"A","code":"B"}',
    b'{"code":"A", "code" : "B"}',  # spaces before the colon
    b'{"a":":x","a":1}',  # a value starting with a colon
    b'{"a":":x","b":1}',
    b'{"order":{"lines":[{"sku":"T","qty":1},{"sku":"U","qty":2}]}}',  # same keys, two objects
    b'{"order":{"lines":[{"id":1,"id":2}]}}',
    b'{"k" :1,"j":{"k" : 2}}',
    b'{"note":"TEA\\u0000"}',
    b'{"note":"\\ud800"}',
    b'{"a\\u0061":1,"aa":2}',  # the same key, once escaped
    b'\xef\xbb\xbf{"a":1,"a":2}',  # a byte order mark
    b'{"a":"x\x00y"}',  # a raw NUL: not JSON, the decoder's to refuse
    b"{not json",
    b"[]",
    b'"text"',
    b'[{"a":1,"a":2}]',
    b'{"":1,"":2}',
]


def test_the_same_answer_as_the_full_check() -> None:
    for body in CASES:
        assert outcome(check_json_body, body) == outcome(check_json_text, body), body


def test_the_common_body_never_reaches_the_full_check(monkeypatch: Any) -> None:
    calls: list[bytes] = []
    monkeypatch.setattr(jsoncheck, "check_json_text", calls.append)
    check_json_body(b'{"code":"ABCD","order":{"id":"A-1","amount":12800,"lines":[]}}')
    check_json_body(b'{"order":{"lines":[{"sku":"T","qty":1},{"sku":"U","qty":2}]}}')
    assert calls == []
    check_json_body(b'{"a":1,"a":2}')
    check_json_body(b'{"a":"\\u0041"}')
    assert len(calls) == 2


keys = st.sampled_from(["a", "b", "id", "sku", ":", "a b", "\x00", "é", "\\"])
scalars = st.one_of(st.integers(), st.booleans(), st.none(), st.text(max_size=5), keys)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.tuples(keys, inner), max_size=4),  # pairs: keys may repeat
    ),
    max_leaves=12,
)


def _text(doc: Any, spaced: bool) -> str:
    colon = " : " if spaced else ":"
    if isinstance(doc, tuple) or (isinstance(doc, list) and doc and isinstance(doc[0], tuple)):
        pairs = ",".join(f"{json.dumps(k)}{colon}{_text(v, spaced)}" for k, v in doc)
        return "{" + pairs + "}"
    if isinstance(doc, list):
        return "[" + ",".join(_text(v, spaced) for v in doc) + "]"
    return json.dumps(doc, ensure_ascii=False)


@settings(database=None, max_examples=300)
@given(documents, st.booleans())
def test_any_document_gets_the_same_answer(doc: Any, spaced: bool) -> None:
    body = _text(doc, spaced).encode("utf-8", "surrogatepass")
    assert outcome(check_json_body, body) == outcome(check_json_text, body)

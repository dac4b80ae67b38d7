"""The JSON text rules (hub/domain/jsontext.py): what JSON decoders accept but the hub
refuses the same way on every database — a key repeated in one object, and text with a
NUL character or a lone surrogate."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.jsontext import check_json_text, check_strings, check_text

from ._helpers import raises_code


def test_a_repeated_key_is_refused_at_any_depth():
    with raises_code("duplicate_json_key", key="code"):
        check_json_text(b'{"code": "A", "code": "B"}')
    with raises_code("duplicate_json_key", key="id"):
        check_json_text(b'{"order": {"lines": [{"id": 1, "id": 2}]}}')


def test_nul_and_lone_surrogates_are_refused_naming_the_field():
    with raises_code("invalid_characters") as info:
        check_json_text(b'{"order": {"lines": [{"sku": "TEA\\u0000"}]}}')
    assert info.value.extra["errors"][0]["field"] == "order.lines[0].sku"
    with raises_code("invalid_characters") as info:
        check_json_text(b'{"note": "\\ud800"}')
    assert info.value.extra["errors"][0]["field"] == "note"
    with raises_code("invalid_characters"):
        check_json_text(b'{"k\\u0000": 1}')
    with raises_code("invalid_characters"):
        check_text("key\x00", "Idempotency-Key")


def test_what_is_not_json_is_left_to_the_decoder():
    assert check_json_text(b"") is None
    assert check_json_text(b"{not json") is None


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_text, kids, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_clean_documents_pass_unchanged(doc):
    body = json.dumps(doc).encode()
    assert check_json_text(body) == doc
    check_strings(doc)

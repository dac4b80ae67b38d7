"""Sortable prefixed identifiers (ULID layout)."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.ids import _CROCKFORD, new_id

from ._helpers import NO_DB

MAX_MS = 2**48 - 1
millis = st.integers(0, MAX_MS)


def decode(body: str) -> int:
    value = 0
    for ch in body:
        value = value * 32 + _CROCKFORD.index(ch)
    return value


def test_crockford_alphabet():
    assert _CROCKFORD == "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    assert len(set(_CROCKFORD)) == 32
    for excluded in "ILOU":
        assert excluded not in _CROCKFORD


def test_shape():
    ident = new_id("tpl", now_ms=1_700_000_000_000)
    prefix, sep, body = ident.partition("_")
    assert (prefix, sep) == ("tpl", "_")
    assert len(body) == 26
    assert set(body) <= set(_CROCKFORD)
    # 48-bit time + 80 random bits = 128 bits in 130: the first character is at most '7'
    assert body[0] in "01234567"


def test_timestamp_is_encoded_in_the_first_ten_characters():
    assert new_id("x", now_ms=0)[2:12] == "0000000000"
    assert new_id("x", now_ms=1)[2:12] == "0000000001"
    assert new_id("x", now_ms=32)[2:12] == "0000000010"
    assert new_id("x", now_ms=MAX_MS)[2:12] == "7ZZZZZZZZZ"
    ms = 1_700_000_000_123
    assert decode(new_id("red", now_ms=ms)[4:14]) == ms


@NO_DB
@given(millis, st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8))
def test_round_trip_of_timestamp(ms, prefix):
    ident = new_id(prefix, now_ms=ms)
    assert ident.startswith(prefix + "_")
    body = ident[len(prefix) + 1 :]
    assert len(body) == 26
    assert decode(body) >> 80 == ms


@NO_DB
@given(millis, millis)
def test_ids_sort_by_creation_time(a, b):
    ia, ib = new_id("cpn", now_ms=a), new_id("cpn", now_ms=b)
    if a < b:
        assert ia < ib
    elif a > b:
        assert ia > ib
    else:
        assert ia[:14] == ib[:14]


def test_random_part_differs_within_one_millisecond():
    ids = {new_id("cpn", now_ms=1_700_000_000_000) for _ in range(5000)}
    assert len(ids) == 5000
    assert {i[:14] for i in ids} == {new_id("cpn", now_ms=1_700_000_000_000)[:14]}


def test_random_part_uses_all_80_bits():
    low_bits = [decode(new_id("x", now_ms=0)[2:]) for _ in range(200)]
    assert all(v < 2**80 for v in low_bits)
    union = 0
    for v in low_bits:
        union |= v
    assert union.bit_length() == 80
    assert union == 2**80 - 1


def test_default_uses_the_current_time():
    before = int(time.time() * 1000)
    ident = new_id("evt")
    after = int(time.time() * 1000)
    assert before <= decode(ident[4:]) >> 80 <= after


def reference_body(value: int) -> str:
    """The 26 characters of a 128-bit value, five bits at a time from the lowest."""
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


@NO_DB
@given(millis, st.integers(0, 2**80 - 1))
def test_the_encoding_is_the_five_bit_one(ms, rand):
    import hub.domain.ids as ids

    original = ids._random80
    ids._random80 = lambda: rand  # type: ignore[assignment]
    try:
        assert new_id("x", now_ms=ms) == "x_" + reference_body((ms << 80) | rand)
    finally:
        ids._random80 = original  # type: ignore[assignment]


def test_a_forked_child_does_not_reuse_its_parents_random_bytes():
    import os

    new_id("x")  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then exit without running anything else
        os.write(write, new_id("x", now_ms=0).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = new_id("x", now_ms=0)
    assert child != parent

"""The decode rate of ``POST /v1/scan`` on photos of real coupon tokens, per distortion
(tests/services/scan_images.py makes them). The goal: at least 95 % read overall, and never a
text other than the token (each text found is verified as a signed token)."""

from __future__ import annotations

import time

import pytest

from hub.signing import verify
from tests.services.scan_images import Tally, image_set, make_tokens

GOAL = 0.95


def measure(client, auth: dict[str, str], per_variant: int, tokens: int) -> Tally:
    made, keys = make_tokens(tokens)
    tally = Tally()
    for sample in image_set(made, per_variant=per_variant):
        started = time.perf_counter()
        r = client.post(
            "/v1/scan", content=sample.data, headers={**auth, "Content-Type": sample.media_type}
        )
        seconds = time.perf_counter() - started
        assert r.status_code == 200, r.text
        found = r.json()["found"]
        texts = [f["text"] for f in found]
        for f in found:  # whatever was read is a token signed with our key, unaltered
            assert f["kind"] == "token", f
            assert verify(f["text"], keys).code == f["code"]
        tally.add(sample, texts, seconds, as_is=r.headers["scan-passes"] == "as_is")
    return tally


def test_decode_rate_on_the_default_set(client, merchant, capsys) -> None:
    """Four tokens per variant: every distortion family, under a minute on two cores."""
    tally = measure(client, merchant.auth(), per_variant=4, tokens=12)
    with capsys.disabled():
        print("\n" + tally.table())
    assert not tally.misreads
    assert tally.rate >= GOAL, tally.table()


@pytest.mark.slow
def test_decode_rate_on_the_large_set(client, merchant, capsys) -> None:
    tally = measure(client, merchant.auth(), per_variant=12, tokens=36)
    with capsys.disabled():
        print("\n" + tally.table())
    assert not tally.misreads
    assert tally.rate >= GOAL, tally.table()

"""The decode rate of ``POST /v1/scan`` on photos of real coupon tokens, per distortion
(tests/services/scan_images.py makes them). The goal: at least 95 % read overall, and never a
text other than the token (each text found is verified as a signed token)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from hub.api.app import create_app
from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.signing import verify
from tests.conftest import Clock, make_merchant
from tests.services.scan_images import Tally, image_set, make_tokens

GOAL = 0.95


@pytest.fixture
def scanner(tmp_path: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    """A client and an admin key on SQLite only: decoding does not touch the database,
    so the set runs once, not once per backend."""
    engine = make_engine(str(tmp_path / "hub.db"))
    upgrade(engine)
    clock = Clock()
    m = make_merchant(engine, clock.now)
    try:
        with TestClient(create_app(engine, clock=clock)) as client:
            yield client, m.auth()
    finally:
        engine.dispose()


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


def test_decode_rate_on_the_default_set(scanner, capsys) -> None:
    """Three tokens per variant: every distortion family, under a minute on two cores."""
    tally = measure(*scanner, per_variant=3, tokens=12)
    with capsys.disabled():
        print("\n" + tally.table())
    assert not tally.misreads
    assert tally.rate >= GOAL, tally.table()


@pytest.mark.slow
def test_decode_rate_on_the_large_set(scanner, capsys) -> None:
    tally = measure(*scanner, per_variant=12, tokens=36)
    with capsys.disabled():
        print("\n" + tally.table())
    assert not tally.misreads
    assert tally.rate >= GOAL, tally.table()

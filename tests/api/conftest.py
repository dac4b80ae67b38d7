"""Fixtures of the API tests."""

from __future__ import annotations

import pytest

from tests.api.world import World, make_world


@pytest.fixture
def world(client, db, merchant, clock) -> World:
    return make_world(client, db, merchant, clock)

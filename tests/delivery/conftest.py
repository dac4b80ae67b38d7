from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub.delivery import queue
from tests.delivery.receiver import Receiver, receiver_fixture


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiver_fixture()


@pytest.fixture(autouse=True)
def _no_broker() -> Iterator[None]:
    queue.reset()
    yield
    queue.reset()

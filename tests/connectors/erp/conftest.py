"""Fixtures of the ERP connector tests: a real Tryton server on loopback.

``tryton_server`` starts ``trytond`` with the ``stock`` module on a fresh copy of a
template SQLite database (see :mod:`tests.connectors.erp.tryton_server` for the recipe and its
timings: ~11 s for the first server of a process, ~1 s for each later one) and stops it
after the test. Each test gets its own database, so stock levels never leak between tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.connectors.erp.tryton_server import TrytonServer, start_tryton


@pytest.fixture
def tryton_server(tmp_path: Path) -> Iterator[TrytonServer]:
    server = start_tryton(tmp_path)
    try:
        yield server
    finally:
        server.stop()

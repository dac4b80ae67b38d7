"""erp.tryton passes the hub's connector contract (scripted Tryton answers, no network)."""

from __future__ import annotations

from typing import Any

from connectors.erp.tryton import TrytonConnector
from hub.connectors import OutboundRequest, OutboundResponse
from hub.testing import ConnectorContract
from tests.connectors.erp.tryton_fakes import tryton_answer

CONFIG: dict[str, Any] = {
    "base_url": "https://erp.example.com",
    "database": "tryton",
    "app_key": "0123456789abcdef0123456789abcdef",
    "company": 1,
    "locations": {"SH-001": 3, "SH-002": 3, "BJ-001": 11},
    "lost_found_location": 4,
}


class TestTrytonContract(ConnectorContract):
    connector = TrytonConnector()
    config = CONFIG

    def respond_ok(self, request: OutboundRequest) -> OutboundResponse:
        return tryton_answer(request)

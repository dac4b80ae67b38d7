"""erp.tryton passes the hub's connector contract (scripted Tryton answers, no network)."""

from __future__ import annotations

from connectors.erp.tryton import TrytonConnector
from hub.connectors import OutboundRequest, OutboundResponse
from hub.testing import ConnectorContract
from tests.connectors.erp.tryton_fakes import CONFIG, tryton_answer


class TestTrytonContract(ConnectorContract):
    connector = TrytonConnector()
    config = CONFIG

    def respond_ok(self, request: OutboundRequest) -> OutboundResponse:
        return tryton_answer(request)

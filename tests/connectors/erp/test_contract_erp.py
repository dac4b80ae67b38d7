"""erp.sap and erp.webhook pass the hub's connector contract kit."""

from __future__ import annotations

from typing import Any, ClassVar

from connectors.erp.sap import SapConnector
from connectors.erp.webhook import ErpWebhookConnector
from hub.connectors import OutboundRequest, OutboundResponse
from hub.testing import ConnectorContract
from tests.connectors.erp import sap_fixtures as sap


class TestSapContract(ConnectorContract):
    connector = SapConnector()
    config: ClassVar[dict[str, Any]] = sap.CONFIG

    def respond_ok(self, request: OutboundRequest) -> OutboundResponse:
        # CSRF fetch → token and cookies; document look-up → none yet; POST → 201
        return sap.realistic(request)


class TestSapOrderLinesContract(TestSapContract):
    """Every order line moves: threshold coupons post too, with several items."""

    config: ClassVar[dict[str, Any]] = {**sap.CONFIG, "move_stock_for_lines": True}


class TestErpWebhookContract(ConnectorContract):
    connector = ErpWebhookConnector()
    config: ClassVar[dict[str, Any]] = {
        "url": "https://erp-adapter.example/hub/stock",
        "secret": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "locations": {"SH-001": "WH-SH-001"},
    }


class TestErpWebhookOrderLinesContract(TestErpWebhookContract):
    config: ClassVar[dict[str, Any]] = {
        **TestErpWebhookContract.config,
        "move_stock_for_lines": True,
    }

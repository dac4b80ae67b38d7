"""The three CRM loyalty connectors pass the hub's connector contract kit, and are found
through the ``hub.connectors`` entry points."""

from __future__ import annotations

from connectors.crm.hubspot import HubspotConnector
from connectors.crm.salesforce import SalesforceConnector
from connectors.crm.webhook import CrmWebhookConnector
from hub.connectors import OutboundRequest, OutboundResponse, load_connectors
from hub.testing import ConnectorContract

from .fakes import HS_CONFIG, HS_EVENT_CONFIG, SF_CONFIG, WEBHOOK_CONFIG, hubspot_ok, salesforce_ok


class TestSalesforceContract(ConnectorContract):
    connector = SalesforceConnector()
    config = SF_CONFIG

    def respond_ok(self, request: OutboundRequest) -> OutboundResponse:
        return salesforce_ok(request)


class TestHubspotPropertyContract(ConnectorContract):
    connector = HubspotConnector()
    config = HS_CONFIG

    def respond_ok(self, request: OutboundRequest) -> OutboundResponse:
        return hubspot_ok(request)


class TestHubspotEventContract(ConnectorContract):
    connector = HubspotConnector()
    config = HS_EVENT_CONFIG

    def respond_ok(self, request: OutboundRequest) -> OutboundResponse:
        return hubspot_ok(request)


class TestCrmWebhookContract(ConnectorContract):
    connector = CrmWebhookConnector()
    config = WEBHOOK_CONFIG


def test_the_entry_points_load_the_three_connectors():
    found = load_connectors(force=True)
    assert type(found["crm.salesforce"]) is SalesforceConnector
    assert type(found["crm.hubspot"]) is HubspotConnector
    assert type(found["crm.webhook"]) is CrmWebhookConnector
    for name in ("crm.salesforce", "crm.hubspot", "crm.webhook"):
        about = found[name].describe()
        assert about["kind"] == "crm"
        assert about["consumes"] == ["coupon.redeemed", "coupon.redemption_reversed"]
        assert "points" in about["config_schema"]["properties"]

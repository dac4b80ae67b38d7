"""The whole test suite a plugin needs: the hub's contract kit, plus its own rule."""

from hub_csv_crm import CsvCrmConnector, points

from hub.connectors import Failed, OutboundResponse
from hub.testing import ConnectorContract, sample_event


class TestCsvCrm(ConnectorContract):
    connector = CsvCrmConnector()
    config = {"url": "https://crm.example/import", "token": "s3cret-token"}


def test_points_are_taken_back_on_reversal():
    redeemed = sample_event("coupon.redeemed", kind="threshold")
    reversed_ = sample_event("coupon.redemption_reversed", kind="threshold")
    assert points(redeemed, 1) == 108 and points(reversed_, 1) == -108


def test_a_refused_row_is_a_permanent_failure():
    answer = OutboundResponse(200, {}, b"ERROR unknown member")
    assert isinstance(CsvCrmConnector().classify(answer, None), Failed)

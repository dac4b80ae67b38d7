"""``pos.native`` and ``pos.poslog`` pass the connector contract kit."""

from __future__ import annotations

from pathlib import Path

from connectors.pos.native import NativePosConnector
from connectors.pos.poslog import PoslogConnector
from hub.connectors import load_connectors
from hub.testing import ConnectorContract

FIXTURES = Path(__file__).parent / "fixtures"

NATIVE_REDEEM = (FIXTURES / "native_redeem.json").read_bytes()


class TestNativePosContract(ConnectorContract):
    connector = NativePosConnector()
    inbound_samples = {
        "redeem": NATIVE_REDEEM,
        "validate": NATIVE_REDEEM,
        "reverse": b'{"redemption_id": "rdm_01JDK000000000000000000013", "reason": "refund"}',
    }
    inbound_headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": "till-7-2026-11-25-000123",
    }


class TestPoslogContract(ConnectorContract):
    connector = PoslogConnector()
    inbound_samples = {
        "redeem": (FIXTURES / "v6_sale_coupon.xml").read_bytes(),
        "validate": (FIXTURES / "v2_prefixed_sale.xml").read_bytes(),
        "reverse": (FIXTURES / "v6_post_void.xml").read_bytes(),
    }
    inbound_headers = {"Content-Type": "application/xml; charset=utf-8"}


def test_both_are_found_through_their_entry_points():
    found = load_connectors(force=True)
    assert isinstance(found["pos.native"], NativePosConnector)
    assert isinstance(found["pos.poslog"], PoslogConnector)
    for name in ("pos.native", "pos.poslog"):
        about = found[name].describe()
        assert about["operations"] == ["redeem", "validate", "reverse"]
        assert about["kind"] == "pos"

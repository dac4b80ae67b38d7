"""Both example mappings, served as ``pos.mapped.acme`` and ``pos.mapped.nimbus``, pass
the connector contract kit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from connectors.pos.mapped import MappedPosConnector
from hub.testing import ConnectorContract

FIXTURES = Path(__file__).parent / "fixtures"


def samples(vendor: str) -> dict[str, bytes]:
    return {
        op: (FIXTURES / f"mapped_{vendor}_{op}.json").read_bytes()
        for op in ("redeem", "validate", "reverse")
    }


class TestAcmeContract(ConnectorContract):
    connector = MappedPosConnector().variant("acme")
    config: ClassVar[dict[str, Any]] = {}
    inbound_samples = samples("acme")
    inbound_headers = {"Content-Type": "application/json; charset=utf-8"}


class TestNimbusContract(ConnectorContract):
    connector = MappedPosConnector().variant("nimbus")
    config: ClassVar[dict[str, Any]] = {}
    inbound_samples = samples("nimbus")
    inbound_headers = {"content-type": "application/json"}


class TestMappedBaseContract(ConnectorContract):
    """The base connector serves no operation itself, only its variants; the kit's
    describe check needs operations, so it only runs the config checks here."""

    connector = MappedPosConnector()
    config: ClassVar[dict[str, Any]] = {}

    def test_contract_describes_itself(self) -> None:
        impl = self._impl()
        about = impl.describe()
        assert about["name"] == "pos.mapped" and impl.kind == "pos" and impl.version
        assert about["variants"] == ["acme", "nimbus"]
        assert impl.operations == ()

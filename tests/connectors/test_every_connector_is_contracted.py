"""Every installed connector, and every variant (each mapping file), is proven by the
contract kit somewhere in the suite: a connector added later without a contract test
fails here."""

from __future__ import annotations

import importlib
from pathlib import Path

from hub.connectors import load_connectors
from hub.testing import ConnectorContract

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _contracted() -> set[str]:
    for path in TESTS.glob("connectors/**/test_*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        importlib.import_module(module)
    names, todo = set(), list(ConnectorContract.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        connector = getattr(cls, "connector", None)
        if connector is not None:
            names.add(connector.name)
    return names


def test_every_installed_connector_and_variant_has_a_contract_test():
    installed = set()
    for name, connector in load_connectors(force=True).items():
        installed.add(name)
        installed.update(connector.variant(v).name for v in connector.variants())
    assert installed >= {"pos.mapped.acme", "pos.mapped.nimbus", "erp.tryton", "crm.hubspot"}
    assert installed - _contracted() == set()

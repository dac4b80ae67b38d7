"""Connector discovery through the entry-point group `hub.connectors`: a plugin that
fails to import or declares an invalid config schema is reported by name and left out,
and the hub still runs with the others."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from hub.cli import main
from hub.connectors import OutboundConnector, registry


class BadSchema(OutboundConnector):
    name: ClassVar[str] = "bad.schema"
    kind: ClassVar[str] = "erp"
    config_schema: ClassVar[dict[str, Any]] = {"type": "no-such-type"}


@pytest.fixture
def plugins(monkeypatch):
    real = list(registry.entry_points(group=registry.ENTRY_POINT_GROUP))
    fakes = [
        EntryPoint("broken.import", "no_such_module_xyz:Thing", registry.ENTRY_POINT_GROUP),
        EntryPoint("bad.schema", f"{__name__}:BadSchema", registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: real + fakes)
    registry.load_connectors(force=True)
    yield
    monkeypatch.undo()
    registry.load_connectors(force=True)


def test_builtin_webhook_is_found_through_the_entry_point_group():
    found = registry.load_connectors(force=True)
    assert "webhook" in found and found["webhook"].kind == "webhook"
    assert registry.broken_connectors() == {}


BUILT_INS = {
    "webhook",
    "pos.native",
    "pos.poslog",
    "pos.mapped",
    "erp.tryton",
    "erp.sap",
    "erp.webhook",
    "crm.salesforce",
    "crm.hubspot",
    "crm.webhook",
}


def test_every_built_in_registers_through_the_entry_point_group():
    assert set(registry.load_connectors(force=True)) == BUILT_INS
    assert registry.broken_connectors() == {}


def test_broken_plugins_are_reported_by_name_and_left_out(plugins):
    assert set(registry.load_connectors()) == BUILT_INS
    broken = registry.broken_connectors()
    assert set(broken) == {"broken.import", "bad.schema"}
    assert "ModuleNotFoundError" in broken["broken.import"]
    assert "SchemaError" in broken["bad.schema"]
    result = CliRunner().invoke(main, ["connectors", "list"])
    assert result.exit_code == 1, result.output  # something is broken: a check can see it
    assert "webhook" in result.output
    assert "broken.import" in result.output and "UNAVAILABLE" in result.output
    result = CliRunner().invoke(main, ["connectors", "about", "bad.schema"])
    assert result.exit_code != 0 and "failed to load" in result.output


def test_about_shows_schema_and_secret_fields():
    registry.load_connectors(force=True)
    result = CliRunner().invoke(main, ["connectors", "about", "webhook"])
    assert result.exit_code == 0, result.output
    assert '"secret_fields"' in result.output and '"url"' in result.output
    result = CliRunner().invoke(main, ["connectors", "about", "nope"])
    assert result.exit_code != 0 and "unknown_connector" in result.output


def test_the_hub_app_starts_with_a_broken_plugin(plugins, client):
    assert client.get("/health").json() == {"status": "ok"}

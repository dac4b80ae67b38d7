"""The plugin surface: what a connector may import from the hub, and nothing more.

A connector, built-in (``connectors/``) or third-party (``examples/``), imports only the
names of ``hub.connectors.__all__`` and the pure rules of ``hub.domain``; the surface is
listed (as httpx guards its exported members), importable and documented; the modules
behind it reach nothing above the domain either. Imports are read with ``ast``, so a
lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

import hub.connectors
from hub.connectors import (
    ConnectorBase,
    InboundConnector,
    OutboundConnector,
    load_connectors,
    registry,
)

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "write-a-connector.md"

EXPECTED = [
    "CODE_MAX",
    "ENTRY_POINT_GROUP",
    "FEN_MAX",
    "LINES_MAX",
    "MAX_EXCHANGE_STEPS",
    "MAX_RETRY_AFTER",
    "OPERATIONS",
    "QTY_MAX",
    "REQUEST_ID_MAX",
    "STORE_MAX",
    "STORE_PATTERN",
    "TEXT_MAX",
    "AnyConnector",
    "Channel",
    "ConnectorBase",
    "Delivered",
    "Exchange",
    "Failed",
    "Fen",
    "InboundCommand",
    "InboundConnector",
    "InboundReply",
    "InboundResult",
    "LineIn",
    "Operation",
    "OrderIn",
    "OutboundConnector",
    "OutboundRequest",
    "OutboundResponse",
    "Outcome",
    "PayloadError",
    "RedeemIn",
    "Retry",
    "Session",
    "ShortText",
    "StoreCode",
    "UtcTime",
    "broken_connectors",
    "classify_http",
    "config_error",
    "get_connector",
    "header",
    "load_connectors",
    "package_schema",
    "redeem_command",
    "retry_after_seconds",
]
PRIVATE_MODULES = ("base", "inbound", "outbound", "pos_types", "registry")


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's ``__all__`` order (RUF022): CONSTANTS, then Classes, then functions."""
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


# ------------------------------------------------------------------------- the list
def test_the_surface_is_exactly_the_expected_sorted_list():
    assert hub.connectors.__all__ == EXPECTED
    assert sorted(EXPECTED, key=_isort_key) == EXPECTED
    assert "Connector" not in EXPECTED  # split into InboundConnector / OutboundConnector


def test_every_name_of_the_surface_is_importable():
    for name in EXPECTED:
        exec(f"from hub.connectors import {name}", {})  # the import statement is the test
        assert getattr(hub.connectors, name) is not None, name


def test_nothing_public_is_exported_by_accident():
    """Every public name the package holds is in ``__all__`` (its private modules
    aside), and ``__all__`` is exactly what those modules declare in theirs."""
    public = {
        name
        for name, value in vars(hub.connectors).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(EXPECTED)
    declared: list[str] = []
    for module in PRIVATE_MODULES:
        declared += importlib.import_module(f"hub.connectors.{module}").__all__
    assert sorted(declared) == sorted(EXPECTED)


def test_every_name_of_the_surface_is_documented():
    """Named in the plugin guide, and a class or function carries its own docstring."""
    guide = GUIDE.read_text("utf-8")
    missing = [name for name in EXPECTED if f"`{name}`" not in guide]
    assert missing == [], f"docs/write-a-connector.md does not document {missing}"
    for name in EXPECTED:
        value = getattr(hub.connectors, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


# ------------------------------------------------------------------------- imports
def hub_imports(source: str) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) of every import of the hub in ``source``: top level,
    inside functions, under ``if TYPE_CHECKING`` — wherever it is."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "hub" or alias.name.startswith("hub."):
                    yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            if module == "hub" or module.startswith("hub."):
                yield node.lineno, module, tuple(a.name for a in node.names)


def forbidden(source: str, *, test_module: bool = False) -> list[str]:
    """What ``source`` imports of the hub beyond the plugin surface: anything but the
    names of ``hub.connectors.__all__`` and ``hub.domain``. A plugin's own tests may
    also use the contract kit, ``hub.testing``."""
    found = []
    for line, module, names in hub_imports(source):
        if module == "hub.domain" or module.startswith("hub.domain."):
            continue
        if test_module and (module == "hub.testing" or module.startswith("hub.testing.")):
            continue
        if module == "hub.connectors":
            private = [n for n in names if n not in EXPECTED]
            if not private:
                continue
            found.append(f"line {line}: from hub.connectors import {', '.join(private)}")
            continue
        found.append(f"line {line}: {module}")
    return found


def _plugin_modules() -> list[Path]:
    paths = [*(ROOT / "connectors").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]
    # examples/pos-till is a till built on hub.client (the POS vendors' library), not a
    # connector plugin: docs/pos-client.md and tests/client cover it
    skip = {"build", ".venv", "pos-till"}
    return sorted(p for p in paths if not skip & set(p.parts))


def test_there_are_plugin_modules_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in _plugin_modules()}
    assert {
        "connectors/pos/__init__.py",
        "connectors/pos/native.py",
        "connectors/pos/mapped.py",
        "examples/hub-csv-crm/src/hub_csv_crm/__init__.py",
        "examples/hub-csv-crm/tests/test_contract.py",
    } <= names


@pytest.mark.parametrize("path", _plugin_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_connectors_import_only_the_surface_and_the_domain(path: Path):
    rel = path.relative_to(ROOT)
    bad = forbidden(path.read_text("utf-8"), test_module="tests" in rel.parts)
    assert bad == [], f"{rel} reaches past hub.connectors/hub.domain: {bad}"


@pytest.mark.parametrize("module", PRIVATE_MODULES)
def test_the_surface_itself_stands_on_the_domain_only(module: str):
    """``hub.connectors`` reaches no service, API or delivery code (its inbound side
    once imported the services' command)."""
    path = ROOT / "hub" / "connectors" / f"{module}.py"
    for line, name, _ in hub_imports(path.read_text("utf-8")):
        assert name.startswith(("hub.connectors", "hub.domain")), f"{path.name}:{line} {name}"


def test_the_check_sees_lazy_private_and_forbidden_imports():
    """The rule has teeth: what the POS connectors used to import is caught, also
    inside a function, and so is a private module of the surface."""
    assert forbidden("from hub.connectors import OutboundRequest, header\n") == []
    assert forbidden("from hub.domain.errors import refuse\nimport hub.domain.cart\n") == []
    old_pos = (
        "from hub.api.dto import RedeemIn\n"
        "from hub.services.commands import RedeemCommand\n"
        "def f():\n"
        "    from hub.api.redemptions import to_command\n"
        "    import hub.services.jsonio\n"
    )
    assert forbidden(old_pos) == [
        "line 1: hub.api.dto",
        "line 2: hub.services.commands",
        "line 4: hub.api.redemptions",
        "line 5: hub.services.jsonio",
    ]
    assert forbidden("from hub.connectors.base import ConnectorBase\n") == [
        "line 1: hub.connectors.base"
    ]
    assert forbidden("from hub.connectors import Connector\n") == [
        "line 1: from hub.connectors import Connector"
    ]
    assert forbidden("from hub.testing import ConnectorContract\n") == ["line 1: hub.testing"]
    assert forbidden("from hub.testing import ConnectorContract\n", test_module=True) == []


# ------------------------------------------------------------------------- the split
SHARED = ("name", "kind", "version", "summary", "config_schema", "secret_fields", "url_fields")
OUTBOUND_VERBS = (
    "consumes",
    "build_requests",
    "exchange",
    "classify",
    "session_request",
    "open_session",
    "session_expired",
    "authorize",
    "check_requests",
)
INBOUND_VERBS = ("operations", "media_types", "parse", "reply")


def test_inbound_and_outbound_share_only_the_small_base():
    for attr in SHARED:
        assert hasattr(ConnectorBase, attr), attr
    for attr in OUTBOUND_VERBS:
        assert hasattr(OutboundConnector, attr) and not hasattr(InboundConnector, attr), attr
        assert not hasattr(ConnectorBase, attr), attr
    for attr in INBOUND_VERBS:
        assert hasattr(InboundConnector, attr) and not hasattr(OutboundConnector, attr), attr
        assert not hasattr(ConnectorBase, attr), attr


def test_every_built_in_is_inbound_or_outbound_by_its_kind():
    for name, connector in load_connectors(force=True).items():
        inbound = isinstance(connector, InboundConnector)
        outbound = isinstance(connector, OutboundConnector)
        assert inbound != outbound, name
        assert inbound == (connector.kind == "pos"), name
        for variant in connector.variants():
            assert isinstance(connector.variant(variant), InboundConnector), variant


class NotAConnector:
    """Has the old wide class's attributes, but subclasses neither side."""

    name = "crm.stray"
    kind = "crm"
    config_schema: dict[str, object] = {"type": "object"}
    consumes = ("*",)


def test_a_plugin_that_is_neither_side_is_reported_and_left_out(monkeypatch):
    from importlib.metadata import EntryPoint

    real = list(registry.entry_points(group=registry.ENTRY_POINT_GROUP))
    stray = EntryPoint("crm.stray", f"{__name__}:NotAConnector", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [*real, stray])
    try:
        found = registry.load_connectors(force=True)
        assert "crm.stray" not in found and "webhook" in found
        why = registry.broken_connectors()["crm.stray"]
        assert why.startswith("TypeError: NotAConnector is neither an InboundConnector")
    finally:
        monkeypatch.undo()
        registry.load_connectors(force=True)

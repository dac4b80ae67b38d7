"""Tests mirror the tree (issue 10, item 8; docs/architecture.md "Tests mirror the tree").

* every folder of tests/ is the twin of a package of the code (``tests/api`` ↔
  ``hub/api``, ``tests/connectors/erp`` ↔ ``connectors/erp``) or one of the named
  cross-cutting folders, so each kind of code has one home for its tests (one for ERP);
* a connector's contract test lives in the folder of its kind;
* helpers and fixtures are shared through ``conftest.py`` or a helper module of the
  folder they serve, never by importing another test module.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from hub.connectors import load_connectors
from hub.testing import ConnectorContract

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# properties of the whole, not of one package (security, concurrency), and folders of
# one feature across the layers (domain, service, API, processes, the browser)
CROSS_CUTTING = {
    "security", "concurrency", "reminders", "analytics", "recommend", "synthetic", "exports",
    "browser", "staff",
}
KINDS_WITH_A_FOLDER = ("pos", "erp", "crm")


def _test_folders() -> list[Path]:
    return sorted(
        {p.parent for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts} - {TESTS}
    )


def _twin(folder: Path) -> Path | None:
    """The code package ``folder`` mirrors, if any."""
    rel = folder.relative_to(TESTS)
    for candidate in (ROOT / "hub" / rel, ROOT / rel):
        if (candidate / "__init__.py").is_file():
            return candidate
    return None


def test_every_test_folder_mirrors_a_package_or_is_cross_cutting() -> None:
    strays = [
        str(folder.relative_to(ROOT))
        for folder in _test_folders()
        if _twin(folder) is None and folder.relative_to(TESTS).parts[0] not in CROSS_CUTTING
    ]
    assert strays == [], f"test folders that mirror no package of hub/ or connectors/: {strays}"


def test_one_home_for_each_kind_of_connector() -> None:
    for kind in KINDS_WITH_A_FOLDER:
        assert (ROOT / "connectors" / kind / "__init__.py").is_file()
        assert (TESTS / "connectors" / kind / "__init__.py").is_file()
        assert not (TESTS / kind).exists(), f"tests/{kind}/ duplicates tests/connectors/{kind}/"


def _contract_classes() -> list[type]:
    for path in sorted(TESTS.rglob("test_*.py")):
        if path != Path(__file__).resolve() and "ConnectorContract" in path.read_text("utf-8"):
            importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    found, todo = [], list(ConnectorContract.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if getattr(cls, "connector", None) is not None and cls.__module__.startswith("tests."):
            found.append(cls)
    return found


def test_contract_tests_live_in_the_folder_of_their_kind() -> None:
    load_connectors(force=True)
    misplaced = []
    for cls in _contract_classes():
        kind = cls.connector.kind  # type: ignore[attr-defined]
        if kind in KINDS_WITH_A_FOLDER:
            expected = f"tests.connectors.{kind}."
            if not cls.__module__.startswith(expected):
                misplaced.append(f"{cls.__module__}.{cls.__name__} ({kind})")
    assert misplaced == []


def test_no_test_module_is_imported_as_a_library() -> None:
    """A helper or fixture two files need belongs in the folder's conftest.py or helper
    module; importing a test module drags its tests along and hides where things live."""
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert offenders == []

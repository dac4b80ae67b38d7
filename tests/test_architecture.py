"""The import rule is enforced: the import-linter contracts in ``pyproject.toml`` hold, and
they break when a forbidden import is added, lazy ones included
(docs/architecture.md, "Layers and the import rule")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_import_contracts_hold():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout, done.stdout


# (file, the line added at its end, the contract that must break)
FORBIDDEN = [
    ("hub/domain/codes.py", "def _late():\n    import hub.api.app  # noqa\n", "hub layers"),
    ("hub/domain/codes.py", "def _late():\n    import sqlalchemy  # noqa\n", "hub.domain imports"),
    ("hub/services/outbox.py", "def _late():\n    from hub.delivery import queue  # noqa\n",
     "hub layers"),
    ("hub/db/schema.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    import hub.services.redeem  # noqa\n", "hub layers"),
    ("connectors/pos/native.py", "def _late():\n    from hub.services import redeem  # noqa\n",
     "connectors import only"),
    ("hub/connectors/inbound.py", "def _late():\n    import hub.api.dto  # noqa\n",
     "connectors import only"),
    ("hub/client/core.py", "def _late():\n    import hub.services.redeem  # noqa\n",
     "hub.client imports only"),
    ("hub/services/redeem.py", "def _late():\n    import hub.client  # noqa\n",
     "nothing of the server imports hub.client"),
]


@pytest.mark.parametrize(("path", "added", "contract"), FORBIDDEN,
                         ids=[f"{p}:{c.split()[0]}" for p, _, c in FORBIDDEN])
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, path: str, added: str,
                                              contract: str):
    for package in ("hub", "connectors"):
        shutil.copytree(ROOT / package, tmp_path / package, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / path
    target.write_text(target.read_text() + "\n\n" + added)
    done = _lint(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    broken = [line for line in done.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), done.stdout

"""Lint and type checks are part of the suite: ruff and mypy must be clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff_clean():
    paths = ["hub", "connectors", "tests", "bench", "examples"]
    done = subprocess.run([str(BIN / "ruff"), "check", *paths], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_clean():
    done = subprocess.run([sys.executable, "-m", "mypy", "hub", "connectors"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

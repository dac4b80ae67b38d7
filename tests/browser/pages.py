"""Checks both pages the hub serves (the dashboard and the staff page) share."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def files_not_in_package_data(static_dir: Path) -> tuple[int, list[str]]:
    """(how many files ``static_dir`` holds, those pyproject's package-data globs miss: a
    wheel would not carry them)."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["hub"]
    hub_dir = ROOT / "hub"
    files = [p.relative_to(hub_dir).as_posix() for p in static_dir.rglob("*") if p.is_file()]
    missing = [
        f
        for f in files
        if not any(fnmatch.fnmatchcase(f, g) and f.count("/") == g.count("/") for g in globs)
    ]
    return len(files), missing


def assert_self_contained(page: str, assets: str, scripts: int) -> None:
    """Nothing inline, nothing from another host, ``scripts`` scripts from ``assets``."""
    assert "<script>" not in page and " style=" not in page  # nothing inline
    assert "http://" not in page and "https://" not in page  # nothing from another host
    assert page.count(f'<script src="{assets}/') == scripts

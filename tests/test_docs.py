"""The design lives in the repository (issue 10, item 7): ``docs/architecture.md`` exists,
says what a newcomer needs (layers and import rule, the redeem transaction, the outbox
and delivery, the plugin protocol, where each kind of change goes, with diagrams), the
README links it near the top, and nothing points at a document outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# The folders whose files a clone of the repository carries and a reader follows.
SCANNED = ("hub", "connectors", "docs", "tests", "bench", "examples", "mappings", ".ci")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".json", ".cfg", ".txt", ""}
# Split so that this file does not match itself.
OUTSIDE = re.compile("DESIGN" + r"\.md|\.\./shared" + r"\b")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _text_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for top in SCANNED:
        for path in (ROOT / top).rglob("*"):
            skipped = {"__pycache__", ".venv", "node_modules"} & set(path.parts)
            if path.is_file() and path.suffix in TEXT_SUFFIXES and not skipped:
                files.append(path)
    return files


def _headings(text: str) -> list[str]:
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def test_nothing_points_at_a_design_document_outside_the_repository() -> None:
    found = []
    for path in _text_files():
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == [], "point these at docs/architecture.md:\n" + "\n".join(found)


def test_the_readme_links_the_architecture_near_the_top() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    first_section = readme.split("\n## ", 1)[0]
    assert "](docs/architecture.md)" in first_section
    # the two commands stay the first thing in the file
    assert readme.startswith("# Redemption Hub\n\n```sh\npython3 -m venv .venv && ")


def test_the_architecture_covers_what_a_newcomer_needs() -> None:
    text = ARCHITECTURE.read_text("utf-8")
    headings = " | ".join(_headings(text)).lower()
    for topic in (
        "layers",
        "import rule",
        "redeem",
        "outbox and delivery",
        "plugin protocol",
        "guard",
        "where each kind of change goes",
        "tests mirror the tree",
    ):
        assert topic in headings, topic
    # a diagram of the layers and a sequence of redeem → outbox → delivery
    assert re.search(r"```mermaid\s+flowchart", text)
    assert re.search(r"```mermaid\s+sequenceDiagram", text)
    # the import rule names every layer, inside out, and the two other contracts
    flat = " ".join(text.replace("**", "").replace("`", "").split())
    assert "domain ← db ← services ← delivery/events ← api ← cli" in flat
    assert "import only hub.connectors and hub.domain" in flat
    assert "hub.domain imports nothing of the project and no framework" in flat
    changes = text.split("## Where each kind of change goes", 1)[1].split("\n## ", 1)[0]
    for kind in (
        "A POS vendor",
        "An ERP",
        "An event type",
        "An error code",
        "An API route",
        "A setting",
        "A migration",
    ):
        assert f"**{kind}" in changes, kind


def test_relative_links_of_the_readme_and_docs_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text("utf-8")):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert broken == []


def test_the_architecture_anchor_the_readme_uses_exists() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    slugs = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in _headings(ARCHITECTURE.read_text("utf-8"))
    }
    for anchor in re.findall(r"docs/architecture\.md#([\w-]+)", readme):
        assert anchor in slugs, anchor

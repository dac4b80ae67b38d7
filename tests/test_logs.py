"""Logging (hub/logs.py): the key=value lines keep structlog's console layout, a level
that is off costs nothing, and a serving process caches its loggers."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
import structlog
from structlog.dev import ConsoleRenderer

from hub.logs import KeyValueLines, cache_loggers, configure_logging

EVENTS: list[dict[str, Any]] = [
    {"event": "redeem.ok", "level": "info", "timestamp": "2026-12-03T08:00:00.000000Z",
     "code": "AB**", "store": "SH-001", "discount": 2000, "redemption_id": "red_1"},
    {"event": "x", "level": "warning", "timestamp": "t", "exception": "Traceback\nValueError"},
    {"event": "an event name longer than thirty characters", "level": "critical",
     "logger": "hub.x", "none": None, "list": [1, "a"], "spaced": "a b", "eq": "a=b", "e": ""},
    {"event": "x", "stack": "Stack:\n  line"},
    {"event": "x", "stack": "Stack:\n  line", "exception": "Trace"},
    {"level": "info", "n": 1.5, "d": {"a": 1}, "q": "it's"},
]  # fmt: skip


def test_lines_are_laid_out_as_structlogs_console_renderer() -> None:
    console = ConsoleRenderer(colors=False)
    ours = KeyValueLines()
    for event in EVENTS:
        assert ours(None, "info", dict(event)) == console(None, "info", dict(event)), event


@pytest.fixture
def restore_structlog() -> Any:
    saved = structlog.get_config()
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)


def test_a_cached_logger_writes_to_stderr_as_it_is_now(
    monkeypatch: pytest.MonkeyPatch, restore_structlog: Any
) -> None:
    monkeypatch.setenv("HUB_LOG_LEVEL", "INFO")
    configure_logging()
    cache_loggers()
    log = structlog.get_logger("hub.test")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.info("one", n=1)
    log.debug("off")  # below the level: nothing
    monkeypatch.setattr(sys, "stderr", second)
    log.info("two", n=2)
    assert first.getvalue().count("\n") == 1 and "one" in first.getvalue()
    assert "[info     ] two" in second.getvalue() and second.getvalue().endswith("n=2\n")
    assert structlog.get_config()["cache_logger_on_first_use"] is True

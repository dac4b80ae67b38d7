"""Structured logging (structlog): key=value lines on stderr, JSON with HUB_LOG_JSON=1.

Cheap on the hot path (one INFO line per redeem): a level that is off costs a no-op call
(structlog's filtering logger), the key=value line is written by :class:`KeyValueLines`
(the layout of structlog's ``ConsoleRenderer`` without colours, at a fraction of its
cost), and a serving process caches each logger on first use (:func:`cache_loggers`)
instead of building it again on every call.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

from hub.settings import env

_QUOTED: Final = frozenset(" \t=\r\n\"'")
LEVEL_WIDTH: Final = 9  # "[info     ]": the longest level name ("critical") and a space
EVENT_WIDTH: Final = 30


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if not _QUOTED.isdisjoint(value) else value
    return repr(value)


class KeyValueLines:
    """``2026-12-03T08:00:00.000000Z [info     ] redeem.ok                      a=1 b=x``:
    structlog's ``ConsoleRenderer(colors=False)`` layout (timestamp, level, event padded,
    ``[logger]``, the other keys sorted, a string quoted only when it holds a space, a
    quote or ``=``; then the stack and the exception text on their own lines)."""

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        stack = event_dict.pop("stack", None)
        exc = event_dict.pop("exception", None)
        event_dict.pop("exc_info", None)  # format_exc_info ran before: "exception" is text
        parts: list[str] = []
        timestamp = event_dict.pop("timestamp", None)
        if timestamp is not None:
            parts.append(str(timestamp))
        level = event_dict.pop("level", None)
        if level is not None:
            parts.append(f"[{level:<{LEVEL_WIDTH}}]")
        event = event_dict.pop("event", None)
        if event is not None:
            parts.append(f"{event!s:<{EVENT_WIDTH}}")
        for key in ("logger", "logger_name"):
            source = event_dict.pop(key, None)
            if source is not None:
                parts.append(f"[{source}]")
        parts += [f"{key}={_shown(event_dict[key])}" for key in sorted(event_dict)]
        line = " ".join(p for p in parts if p).rstrip(" ")
        if stack is not None:
            line += "\n" + stack
            if exc is not None:
                line += "\n\n" + "=" * 79 + "\n"
        if exc is not None:
            line += "\n" + exc
        return line


class _Stderr:
    """structlog's logger, writing to ``sys.stderr`` as it is at each call (tests and
    tools swap it), so a logger cached on first use still follows it."""

    def msg(self, message: str) -> None:
        out = sys.stderr
        out.write(message + "\n")  # one write: lines of several threads never interleave
        out.flush()

    debug = info = warning = warn = error = critical = exception = fatal = failure = msg


def configure_logging() -> None:
    level = getattr(logging, (env("HUB_LOG_LEVEL") or "INFO").upper(), logging.INFO)
    renderer: structlog.types.Processor
    if env("HUB_LOG_JSON") == "1":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = KeyValueLines()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _Stderr(),
    )


def cache_loggers() -> None:
    """In a serving process, once logging is configured: each logger is built on its
    first use and kept (structlog's ``cache_logger_on_first_use``), not built again on
    every call. Not for tests: a cached logger ignores a later ``structlog.configure``
    (``structlog.testing.capture_logs`` included)."""
    structlog.configure(cache_logger_on_first_use=True)

"""Structured logging (structlog): key=value lines on stderr, JSON with HUB_LOG_JSON=1."""

from __future__ import annotations

import logging
import sys

import structlog

from hub.settings import env


def configure_logging() -> None:
    level = getattr(logging, (env("HUB_LOG_LEVEL") or "INFO").upper(), logging.INFO)
    renderer: structlog.types.Processor
    if env("HUB_LOG_JSON") == "1":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # sys.stderr looked up per logger, not bound once: tests and tools swap it
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
    )

"""Every ``HUB_*`` environment variable: the one place the hub reads them.

Each variable is declared here with its default and a one-line meaning; the README's
table of variables is generated from :data:`VARIABLES` (and a test compares the two, so
a variable read in code but missing from the README fails the suite). Code reads a
variable with :func:`env` at the moment it needs it — never at import — so a test (or
an operator restarting a worker) that changes the environment is seen; the typed parsing
stays beside its use (``PoolSettings``, the guard's ``Limits``, the egress allow-list).

This module imports nothing of the project, so every layer may use it. The app-wide
:class:`~hub.services.settings.Settings` handed to the services lives in
:mod:`hub.services.settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # as the README shows it
    meaning: str


VARIABLES: tuple[Variable, ...] = (
    # where things are
    Variable(
        "HUB_DATABASE_URL",
        "`./hub.db`",
        "The database (SQLite path or URL) when `--db` is not given.",
    ),
    Variable(
        "HUB_BROKER_URL",
        "(none: in-process delivery)",
        "The delivery broker, `redis://…` or `amqp://…`; `hub worker` consumes from it.",
    ),
    Variable(
        "HUB_SECRET_KEY",
        "(none: a key file)",
        "Fernet key(s), comma-separated, newest first, encrypting connector secrets.",
    ),
    Variable(
        "HUB_MAPPINGS_DIR",
        "`mappings/`",
        "The folder whose `pos/` files define the `pos.mapped.<name>` POS formats.",
    ),
    # database pool
    Variable("HUB_DB_POOL_SIZE", "10 (SQLite: 8)", "Database connections kept open."),
    Variable(
        "HUB_DB_MAX_OVERFLOW",
        "20 (SQLite: 32)",
        "Extra database connections opened under load, closed after.",
    ),
    Variable(
        "HUB_DB_POOL_TIMEOUT",
        "10",
        "Seconds a request waits for a free connection before 503 `database_busy`.",
    ),
    Variable(
        "HUB_DB_HOT_DRIVER",
        "asyncpg",
        "PostgreSQL driver of the redeem/validate/reversal/POS routes: `asyncpg` (on the "
        "event loop, no thread hop) or `psycopg` (worker threads).",
    ),
    # guessing defence
    Variable(
        "HUB_GUESS_WINDOW_SECONDS", "600", "The sliding window of failed code look-ups."
    ),
    Variable(
        "HUB_GUESS_MAX_FAILURES",
        "20",
        "Failed look-ups per API key in the window before it is blocked (0: no limit).",
    ),
    Variable(
        "HUB_GUESS_MAX_FAILURES_PER_ADDRESS",
        "50",
        "Failed look-ups per client address in the window (0: no limit).",
    ),
    Variable(
        "HUB_REPEAT_WINDOW_SECONDS", "600", "The window of repeat-redemption-attempt alerts."
    ),
    Variable(
        "HUB_TRUSTED_PROXIES",
        "(none)",
        "Comma-separated IPs/networks of reverse proxies whose X-Forwarded-For is believed.",
    ),
    # the HTTP edge and the way out
    Variable(
        "HUB_CORS_ORIGINS", "(none: CORS off)", "Comma-separated origins allowed by CORS."
    ),
    Variable(
        "HUB_EGRESS_ALLOW",
        "(none)",
        "Comma-separated CIDRs that deliveries may reach beyond public addresses.",
    ),
    Variable(
        "HUB_DELIVERY_LEASE_SECONDS",
        "120",
        "Seconds a claimed delivery may run before it is retried (read at start-up).",
    ),
    # background work and the demo
    Variable(
        "HUB_PERIODIC_JOBS_OFF",
        "(none)",
        "Comma-separated names of periodic jobs this process does not run (e.g. "
        "`analytics.rollup`).",
    ),
    Variable(
        "HUB_DEMO_HISTORY_DAYS",
        "42",
        "Days of synthetic history the demo loads into an empty database (0: none).",
    ),
    # logs
    Variable("HUB_LOG_LEVEL", "`INFO`", "The log level (`DEBUG`, `INFO`, `WARNING`, …)."),
    Variable("HUB_LOG_JSON", "(none)", "`1`: log JSON lines instead of key=value text."),
)

_DECLARED = {v.name: v for v in VARIABLES}


def env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the declared variable ``name`` now (``environ`` defaults to the
    process environment), or ``None`` when it is unset."""
    if name not in _DECLARED:
        raise KeyError(f"{name} is not declared in hub/settings (VARIABLES)")
    return (os.environ if environ is None else environ).get(name)


# Variables of other libraries that the hub reads or sets for the processes it starts
# (not the hub's own: not in VARIABLES nor the README's table of them).
FOREIGN = frozenset({"PROMETHEUS_MULTIPROC_DIR"})  # prometheus-client's multiprocess mode


def foreign_env(name: str) -> str | None:
    """The value of the library variable ``name`` (one of :data:`FOREIGN`) now."""
    if name not in FOREIGN:
        raise KeyError(f"{name} is not declared in hub/settings (FOREIGN)")
    return os.environ.get(name)


def set_foreign_env(name: str, value: str | None) -> None:
    """Set ``name`` (one of :data:`FOREIGN`) in this process's environment, which the
    processes it starts from now on inherit; ``None`` removes it."""
    if name not in FOREIGN:
        raise KeyError(f"{name} is not declared in hub/settings (FOREIGN)")
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def readme_table() -> str:
    """The README's table of variables (between its ``settings`` markers)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {v.default} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(rows) + "\n"

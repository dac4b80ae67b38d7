"""The connector contract kit for plugin authors (``from hub.testing import ...``).

- :class:`ConnectorContract`: subclass it in your tests to prove a connector meets the
  hub's expectations (config schema, deterministic translation carrying the event id,
  classification of every kind of answer, inbound parsing that refuses garbage cleanly,
  replies in the vendor's format). It is a pytest test class, so it needs pytest; it is
  imported on first use, and everything else here works without pytest installed.
- :func:`sample_event` / :func:`sample_events`: envelopes exactly as the hub publishes.
- :class:`ScriptedTransport`: a fake receiver for driving :meth:`ConnectorContract.deliver`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.testing.events import all_samples, sample_event, sample_events
from hub.testing.payloads import BILLION_LAUGHS, EXTERNAL_DTD, EXTERNAL_ENTITY, GARBAGE
from hub.testing.transport import FAILURES, NOW, ScriptedTransport

if TYPE_CHECKING:
    from hub.testing.contract import ConnectorContract


def __getattr__(name: str) -> Any:
    """``ConnectorContract`` is imported when first asked for (it needs pytest)."""
    if name == "ConnectorContract":
        try:
            from hub.testing.contract import ConnectorContract
        except ModuleNotFoundError as exc:
            if exc.name != "pytest":
                raise
            raise ImportError(
                "hub.testing.ConnectorContract is a pytest test class: install pytest "
                "(pip install pytest) to use it",
                name="pytest",
            ) from None
        return ConnectorContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BILLION_LAUGHS",
    "EXTERNAL_DTD",
    "EXTERNAL_ENTITY",
    "FAILURES",
    "GARBAGE",
    "NOW",
    "ConnectorContract",
    "ScriptedTransport",
    "all_samples",
    "sample_event",
    "sample_events",
]

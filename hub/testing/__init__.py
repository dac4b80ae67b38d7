"""The connector contract kit for plugin authors (``from hub.testing import ...``).

- :class:`ConnectorContract`: subclass it in your tests to prove a connector meets the
  hub's expectations (config schema, deterministic translation carrying the event id,
  classification of every kind of answer, inbound parsing that refuses garbage cleanly,
  replies in the vendor's format).
- :func:`sample_event` / :func:`sample_events`: envelopes exactly as the hub publishes.
- :class:`ScriptedTransport`: a fake receiver for driving :meth:`ConnectorContract.deliver`.
"""

from hub.testing.contract import FAILURES, NOW, ConnectorContract, ScriptedTransport
from hub.testing.events import all_samples, sample_event, sample_events
from hub.testing.payloads import BILLION_LAUGHS, EXTERNAL_DTD, EXTERNAL_ENTITY, GARBAGE

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

"""Connector discovery: the entry-point group ``hub.connectors``, and nothing else.

The built-ins register in ``pyproject.toml`` exactly as a third-party package would. A
plugin that fails to import or declares an invalid config schema is reported by name
(:func:`broken_connectors`) and left out; the hub runs without it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import structlog
from jsonschema import Draft202012Validator

from hub.connectors.inbound import InboundConnector
from hub.connectors.outbound import OutboundConnector
from hub.domain.errors import refuse

log = structlog.get_logger("hub.connectors")

ENTRY_POINT_GROUP = "hub.connectors"

# what the registry holds: a connector subclasses one of the two (or, rarely, both)
AnyConnector = InboundConnector | OutboundConnector

_registry: dict[str, AnyConnector] | None = None
_broken: dict[str, str] = {}


def load_connectors(force: bool = False) -> dict[str, AnyConnector]:
    """Instantiate every connector of the ``hub.connectors`` entry-point group."""
    global _registry
    if _registry is not None and not force:
        return _registry
    found: dict[str, AnyConnector] = {}
    _broken.clear()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            connector = cls() if isinstance(cls, type) else cls
            if not isinstance(connector, InboundConnector | OutboundConnector):
                raise TypeError(
                    f"{type(connector).__name__} is neither an InboundConnector nor an "
                    "OutboundConnector (subclass one from hub.connectors)"
                )
            Draft202012Validator.check_schema(connector.config_schema)
            if connector.name != ep.name:
                raise ValueError(f"declares name {connector.name!r}")
        except Exception as exc:  # a plugin's failure must not stop the hub
            _broken[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("connector.unavailable", connector=ep.name, error=_broken[ep.name])
            continue
        found[connector.name] = connector
    _registry = found
    return found


def broken_connectors() -> dict[str, str]:
    """Plugins left out: entry-point name → why (the exception, in one line)."""
    load_connectors()
    return dict(_broken)


def get_connector(name: str) -> AnyConnector:
    """The connector called ``name``; ``base.variant`` names a variant of ``base``
    (``pos.mapped.acme`` is the ``acme`` mapping of ``pos.mapped``)."""
    found = load_connectors()
    connector = found.get(name)
    if connector is not None:
        return connector
    base, _, variant = name.rpartition(".")
    if base in found:
        try:
            impl = found[base].variant(variant)
        except KeyError:
            impl = None
        if isinstance(impl, InboundConnector | OutboundConnector):
            return impl
    raise refuse("unknown_connector", f"No connector named {name!r}.", known=sorted(found))


__all__ = [
    "ENTRY_POINT_GROUP",
    "AnyConnector",
    "broken_connectors",
    "get_connector",
    "load_connectors",
]

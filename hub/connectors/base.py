"""What every connector has, inbound or outbound: a name, a kind, a version, a config
schema and its secret fields.

A connector is pure translation (docs/architecture.md, "The plugin protocol";
``docs/write-a-connector.md``). It subclasses
:class:`~hub.connectors.OutboundConnector` (events → HTTP requests, answers →
:class:`~hub.connectors.Delivered`/:class:`~hub.connectors.Retry`/
:class:`~hub.connectors.Failed`) or :class:`~hub.connectors.InboundConnector` (a vendor
payload → a command, the hub's result → the vendor's reply); both stand on
:class:`ConnectorBase`, which holds the configuration: its schema, its check, its
secrets. Transport, retries, sessions, ordering and bookkeeping stay in the hub. Every
hook has a default; a connector overrides only what differs. Nothing here performs I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from hub.domain.errors import refuse


def package_schema(package: str, resource: str = "config.schema.json") -> dict[str, Any]:
    """A JSON Schema shipped as package data next to the connector's module."""
    loaded: dict[str, Any] = json.loads((files(package) / resource).read_text("utf-8"))
    return loaded


class ConnectorBase:
    """What inbound and outbound connectors share: who they are and their configuration.
    Subclass :class:`~hub.connectors.OutboundConnector` or
    :class:`~hub.connectors.InboundConnector`, not this."""

    name: ClassVar[str] = ""  # dotted: kind.system, e.g. "erp.tryton"
    kind: ClassVar[str] = ""  # erp | crm | pos | webhook
    version: ClassVar[str] = "0"
    summary: ClassVar[str] = ""
    # what the connector does, e.g. "outbound", "stock.decrement", "inbound.redeem"
    capabilities: ClassVar[tuple[str, ...]] = ()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    secret_fields: ClassVar[tuple[str, ...]] = ()  # write-only config fields
    # config fields holding URLs the hub sends to, checked by the egress policy (fields
    # whose schema says ``format: uri`` and top-level ``*url``/``*uri``/``*endpoint``
    # ones are found without being listed here)
    url_fields: ClassVar[tuple[str, ...]] = ()

    # ---------------------------------------------------------------- configuration
    def check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Validate ``config`` against :attr:`config_schema`; refuse naming the field."""
        errors = sorted(
            Draft202012Validator(self.config_schema).iter_errors(config),
            key=lambda e: list(e.absolute_path),
        )
        if errors:
            raise config_error(errors[0], self._secret_values(config), self.secret_fields)
        return config

    def _secret_values(self, config: dict[str, Any]) -> list[str]:
        """How this config's secret values (nested ones too: a headers map, a list)
        could appear in a validator's message."""
        values = [config[k] for k in self.secret_fields if k in config]
        found: list[str] = []

        def walk(value: Any) -> None:
            found.extend(s for s in (str(value), repr(value)[1:-1], repr(value)) if s)
            if isinstance(value, Mapping):
                for v in value.values():
                    walk(v)
            elif isinstance(value, list | tuple):
                for v in value:
                    walk(v)

        for value in values:
            walk(value)
        return found

    def redact(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` without its secrets (what the API may show)."""
        return {k: ("***" if k in self.secret_fields else v) for k, v in config.items()}

    def _does(self) -> dict[str, Any]:
        """What :meth:`describe` shows of the events consumed or operations served (the
        inbound and outbound bases add theirs)."""
        return {}

    # ---------------------------------------------------------------- registry
    def variant(self, name: str) -> ConnectorBase:
        """A named variant (``pos.mapped`` serves one per mapping file)."""
        raise KeyError(name)

    def variants(self) -> Sequence[str]:
        return ()

    def problems(self) -> dict[str, str]:
        """Parts that failed to load (a mapping file, say): where → why."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What ``hub connectors about`` shows."""
        about: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "summary": self.summary or (type(self).__doc__ or "").strip().split("\n")[0],
            "capabilities": list(self.capabilities),
            "secret_fields": list(self.secret_fields),
            "config_schema": self.config_schema,
            **self._does(),
        }
        if self.variants():
            about["variants"] = list(self.variants())
        return about


# validators whose message names keys or the schema, never the instance's values
_SAFE_FOR_CONTAINERS = frozenset({"required", "additionalProperties", "dependentRequired"})


def config_error(
    err: ValidationError, secrets: Sequence[str] = (), secret_fields: Sequence[str] = ()
) -> Exception:
    """``invalid_config`` naming the field. The validator's message is kept only when it
    cannot repeat a secret: not for a value under a secret field (at any depth), not
    when it quotes a whole object or array (``anyOf`` on the config …), and not when a
    secret value appears in it."""
    path = ".".join(str(p) for p in err.absolute_path)
    field_name = f"config.{path}" if path else "config"
    if err.validator == "required" and isinstance(err.message, str):
        missing = err.message.split("'")[1] if "'" in err.message else ""
        field_name = f"{field_name}.{missing}" if missing else field_name
    message = err.message
    under_secret = bool(err.absolute_path) and err.absolute_path[0] in set(secret_fields)
    quotes_container = (
        isinstance(err.instance, Mapping | list) and err.validator not in _SAFE_FOR_CONTAINERS
    )
    if under_secret or quotes_container or any(s in message for s in secrets):
        hidden = "secret values are not shown" if under_secret else "values are not shown"
        message = f"invalid value (fails `{err.validator}`; {hidden})"
    return refuse(
        "invalid_config",
        f"{field_name}: {message}",
        errors=[{"field": field_name, "message": message}],
    )


__all__ = ["ConnectorBase", "config_error", "package_schema"]

"""The connector plugin protocol and registry (DESIGN.md "Connector plugins").

A connector is pure translation: it turns an event envelope into HTTP request(s) and an
HTTP outcome into :class:`Delivered`, :class:`Retry` or :class:`Failed`. Transport,
retries, ordering and bookkeeping stay in the hub (``hub.delivery``).

Connectors are found through the entry-point group ``hub.connectors``; the built-ins
register there in ``pyproject.toml`` exactly as a third-party package would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar

import structlog
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from hub.domain.errors import refuse

log = structlog.get_logger("hub.connectors")

ENTRY_POINT_GROUP = "hub.connectors"
MAX_RETRY_AFTER = 24 * 3600.0


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    timeout: float = 10.0


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Retry:
    reason: str
    after: float | None = None  # seconds the receiver asked us to wait (Retry-After)


@dataclass(frozen=True)
class Failed:
    reason: str


Outcome = Delivered | Retry | Failed


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


class Connector:
    """Base class with the hub's default behaviour; subclasses override what differs."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""  # erp | crm | pos | webhook
    version: ClassVar[str] = "0"
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    secret_fields: ClassVar[tuple[str, ...]] = ()  # write-only config fields
    consumes: ClassVar[tuple[str, ...]] = ("*",)  # event types, "*" for any

    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        """The request(s) that deliver ``event`` (the published envelope); ``now`` is the
        attempt's time (for signatures). Must be deterministic given its inputs."""
        raise NotImplementedError

    def classify(self, response: OutboundResponse | None, error: Exception | None) -> Outcome:
        """Connect errors, timeouts, 408, 429 and 5xx retry (honouring Retry-After);
        other 4xx fail at once; 2xx is delivered."""
        if response is None:
            return Retry(f"{type(error).__name__}: {error}" if error else "no response")
        status = response.status
        if 200 <= status < 300:
            return Delivered()
        after = retry_after_seconds(_header(response.headers, "retry-after"))
        if status in (408, 429) or status >= 500:
            return Retry(f"HTTP {status}", after=after)
        if 300 <= status < 400:
            return Failed(f"HTTP {status}: redirects are not followed")
        return Failed(f"HTTP {status}")

    def check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Validate ``config`` against :attr:`config_schema`; refuse naming the field."""
        errors = sorted(
            Draft202012Validator(self.config_schema).iter_errors(config),
            key=lambda e: list(e.absolute_path),
        )
        if errors:
            raise _config_error(errors[0], self._secret_values(config))
        return config

    def _secret_values(self, config: dict[str, Any]) -> list[str]:
        """How this config's secret values could appear in a validator's message."""
        values = [config[k] for k in self.secret_fields if k in config]
        return [s for v in values for s in (str(v), repr(v)[1:-1]) if s]

    def redact(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` without its secrets (what the API may show)."""
        return {k: ("***" if k in self.secret_fields else v) for k, v in config.items()}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def _config_error(err: ValidationError, secrets: Sequence[str] = ()) -> Exception:
    path = ".".join(str(p) for p in err.absolute_path)
    field_name = f"config.{path}" if path else "config"
    if err.validator == "required" and isinstance(err.message, str):
        missing = err.message.split("'")[1] if "'" in err.message else ""
        field_name = f"{field_name}.{missing}" if missing else field_name
    message = err.message
    if any(s in message for s in secrets):  # jsonschema quotes the value: never echo secrets
        message = f"invalid value (fails `{err.validator}`; secret values are not shown)"
    return refuse(
        "invalid_config",
        f"{field_name}: {message}",
        errors=[{"field": field_name, "message": message}],
    )


_registry: dict[str, Connector] | None = None
_broken: dict[str, str] = {}


def load_connectors(force: bool = False) -> dict[str, Connector]:
    """Instantiate every connector of the ``hub.connectors`` entry-point group.

    A plugin that fails to import or declares an invalid config schema is reported by
    name (see :func:`broken_connectors`) and left out; the hub runs without it.
    """
    global _registry
    if _registry is not None and not force:
        return _registry
    found: dict[str, Connector] = {}
    _broken.clear()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            connector = cls() if isinstance(cls, type) else cls
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
    load_connectors()
    return dict(_broken)


def get_connector(name: str) -> Connector:
    connector = load_connectors().get(name)
    if connector is None:
        raise refuse(
            "unknown_connector", f"No connector named {name!r}.", known=sorted(load_connectors())
        )
    return connector

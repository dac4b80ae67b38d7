"""The connector base class: the plugin protocol, with the hub's defaults.

A connector is pure translation (docs/architecture.md, "The plugin protocol"). Outbound it turns an
event envelope into HTTP request(s) and HTTP outcomes into :class:`Delivered`,
:class:`Retry` or :class:`Failed`; inbound it turns a vendor payload into a command and
the hub's result into the vendor's reply. Transport, retries, sessions, ordering and
bookkeeping stay in the hub. Every hook has a default; a connector overrides only what
differs. Nothing here performs I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib.resources import files
from typing import Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from hub.connectors.inbound import InboundCommand, InboundReply, InboundResult, Operation
from hub.connectors.outbound import (
    Delivered,
    Exchange,
    Failed,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
    Session,
    classify_http,
)
from hub.domain.errors import refuse


def package_schema(package: str, resource: str = "config.schema.json") -> dict[str, Any]:
    """A JSON Schema shipped as package data next to the connector's module."""
    loaded: dict[str, Any] = json.loads((files(package) / resource).read_text("utf-8"))
    return loaded


class Connector:
    """Base class of every connector; subclasses set the class attributes they need."""

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
    consumes: ClassVar[tuple[str, ...]] = ()  # outbound: event types, "*" for any
    operations: ClassVar[tuple[Operation, ...]] = ()  # inbound: redeem/validate/reverse
    media_types: ClassVar[tuple[str, ...]] = ()  # inbound: request content types

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

    def check_requests(self, config: dict[str, Any]) -> Sequence[OutboundRequest]:
        """Requests that prove connectivity and credentials (``hub connectors check``).
        The hub sends them after opening a session; each must be classified
        :class:`Delivered`. The default checks only the session, if there is one."""
        return ()

    # ---------------------------------------------------------------- outbound
    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        """The request(s) that deliver ``event`` (the published envelope), sent in order;
        ``now`` is the attempt's time (for signatures). Deterministic given its inputs.
        No requests means there is nothing to do for this event (it counts delivered)."""
        raise NotImplementedError

    def exchange(self, event: dict[str, Any], config: dict[str, Any], *, now: datetime) -> Exchange:
        """A delivery as a conversation: yield a request, receive its response, and
        return the outcome. Override it when a later request depends on an earlier
        answer (read-modify-write, look-up then post). Transport errors never reach the
        generator: the hub classifies them with :meth:`classify` and stops."""
        outcome: Outcome = Delivered()
        for request in self.build_requests(event, config, now=now):
            response = yield request
            outcome = self.classify(response, None)
            if not isinstance(outcome, Delivered):
                return outcome
        return outcome

    def classify(self, response: OutboundResponse | None, error: Exception | None) -> Outcome:
        """Connect errors, timeouts, 408, 429 and 5xx retry (honouring Retry-After);
        other 4xx fail at once; 2xx is delivered."""
        return classify_http(response, error)

    # sessions: OAuth tokens, CSRF tokens. The hub caches a session per subscription,
    # adds it to every request, and renews it once when a response says it expired.
    def session_request(self, config: dict[str, Any]) -> OutboundRequest | None:
        """The request that opens a session, or ``None`` when the connector needs none."""
        return None

    def open_session(self, config: dict[str, Any], response: OutboundResponse) -> Session | Outcome:
        """Read the session out of the answer to :meth:`session_request`."""
        outcome = self.classify(response, None)
        if not isinstance(outcome, Delivered):
            return outcome
        return Session(headers={})

    def session_expired(self, response: OutboundResponse) -> bool:
        """Whether ``response`` says the session's credentials are no longer good."""
        return False

    def authorize(self, request: OutboundRequest, session: Session) -> OutboundRequest:
        return request.with_headers(session.headers) if session.headers else request

    # ---------------------------------------------------------------- inbound
    def parse(
        self, operation: Operation, body: bytes, headers: Mapping[str, str]
    ) -> InboundCommand:
        """Read a vendor request. Refuse garbage with :func:`~hub.domain.errors.refuse`
        (``malformed_json``, ``malformed_xml``, ``invalid_pos_payload`` …), never with
        another exception."""
        raise NotImplementedError

    def reply(
        self, operation: Operation, command: InboundCommand | None, result: InboundResult
    ) -> InboundReply:
        """The vendor's reply to ``result``; ``command`` is ``None`` when the request
        could not be read."""
        raise NotImplementedError

    def variant(self, name: str) -> Connector:
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
        }
        if self.consumes:
            about["consumes"] = list(self.consumes)
        if self.operations:
            about["operations"] = list(self.operations)
            about["media_types"] = list(self.media_types)
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


__all__ = ["Connector", "Failed", "Retry", "config_error", "package_schema"]

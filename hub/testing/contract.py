"""The connector contract: what the hub expects of every connector, as pytest tests.

A plugin package proves its connector with a few lines::

    from hub.testing import ConnectorContract

    class TestMyCrm(ConnectorContract):
        connector = MyCrmConnector()
        config = {"url": "https://crm.example/api", "token": "t0k3n"}

The kit branches on the connector's side. An :class:`~hub.connectors.OutboundConnector`
is driven through the hub's own exchange runner with a scripted transport (no network);
override :meth:`ConnectorContract.respond_ok` when the connector reads what the
receiver answers (a token, a looked-up record). An
:class:`~hub.connectors.InboundConnector` sets :attr:`ConnectorContract.inbound_samples`
(one valid payload per operation). The checks of the other side pass as not applicable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from jsonschema import Draft202012Validator

from hub.connectors import (
    REQUEST_ID_MAX,
    AnyConnector,
    Delivered,
    InboundConnector,
    InboundReply,
    InboundResult,
    Operation,
    OutboundConnector,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
)
from hub.delivery.exchange import SessionCache, Trace, run_exchange
from hub.domain.errors import DomainError
from hub.services.problems import status_for
from hub.testing.events import sample_events
from hub.testing.payloads import GARBAGE, REFUSALS, SUCCESS
from hub.testing.transport import FAILURES, NOW, ScriptedTransport


def _wire(req: OutboundRequest) -> tuple[str, str, tuple[tuple[str, str], ...], bytes]:
    return (req.method, req.url, tuple(sorted(req.headers.items())), req.body)


class ConnectorContract:
    """Base test class; subclass it as ``Test…`` and set :attr:`connector` and
    :attr:`config`."""

    connector: ClassVar[AnyConnector]
    config: ClassVar[dict[str, Any]] = {}
    # outbound: events to deliver (default: the hub's samples of every consumed type)
    events: ClassVar[list[dict[str, Any]] | None] = None
    # inbound: one valid payload per operation, and the content type they are sent with
    inbound_samples: ClassVar[Mapping[str, bytes]] = {}
    inbound_headers: ClassVar[Mapping[str, str]] = {}
    garbage: ClassVar[tuple[bytes, ...]] = GARBAGE

    # ---------------------------------------------------------------- hooks
    def respond_ok(self, request: OutboundRequest) -> OutboundResponse:
        """A receiver's successful answer to ``request``; override when the connector
        reads answers (session tokens, look-ups)."""
        return OutboundResponse(200, {"content-type": "application/json"}, b"{}")

    # ---------------------------------------------------------------- helpers
    def _impl(self) -> AnyConnector:
        c = self.connector
        return c() if isinstance(c, type) else c

    def _outbound(self) -> OutboundConnector | None:
        """The connector when it delivers events (the outbound checks apply)."""
        impl = self._impl()
        return impl if isinstance(impl, OutboundConnector) and impl.consumes else None

    def _inbound(self) -> InboundConnector | None:
        """The connector when it serves POS operations (the inbound checks apply)."""
        impl = self._impl()
        return impl if isinstance(impl, InboundConnector) else None

    def _events(self) -> list[dict[str, Any]]:
        if self.events is not None:
            return list(self.events)
        impl = self._outbound()
        if impl is None:
            return []
        from hub.services.outbox import EVENT_TYPES

        types = EVENT_TYPES if "*" in impl.consumes else impl.consumes
        return [e for t in types for e in sample_events(t)]

    def deliver(
        self, event: dict[str, Any], transport: ScriptedTransport | None = None
    ) -> tuple[Outcome, Trace, ScriptedTransport]:
        """Run one delivery through the hub's exchange runner, fresh session cache."""
        transport = transport or ScriptedTransport(self.respond_ok)
        outcome, trace = run_exchange(
            self._impl(),  # an inbound connector: Failed, which the checks then report
            event,
            dict(self.config),
            now=NOW,
            transport=transport,
            sessions=SessionCache(),
            session_owner="contract",
        )
        return outcome, trace, transport

    def _session_count(self) -> int:
        impl = self._outbound()
        return 0 if impl is None or impl.session_request(dict(self.config)) is None else 1

    def _delivering_events(self) -> list[tuple[dict[str, Any], int]]:
        """Events that cause requests, with how many (session request excluded)."""
        found = []
        for event in self._events():
            outcome, _trace, transport = self.deliver(event)
            assert isinstance(outcome, Delivered), (
                f"{event['type']} {event['id']}: {outcome} with respond_ok answers"
            )
            # the session is opened only when there is something to send
            steps = len(transport.sent) - self._session_count() if transport.sent else 0
            if steps > 0:
                found.append((event, steps))
        return found

    # ---------------------------------------------------------------- the contract
    def test_contract_is_an_inbound_or_outbound_connector(self) -> None:
        impl = self._impl()
        assert isinstance(impl, InboundConnector | OutboundConnector), (
            f"{type(impl).__name__}: subclass hub.connectors.OutboundConnector (it delivers "
            "events) or hub.connectors.InboundConnector (it serves POS operations)"
        )

    def test_contract_describes_itself(self) -> None:
        impl = self._impl()
        assert impl.name and impl.name == impl.name.strip() and " " not in impl.name
        assert impl.kind, "kind: erp, crm, pos, webhook …"
        assert impl.version, "version"
        inbound = self._inbound()
        does = self._outbound() or (inbound and inbound.operations) or impl.variants()
        assert does, "consumes events, serves POS operations or has variants"
        about = impl.describe()
        assert about["name"] == impl.name and about["config_schema"] == impl.config_schema

    def test_contract_config_schema_is_valid_json_schema(self) -> None:
        Draft202012Validator.check_schema(self._impl().config_schema)

    def test_contract_sample_config_passes_its_schema(self) -> None:
        self._impl().check_config(dict(self.config))

    def test_contract_bad_config_is_refused_naming_the_field(self) -> None:
        impl = self._impl()
        if not impl.config_schema.get("required"):
            impl.check_config({})  # nothing required: an empty config must do
            return
        with pytest.raises(DomainError) as info:
            impl.check_config({})
        assert info.value.code == "invalid_config"
        assert info.value.extra["errors"][0]["field"].startswith("config")

    def test_contract_secrets_are_write_only(self) -> None:
        impl = self._impl()
        shown = impl.redact(dict(self.config))
        for name in impl.secret_fields:
            if name in self.config:
                assert shown[name] == "***", name

    # outbound
    def test_contract_translation_is_deterministic(self) -> None:
        if self._outbound() is None:
            return
        for event in self._events():
            *_, first = self.deliver(event)
            *_, second = self.deliver(event)
            assert [_wire(r) for r in first.sent] == [_wire(r) for r in second.sent]

    def test_contract_event_id_is_the_dedupe_key(self) -> None:
        if self._outbound() is None:
            return
        delivering = self._delivering_events()
        assert delivering, "no sample event caused a request: set `events` or check `consumes`"
        for event, _steps in delivering:
            *_, transport = self.deliver(event)
            sent = transport.sent[self._session_count() :]
            carried = [
                r
                for r in sent
                if event["id"] in r.url
                or event["id"].encode() in r.body
                or any(event["id"] in v for v in r.headers.values())
            ]
            assert carried, f"no request of {event['type']} carries the event id {event['id']}"

    @pytest.mark.parametrize("name,failure,expected", FAILURES, ids=[f[0] for f in FAILURES])
    def test_contract_every_answer_is_classified(
        self, name: str, failure: OutboundResponse | Exception, expected: type
    ) -> None:
        if self._outbound() is None:
            return
        skip = self._session_count()
        for event, steps in self._delivering_events():
            for step in range(skip, skip + steps):
                transport = ScriptedTransport(self.respond_ok, fail_at=step, failure=failure)
                outcome, _trace, _ = self.deliver(event, transport)
                where = f"{event['type']} step {step}: {name}"
                assert isinstance(outcome, expected), f"{where} gave {outcome}"
                assert not outcome.reason.startswith("connector error"), (  # type: ignore[union-attr]
                    f"{where}: the connector raised instead of classifying: {outcome}"
                )
                if name == "HTTP 429":
                    assert isinstance(outcome, Retry) and outcome.after == 30, where

    def test_contract_a_failing_session_is_classified(self) -> None:
        if self._outbound() is None or not self._session_count():
            return
        event = self._delivering_events()[0][0]
        for _name, failure, expected in FAILURES:
            transport = ScriptedTransport(self.respond_ok, fail_at=0, failure=failure)
            outcome, *_ = self.deliver(event, transport)
            assert isinstance(outcome, expected), f"session {_name} gave {outcome}"

    def test_contract_odd_answers_never_crash_the_connector(self) -> None:
        if self._outbound() is None:
            return
        odd = (
            OutboundResponse(200, {}, b"not json at all"),
            OutboundResponse(200, {"content-type": "application/json"}, b"[]"),
            OutboundResponse(204, {}, b""),
        )
        skip = self._session_count()
        for event, steps in self._delivering_events():
            for step in range(skip, skip + steps):
                for answer in odd:
                    transport = ScriptedTransport(self.respond_ok, fail_at=step, failure=answer)
                    outcome, *_ = self.deliver(event, transport)
                    reason = getattr(outcome, "reason", "")
                    assert not reason.startswith("connector error"), (
                        f"{event['type']} step {step}, {answer.body!r}: {outcome}"
                    )

    # inbound
    def _parse(self, operation: str, body: bytes) -> Any:
        op: Operation = operation  # type: ignore[assignment]
        impl = self._inbound()
        assert impl is not None, f"{self._impl().name} is not an inbound connector"
        return impl.parse(op, body, dict(self.inbound_headers))

    def test_contract_every_operation_has_a_sample_that_parses(self) -> None:
        impl = self._inbound()
        if impl is None:
            return
        for operation in impl.operations:
            assert operation in self.inbound_samples, f"inbound_samples lacks {operation!r}"
            command = self._parse(operation, self.inbound_samples[operation])
            assert command.operation == operation
            assert command == self._parse(operation, self.inbound_samples[operation])
            if command.request_id is not None:
                assert 0 < len(command.request_id) <= REQUEST_ID_MAX

    def test_contract_garbage_is_refused_with_an_error_not_an_exception(self) -> None:
        impl = self._inbound()
        if impl is None:
            return
        for operation in impl.operations:
            for body in self.garbage:
                with pytest.raises(DomainError) as info:
                    self._parse(operation, body)
                assert status_for(info.value.code) in (400, 413, 415, 422), (operation, body[:40])

    def test_contract_replies_in_kind(self) -> None:
        impl = self._inbound()
        if impl is None:
            return
        for operation in impl.operations:
            command = self._parse(operation, self.inbound_samples[operation])
            results: list[InboundResult] = [SUCCESS[operation], *REFUSALS]
            for result in results:
                for cmd in (command, None):
                    reply = impl.reply(operation, cmd, result)
                    assert isinstance(reply, InboundReply)
                    assert 100 <= reply.status <= 599 and reply.media_type
                    assert isinstance(reply.body, bytes) and reply.body
            refused = impl.reply(operation, command, REFUSALS[0])
            assert refused.body != impl.reply(operation, command, SUCCESS[operation]).body

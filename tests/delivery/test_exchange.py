"""The hub's exchange runner (hub/delivery/exchange.py): sessions opened lazily, cached,
renewed once; credentials never logged; a misbehaving connector fails, never crashes."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from hub.connectors import (
    MAX_EXCHANGE_STEPS,
    Delivered,
    Exchange,
    Failed,
    OutboundConnector,
    OutboundRequest,
    OutboundResponse,
    Retry,
    Session,
)
from hub.delivery.exchange import SESSION_BODY_HIDDEN, SessionCache, check_connection, run_exchange
from hub.testing import NOW, ScriptedTransport, sample_event

TOKEN = b'{"access_token": "tok-SECRET-123"}'


class TokenConnector(OutboundConnector):
    """Posts once per event with a bearer token; 401 means the token expired."""

    name: ClassVar[str] = "test.token"
    kind: ClassVar[str] = "crm"
    consumes: ClassVar[tuple[str, ...]] = ("coupon.redeemed",)

    def session_request(self, config: dict[str, Any]) -> OutboundRequest:
        return OutboundRequest("POST", "https://crm.example/token", body=b"grant_type=x")

    def open_session(self, config: dict[str, Any], response: OutboundResponse) -> Session | Any:
        if response.status != 200:
            return Failed(f"token refused: HTTP {response.status}")
        return Session({"authorization": "Bearer " + response.json()["access_token"]}, 60)

    def session_expired(self, response: OutboundResponse) -> bool:
        return response.status == 401

    def build_requests(self, event: dict[str, Any], config: dict[str, Any], *, now: Any) -> Any:
        if event["data"].get("customer") is None:
            return []
        return [OutboundRequest("POST", "https://crm.example/points", {"x-id": event["id"]})]


def answer(request: OutboundRequest) -> OutboundResponse:
    if request.url.endswith("/token"):
        return OutboundResponse(200, {}, TOKEN)
    return OutboundResponse(201, {}, b"{}")


def run(event: dict[str, Any], transport: Any, sessions: SessionCache | None = None) -> Any:
    return run_exchange(
        TokenConnector(),
        event,
        {},
        now=NOW,
        transport=transport,
        sessions=sessions or SessionCache(),
        session_owner="sub_1",
    )


def test_a_session_is_opened_once_and_reused():
    sessions, transport = SessionCache(), ScriptedTransport(answer)
    event = sample_event("coupon.redeemed")
    for _ in range(3):
        outcome, _trace = run(event, transport, sessions)
        assert outcome == Delivered()
    assert [r.url.rsplit("/", 1)[1] for r in transport.sent] == [
        "token",
        "points",
        "points",
        "points",
    ]
    assert transport.sent[1].headers["authorization"] == "Bearer tok-SECRET-123"


def test_nothing_to_send_opens_no_session():
    event = sample_event("coupon.redeemed")
    event["data"]["customer"] = None
    transport = ScriptedTransport(answer)
    assert run(event, transport)[0] == Delivered() and transport.sent == []


def test_an_expired_session_is_renewed_once_and_the_request_resent():
    sessions = SessionCache()
    calls: list[str] = []

    def expiring(request: OutboundRequest) -> OutboundResponse:
        calls.append(request.url)
        if request.url.endswith("/points") and calls.count(request.url) == 1:
            return OutboundResponse(401, {}, b"expired")
        return answer(request)

    outcome, _ = run(sample_event("coupon.redeemed"), expiring, sessions)
    assert outcome == Delivered()
    assert [c.rsplit("/", 1)[1] for c in calls] == ["token", "points", "token", "points"]


def test_a_session_that_stays_refused_is_not_renewed_forever():
    def always_401(request: OutboundRequest) -> OutboundResponse:
        return answer(request) if request.url.endswith("/token") else OutboundResponse(401, {}, b"")

    transport = ScriptedTransport(always_401)
    outcome, _ = run(sample_event("coupon.redeemed"), transport)
    assert isinstance(outcome, Failed) and len(transport.sent) == 4  # token, post, token, post


def test_the_token_answer_is_never_the_logged_body():
    refused = ScriptedTransport(lambda r: OutboundResponse(400, {}, TOKEN))
    outcome, trace = run(sample_event("coupon.redeemed"), refused)
    assert isinstance(outcome, Failed)
    assert trace.body == SESSION_BODY_HIDDEN and b"SECRET" not in trace.body
    # and a later failure logs the failing request's own answer
    failing = ScriptedTransport(answer, fail_at=1, failure=OutboundResponse(500, {}, b"boom"))
    outcome, trace = run(sample_event("coupon.redeemed"), failing)
    assert isinstance(outcome, Retry) and trace.body == b"boom"


def test_transport_errors_are_classified_by_the_connector():
    timeout = ScriptedTransport(answer, fail_at=1, failure=httpx.ReadTimeout("slow"))
    outcome, trace = run(sample_event("coupon.redeemed"), timeout)
    assert isinstance(outcome, Retry) and "ReadTimeout" in (trace.error or "")


class Broken(OutboundConnector):
    name: ClassVar[str] = "test.broken"
    kind: ClassVar[str] = "crm"
    consumes: ClassVar[tuple[str, ...]] = ("*",)
    mode: str = "raise"

    def exchange(self, event: dict[str, Any], config: dict[str, Any], *, now: Any) -> Exchange:
        if self.mode == "raise":
            raise KeyError("customer")
        if self.mode == "endless":
            while True:
                yield OutboundRequest("GET", "https://x.example/")
        yield OutboundRequest("GET", "https://x.example/")
        return "not an outcome"  # type: ignore[return-value]


def test_a_misbehaving_connector_fails_the_delivery_instead_of_crashing():
    event = sample_event("coupon.redeemed")
    for mode, words in (
        ("raise", "KeyError"),
        ("endless", f"more than {MAX_EXCHANGE_STEPS}"),
        ("nonsense", "not an outcome"),
    ):
        broken = Broken()
        broken.mode = mode
        outcome, _ = run_exchange(
            broken,
            event,
            {},
            now=NOW,
            transport=ScriptedTransport(answer),
            sessions=SessionCache(),
            session_owner="s",
        )
        assert isinstance(outcome, Failed) and words in outcome.reason, (mode, outcome)


def test_sessions_expire_a_little_early():
    now = [0.0]
    cache = SessionCache(clock=lambda: now[0])
    cache.put("k", Session({"a": "b"}, expires_in=100))
    now[0] = 89
    assert cache.get("k") is not None
    now[0] = 91
    assert cache.get("k") is None
    cache.put("k", Session({"a": "b"}))  # no lifetime: until the receiver says otherwise
    now[0] = 10**9
    assert cache.get("k") is not None


def test_check_connection_opens_the_session_and_sends_the_checks():
    class Checked(TokenConnector):
        def check_requests(self, config: dict[str, Any]) -> list[OutboundRequest]:
            return [OutboundRequest("GET", "https://crm.example/me")]

    transport = ScriptedTransport(answer)
    outcome, trace = check_connection(Checked(), {}, transport=transport)
    assert outcome == Delivered() and [r.url for r, _ in trace.steps][-1].endswith("/me")
    assert transport.sent[1].headers["authorization"].startswith("Bearer ")
    refused = ScriptedTransport(lambda r: OutboundResponse(403, {}, b""))
    assert isinstance(check_connection(Checked(), {}, transport=refused)[0], Failed)


def test_an_inbound_connector_delivers_nothing_and_has_nothing_to_check():
    """The runner takes any registered connector; only an outbound one sends."""
    from connectors.pos.native import NativePosConnector

    transport = ScriptedTransport(answer)
    outcome, trace = run_exchange(
        NativePosConnector(),
        sample_event("coupon.redeemed"),
        {},
        now=NOW,
        transport=transport,
        sessions=SessionCache(),
        session_owner="sub_1",
    )
    assert isinstance(outcome, Failed) and "inbound connector" in outcome.reason
    assert transport.sent == [] and trace.steps == []
    outcome, trace = check_connection(NativePosConnector(), {}, transport=transport)
    assert outcome == Delivered() and transport.sent == [] and trace.steps == []

"""erp.sap: SAP S/4HANA goods movements through API_MATERIAL_DOCUMENT_SRV."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from connectors.erp.sap import SapConnector, classify_sap, cookies_of, header_text, sap_error
from hub.connectors import (
    Delivered,
    Failed,
    OutboundRequest,
    OutboundResponse,
    Retry,
    Session,
)
from hub.delivery.exchange import SessionCache, Trace, check_connection, run_exchange
from hub.domain.errors import DomainError
from hub.testing import NOW, ScriptedTransport, sample_event
from tests.connectors.erp import sap_fixtures as sap
from tests.connectors.erp.sap_fixtures import BASE, CONFIG

SAP = SapConnector()
GIFT = sample_event("coupon.redeemed", kind="exchange")
CASH = sample_event("coupon.redeemed", kind="threshold")
GIFT_BACK = sample_event("coupon.redemption_reversed", kind="exchange")
TEXT = header_text(GIFT["id"])
BASIC = "Basic " + base64.b64encode(b"HUB_COMM_USER:Welcome-1-to-S4").decode()
NOV_25 = "/Date(1795564800000)/"  # 2026-11-25T00:00:00Z in milliseconds


def deliver(
    event: dict[str, Any],
    answer: Any = sap.realistic,
    config: dict[str, Any] | None = None,
    sessions: SessionCache | None = None,
) -> tuple[Any, Trace, ScriptedTransport]:
    transport = answer if isinstance(answer, ScriptedTransport) else ScriptedTransport(answer)
    outcome, trace = run_exchange(
        SAP,
        event,
        copy.deepcopy(config if config is not None else CONFIG),
        now=NOW,
        transport=transport,
        sessions=sessions or SessionCache(),
        session_owner="sub_test",
    )
    return outcome, trace, transport


def script(*answers: OutboundResponse) -> ScriptedTransport:
    """Answer the n-th request with the n-th answer."""
    queue = list(answers)

    def answer(request: OutboundRequest) -> OutboundResponse:
        assert queue, f"unexpected request {request.method} {request.url}"
        return queue.pop(0)

    return ScriptedTransport(answer)


def body_of(request: OutboundRequest) -> Any:
    return json.loads(request.body)


def headers_of(request: OutboundRequest) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


# ------------------------------------------------------------------ the wire
def test_a_gift_redemption_fetches_a_token_looks_up_and_posts_a_201_movement() -> None:
    outcome, _trace, transport = deliver(GIFT)
    assert outcome == Delivered()
    fetch, lookup, post = transport.sent

    assert (fetch.method, fetch.url) == ("GET", f"{BASE}/?sap-client=100")
    assert headers_of(fetch) == {
        "authorization": BASIC,
        "x-csrf-token": "Fetch",
        "accept": "application/json",
    }

    assert lookup.method == "GET"
    assert lookup.url == (
        f"{BASE}/A_MaterialDocumentHeader?$filter=MaterialDocumentHeaderText%20eq%20"
        f"'{TEXT}'&$format=json&$top=1&sap-client=100"
    )
    query = parse_qs(urlsplit(lookup.url).query)
    assert query["$filter"] == [f"MaterialDocumentHeaderText eq '{TEXT}'"]
    assert headers_of(lookup)["x-hub-event-id"] == GIFT["id"]

    assert (post.method, post.url) == ("POST", f"{BASE}/A_MaterialDocumentHeader?sap-client=100")
    assert headers_of(post) == {
        "authorization": BASIC,
        "content-type": "application/json",
        "accept": "application/json",
        "x-hub-event-id": GIFT["id"],
        "x-csrf-token": sap.TOKEN,
        "cookie": f"{sap.SESSION_COOKIE}; {sap.USER_CONTEXT}",
    }
    assert body_of(post) == {
        "GoodsMovementCode": "03",
        "PostingDate": NOV_25,
        "DocumentDate": NOV_25,
        "MaterialDocumentHeaderText": TEXT,
        "ReferenceDocument": "A-1001",
        "to_MaterialDocumentItem": {
            "results": [
                {
                    "Material": "TG-GIFT-0001",
                    "Plant": "1010",
                    "StorageLocation": "0001",
                    "GoodsMovementType": "201",
                    "QuantityInEntryUnit": "1",
                    "EntryUnit": "EA",
                    "CostCenter": "10101101",
                    "MaterialDocumentItemText": GIFT["id"],
                }
            ]
        },
    }


def test_the_header_text_is_the_event_id_s_last_25_characters() -> None:
    assert GIFT["id"][-25:] == TEXT and len(TEXT) == 25
    assert header_text("evt_short") == "evt_short"


def test_a_quote_in_the_event_id_is_escaped_in_the_odata_filter() -> None:
    event = {**copy.deepcopy(GIFT), "id": "evt_o'brien"}
    _, _, transport = deliver(event)
    filter_ = parse_qs(urlsplit(transport.sent[1].url).query)["$filter"]
    assert filter_ == ["MaterialDocumentHeaderText eq 'evt_o''brien'"]


def test_a_reversal_posts_the_202_movement_with_the_reversal_s_own_text() -> None:
    outcome, _, transport = deliver(GIFT_BACK)
    assert outcome == Delivered()
    document = body_of(transport.sent[-1])
    assert document["MaterialDocumentHeaderText"] == GIFT_BACK["id"][-25:]
    [item] = document["to_MaterialDocumentItem"]["results"]
    assert (item["GoodsMovementType"], item["Material"], item["QuantityInEntryUnit"]) == (
        "202",
        "TG-GIFT-0001",
        "1",
    )
    assert item["CostCenter"] == "10101101"


def test_the_posting_date_is_the_local_calendar_date_of_occurred_at() -> None:
    late = {**copy.deepcopy(GIFT), "occurred_at": "2026-11-25T20:00:00Z"}  # 04:00 on the 26th
    _, _, transport = deliver(late)
    assert body_of(transport.sent[-1])["PostingDate"] == "/Date(1795651200000)/"
    _, _, transport = deliver(late, config={**CONFIG, "timezone": "UTC"})
    assert body_of(transport.sent[-1])["PostingDate"] == NOV_25


def test_configured_movement_types_units_and_store_cost_centers() -> None:
    event = copy.deepcopy(GIFT)
    event["data"]["store"] = "BJ-002"
    config = {
        **CONFIG,
        "goods_movement_type": "551",
        "entry_unit": "PC",
        "sku_map": {},
        "sap_client": "200",
    }
    _, _, transport = deliver(event, config=config)
    assert transport.sent[-1].url.endswith("?sap-client=200")
    [item] = body_of(transport.sent[-1])["to_MaterialDocumentItem"]["results"]
    assert item == {
        "Material": "SKU-GIFT-1",
        "Plant": "1020",
        "StorageLocation": "0002",
        "GoodsMovementType": "551",
        "QuantityInEntryUnit": "1",
        "EntryUnit": "PC",
        "CostCenter": "10102202",
        "MaterialDocumentItemText": GIFT["id"],
    }


def test_order_lines_post_one_document_with_an_item_each() -> None:
    outcome, _, transport = deliver(CASH, config={**CONFIG, "move_stock_for_lines": True})
    assert outcome == Delivered()
    items = body_of(transport.sent[-1])["to_MaterialDocumentItem"]["results"]
    assert [(i["Material"], i["QuantityInEntryUnit"]) for i in items] == [
        ("SKU-TEA-1", "2"),
        ("TG-GIFT-0001", "1"),
    ]


def test_without_sap_client_no_query_parameter_and_an_api_key_header() -> None:
    config = {k: v for k, v in CONFIG.items() if k not in ("sap_client", "username", "password")}
    config["api_key"] = "aPiKeY-from-the-hub"
    SAP.check_config(copy.deepcopy(config))
    _, _, transport = deliver(GIFT, config=config)
    assert transport.sent[0].url == f"{BASE}/"
    assert transport.sent[-1].url == f"{BASE}/A_MaterialDocumentHeader"
    for request in transport.sent:
        assert headers_of(request)["apikey"] == "aPiKeY-from-the-hub"
        assert "authorization" not in headers_of(request)


def test_translation_is_deterministic() -> None:
    first = [(r.method, r.url, dict(r.headers), r.body) for r in deliver(GIFT)[2].sent]
    second = [(r.method, r.url, dict(r.headers), r.body) for r in deliver(GIFT)[2].sent]
    assert first == second


# ------------------------------------------------------------------ nothing to move
def test_a_threshold_coupon_yields_no_request() -> None:
    conversation = SAP.exchange(CASH, copy.deepcopy(CONFIG), now=NOW)
    with pytest.raises(StopIteration) as done:
        next(conversation)
    assert done.value.value == Delivered()
    assert SAP.build_requests(CASH, copy.deepcopy(CONFIG), now=NOW) == []


def test_a_threshold_coupon_sends_nothing_once_the_session_is_open() -> None:
    sessions = SessionCache()
    deliver(GIFT, sessions=sessions)  # opens the session
    outcome, _, transport = deliver(CASH, sessions=sessions)
    assert outcome == Delivered() and transport.sent == []


def test_with_a_cold_session_cache_nothing_to_move_sends_nothing() -> None:
    # the hub opens a connector's session only once the exchange yields a request
    # (hub/delivery/exchange.py `_run`): no stock to move, no CSRF fetch either
    outcome, _, transport = deliver(CASH)
    assert outcome == Delivered()
    assert transport.sent == []


def test_an_unmapped_store_fails_naming_it_without_posting() -> None:
    event = copy.deepcopy(GIFT)
    event["data"]["store"] = "GZ-009"
    outcome, _, transport = deliver(event)
    assert isinstance(outcome, Failed)
    assert "'GZ-009'" in outcome.reason and "config.plants" in outcome.reason
    assert all(sap.is_fetch(r) for r in transport.sent)
    outcome, _, _ = deliver(event, config={**CONFIG, "unmapped_store": "skip"})
    assert outcome == Delivered()


# ------------------------------------------------------------------ idempotency
def test_a_replay_finds_the_posted_document_and_does_not_post_again() -> None:
    outcome, _, transport = deliver(GIFT, script(sap.csrf_fetched(), sap.found(TEXT)))
    assert outcome == Delivered()
    assert [r.method for r in transport.sent] == ["GET", "GET"]


def test_a_lost_answer_then_a_replay_posts_exactly_once() -> None:
    posted: list[OutboundRequest] = []

    def sap_system(request: OutboundRequest) -> OutboundResponse:
        if sap.is_fetch(request):
            return sap.csrf_fetched()
        if request.method == "GET":
            return sap.found(TEXT) if posted else sap.no_document()
        posted.append(request)
        raise httpx.ReadTimeout("the answer was lost")

    first, *_ = deliver(GIFT, sap_system)
    assert isinstance(first, Retry)
    second, _, transport = deliver(GIFT, sap_system)
    assert second == Delivered()
    assert len(posted) == 1 and transport.sent[-1].method == "GET"


@pytest.mark.parametrize(
    "answer",
    [
        OutboundResponse(200, {}, b"<html>maintenance</html>"),
        OutboundResponse(200, {"content-type": "application/json"}, b"[]"),
        OutboundResponse(200, {"content-type": "application/json"}, b'{"d": {}}'),
        OutboundResponse(204, {}, b""),
        OutboundResponse(200, {}, b'{"d": ' * 5000 + b"}" * 5000),
    ],
)
def test_a_look_up_that_answers_no_odata_result_retries_instead_of_posting_blind(
    answer: OutboundResponse,
) -> None:
    outcome, _, transport = deliver(GIFT, script(sap.csrf_fetched(), answer))
    assert isinstance(outcome, Retry) and "look-up" in outcome.reason
    assert [r.method for r in transport.sent] == ["GET", "GET"]


# ------------------------------------------------------------------ CSRF session
def test_open_session_takes_the_token_and_the_cookies() -> None:
    session = SAP.open_session(CONFIG, sap.csrf_fetched())
    assert session == Session(
        headers={"x-csrf-token": sap.TOKEN, "Cookie": f"{sap.SESSION_COOKIE}; {sap.USER_CONTEXT}"}
    )


def test_a_fetch_answered_without_a_token_fails_clearly() -> None:
    outcome = SAP.open_session(CONFIG, OutboundResponse(200, {}, b"{}"))
    assert isinstance(outcome, Failed) and "x-csrf-token" in outcome.reason


def test_a_fetch_refused_is_classified() -> None:
    assert isinstance(SAP.open_session(CONFIG, sap.UNAUTHORIZED), Failed)
    assert isinstance(SAP.open_session(CONFIG, OutboundResponse(503, {}, b"")), Retry)


@pytest.mark.parametrize("value", ["Required", "required", " REQUIRED "])
def test_a_403_asking_for_a_token_means_the_session_expired(value: str) -> None:
    assert SAP.session_expired(OutboundResponse(403, {"X-CSRF-Token": value}, b""))


@pytest.mark.parametrize(
    "response",
    [
        OutboundResponse(403, {}, b"forbidden"),
        OutboundResponse(401, {"x-csrf-token": "Required"}, b""),
        OutboundResponse(200, {"x-csrf-token": "Required"}, b""),
    ],
)
def test_other_answers_do_not_expire_the_session(response: OutboundResponse) -> None:
    assert not SAP.session_expired(response)


def test_an_expired_token_is_fetched_again_once_and_the_post_resent() -> None:
    transport = script(
        sap.csrf_fetched(sap.TOKEN),
        sap.no_document(),
        sap.csrf_required(),
        sap.csrf_fetched(sap.TOKEN_2),
        sap.created(TEXT),
    )
    outcome, _, transport = deliver(GIFT, transport)
    assert outcome == Delivered()
    kinds = ["fetch" if sap.is_fetch(r) else r.method for r in transport.sent]
    assert kinds == ["fetch", "GET", "POST", "fetch", "POST"]
    assert headers_of(transport.sent[2])["x-csrf-token"] == sap.TOKEN
    assert headers_of(transport.sent[4])["x-csrf-token"] == sap.TOKEN_2
    assert transport.sent[2].body == transport.sent[4].body


def test_a_token_refused_again_after_the_renewal_retries() -> None:
    transport = script(
        sap.csrf_fetched(),
        sap.no_document(),
        sap.csrf_required(),
        sap.csrf_fetched(sap.TOKEN_2),
        sap.csrf_required(),
    )
    outcome, *_ = deliver(GIFT, transport)
    assert isinstance(outcome, Retry) and "CSRF" in outcome.reason


def test_the_session_is_reused_across_deliveries() -> None:
    sessions = SessionCache()
    _, _, first = deliver(GIFT, sessions=sessions)
    _, _, second = deliver(GIFT_BACK, sessions=sessions)
    assert [sap.is_fetch(r) for r in first.sent] == [True, False, False]
    assert [sap.is_fetch(r) for r in second.sent] == [False, False]


@pytest.mark.parametrize(
    "header,expected",
    [
        ("a=1; path=/", [("a", "1")]),
        (
            "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; path=/, b=x=y; HttpOnly",
            [("a", "1"), ("b", "x=y")],
        ),
        (
            "MYSAPSSO2=AjQx%2bA%3d%3d; path=/; domain=.example,b=2",
            [("MYSAPSSO2", "AjQx%2bA%3d%3d"), ("b", "2")],
        ),
        ("", []),
        (None, []),
        ("garbage", []),
    ],
)
def test_cookies_are_read_from_a_combined_set_cookie(
    header: str | None, expected: list[tuple[str, str]]
) -> None:
    assert cookies_of(header) == expected


# ------------------------------------------------------------------ SAP's answers
def _post_answered(answer: OutboundResponse, config: dict[str, Any] | None = None) -> Any:
    outcome, *_ = deliver(GIFT, script(sap.csrf_fetched(), sap.no_document(), answer), config)
    return outcome


def test_201_created_is_delivered() -> None:
    assert _post_answered(sap.created(TEXT)) == Delivered()


@pytest.mark.parametrize(
    "answer,words",
    [
        (sap.DEFICIT, ["HTTP 400", "M7/021", "Deficit of SL Unrestricted-use"]),
        (sap.NOT_IN_PLANT, ["M3/351", "not maintained in plant 1010"]),
        (sap.sap_error(400, "M7/001", "Enter a quantity"), ["M7/001", "Enter a quantity"]),
        (sap.UNAUTHORIZED, ["HTTP 401"]),
        (sap.sap_error(403, "/IWFND/CM_BEC/001", "No authorization"), ["HTTP 403"]),
        (OutboundResponse(404, {}, b""), ["HTTP 404"]),
    ],
)
def test_business_errors_fail_with_sap_s_message(
    answer: OutboundResponse, words: list[str]
) -> None:
    outcome = _post_answered(answer)
    assert isinstance(outcome, Failed), outcome
    for word in words:
        assert word in outcome.reason


@pytest.mark.parametrize(
    "answer",
    [
        sap.LOCKED,
        sap.LOCKED_IN_DETAILS,
        sap.sap_error(400, "MC/601", "Object requested is currently locked by user BATCH_01"),
    ],
    ids=["M3/897", "M3/897 in details", "MC/601"],
)
def test_lock_errors_retry(answer: OutboundResponse) -> None:
    outcome = _post_answered(answer)
    assert isinstance(outcome, Retry) and "locked" in outcome.reason


def test_an_english_locked_by_message_retries_whatever_its_code() -> None:
    answer = sap.sap_error(400, "ZMM/042", "Batch 0000001 is being processed by user WMS_01")
    assert isinstance(_post_answered(answer), Retry)


def test_configured_message_codes_retry_too() -> None:
    answer = sap.sap_error(400, "ZMM/042", "Custom check: period closing is running")
    assert isinstance(_post_answered(answer), Failed)
    config = {**CONFIG, "retry_message_codes": ["zmm/042"]}
    assert isinstance(_post_answered(answer, config), Retry)


@pytest.mark.parametrize(
    "answer,after",
    [
        (OutboundResponse(503, {"Retry-After": "120"}, b"Service Unavailable"), 120.0),
        (OutboundResponse(429, {"retry-after": "30"}, b""), 30.0),
        (sap.XML_DUMP, None),
        (sap.sap_error(500, "/IWBEP/CM_MGW_RT/020", "Runtime error"), None),
        (OutboundResponse(504, {}, b"gateway timeout"), None),
    ],
)
def test_5xx_and_429_retry_honouring_retry_after(
    answer: OutboundResponse, after: float | None
) -> None:
    outcome = _post_answered(answer)
    assert isinstance(outcome, Retry) and outcome.after == after


def test_an_xml_error_body_is_read_for_its_code_and_message() -> None:
    error = sap_error(sap.XML_DUMP)
    assert error is not None
    assert error.codes == ("/IWFND/CM_BEC/026",)
    assert error.message == "Error while executing the RFC call"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"error": "bad request"}',
        b'{"error": {"code": 42, "message": null}}',
        b'{"error": {"innererror": {"errordetails": "no"}}}',
        b'{"error": {"innererror": {"errordetails": [null, 1, {"code": null}]}}}',
        b"<error><code>",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_odd_error_bodies_are_classified_not_raised(body: bytes) -> None:
    assert isinstance(classify_sap(OutboundResponse(400, {}, body)), Failed)
    assert isinstance(classify_sap(OutboundResponse(502, {}, body)), Retry)


def test_a_long_sap_message_is_cut() -> None:
    outcome = _post_answered(sap.sap_error(400, "M7/021", "x" * 5000))
    assert isinstance(outcome, Failed) and len(outcome.reason) <= 500


def test_a_redirect_fails() -> None:
    outcome = _post_answered(OutboundResponse(302, {"location": "https://login.example"}, b""))
    assert isinstance(outcome, Failed) and "redirect" in outcome.reason


# ------------------------------------------------------------------ connectivity check
def test_check_fetches_a_token_then_reads_metadata() -> None:
    transport = ScriptedTransport(sap.realistic)
    outcome, _ = check_connection(SAP, copy.deepcopy(CONFIG), transport=transport)
    assert outcome == Delivered()
    fetch, metadata = transport.sent
    assert sap.is_fetch(fetch)
    assert metadata.url == f"{BASE}/$metadata?sap-client=100"
    assert headers_of(metadata)["authorization"] == BASIC


def test_check_with_wrong_credentials_fails() -> None:
    outcome, _ = check_connection(SAP, copy.deepcopy(CONFIG), transport=script(sap.UNAUTHORIZED))
    assert isinstance(outcome, Failed) and "401" in outcome.reason


# ------------------------------------------------------------------ configuration
def test_the_sample_config_is_valid_and_secrets_are_write_only() -> None:
    SAP.check_config(copy.deepcopy(CONFIG))
    shown = SAP.redact({**CONFIG, "api_key": "k"})
    assert shown["password"] == "***" and shown["api_key"] == "***"
    assert shown["username"] == "HUB_COMM_USER"


def _refused(config: dict[str, Any]) -> str:
    with pytest.raises(DomainError) as info:
        SAP.check_config(config)
    assert info.value.code == "invalid_config"
    field: str = info.value.extra["errors"][0]["field"]
    return field


def test_credentials_are_required() -> None:
    config = {k: v for k, v in CONFIG.items() if k != "password"}
    assert _refused(config) == "config"


def test_a_201_movement_needs_a_cost_center_per_store() -> None:
    config = {k: v for k, v in copy.deepcopy(CONFIG).items() if k != "cost_center"}
    assert _refused(config) == "config.plants.SH-001.cost_center"
    SAP.check_config({**config, "goods_movement_type": "551", "reversal_movement_type": "552"})


def test_a_missing_cost_center_fails_the_delivery_when_the_config_was_not_checked() -> None:
    config = {k: v for k, v in CONFIG.items() if k != "cost_center"}
    outcome, _, transport = deliver(GIFT, config=config)
    assert isinstance(outcome, Failed) and "cost center" in outcome.reason
    assert all(sap.is_fetch(r) for r in transport.sent)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "../etc/passwd", ""])
def test_an_unknown_time_zone_is_refused(zone: str) -> None:
    assert _refused({**CONFIG, "timezone": zone}) == "config.timezone"


@pytest.mark.parametrize(
    "change,field",
    [
        ({"plants": {"SH-001": {"plant": "10100"}}}, "config.plants.SH-001"),
        ({"plants": {}}, "config.plants"),
        ({"sap_client": "1000"}, "config.sap_client"),
        ({"base_url": "ftp://s4"}, "config.base_url"),
        ({"unmapped_store": "ignore"}, "config.unmapped_store"),
        ({"surprise": True}, "config"),
    ],
)
def test_bad_config_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    assert _refused({**copy.deepcopy(CONFIG), **change}).startswith(field)


def test_a_refusal_never_echoes_the_password() -> None:
    with pytest.raises(DomainError) as info:
        SAP.check_config({**CONFIG, "password": ""})
    assert "Welcome" not in str(info.value.extra) and "Welcome" not in info.value.message


# ------------------------------------------------------------------ over HTTP (respx)
@pytest.fixture
def s4() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def _http_transport(client: httpx.Client) -> Any:
    def send(request: OutboundRequest) -> OutboundResponse:
        r = client.request(
            request.method,
            request.url,
            headers=dict(request.headers),
            content=request.body,
            timeout=request.timeout,
        )
        return OutboundResponse(r.status_code, dict(r.headers), r.content)

    return send


def _httpx(answer: OutboundResponse) -> httpx.Response:
    return httpx.Response(answer.status, headers=list(answer.headers.items()), content=answer.body)


def test_over_http_the_token_is_renewed_and_the_movement_posted(s4: respx.MockRouter) -> None:
    fetched = [sap.csrf_fetched(sap.TOKEN), sap.csrf_fetched(sap.TOKEN_2)]
    s4.get(f"{BASE}/", headers={"x-csrf-token": "Fetch"}).mock(
        side_effect=[_httpx(a) for a in fetched]
    )
    lookup = s4.get(f"{BASE}/A_MaterialDocumentHeader").mock(return_value=_httpx(sap.no_document()))
    post = s4.post(f"{BASE}/A_MaterialDocumentHeader").mock(
        side_effect=[_httpx(sap.csrf_required()), _httpx(sap.created(TEXT))]
    )
    with httpx.Client() as client:
        outcome, trace = run_exchange(
            SAP,
            copy.deepcopy(GIFT),
            copy.deepcopy(CONFIG),
            now=NOW,
            transport=_http_transport(client),
            sessions=SessionCache(),
            session_owner="sub_http",
        )
    assert outcome == Delivered() and trace.status == 201
    assert lookup.call_count == 1 and post.call_count == 2
    looked_up = lookup.calls[0].request
    assert looked_up.url.params["$filter"] == f"MaterialDocumentHeaderText eq '{TEXT}'"
    assert looked_up.url.params["sap-client"] == "100"
    first, second = (c.request for c in post.calls)
    assert first.headers["x-csrf-token"] == sap.TOKEN
    assert second.headers["x-csrf-token"] == sap.TOKEN_2
    # the session's cookies, not whatever the client's cookie jar collected
    assert second.headers["cookie"] == f"{sap.SESSION_COOKIE}; {sap.USER_CONTEXT}"
    assert second.headers["authorization"] == BASIC
    assert json.loads(second.content)["MaterialDocumentHeaderText"] == TEXT


def test_over_http_a_replay_does_not_post(s4: respx.MockRouter) -> None:
    s4.get(f"{BASE}/").mock(return_value=_httpx(sap.csrf_fetched()))
    s4.get(f"{BASE}/A_MaterialDocumentHeader").mock(return_value=_httpx(sap.found(TEXT)))
    post = s4.post(f"{BASE}/A_MaterialDocumentHeader").mock(return_value=_httpx(sap.created(TEXT)))
    with httpx.Client() as client:
        outcome, _ = run_exchange(
            SAP,
            copy.deepcopy(GIFT),
            copy.deepcopy(CONFIG),
            now=datetime.now(UTC),
            transport=_http_transport(client),
            sessions=SessionCache(),
            session_owner="sub_http",
        )
    assert outcome == Delivered() and not post.called


def test_over_http_a_refused_connection_retries(s4: respx.MockRouter) -> None:
    s4.get(f"{BASE}/").mock(side_effect=httpx.ConnectError("connection refused"))
    with httpx.Client() as client:
        outcome, _ = run_exchange(
            SAP,
            copy.deepcopy(GIFT),
            copy.deepcopy(CONFIG),
            now=NOW,
            transport=_http_transport(client),
            sessions=SessionCache(),
            session_owner="sub_http",
        )
    assert isinstance(outcome, Retry) and "ConnectError" in outcome.reason

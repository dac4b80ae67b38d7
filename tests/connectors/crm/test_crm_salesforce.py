"""crm.salesforce: exact request shapes, the OAuth session (fetched once, renewed after a
401), replay dedupe on ExternalTransactionNumber, and classification of Salesforce's
answers. Driven through the hub's exchange runner; one test goes through httpx + respx."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import respx

from connectors.crm.salesforce import SESSION_TTL, SalesforceConnector
from hub.connectors import Delivered, Failed, OutboundRequest, OutboundResponse, Retry
from hub.delivery.exchange import SessionCache, check_connection, run_exchange
from hub.domain.errors import DomainError
from hub.testing import NOW, sample_event

from .fakes import (
    SF_BASE,
    SF_CONFIG,
    SF_DATA,
    SF_SECRET,
    Script,
    json_response,
    query_of,
    salesforce_ok,
)

SF = SalesforceConnector()
CREDIT_URL = f"{SF_DATA}/connect/loyalty/programs/Inner%20Circle/program-processes/Credit%20Points"
DEBIT_URL = f"{SF_DATA}/connect/loyalty/programs/Inner%20Circle/program-processes/Debit%20Points"


def deliver(
    event: dict[str, Any],
    transport: Any,
    *,
    config: dict[str, Any] | None = None,
    sessions: SessionCache | None = None,
):
    return run_exchange(
        SF,
        event,
        dict(config or SF_CONFIG),
        now=NOW,
        transport=transport,
        sessions=sessions or SessionCache(),
        session_owner="sub_test",
    )


def cash() -> dict[str, Any]:
    return sample_event("coupon.redeemed", kind="threshold")


def unauthorized() -> OutboundResponse:
    return json_response(
        401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    )


# ---------------------------------------------------------------- request shapes
def test_a_redemption_is_token_then_journal_query_then_credit_process():
    event = cash()
    transport = Script([])
    outcome, _ = deliver(event, transport)
    assert outcome == Delivered()
    token, query, post = transport.sent

    assert (token.method, token.url) == ("POST", f"{SF_BASE}/services/oauth2/token")
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(token.body.decode())) == {
        "grant_type": "client_credentials",
        "client_id": "3MVG9-client-id",
        "client_secret": SF_SECRET,
    }
    assert token.body.decode().startswith("grant_type=client_credentials&client_id=")
    assert "authorization" not in {k.lower() for k in token.headers}

    assert query.method == "GET"
    assert query.url.startswith(f"{SF_DATA}/query?q=")
    assert query_of(query) == {
        "q": [
            "SELECT Id, Status FROM TransactionJournal "
            "WHERE ExternalTransactionNumber = 'evt_01JDK000000000000000000006'"
        ]
    }
    assert query.headers["Authorization"] == "Bearer 00DTEST!token-1"

    assert (post.method, post.url) == ("POST", CREDIT_URL)
    assert post.headers["Authorization"] == "Bearer 00DTEST!token-1"
    assert post.headers["content-type"] == "application/json"
    assert json.loads(post.body) == {
        "processParameters": [
            {
                "TransactionJournal": {
                    "ActivityDate": "2026-11-25T06:30:00Z",
                    "ExternalTransactionNumber": "evt_01JDK000000000000000000006",
                    "JournalTypeName": "Accrual",
                    "MembershipNumber": "C-0001",
                    "TransactionAmount": "108.00",
                    "Status": "Processed",
                },
                "PointsToCredit": 108,
            }
        ]
    }


def test_a_reversal_runs_the_debit_process_for_the_same_points():
    event = sample_event("coupon.redemption_reversed", kind="threshold")
    transport = Script([])
    outcome, _ = deliver(event, transport)
    assert outcome == Delivered()
    post = transport.sent[-1]
    assert post.url == DEBIT_URL
    assert json.loads(post.body) == {
        "processParameters": [
            {
                "TransactionJournal": {
                    "ActivityDate": "2026-11-25T07:00:00Z",
                    "ExternalTransactionNumber": "evt_01JDK000000000000000000009",
                    "JournalTypeName": "Redemption",
                    "MembershipNumber": "C-0001",
                    "TransactionAmount": "108.00",
                    "Status": "Processed",
                },
                "PointsToDebit": 108,
            }
        ]
    }


def test_optional_journal_fields_member_id_and_api_version():
    config = {
        **SF_CONFIG,
        "api_version": "v62.0",
        "journal_type": "Accrual",
        "journal_subtype": "Coupon Redemption",
        "member_lookup": "member_id",
        "currency_iso_code": "CNY",
        "timeout": 5,
        "points": {"templates": {"tpl_01JDK000000000000000000016": {"fixed": 50}}},
    }
    transport = Script([])
    outcome, _ = deliver(cash(), transport, config=config)
    assert outcome == Delivered()
    post = transport.sent[-1]
    assert post.url.startswith(f"{SF_BASE}/services/data/v62.0/connect/loyalty/programs/")
    assert post.timeout == 5.0
    params = json.loads(post.body)["processParameters"][0]
    assert params["PointsToCredit"] == 50
    journal = params["TransactionJournal"]
    assert journal["JournalSubTypeName"] == "Coupon Redemption"
    assert journal["MemberId"] == "C-0001" and "MembershipNumber" not in journal
    assert journal["CurrencyIsoCode"] == "CNY"


def test_the_debit_journal_subtype_is_its_own():
    config = {
        **SF_CONFIG,
        "journal_subtype": "A",
        "debit_journal_subtype": "B",
        "debit_journal_type": "Adjustment",
    }
    transport = Script([])
    deliver(sample_event("coupon.redemption_reversed"), transport, config=config)
    journal = json.loads(transport.sent[-1].body)["processParameters"][0]["TransactionJournal"]
    assert journal["JournalTypeName"] == "Adjustment"
    assert journal["JournalSubTypeName"] == "B"


def test_the_event_id_is_escaped_in_soql():
    event = cash()
    event["id"] = "evt_it's\\odd"
    transport = Script([])
    deliver(event, transport)
    assert query_of(transport.sent[1])["q"][0].endswith(
        "ExternalTransactionNumber = 'evt_it\\'s\\\\odd'"
    )


# ---------------------------------------------------------------- session
def test_the_token_is_fetched_once_and_reused_across_deliveries():
    sessions = SessionCache()
    transport = Script([])
    first, _ = deliver(cash(), transport, sessions=sessions)
    second, _ = deliver(
        sample_event("coupon.redeemed", kind="exchange"), transport, sessions=sessions
    )
    assert first == second == Delivered()
    tokens = [r for r in transport.sent if r.url.endswith("/oauth2/token")]
    assert len(tokens) == 1
    assert len(transport.sent) == 5  # token + 2 × (query + post)
    assert all(r.headers["Authorization"] == "Bearer 00DTEST!token-1" for r in transport.sent[1:])


def test_the_session_lives_an_hour():
    opened = SF.open_session(SF_CONFIG, salesforce_ok(SF.session_request(SF_CONFIG)))  # type: ignore[arg-type]
    assert opened.expires_in == SESSION_TTL == 3600.0  # type: ignore[union-attr]
    assert opened.headers == {"Authorization": "Bearer 00DTEST!token-1"}  # type: ignore[union-attr]


def test_a_401_renews_the_token_once_and_resends():
    sessions = SessionCache()
    transport = Script([])
    deliver(cash(), transport, sessions=sessions)  # token-1 cached
    transport = Script([unauthorized(), lambda r: salesforce_ok(r, token="00DTEST!token-2")])
    outcome, _ = deliver(
        sample_event("coupon.redeemed", kind="exchange"), transport, sessions=sessions
    )
    assert outcome == Delivered()
    query1, token, query2, post = transport.sent
    assert query1.headers["Authorization"] == "Bearer 00DTEST!token-1"
    assert token.url.endswith("/services/oauth2/token")
    assert query2.url == query1.url
    assert query2.headers["Authorization"] == "Bearer 00DTEST!token-2"
    assert post.headers["Authorization"] == "Bearer 00DTEST!token-2"
    # the renewed token is the cached one now
    transport = Script([])
    deliver(sample_event("coupon.redemption_reversed"), transport, sessions=sessions)
    assert transport.sent[0].headers["Authorization"] == "Bearer 00DTEST!token-2"


def test_a_401_that_survives_the_renewal_fails_with_salesforces_message():
    transport = Script([salesforce_ok, unauthorized(), salesforce_ok, unauthorized()])
    outcome, _ = deliver(cash(), transport)
    assert isinstance(outcome, Failed)
    assert "INVALID_SESSION_ID" in outcome.reason and "Session expired" in outcome.reason
    assert [r.url.endswith("/oauth2/token") for r in transport.sent] == [True, False, True, False]


def test_refused_client_credentials_fail_without_echoing_the_secret():
    answer = json_response(
        400, {"error": "invalid_client", "error_description": "invalid client credentials"}
    )
    outcome, _ = deliver(cash(), Script([answer]))
    assert isinstance(outcome, Failed)
    assert "invalid_client" in outcome.reason and SF_SECRET not in outcome.reason


def test_a_token_answer_without_access_token_fails():
    outcome, _ = deliver(cash(), Script([json_response(200, {"instance_url": SF_BASE})]))
    assert outcome == Failed("the token answer has no access_token (HTTP 200)")


def test_a_token_endpoint_outage_retries():
    outcome, _ = deliver(cash(), Script([json_response(503, [])]))
    assert isinstance(outcome, Retry)


# ---------------------------------------------------------------- idempotency
def test_an_existing_journal_means_delivered_without_posting():
    found = json_response(
        200,
        {
            "totalSize": 1,
            "done": True,
            "records": [
                {
                    "attributes": {"type": "TransactionJournal"},
                    "Id": "0lV000000000001",
                    "Status": "Processed",
                }
            ],
        },
    )
    transport = Script([salesforce_ok, found])
    outcome, _ = deliver(cash(), transport)
    assert outcome == Delivered()
    assert [r.method for r in transport.sent] == ["POST", "GET"]  # token, query: no process


def test_a_journal_in_error_does_not_count_as_applied():
    errored = json_response(
        200,
        {"totalSize": 1, "done": True, "records": [{"Id": "0lV000000000001", "Status": "Error"}]},
    )
    transport = Script([salesforce_ok, errored])
    outcome, _ = deliver(cash(), transport)
    assert outcome == Delivered()
    assert transport.sent[-1].url == CREDIT_URL


def test_a_query_answer_without_records_falls_back_to_total_size():
    transport = Script([salesforce_ok, json_response(200, {"totalSize": 2, "done": True})])
    assert deliver(cash(), transport)[0] == Delivered()
    assert len(transport.sent) == 2


@pytest.mark.parametrize(
    "body", [b"<html>login</html>", b"[]", b'{"done": true}', b'{"totalSize": "1"}']
)
def test_an_unreadable_query_answer_fails(body):
    transport = Script([salesforce_ok, OutboundResponse(200, {}, body)])
    outcome, _ = deliver(cash(), transport)
    assert isinstance(outcome, Failed) and "TransactionJournal query" in outcome.reason
    assert len(transport.sent) == 2  # nothing posted


# ---------------------------------------------------------------- nothing to do
def test_no_customer_sends_nothing_not_even_a_token_request():
    event = cash()
    event["data"]["customer"] = None
    transport = Script([])
    outcome, _ = deliver(event, transport)
    assert outcome == Delivered()
    # the hub opens the session only once the connector has something to send
    assert transport.sent == []


def test_a_reversal_without_a_debit_process_fails_before_posting():
    config = {k: v for k, v in SF_CONFIG.items() if k != "debit_process_name"}
    transport = Script([])
    outcome, _ = deliver(sample_event("coupon.redemption_reversed"), transport, config=config)
    assert outcome == Failed("config.debit_process_name is not set: cannot debit a reversal")
    assert all(r.url.endswith("/oauth2/token") for r in transport.sent)


def test_a_malformed_event_fails_cleanly():
    event = cash()
    event["data"]["order"]["amount"] = 128.0
    outcome, _ = deliver(event, Script([]))
    assert isinstance(outcome, Failed) and outcome.reason.startswith("cannot compute the points")
    event = cash()
    event["occurred_at"] = "yesterday"
    outcome, _ = deliver(event, Script([]))
    assert isinstance(outcome, Failed) and "occurred_at" in outcome.reason


# ---------------------------------------------------------------- classification
def sf_error(
    status: int, code: str, message: str = "boom", headers: dict[str, str] | None = None
) -> OutboundResponse:
    return json_response(status, [{"errorCode": code, "message": message, "fields": []}], headers)


@pytest.mark.parametrize(
    "answer,expected,fragment",
    [
        (
            sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
            Retry,
            "REQUEST_LIMIT_EXCEEDED",
        ),
        (
            sf_error(400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access"),
            Retry,
            "UNABLE_TO_LOCK_ROW",
        ),
        (sf_error(503, "SERVER_UNAVAILABLE", "down for maintenance"), Retry, "SERVER_UNAVAILABLE"),
        (
            sf_error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred"),
            Retry,
            "UNKNOWN_EXCEPTION",
        ),
        (
            sf_error(400, "INVALID_INPUT", "Member M-9 not found"),
            Failed,
            "INVALID_INPUT: Member M-9 not found",
        ),
        (sf_error(404, "NOT_FOUND", "The requested resource does not exist"), Failed, "NOT_FOUND"),
        (
            sf_error(403, "INSUFFICIENT_ACCESS", "no Loyalty permission set"),
            Failed,
            "INSUFFICIENT_ACCESS",
        ),
        (OutboundResponse(502, {}, b"<html>bad gateway</html>"), Retry, "HTTP 502"),
    ],
)
def test_salesforce_errors_are_classified(answer, expected, fragment):
    for step in (1, 2):  # the journal query, then the process
        answers: list[Any] = [salesforce_ok] * step + [answer]
        outcome, _ = deliver(cash(), Script(answers))
        assert isinstance(outcome, expected), (step, outcome)
        assert fragment in outcome.reason, (step, outcome)


def test_retry_after_is_honoured():
    answer = sf_error(403, "REQUEST_LIMIT_EXCEEDED", "limit", {"Retry-After": "120"})
    outcome, _ = deliver(cash(), Script([salesforce_ok, answer]))
    assert outcome == Retry("HTTP 403: REQUEST_LIMIT_EXCEEDED: limit", after=120.0)
    outcome, _ = deliver(
        cash(), Script([salesforce_ok, json_response(429, [], {"Retry-After": "7"})])
    )
    assert isinstance(outcome, Retry) and outcome.after == 7.0


def test_a_process_answering_status_false_fails_with_its_message():
    answer = json_response(
        200,
        {
            "message": "The member is not active.",
            "status": False,
            "outputParameters": None,
            "simulationDetails": {},
        },
    )
    outcome, _ = deliver(cash(), Script([salesforce_ok, salesforce_ok, answer]))
    assert outcome == Failed("program process refused the journal: The member is not active.")


def test_a_process_answering_status_false_on_a_lock_retries():
    answer = json_response(200, {"message": "UNABLE_TO_LOCK_ROW: try again", "status": False})
    outcome, _ = deliver(cash(), Script([salesforce_ok, salesforce_ok, answer]))
    assert isinstance(outcome, Retry)


@pytest.mark.parametrize(
    "answer",
    [
        OutboundResponse(204, {}, b""),
        OutboundResponse(200, {}, b"not json"),
        json_response(200, {"outputParameters": {}}),
    ],
)
def test_an_unreadable_process_answer_retries_because_the_query_makes_it_safe(answer):
    outcome, _ = deliver(cash(), Script([salesforce_ok, salesforce_ok, answer]))
    assert isinstance(outcome, Retry) and "unreadable" in outcome.reason


def test_a_transport_error_retries():
    def broken(request: OutboundRequest) -> OutboundResponse:
        if "/program-processes/" in request.url:
            raise httpx.ReadTimeout("timed out")
        return salesforce_ok(request)

    outcome, _ = deliver(cash(), broken)
    assert isinstance(outcome, Retry) and "ReadTimeout" in outcome.reason


# ---------------------------------------------------------------- check & config
def test_check_opens_a_session_and_reads_the_limits():
    transport = Script([])
    outcome, _trace = check_connection(SF, dict(SF_CONFIG), transport=transport)
    assert outcome == Delivered()
    assert [(r.method, r.url) for r in transport.sent] == [
        ("POST", f"{SF_BASE}/services/oauth2/token"),
        ("GET", f"{SF_DATA}/limits"),
    ]
    assert transport.sent[1].headers["Authorization"] == "Bearer 00DTEST!token-1"


def test_check_reports_refused_credentials():
    answer = json_response(400, {"error": "invalid_grant", "error_description": "no client"})
    outcome, _ = check_connection(SF, dict(SF_CONFIG), transport=Script([answer]))
    assert isinstance(outcome, Failed) and "invalid_grant" in outcome.reason


@pytest.mark.parametrize(
    "change,field",
    [
        ({"instance_url": "http://acme.my.salesforce.com"}, "config.instance_url"),
        ({"instance_url": "https://acme.my.salesforce.com/services"}, "config.instance_url"),
        ({"api_version": "60"}, "config.api_version"),
        ({"member_lookup": "email"}, "config.member_lookup"),
        ({"points": {"default": {"per_yuan": 1.5}}}, "config.points.default.per_yuan"),
        ({"points": {"basis": "eligible"}}, "config.points.basis"),
        ({"surprise": 1}, "config"),
    ],
)
def test_bad_config_is_refused_naming_the_field(change, field):
    with pytest.raises(DomainError) as info:
        SF.check_config({**SF_CONFIG, **change})
    assert info.value.code == "invalid_config"
    assert info.value.extra["errors"][0]["field"] == field


def test_the_secret_is_write_only_and_never_echoed():
    assert SF.redact(dict(SF_CONFIG))["client_secret"] == "***"
    with pytest.raises(DomainError) as info:
        SF.check_config({**SF_CONFIG, "client_secret": ""})
    assert info.value.extra["errors"][0]["field"] == "config.client_secret"


# ---------------------------------------------------------------- over httpx
def test_a_delivery_over_httpx_with_respx():
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as mock:
        token = mock.post(f"{SF_BASE}/services/oauth2/token").respond(
            200, json={"access_token": "00DTEST!respx", "instance_url": SF_BASE}
        )
        query = mock.get(url__startswith=f"{SF_DATA}/query").respond(
            200, json={"totalSize": 0, "done": True, "records": []}
        )
        post = mock.post(CREDIT_URL).respond(201, json={"message": None, "status": True})
        with httpx.Client() as client:

            def transport(req: OutboundRequest) -> OutboundResponse:
                r = client.request(
                    req.method,
                    req.url,
                    headers=dict(req.headers),
                    content=req.body,
                    timeout=req.timeout,
                )
                return OutboundResponse(r.status_code, dict(r.headers), r.content)

            outcome, trace = deliver(cash(), transport)
    assert outcome == Delivered()
    assert token.call_count == query.call_count == post.call_count == 1
    sent_token = token.calls[0].request
    assert sent_token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(sent_token.content.decode()))["client_secret"] == SF_SECRET
    sent_query = query.calls[0].request
    assert sent_query.headers["authorization"] == "Bearer 00DTEST!respx"
    assert dict(parse_qsl(urlsplit(str(sent_query.url)).query))["q"].endswith(
        "= 'evt_01JDK000000000000000000006'"
    )
    body = json.loads(post.calls[0].request.content)
    assert body["processParameters"][0]["PointsToCredit"] == 108
    assert trace.status == 201

"""crm.hubspot: the contact look-up by the customer id property, the read-modify-write of
the points property guarded by the event-id ledger, the custom-event mode, and the
classification of HubSpot's answers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.crm.hubspot import HubspotConnector, event_uuid, ledger_ids, parse_points
from hub.connectors import Delivered, Failed, OutboundResponse, Retry
from hub.delivery.exchange import SessionCache, check_connection, run_exchange
from hub.domain.errors import DomainError
from hub.testing import NOW, sample_event

from .fakes import (
    CONTACT_ID,
    HS_BASE,
    HS_CONFIG,
    HS_EVENT_CONFIG,
    HS_TOKEN,
    Script,
    hubspot_contact,
    hubspot_ok,
    json_response,
    query_of,
)

HS = HubspotConnector()
CASH_ID = "evt_01JDK000000000000000000006"


def deliver(event: dict[str, Any], transport: Any, config: dict[str, Any] | None = None):
    return run_exchange(
        HS,
        event,
        dict(config or HS_CONFIG),
        now=NOW,
        transport=transport,
        sessions=SessionCache(),
        session_owner="sub_test",
    )


def cash() -> dict[str, Any]:
    return sample_event("coupon.redeemed", kind="threshold")


def script(*answers: Any) -> Script:
    return Script(list(answers), fallback=hubspot_ok)


def hs_error(
    status: int,
    category: str,
    message: str = "boom",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> OutboundResponse:
    body = {
        "status": "error",
        "message": message,
        "correlationId": "c0ffee",
        "category": category,
        **extra,
    }
    return json_response(status, body, headers)


# ---------------------------------------------------------------- property mode
def test_a_redemption_looks_the_contact_up_then_patches_balance_and_ledger():
    transport = script(hubspot_contact(points="100", ledger="evt_a evt_b"))
    outcome, _ = deliver(cash(), transport)
    assert outcome == Delivered()
    lookup, patch = transport.sent
    assert lookup.method == "GET"
    assert lookup.url == (
        f"{HS_BASE}/crm/v3/objects/contacts/C-0001"
        "?idProperty=hub_customer_id&properties=loyalty_points,hub_points_ledger"
    )
    assert lookup.headers["authorization"] == f"Bearer {HS_TOKEN}"
    assert lookup.body == b""
    assert (patch.method, patch.url) == ("PATCH", f"{HS_BASE}/crm/v3/objects/contacts/151")
    assert patch.headers["authorization"] == f"Bearer {HS_TOKEN}"
    assert patch.headers["content-type"] == "application/json"
    assert json.loads(patch.body) == {
        "properties": {
            "loyalty_points": "208",
            "hub_points_ledger": f"evt_a evt_b {CASH_ID}",
        }
    }


def test_a_reversal_debits_the_same_points():
    transport = script(hubspot_contact(points="208", ledger=CASH_ID))
    outcome, _ = deliver(sample_event("coupon.redemption_reversed", kind="threshold"), transport)
    assert outcome == Delivered()
    assert json.loads(transport.sent[1].body)["properties"] == {
        "loyalty_points": "100",
        "hub_points_ledger": f"{CASH_ID} evt_01JDK000000000000000000009",
    }


def test_a_balance_never_set_starts_at_zero_and_can_go_negative():
    transport = script(hubspot_contact(points=None, ledger=None))
    deliver(sample_event("coupon.redemption_reversed", kind="threshold"), transport)
    assert json.loads(transport.sent[1].body)["properties"]["loyalty_points"] == "-108"


def test_the_event_id_in_the_ledger_means_already_applied_no_patch():
    transport = script(hubspot_contact(points="208", ledger=f"evt_a,{CASH_ID}, evt_c"))
    outcome, _ = deliver(cash(), transport)
    assert outcome == Delivered()
    assert [r.method for r in transport.sent] == ["GET"]


def test_a_replay_after_a_lost_answer_applies_once():
    """The PATCH went through but its answer was lost: the retry finds its id."""
    state = {"points": "100", "ledger": ""}

    def crm(request):
        if request.method == "PATCH":
            props = json.loads(request.body)["properties"]
            state.update(points=props["loyalty_points"], ledger=props["hub_points_ledger"])
            raise TimeoutError("answer lost")
        return hubspot_contact(points=state["points"], ledger=state["ledger"])

    first, _ = deliver(cash(), crm)
    assert isinstance(first, Retry)
    second, _ = deliver(cash(), crm)
    assert second == Delivered()
    assert state == {"points": "208", "ledger": CASH_ID}


def test_the_ledger_keeps_the_last_n_ids():
    ledger = " ".join(f"evt_{i}" for i in range(5))
    transport = script(hubspot_contact(points="0", ledger=ledger))
    deliver(cash(), transport, {**HS_CONFIG, "ledger_size": 3})
    assert json.loads(transport.sent[1].body)["properties"]["hub_points_ledger"] == (
        f"evt_3 evt_4 {CASH_ID}"
    )


def test_custom_property_names_and_base_url():
    config = {
        **HS_CONFIG,
        "base_url": "https://api.hubapi.eu/",
        "points_property": "pts",
        "ledger_property": "pts_ledger",
    }

    def crm(request):
        if request.method == "GET":
            return json_response(200, {"id": 7, "properties": {"pts": "1", "pts_ledger": ""}})
        return json_response(200, {"id": "7"})

    transport = Script([], fallback=crm)
    outcome, _ = deliver(cash(), transport, config)
    assert outcome == Delivered()
    assert transport.sent[0].url == (
        "https://api.hubapi.eu/crm/v3/objects/contacts/C-0001"
        "?idProperty=hub_customer_id&properties=pts,pts_ledger"
    )
    assert transport.sent[1].url == "https://api.hubapi.eu/crm/v3/objects/contacts/7"
    assert json.loads(transport.sent[1].body) == {
        "properties": {"pts": "109", "pts_ledger": CASH_ID}
    }


def test_the_member_id_is_escaped_in_the_path():
    event = cash()
    event["data"]["customer"] = "C 1/2?x"
    transport = script()
    deliver(event, transport)
    assert transport.sent[0].url.startswith(f"{HS_BASE}/crm/v3/objects/contacts/C%201%2F2%3Fx?")


def test_an_unknown_member_fails():
    answer = hs_error(404, "OBJECT_NOT_FOUND", "resource not found")
    outcome, _ = deliver(cash(), script(answer))
    assert outcome == Failed(
        "member 'C-0001' not found: no HubSpot contact has hub_customer_id = 'C-0001'"
    )


@pytest.mark.parametrize("value", ["12.5", "lots", True, [1]])
def test_a_balance_that_is_not_a_whole_number_fails_without_writing(value):
    answer = json_response(200, {"id": CONTACT_ID, "properties": {"loyalty_points": value}})
    transport = script(answer)
    outcome, _ = deliver(cash(), transport)
    assert isinstance(outcome, Failed) and "not a whole number" in outcome.reason
    assert len(transport.sent) == 1


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"id": ""}', b'{"id": true}'])
def test_an_unreadable_look_up_fails(body):
    transport = script(OutboundResponse(200, {}, body))
    outcome, _ = deliver(cash(), transport)
    assert isinstance(outcome, Failed) and "contact look-up" in outcome.reason
    assert len(transport.sent) == 1


def test_no_customer_sends_nothing():
    event = cash()
    event["data"]["customer"] = None
    transport = script()
    assert deliver(event, transport)[0] == Delivered()
    assert transport.sent == []


def test_a_malformed_event_fails_cleanly():
    event = cash()
    event["data"]["discount"] = "20"
    outcome, _ = deliver(event, script())
    assert isinstance(outcome, Failed) and outcome.reason.startswith("cannot compute the points")


# ---------------------------------------------------------------- event mode
def test_event_mode_looks_the_contact_up_then_sends_one_occurrence():
    transport = script()
    outcome, _ = deliver(cash(), transport, HS_EVENT_CONFIG)
    assert outcome == Delivered()
    lookup, send = transport.sent
    assert lookup.url == f"{HS_BASE}/crm/v3/objects/contacts/C-0001?idProperty=hub_customer_id"
    assert (send.method, send.url) == ("POST", f"{HS_BASE}/events/v3/send")
    assert send.headers["authorization"] == f"Bearer {HS_TOKEN}"
    assert send.headers["content-type"] == "application/json"
    assert json.loads(send.body) == {
        "eventName": "pe4711_loyalty_points",
        "objectId": CONTACT_ID,
        "occurredAt": "2026-11-25T06:30:00Z",
        "uuid": event_uuid(CASH_ID),
        "properties": {
            "points": 108,
            "hub_event_id": CASH_ID,
            "redemption_id": "rdm_01JDK000000000000000000014",
            "reason": "redemption",
        },
    }


def test_event_mode_debits_with_negative_points_and_its_own_uuid():
    transport = script()
    deliver(
        sample_event("coupon.redemption_reversed", kind="threshold"), transport, HS_EVENT_CONFIG
    )
    body = json.loads(transport.sent[1].body)
    assert body["properties"]["points"] == -108 and body["properties"]["reason"] == "reversal"
    assert body["uuid"] == event_uuid("evt_01JDK000000000000000000009") != event_uuid(CASH_ID)


def test_the_occurrence_uuid_is_a_stable_uuid_of_the_event_id():
    assert event_uuid(CASH_ID) == event_uuid(CASH_ID)
    assert uuid.UUID(event_uuid(CASH_ID)).version == 5


def test_event_mode_needs_an_event_name():
    config = {k: v for k, v in HS_EVENT_CONFIG.items() if k != "event_name"}
    with pytest.raises(DomainError) as info:
        HS.check_config(config)
    assert info.value.extra["errors"][0]["field"] == "config.event_name"
    HS.check_config(dict(HS_EVENT_CONFIG))
    HS.check_config(dict(HS_CONFIG))  # property mode does not


# ---------------------------------------------------------------- classification
@pytest.mark.parametrize("config", [HS_CONFIG, HS_EVENT_CONFIG], ids=["property", "event"])
@pytest.mark.parametrize(
    "answer,expected",
    [
        (
            hs_error(
                429,
                "RATE_LIMITS",
                "You have reached your secondly limit.",
                policyName="TEN_SECONDLY_ROLLING",
            ),
            Retry("HTTP 429 RATE_LIMITS: You have reached your secondly limit.", 10.0),
        ),
        (
            hs_error(429, "RATE_LIMITS", "daily", {"Retry-After": "42"}),
            Retry("HTTP 429 RATE_LIMITS: daily", 42.0),
        ),
        (
            hs_error(429, "RATE_LIMITS", "daily", policyName="DAILY"),
            Retry("HTTP 429 RATE_LIMITS: daily", 3600.0),
        ),
        (hs_error(502, "", "Bad gateway"), Retry("HTTP 502 Bad gateway", None)),
        (OutboundResponse(504, {}, b"<html>timeout</html>"), Retry("HTTP 504", None)),
        (
            hs_error(401, "INVALID_AUTHENTICATION", "expired token"),
            Failed(
                "HTTP 401: HubSpot refused the access token (INVALID_AUTHENTICATION: expired token)"
            ),
        ),
        (
            hs_error(403, "MISSING_SCOPES", "needs crm.objects.contacts.write"),
            Failed("HTTP 403 MISSING_SCOPES: needs crm.objects.contacts.write"),
        ),
        (
            hs_error(400, "VALIDATION_ERROR", "Property values were not valid"),
            Failed("HTTP 400 VALIDATION_ERROR: Property values were not valid"),
        ),
    ],
)
def test_hubspot_errors_are_classified_at_every_step(config, answer, expected):
    for step in (0, 1):  # the look-up, then the write / send
        outcome, _ = deliver(cash(), script(*[hubspot_ok] * step, answer), config)
        assert outcome == expected, step


def test_check_lists_one_contact():
    transport = script()
    outcome, _ = check_connection(HS, dict(HS_CONFIG), transport=transport)
    assert outcome == Delivered()
    (check,) = transport.sent
    assert (check.method, check.url) == ("GET", f"{HS_BASE}/crm/v3/objects/contacts?limit=1")
    assert query_of(check) == {"limit": ["1"]}
    assert check.headers["authorization"] == f"Bearer {HS_TOKEN}"
    outcome, _ = check_connection(
        HS, dict(HS_CONFIG), transport=script(hs_error(401, "INVALID_AUTHENTICATION"))
    )
    assert isinstance(outcome, Failed)


def test_the_token_is_write_only_and_never_echoed():
    assert HS.redact(dict(HS_CONFIG))["access_token"] == "***"
    with pytest.raises(DomainError) as info:
        HS.check_config({**HS_CONFIG, "access_token": "short"})
    assert "short" not in str(info.value.extra)


@pytest.mark.parametrize(
    "change,field",
    [
        ({"id_property": "Bad Name"}, "config.id_property"),
        ({"mode": "batch"}, "config.mode"),
        ({"ledger_size": 0}, "config.ledger_size"),
        ({"base_url": "ftp://x"}, "config.base_url"),
    ],
)
def test_bad_config_is_refused_naming_the_field(change, field):
    with pytest.raises(DomainError) as info:
        HS.check_config({**HS_CONFIG, **change})
    assert info.value.extra["errors"][0]["field"] == field


# ---------------------------------------------------------------- helpers
@pytest.mark.parametrize(
    "value,expected",
    [
        (None, 0),
        ("", 0),
        ("120", 120),
        ("-5", -5),
        ("120.0", 120),
        (" 7 ", 7),
        (3, 3),
        ("12.5", None),
        ("1e3", 1000),
        ("NaN", None),
        ("Infinity", None),
        ("x", None),
        (True, None),
        (1.0, None),
    ],
)
def test_parse_points(value, expected):
    assert parse_points(value) == expected


def test_ledger_ids():
    assert ledger_ids("a b,c ,, d\n e") == ["a", "b", "c", "d", "e"]
    assert ledger_ids(None) == [] and ledger_ids(12) == []


@settings(max_examples=50)
@given(
    start=st.integers(min_value=-(10**9), max_value=10**9),
    amount=st.integers(min_value=0, max_value=10**9),
)
def test_credit_then_debit_restores_the_balance(start, amount):
    balance, ledger = str(start), ""

    def crm(request):
        nonlocal balance, ledger
        if request.method == "PATCH":
            props = json.loads(request.body)["properties"]
            balance, ledger = props["loyalty_points"], props["hub_points_ledger"]
            return json_response(200, {"id": CONTACT_ID})
        return hubspot_contact(points=balance, ledger=ledger)

    redeemed = cash()
    reversed_ = sample_event("coupon.redemption_reversed", kind="threshold")
    for event in (redeemed, reversed_):
        event["data"]["order"] = {"id": "A-1", "amount": amount}
        event["data"]["discount"] = 0
    for event in (redeemed, redeemed, reversed_, reversed_):  # replays change nothing
        assert deliver(event, crm)[0] == Delivered()
    assert balance == str(start)
    assert ledger.split() == ([] if amount < 100 else [redeemed["id"], reversed_["id"]])

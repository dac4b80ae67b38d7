"""erp.tryton's translation, step by step, against scripted Tryton answers (no network).

The real-server proof is ``test_tryton_integration.py``; here every branch of the
conversation (resume after a crash, short stock, reversal, odd answers) is pinned down.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from connectors.erp.stock import COMMON_PROPERTIES
from connectors.erp.tryton import STEP_BUDGET, TrytonConnector, classify_tryton, reference_of
from hub.connectors import (
    Delivered,
    Failed,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
)
from hub.delivery.exchange import MAX_STEPS, SessionCache, check_connection, run_exchange
from hub.domain.errors import DomainError
from hub.testing import NOW, sample_event
from tests.connectors.erp.tryton_fakes import (
    CONFIG,
    domain_of,
    done_shipment,
    ok,
    parse,
    tryton_answer,
    user_error,
)

CONNECTOR = TrytonConnector()
GIFT = sample_event("coupon.redeemed", kind="exchange")
CASH = sample_event("coupon.redeemed", kind="threshold")
REVERSED = sample_event("coupon.redemption_reversed", kind="exchange")
RID = GIFT["data"]["redemption_id"]
KEY = reference_of(RID, GIFT["id"])
Answer = Callable[[OutboundRequest], OutboundResponse]


def deliver(
    event: dict[str, Any], answer: Answer = tryton_answer, config: dict[str, Any] | None = None
) -> tuple[Outcome, list[OutboundRequest]]:
    sent: list[OutboundRequest] = []

    def transport(request: OutboundRequest) -> OutboundResponse:
        sent.append(request)
        return answer(request)

    outcome, _trace = run_exchange(
        CONNECTOR,
        event,
        dict(CONFIG if config is None else config),
        now=NOW,
        transport=transport,
        sessions=SessionCache(),
        session_owner="test",
    )
    return outcome, sent


def steps(sent: list[OutboundRequest]) -> list[str]:
    """``METHOD model[/id[/button]]`` of each request."""
    return [f"{r.method} {'/'.join(parse(r)[1])}" for r in sent]


def answering(**overrides: Callable[[OutboundRequest], OutboundResponse | None]) -> Answer:
    """tryton_answer, except where an override (keyed by step, '/' as '__') answers."""

    def answer(request: OutboundRequest) -> OutboundResponse:
        method, parts, _ = parse(request)
        key = f"{method}_{'__'.join(parts)}".replace(".", "_")
        override = overrides.get(key)
        found = override(request) if override else None
        return found if found is not None else tryton_answer(request)

    return answer


def body(request: OutboundRequest) -> Any:
    return json.loads(request.body)


# --------------------------------------------------------------------------- decrement


def test_a_gift_is_booked_out_through_an_internal_shipment() -> None:
    outcome, sent = deliver(GIFT)
    assert outcome == Delivered()
    assert steps(sent) == [
        "GET stock.shipment.internal",
        "GET product.product",
        "POST stock.shipment.internal",
        "POST stock.shipment.internal/5/wait",
        "POST stock.shipment.internal/5/assign_try",
        "POST stock.shipment.internal/5/do",
    ]
    lookup, products, create, *_ = sent
    assert domain_of(lookup) == [["reference", "=", KEY], ["state", "!=", "cancelled"]]
    assert f"hub:{RID}:{GIFT['id']}" == KEY
    assert domain_of(products) == [["code", "in", ["SKU-GIFT-1"]]]
    assert body(create) == {
        "company": 1,
        "from_location": 3,
        "to_location": 4,
        "reference": KEY,
        "moves": [
            [
                "create",
                [
                    {
                        "company": 1,
                        "from_location": 3,
                        "to_location": 4,
                        "product": 1,
                        "unit": 1,
                        "quantity": 1.0,
                    }
                ],
            ]
        ],
    }
    for request in sent:
        assert request.url.startswith("https://erp.example.com/tryton/rest/model/")
        assert request.headers["Authorization"] == f"Bearer {CONFIG['app_key']}"
        assert request.headers["X-Hub-Event-Id"] == GIFT["id"]
        context = json.loads(base64.urlsafe_b64decode(request.headers["X-Tryton-Context"]))
        assert context == {"company": 1}
    # the buttons answer with the new state: no extra reads
    assert all("f=state" in r.url for r in sent[2:])


def test_sku_map_names_the_tryton_product_code() -> None:
    config = {**CONFIG, "sku_map": {"SKU-GIFT-1": "GIFT-CARD"}}
    outcome, sent = deliver(GIFT, config=config)
    assert outcome == Delivered()
    assert domain_of(sent[1]) == [["code", "in", ["GIFT-CARD"]]]


def test_the_database_name_is_escaped_in_the_url() -> None:
    _, sent = deliver(GIFT, config={**CONFIG, "database": "shop db", "base_url": "http://h:8000/"})
    assert sent[0].url.startswith("http://h:8000/shop%20db/rest/model/stock.shipment.internal?")


@pytest.mark.parametrize(
    "state,remaining",
    [
        ("done", []),
        ("assigned", ["do"]),
        ("waiting", ["assign_try", "do"]),
        ("draft", ["wait", "assign_try", "do"]),
    ],
)
def test_an_earlier_half_way_decrement_is_resumed_not_repeated(
    state: str, remaining: list[str]
) -> None:
    found = {"id": 41, "__name__": "stock.shipment.internal", "state": state, "reference": KEY}
    answer = answering(GET_stock_shipment_internal=lambda r: ok([found]))
    outcome, sent = deliver(GIFT, answer)
    assert outcome == Delivered()
    assert steps(sent) == [
        "GET stock.shipment.internal",
        *(f"POST stock.shipment.internal/41/{b}" for b in remaining),
    ]


def test_short_stock_fails_and_releases_the_reservation_by_default() -> None:
    still_waiting = answering(
        POST_stock_shipment_internal__5__assign_try=lambda r: ok({"id": 5, "state": "waiting"})
    )
    outcome, sent = deliver(GIFT, still_waiting)
    assert isinstance(outcome, Failed)
    assert "insufficient stock" in outcome.reason and KEY in outcome.reason
    assert steps(sent)[-2:] == [
        "POST stock.shipment.internal/5/assign_try",
        "POST stock.shipment.internal/5/cancel",
    ]


def test_short_stock_is_forced_when_configured() -> None:
    still_waiting = answering(
        POST_stock_shipment_internal__5__assign_try=lambda r: ok({"id": 5, "state": "waiting"})
    )
    config = {**CONFIG, "on_insufficient_stock": "force"}
    outcome, sent = deliver(GIFT, still_waiting, config)
    assert outcome == Delivered()
    assert steps(sent)[-3:] == [
        "POST stock.shipment.internal/5/assign_try",
        "POST stock.shipment.internal/5/assign_force",
        "POST stock.shipment.internal/5/do",
    ]


def test_a_refused_force_fails_with_trytons_message() -> None:
    answer = answering(
        POST_stock_shipment_internal__5__assign_try=lambda r: ok({"id": 5, "state": "waiting"}),
        POST_stock_shipment_internal__5__assign_force=lambda r: user_error(
            'You do not have permission to run the "assign_force" button.'
        ),
    )
    outcome, _ = deliver(GIFT, answer, {**CONFIG, "on_insufficient_stock": "force"})
    assert isinstance(outcome, Failed) and "assign_force" in outcome.reason


@pytest.mark.parametrize(
    "products,reason",
    [
        ([], "no active Tryton product with code 'SKU-GIFT-1'"),
        (
            [{"id": 1, "code": "SKU-GIFT-1", "default_uom": 1}] * 2,
            "2 active Tryton product with code 'SKU-GIFT-1'",
        ),
        ([{"id": 1, "code": "SKU-GIFT-1", "default_uom": None}], "has no default unit"),
    ],
)
def test_a_product_that_is_not_found_once_fails_before_anything_is_created(
    products: list[dict[str, Any]], reason: str
) -> None:
    outcome, sent = deliver(GIFT, answering(GET_product_product=lambda r: ok(products)))
    assert isinstance(outcome, Failed) and reason in outcome.reason
    assert [r.method for r in sent] == ["GET", "GET"]


def test_a_button_that_leaves_an_unexpected_state_fails() -> None:
    answer = answering(POST_stock_shipment_internal__5__do=lambda r: ok({"id": 5, "state": "x"}))
    outcome, _ = deliver(GIFT, answer)
    assert isinstance(outcome, Failed) and "'x', not done" in outcome.reason


def test_events_without_stock_send_nothing() -> None:
    assert deliver(CASH) == (Delivered(), [])
    assert deliver(sample_event("coupon.redemption_reversed", kind="threshold")) == (
        Delivered(),
        [],
    )
    skip = {**CONFIG, "locations": {"BJ-001": 11}, "unmapped_store": "skip"}
    assert deliver(GIFT, config=skip) == (Delivered(), [])


def test_an_unmapped_store_fails_naming_it_without_a_request() -> None:
    outcome, sent = deliver(GIFT, config={**CONFIG, "locations": {"BJ-001": 11}})
    assert isinstance(outcome, Failed) and "SH-001" in outcome.reason
    assert sent == []


def test_lines_move_too_when_configured() -> None:
    config = {**CONFIG, "move_stock_for_lines": True}
    outcome, sent = deliver(CASH, config=config)
    assert outcome == Delivered()
    assert domain_of(sent[1]) == [["code", "in", ["SKU-GIFT-1", "SKU-TEA-1"]]]
    moves = body(sent[2])["moves"][0][1]
    assert [(m["product"], m["quantity"]) for m in moves] == [(2, 2.0), (1, 1.0)]


# --------------------------------------------------------------------------- reversal


def test_a_reversal_books_each_done_move_back_with_its_origin() -> None:
    outcome, sent = deliver(REVERSED)
    assert outcome == Delivered()
    assert steps(sent) == [
        "GET stock.shipment.internal",
        "GET stock.move",
        "POST stock.move",
        "POST stock.move/9/do",
    ]
    lookup, earlier, create, _do = sent
    assert domain_of(lookup) == [["reference", "like", f"hub:{RID}:%"]]
    assert domain_of(earlier) == [["origin", "in", ["stock.move,7"]], ["state", "!=", "cancelled"]]
    assert body(create) == {
        "product": 1,
        "unit": 1,
        "quantity": 1.0,
        "from_location": 4,
        "to_location": 3,
        "company": 1,
        "origin": "stock.move,7",
    }
    assert all(r.headers["X-Hub-Event-Id"] == REVERSED["id"] for r in sent)


def test_a_reversal_skips_moves_already_reversed_and_finishes_half_done_ones() -> None:
    shipment = done_shipment(KEY)
    second = copy.deepcopy(shipment["moves"][0]) | {"id": 8}
    shipment["moves"].append(second)
    reverse_moves = [
        {"id": 20, "state": "done", "origin": "stock.move,7"},
        {"id": 21, "state": "draft", "origin": "stock.move,8"},
    ]
    answer = answering(
        GET_stock_shipment_internal=lambda r: ok([shipment]),
        GET_stock_move=lambda r: ok(reverse_moves),
    )
    outcome, sent = deliver(REVERSED, answer)
    assert outcome == Delivered()
    assert steps(sent) == ["GET stock.shipment.internal", "GET stock.move", "POST stock.move/21/do"]
    # all reversed: the replay only looks
    reverse_moves[1]["state"] = "done"
    outcome, sent = deliver(REVERSED, answer)
    assert outcome == Delivered()
    assert steps(sent) == ["GET stock.shipment.internal", "GET stock.move"]


def test_a_reversal_without_a_decrement_fails_clearly() -> None:
    answer = answering(GET_stock_shipment_internal=lambda r: ok([]))
    outcome, sent = deliver(REVERSED, answer)
    assert isinstance(outcome, Failed)
    assert outcome.reason.startswith("no decrement to reverse") and RID in outcome.reason
    assert len(sent) == 1


def test_a_reversal_ignores_look_alike_references() -> None:
    other = done_shipment(f"hub:{RID}X:evt_1")
    answer = answering(GET_stock_shipment_internal=lambda r: ok([other]))
    outcome, _ = deliver(REVERSED, answer)
    assert isinstance(outcome, Failed) and "no decrement" in outcome.reason


def test_a_reversal_cancels_a_decrement_that_never_finished() -> None:
    pending = done_shipment(KEY) | {"state": "waiting"}
    pending["moves"][0]["state"] = "draft"
    answer = answering(GET_stock_shipment_internal=lambda r: ok([pending]))
    outcome, sent = deliver(REVERSED, answer)
    assert outcome == Delivered()
    assert steps(sent) == ["GET stock.shipment.internal", "POST stock.shipment.internal/5/cancel"]
    cancelled = pending | {"state": "cancelled"}
    answer = answering(GET_stock_shipment_internal=lambda r: ok([cancelled]))
    assert deliver(REVERSED, answer) == (Delivered(), [sent[0]])


def test_a_long_reversal_stays_under_the_hubs_step_limit_and_resumes() -> None:
    shipment = done_shipment(KEY)
    template = shipment["moves"][0]
    shipment["moves"] = [template | {"id": 100 + i} for i in range(12)]
    reversed_: list[dict[str, Any]] = []

    def create(request: OutboundRequest) -> OutboundResponse:
        move = {"id": 500 + len(reversed_), "state": "draft", "origin": body(request)["origin"]}
        reversed_.append(move)
        return ok(move)

    def do(request: OutboundRequest) -> OutboundResponse | None:
        move_id = int(parse(request)[1][1])
        for move in reversed_:
            if move["id"] == move_id:
                move["state"] = "done"
        return ok({"id": move_id, "state": "done"})

    def answer(request: OutboundRequest) -> OutboundResponse:
        method, parts, _ = parse(request)
        if parts[0] == "stock.move":
            if method == "GET":
                return ok(reversed_)
            return create(request) if len(parts) == 1 else do(request)  # type: ignore[return-value]
        if method == "GET":
            return ok([shipment])
        return tryton_answer(request)

    outcome, sent = deliver(REVERSED, answer)
    assert isinstance(outcome, Retry) and outcome.after == 0
    assert "move(s) left" in outcome.reason
    assert len(sent) <= STEP_BUDGET < MAX_STEPS
    outcome, sent = deliver(REVERSED, answer)
    assert outcome == Delivered()
    assert len(reversed_) == 12 and all(m["state"] == "done" for m in reversed_)
    assert sorted(m["origin"] for m in reversed_) == sorted(
        f"stock.move,{100 + i}" for i in range(12)
    )


# --------------------------------------------------------------------------- answers


def response(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> OutboundResponse:
    return OutboundResponse(status, headers or {}, body)


@pytest.mark.parametrize(
    "answer,expected,reason",
    [
        (response(401, b"Unauthorized"), Failed, "app key"),
        (response(403), Failed, "HTTP 403"),
        (response(404, b"<html>"), Failed, "HTTP 404"),
        (user_error('The value "9" for field "From Location" is not valid'), Failed, "From Loc"),
        (user_error("Could not lock the record, try again"), Retry, "lock"),
        (response(400, b"<html>bad</html>"), Failed, "HTTP 400"),
        (response(409), Retry, "HTTP 409"),
        (response(503, b"database is locked", {"Retry-After": "7"}), Retry, "HTTP 503"),
        (response(500, b"<html>Internal Server Error</html>"), Retry, "HTTP 500"),
        (response(429, b"", {"retry-after": "30"}), Retry, "HTTP 429"),
    ],
)
def test_tryton_answers_are_classified(
    answer: OutboundResponse, expected: type, reason: str
) -> None:
    outcome = classify_tryton(answer, None)
    assert isinstance(outcome, expected) and reason in outcome.reason  # type: ignore[union-attr]
    after = answer.header("retry-after")
    if after is not None:
        assert isinstance(outcome, Retry) and outcome.after == float(after)


def test_a_user_error_mid_way_fails_with_trytons_message() -> None:
    answer = answering(
        POST_stock_shipment_internal=lambda r: user_error(
            'The value "3" for field "From Location" is not valid according to its domain.'
        )
    )
    outcome, _ = deliver(GIFT, answer)
    assert isinstance(outcome, Failed)
    assert outcome.reason.startswith("HTTP 400: Tryton: The value")


@pytest.mark.parametrize("odd", [b"not json", b"{}", b"[1, 2]", b'{"id": "5"}', b""])
def test_odd_success_bodies_fail_naming_the_request(odd: bytes) -> None:
    answer = answering(POST_stock_shipment_internal=lambda r: response(200, odd))
    outcome, _ = deliver(GIFT, answer)
    assert isinstance(outcome, Failed)
    assert outcome.reason.startswith("unexpected answer to POST stock.shipment.internal")


# --------------------------------------------------------------------------- config, check


def test_the_schema_carries_the_common_erp_options_verbatim() -> None:
    props = CONNECTOR.config_schema["properties"]
    for name, schema in COMMON_PROPERTIES.items():
        assert props[name] == schema
    assert set(CONNECTOR.secret_fields) == {"app_key"}
    assert CONNECTOR.redact(dict(CONFIG))["app_key"] == "***"


@pytest.mark.parametrize(
    "change,field",
    [
        ({"locations": {"SH-001": "STO"}}, "config.locations.SH-001"),
        ({"locations": {}}, "config.locations"),
        ({"company": "1"}, "config.company"),
        ({"base_url": "ftp://x"}, "config.base_url"),
        ({"on_insufficient_stock": "maybe"}, "config.on_insufficient_stock"),
        ({"database": "a/b"}, "config.database"),
        ({"lost_found_location": 0}, "config.lost_found_location"),
    ],
)
def test_bad_config_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(DomainError) as info:
        CONNECTOR.check_config({**CONFIG, **change})
    assert info.value.code == "invalid_config"
    assert info.value.extra["errors"][0]["field"] == field


def test_a_short_app_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(DomainError) as info:
        CONNECTOR.check_config({**CONFIG, "app_key": "s3cr"})
    assert "s3cr" not in info.value.message


def test_the_check_reads_the_company_and_every_location() -> None:
    requests = CONNECTOR.check_requests(dict(CONFIG))
    assert [r.url.split("/rest/model/")[1].split("?")[0] for r in requests] == [
        "company.company/1",
        "stock.location/3",
        "stock.location/4",
        "stock.location/11",
    ]
    assert all(r.method == "GET" and "X-Hub-Event-Id" not in r.headers for r in requests)
    outcome, trace = check_connection(CONNECTOR, dict(CONFIG), transport=tryton_answer)
    assert outcome == Delivered() and len(trace.steps) == 4
    refused, _ = check_connection(
        CONNECTOR, dict(CONFIG), transport=lambda r: response(401, b"Unauthorized")
    )
    assert isinstance(refused, Failed) and "app key" in refused.reason


def test_a_duplicated_create_is_resolved_to_one_decrement() -> None:
    # the hub re-sent a create whose answer timed out: Tryton holds two shipments
    twins = [
        {"id": 41, "state": "draft", "reference": KEY},
        {"id": 42, "state": "assigned", "reference": KEY},
    ]
    answer = answering(GET_stock_shipment_internal=lambda r: ok(twins))
    outcome, sent = deliver(GIFT, answer)
    assert outcome == Delivered()
    assert steps(sent) == [
        "GET stock.shipment.internal",
        "POST stock.shipment.internal/41/cancel",
        "POST stock.shipment.internal/42/do",
    ]


def test_a_done_reverse_move_wins_over_a_stray_draft_twin() -> None:
    twins = [
        {"id": 20, "state": "done", "origin": "stock.move,7"},
        {"id": 21, "state": "draft", "origin": "stock.move,7"},
    ]
    answer = answering(GET_stock_move=lambda r: ok(twins))
    outcome, sent = deliver(REVERSED, answer)
    assert outcome == Delivered()
    assert steps(sent) == ["GET stock.shipment.internal", "GET stock.move"]

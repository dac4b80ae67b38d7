"""The published JSON Schemas of events: valid schemas, every emitted event validates,
invalid events are refused with a clear message, and the schemas are served."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from hub.db.schema import outbox_events
from hub.domain.ids import new_id
from hub.events import (
    DATA_SCHEMAS,
    ENVELOPE_SCHEMA,
    InvalidEvent,
    UnknownEventType,
    all_schemas,
    schema_for,
    validate_event,
)
from hub.events.schemas import is_date_time
from hub.services import outbox
from hub.services.housekeeping import expire_coupons
from hub.services.jsonio import iso
from hub.services.problems import PROBLEM_MEDIA_TYPE
from hub.services.reminders import send_due_reminders
from hub.services.reservations import expire_reservations
from tests.conftest import issue, make_template

NOW = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)


# --- (a) the schemas themselves --------------------------------------------------------


def test_every_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(ENVELOPE_SCHEMA)
    for data_schema in DATA_SCHEMAS.values():
        Draft202012Validator.check_schema(data_schema)
    everything = all_schemas()
    Draft202012Validator.check_schema(everything["envelope"])
    ids = {everything["envelope"]["$id"]}
    for event_type, schema in everything["types"].items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["type"] == {"const": event_type, "description": "Event type."}
        assert schema["additionalProperties"] is False
        assert "$ref" not in json.dumps(schema)  # self-contained
        ids.add(schema["$id"])
    assert ENVELOPE_SCHEMA["$id"] == "urn:redemption-hub:events:envelope"
    assert len(ids) == len(outbox.EVENT_TYPES) + 1


def test_there_is_a_schema_for_every_event_type_and_no_other():
    assert list(DATA_SCHEMAS) == list(outbox.EVENT_TYPES)
    assert ENVELOPE_SCHEMA["properties"]["type"]["enum"] == list(outbox.EVENT_TYPES)
    assert set(all_schemas()["types"]) == set(outbox.EVENT_TYPES)


def test_schema_for_unknown_type_and_returns_copies():
    with pytest.raises(UnknownEventType, match=r"coupon\.teleported"):
        schema_for("coupon.teleported")
    mine = schema_for("coupon.redeemed")
    mine["properties"]["data"]["required"].clear()
    assert schema_for("coupon.redeemed")["properties"]["data"]["required"]
    assert DATA_SCHEMAS["coupon.redeemed"]["required"]


def test_date_time_check():
    for good in ("2026-11-25T08:30:00.000Z", "2026-11-25T16:30:00+08:00", "2026-11-25t08:30:00z"):
        assert is_date_time(good), good
    for bad in (
        "2026-11-25T08:30:00",  # no offset
        "2026-11-25",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-25T08:30:00Z\n",
        "yesterday",
    ):
        assert not is_date_time(bad), bad


# --- (b) every event the hub emits validates --------------------------------------------


def _redeem(client, headers, key, body):
    r = client.post("/v1/redemptions", json=body, headers={**headers, "Idempotency-Key": key})
    assert r.status_code == 201, r.text
    return r.json()


def _reverse(client, headers, key, redemption_id, body=None):
    r = client.post(
        f"/v1/redemptions/{redemption_id}/reversal",
        json=body,
        headers={**headers, "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_every_emitted_event_validates(client, db, merchant, clock):
    admin = merchant.auth()
    sh = ZoneInfo("Asia/Shanghai")

    def post(path: str, body: Any = None, status: int = 201, headers: Any = None) -> Any:
        r = client.post(path, json=body, headers={**admin, **(headers or {})})
        assert r.status_code == status, r.text
        return r.json()

    threshold = post(
        "/v1/templates",
        {
            "name": "满100减20",
            "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
            "validity": {"type": "relative", "days": 30},
            "transferable": True,
        },
    )["id"]
    percentage = post(
        "/v1/templates",
        {
            "name": "茶饮85折",
            "benefit": {"kind": "percentage", "percent_off": 15, "cap": 5000},
            "validity": {
                "type": "fixed",
                "start": (clock.now - timedelta(days=1)).astimezone(sh).isoformat(),
                "end": (clock.now + timedelta(days=10)).astimezone(sh).isoformat(),
            },
            "usage": {
                "weekdays": [1, 2, 3, 4, 5, 6, 7],
                "hours": [{"start": "00:00", "end": "12:00"}, {"start": "12:00", "end": "00:00"}],
                "categories": ["tea"],
                "stores": ["SH-001", "SH-002"],
                "channels": ["pos", "mini_program"],
            },
            "total_quantity": 100,
            "per_customer_limit": 2,
        },
    )["id"]
    exchange = post(
        "/v1/templates",
        {
            "name": "免费杯子",
            "benefit": {"kind": "exchange", "sku": "CUP", "price": 0},
            "validity": {"type": "relative", "days": 1},
        },
    )["id"]

    def codes(template_id: str, body: dict[str, Any]) -> list[str]:
        out = post(f"/v1/templates/{template_id}/coupons", body)
        return [c["code"] for c in out["coupons"]]

    held_1, held_2 = codes(threshold, {"customers": ["M0001", "M0002"], "channel": "mini_program"})
    loose_1, loose_2 = codes(threshold, {"count": 2})
    [pct] = codes(percentage, {"count": 1, "channel": "app"})
    cup_1, _cup_2 = codes(exchange, {"count": 2})

    post(f"/v1/coupons/{loose_1}/claim", {"customer": "M0003"}, status=200)

    def offer(code: str, customer: str, key: str) -> str:
        r = client.post(f"/v1/coupons/{code}/transfers", json={"customer": customer},
                        headers={**admin, "Idempotency-Key": key})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    withdrawn = offer(held_2, "M0002", "of-1")
    post(f"/v1/transfers/{withdrawn}/cancel", {"customer": "M0002"}, status=200)
    clock.advance(seconds=1)
    given = offer(held_2, "M0002", "of-2")
    post(f"/v1/transfers/{given}/accept", {"customer": "M0004"}, status=200)

    store_key = merchant.auth(merchant.store_keys["SH-001"])
    plain = _redeem(
        client, store_key, "ev-1", {"code": held_1, "order": {"id": "A-1", "amount": 12800}}
    )
    assert plain["customer"] == "M0001" and plain["lines"] == []
    with_lines = _redeem(
        client,
        admin,
        "ev-2",
        {
            "code": pct,
            "store": "SH-002",
            "channel": "mini_program",
            "order": {
                "id": "A-2",
                "amount": 6800,
                "lines": [
                    {"sku": "TEA-1", "category": "tea", "qty": 2, "unit_price": 3000},
                    {"sku": "COOKIE", "qty": 1, "unit_price": 800},
                ],
            },
        },
    )
    assert with_lines["discount"] == 900 and with_lines["customer"] is None
    cup = _redeem(
        client,
        admin,
        "ev-3",
        {
            "code": cup_1,
            "store": "BJ-001",
            "order": {
                "id": "A-3",
                "amount": 1500,
                "lines": [{"sku": "CUP", "category": "merch", "qty": 1, "unit_price": 1500}],
            },
        },
    )

    assert _reverse(client, admin, "rv-1", plain["redemption_id"], {"reason": "refund"})[
        "coupon_status"
    ] == "issued"
    assert _reverse(client, admin, "rv-2", with_lines["redemption_id"])["reason"] is None

    # two coupons on one order (POST /v1/orders/redeem), reversed as one
    kinds = ["exchange", "percentage", "threshold"]
    combinable = [
        issue(db, merchant, make_template(db, merchant, clock.now, spec, name=name), clock.now)[0]
        for name, spec in (
            ("9折", {"benefit": {"kind": "percentage", "percent_off": 10},
                    "validity": {"type": "relative", "days": 30},
                    "stacking": {"combines_with": kinds, "max_per_order": 3}}),
            ("满100减20", {"benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
                         "validity": {"type": "relative", "days": 30},
                         "stacking": {"combines_with": kinds, "max_per_order": 3}}),
        )
    ]
    r = client.post(
        "/v1/orders/redeem",
        json={"codes": combinable, "store": "SH-001", "channel": "pos",
              "order": {"id": "A-4", "amount": 12800}},
        headers={**admin, "Idempotency-Key": "ev-4"},
    )
    assert r.status_code == 201, r.text
    order_id = r.json()["order_redemption_id"]
    r = client.post(f"/v1/orders/{order_id}/reversal", json={"reason": "refund"},
                    headers={**admin, "Idempotency-Key": "rv-4"})
    assert r.status_code == 201, r.text

    post(f"/v1/coupons/{loose_2}/void", {"reason": "issued by mistake"}, status=200)
    post(f"/v1/coupons/{held_2}/void", status=200)

    # reservations: one released, one left to lapse (the job records it)
    online_1, online_2 = codes(threshold, {"count": 2})
    held = [
        post("/v1/reservations", {"codes": [c], "store": "SH-001", "channel": "web",
                                  "order": {"id": f"W-{i}", "amount": 12800},
                                  "ttl_seconds": 60},
             headers={"Idempotency-Key": f"rs-{i}"}, status=201)["id"]
        for i, c in enumerate((online_1, online_2))
    ]
    post(f"/v1/reservations/{held[0]}/release", headers={"Idempotency-Key": "rl-1"},
         status=200)

    post(f"/v1/templates/{threshold}/pause", status=200)
    post(f"/v1/templates/{threshold}/resume", status=200)

    # expiry reminders 3 days before the 30-day window closes: the two claimed coupons
    # still issued (held_1, reversed; loose_1)
    assert send_due_reminders(db, clock.now + timedelta(days=29)) == 2

    clock.advance(days=40)
    assert expire_reservations(db, clock.now) == 1
    # held_1 (reissued), loose_1, pct, _cup_2, the order's two (reissued) and the two once
    # held online
    assert expire_coupons(db, clock.now) == 8
    late = _reverse(client, admin, "rv-3", cup["redemption_id"], {"reason": "late refund"})
    assert late["coupon_status"] == "expired"

    # a sale made offline, synced after its coupon was redeemed at another store: a
    # conflict (its alert and event), then settled
    [offline] = codes(threshold, {"count": 1})
    clock.advance(minutes=10)
    _redeem(client, admin, "rd-off",
            {"code": offline, "store": "SH-002", "order": {"id": "ON-1", "amount": 12800}})
    synced = post(
        "/v1/redemptions/sync",
        {"terminal_id": "T-01", "items": [{
            "idempotency_key": "off-1", "code": offline, "store": "SH-001",
            "order": {"id": "OFF-1", "amount": 12800}, "offline_discount": 2000,
            "occurred_at": (clock.now - timedelta(minutes=5)).isoformat()}]},
        status=200,
    )
    conflict_id = synced["items"][0]["conflict_id"]
    post(f"/v1/conflicts/{conflict_id}/settle", {"settlement": "refunded at SH-001"},
         headers={"Idempotency-Key": "st-1"}, status=200)

    # an order reported without a coupon (POST /v1/sales)
    post("/v1/sales", {"orders": [{"order_id": "S-1", "store": "SH-001", "channel": "pos",
                                   "amount": 5600, "occurred_at": clock.now.isoformat()}]},
         status=200)

    with db.connect() as conn:
        rows = conn.execute(select(outbox_events).order_by(outbox_events.c.seq)).all()
    # sale.recorded;
    # created, issued, claimed, offered twice, cancelled, transferred, redeemed, reversed,
    # voided, paused+resumed, expired, order.*; the reservations' issued, created,
    # released, expired and their coupons expired
    # ... and the offline conflict's issued, redeemed, alert, conflict and settlement
    # ... and the two expiry reminders
    assert len(rows) == (
        1 + 5 + 9 + 1 + 2 + 1 + 1 + 5 + 5 + 2 + 2 + 6 + 2 + 2 + 2 + 1 + 1 + 2 + 5 + 2
    )
    seen: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        event = outbox.envelope(
            id=row.id,
            type=row.type,
            merchant_id=row.merchant_id,
            occurred_at=row.occurred_at,
            recorded_at=row.recorded_at,
            data=row.data,
        )
        validate_event(event)
        # what a receiver gets is JSON: the schema holds after the round trip too
        validate_event(json.loads(json.dumps(event)))
        assert event["merchant_id"] == merchant.id
        seen.setdefault(row.type, []).append(event["data"])
    assert set(seen) == set(outbox.EVENT_TYPES)
    # the flow exercised the optional and nullable shapes the schemas allow
    redeemed = seen["coupon.redeemed"]
    assert any("lines" not in d["order"] for d in redeemed)
    assert any(d["order"].get("lines") and d["lines"] for d in redeemed)
    assert {d["customer"] is None for d in seen["coupon.issued"]} == {True, False}
    assert {d["coupon_status"] for d in seen["coupon.redemption_reversed"]} == {"issued", "expired"}
    assert {d["reason"] is None for d in seen["coupon.voided"]} == {True, False}
    assert {d["benefit"]["kind"] for d in seen["template.created"]} == {
        "threshold",
        "percentage",
        "exchange",
    }


# --- (c) alert.raised (the circuit alert of hub/delivery/breaker.py) -------------------


def _alert(**changes: Any) -> dict[str, Any]:
    data = {
        "alert": "subscription_circuit_open",
        "severity": "warning",
        "message": "Subscription sub_1 failed 10 times in a row; deliveries are paused "
        "and probed again later.",
        "details": {
            "subscription_id": "sub_1",
            "consecutive_failures": 10,
            "probe_at": "2026-11-25T08:35:00+00:00",
        },
    }
    data.update(changes)
    row = outbox.event_row(
        type="alert.raised", merchant_id=new_id("mch"), occurred_at=NOW, recorded_at=NOW, data=data
    )
    return outbox.envelope(
        id=row["id"],
        type=row["type"],
        merchant_id=row["merchant_id"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        data=row["data"],
    )


def test_alert_raised_matches_its_documented_shape():
    validate_event(_alert())
    validate_event(_alert(severity="critical", details={}))
    for bad in (
        {"severity": "info"},
        {"details": "circuit open"},
        {"alert": ""},
        {"message": None},
    ):
        with pytest.raises(InvalidEvent):
            validate_event(_alert(**bad))
    event = _alert()
    del event["data"]["details"]
    with pytest.raises(InvalidEvent, match="'details' is a required property"):
        validate_event(event)


# --- (d) invalid events are refused, with the reason -------------------------------------


def _redeemed() -> dict[str, Any]:
    """A coupon.redeemed envelope as the hub publishes it."""
    return {
        "id": new_id("evt"),
        "type": "coupon.redeemed",
        "occurred_at": iso(NOW),
        "recorded_at": iso(NOW),
        "merchant_id": new_id("mch"),
        "data": {
            "redemption_id": new_id("rdm"),
            "status": "redeemed",
            "code": "ABCDEFGHJKLMN7",
            "store": "SH-001",
            "channel": "pos",
            "order_id": "A-1001",
            "template": {"id": new_id("tpl"), "name": "满100减20", "kind": "threshold"},
            "customer": None,
            "discount": 2000,
            "eligible_amount": 12800,
            "payable": 10800,
            "lines": [],
            "redeemed_at": iso(NOW),
            "recorded_at": iso(NOW),
            "order": {"id": "A-1001", "amount": 12800},
            "gift": None,
        },
    }


def _refused(event: dict[str, Any]) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        validate_event(event)
    return info.value


def test_the_sample_redeemed_event_is_valid_and_data_is_open():
    validate_event(_redeemed())
    event = _redeemed()
    event["data"]["loyalty_points"] = 12  # a field added later: forward compatible
    event["data"]["template"]["category"] = "drinks"
    validate_event(event)


def test_money_as_a_string_is_refused():
    event = _redeemed()
    event["data"]["discount"] = "2000"
    err = _refused(event)
    assert err.errors == ["$.data.discount: '2000' is not of type 'integer'"]
    assert err.event_id == event["id"] and err.event_type == "coupon.redeemed"
    assert str(err).startswith(f"Event {event['id']} (coupon.redeemed) does not match")


def test_missing_id_is_refused():
    event = _redeemed()
    del event["id"]
    err = _refused(event)
    assert err.errors == ["$: 'id' is a required property"]
    assert "without id" in str(err)


def test_unknown_envelope_field_is_refused():
    event = _redeemed()
    event["coupon_id"] = new_id("cpn")
    err = _refused(event)
    assert len(err.errors) == 1 and "Additional properties are not allowed" in err.errors[0]
    assert "coupon_id" in err.errors[0]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("discount", 20.5),
        ("discount", True),
        ("payable", -1),
        ("status", "reversed"),
        ("channel", "fax"),
        ("code", "abcd-efgh-jklm-n7"),
        ("store", ""),
        ("customer", 42),
        ("redeemed_at", "2026-11-25 08:30"),
        ("recorded_at", "2026-11-25T08:30:00"),
        ("lines", [{"index": 0, "sku": "TEA-1", "discount": "900"}]),
        ("order", {"id": "A-1001", "amount": 12800, "lines": None}),
        ("order", {"id": "A-1001"}),
        ("template", {"id": "tpl_x", "name": "t", "kind": "threshold"}),
    ],
)
def test_wrong_data_is_refused(where, value):
    event = _redeemed()
    event["data"][where] = value
    err = _refused(event)
    assert all(e.startswith(f"$.data.{where}") for e in err.errors), err.errors


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("id", "evt_1"),
        ("merchant_id", "tpl_01J9ZQ4N1XKX8V6W3T2R0Y5B7C"),  # fixed: same ids every collection
        ("occurred_at", "2026-13-01T00:00:00.000Z"),
        ("recorded_at", 1764059400),
        ("type", "coupon.teleported"),
        ("data", None),
    ],
)
def test_wrong_envelope_is_refused(where, value):
    event = _redeemed()
    event[where] = value
    err = _refused(event)
    assert all(e.startswith(f"$.{where}") for e in err.errors), err.errors


def test_data_of_another_type_is_refused():
    event = _redeemed()
    event["type"] = "coupon.voided"
    err = _refused(event)
    assert "$.data: 'template_id' is a required property" in err.errors


def test_not_an_object_is_refused():
    for thing in (None, [], "event"):
        assert "is not of type 'object'" in str(_refused(thing))  # type: ignore[arg-type]


# --- (e) the schemas are served ----------------------------------------------------------


def test_all_schemas_are_served(client, merchant):
    r = client.get("/v1/events/schemas", headers=merchant.auth())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == json.loads(json.dumps(all_schemas()))
    assert set(body["types"]) == set(outbox.EVENT_TYPES)
    assert body["envelope"]["$id"] == "urn:redemption-hub:events:envelope"


def test_one_schema_is_served(client, merchant):
    r = client.get("/v1/events/schemas/coupon.redeemed", headers=merchant.auth())
    assert r.status_code == 200, r.text
    assert r.json() == json.loads(json.dumps(schema_for("coupon.redeemed")))
    assert r.json()["$id"] == "urn:redemption-hub:events:coupon.redeemed"
    # the served schema validates events on its own (what a receiver would do)
    validator = Draft202012Validator(r.json())
    assert validator.is_valid(_redeemed())
    assert not validator.is_valid({**_redeemed(), "extra": 1})
    store_key = merchant.auth(merchant.store_keys["SH-001"])  # any valid key may read them
    assert client.get("/v1/events/schemas/alert.raised", headers=store_key).status_code == 200


def test_unknown_type_is_a_404_problem(client, merchant):
    r = client.get("/v1/events/schemas/coupon.teleported", headers=merchant.auth())
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    problem = r.json()
    assert problem["code"] == "not_found"
    assert "coupon.teleported" in problem["detail"]


def test_schemas_need_a_key(client, merchant):
    for path in ("/v1/events/schemas", "/v1/events/schemas/coupon.redeemed"):
        r = client.get(path)
        assert r.status_code == 401
        assert r.json()["code"] == "unauthorized"


def test_schema_documents_are_not_shared():
    """Callers (the API included) may change what they get without touching the module."""
    got = all_schemas()
    got["envelope"]["required"].append("x")
    got["types"]["coupon.issued"]["properties"]["data"]["required"].append("x")
    assert "x" not in ENVELOPE_SCHEMA["required"]
    assert "x" not in schema_for("coupon.issued")["properties"]["data"]["required"]
    assert copy.deepcopy(ENVELOPE_SCHEMA) == all_schemas()["envelope"]

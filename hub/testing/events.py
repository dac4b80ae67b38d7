"""Sample event envelopes, exactly as the hub publishes them (checked against the event
schemas by the hub's own tests), for connector authors' tests."""

from __future__ import annotations

import copy
from typing import Any

from hub.domain.codes import check_character

AT = "2026-11-25T06:30:00Z"
GIFT_CODE = "K7Q2M9XW4RTB8" + check_character("K7Q2M9XW4RTB8")
CASH_CODE = "P3N8V6CJ2RDF5" + check_character("P3N8V6CJ2RDF5")
MERCHANT = "mch_01JDK000000000000000000012"
TEMPLATE_GIFT = "tpl_01JDK000000000000000000017"
TEMPLATE_CASH = "tpl_01JDK000000000000000000016"
TRANSFER = "trf_01JDK00000000000000000001B"
CONFLICT = "cfl_01JDK00000000000000000001C"
# a staff member's shift session (a phone) redeemed the cash coupon; API keys the others
STAFF = {"id": "stf_01JDK00000000000000000001D", "name": "Li Lei"}

_ORDER = {
    "id": "A-1001",
    "amount": 12800,
    "lines": [
        {"sku": "SKU-TEA-1", "category": "tea", "qty": 2, "unit_price": 4400},
        {"sku": "SKU-GIFT-1", "category": "gift", "qty": 1, "unit_price": 4000},
    ],
}

_REDEEMED_GIFT: dict[str, Any] = {
    "id": "evt_01JDK000000000000000000007",
    "type": "coupon.redeemed",
    "occurred_at": AT,
    "recorded_at": AT,
    "merchant_id": MERCHANT,
    "data": {
        "redemption_id": "rdm_01JDK000000000000000000013",
        "status": "redeemed",
        "code": GIFT_CODE,
        "store": "SH-001",
        "channel": "pos",
        "order_id": "A-1001",
        "template": {"id": TEMPLATE_GIFT, "name": "Free gift tea", "kind": "exchange"},
        "customer": "C-0001",
        "discount": 4000,
        "eligible_amount": 4000,
        "payable": 8800,
        "lines": [{"index": 1, "sku": "SKU-GIFT-1", "discount": 4000}],
        "redeemed_at": AT,
        "recorded_at": AT,
        "order": _ORDER,
        "gift": {"sku": "SKU-GIFT-1", "qty": 1},
        "staff": None,
    },
}

_REDEEMED_CASH: dict[str, Any] = {
    **_REDEEMED_GIFT,
    "id": "evt_01JDK000000000000000000006",
    "data": {
        **_REDEEMED_GIFT["data"],
        "redemption_id": "rdm_01JDK000000000000000000014",
        "code": CASH_CODE,
        "template": {"id": TEMPLATE_CASH, "name": "满100减20", "kind": "threshold"},
        "discount": 2000,
        "eligible_amount": 12800,
        "payable": 10800,
        "lines": [
            {"index": 0, "sku": "SKU-TEA-1", "discount": 1375},
            {"index": 1, "sku": "SKU-GIFT-1", "discount": 625},
        ],
        "gift": None,
        "staff": STAFF,
    },
}


def _reversed(redeemed: dict[str, Any], event_id: str) -> dict[str, Any]:
    d = redeemed["data"]
    return {
        **redeemed,
        "id": event_id,
        "type": "coupon.redemption_reversed",
        "occurred_at": "2026-11-25T07:00:00Z",
        "recorded_at": "2026-11-25T07:00:00Z",
        "data": {
            "redemption_id": d["redemption_id"],
            "status": "reversed",
            "code": d["code"],
            "store": d["store"],
            "order_id": d["order_id"],
            "discount": d["discount"],
            "reason": "refund",
            "reversed_at": "2026-11-25T07:00:00Z",
            "coupon_status": "issued",
            "channel": d["channel"],
            "template_id": d["template"]["id"],
            "template": d["template"],
            "customer": d["customer"],
            "order": d["order"],
            "gift": d["gift"],
            "staff": d["staff"],  # the sample's reversal is made by whoever redeemed it
        },
    }


def _reservation(status: str) -> dict[str, Any]:
    return {
        "reservation_id": "rsv_01JDK000000000000000000026",
        "status": status,
        "codes": [GIFT_CODE, CASH_CODE],
        "store": "SH-001",
        "channel": "mini_program",
        "order_id": "W-2001",
        "held_at": AT,
        "expires_at": "2026-11-25T06:45:00Z",
        "ended_at": None if status == "held" else "2026-11-25T06:45:00Z",
    }


ORDER_REDEMPTION = "ord_01JDK000000000000000000018"

# Both coupons redeemed on one order (POST /v1/orders/redeem): the exchange coupon first,
# then the threshold judged on what it left (12800 - 4000 = 8800 ≥ 8000).
_ORDER_REDEEMED: dict[str, Any] = {
    "id": "evt_01JDK000000000000000000019",
    "type": "order.redeemed",
    "occurred_at": AT,
    "recorded_at": AT,
    "merchant_id": MERCHANT,
    "data": {
        "order_redemption_id": ORDER_REDEMPTION,
        "status": "redeemed",
        "order_id": "A-1001",
        "store": "SH-001",
        "channel": "pos",
        "coupons": [
            {
                "redemption_id": "rdm_01JDK000000000000000000020",
                "code": GIFT_CODE,
                "template": {"id": TEMPLATE_GIFT, "name": "Free gift tea", "kind": "exchange"},
                "customer": "C-0001",
                "discount": 4000,
                "eligible_amount": 4000,
                "lines": [{"index": 1, "sku": "SKU-GIFT-1", "discount": 4000}],
                "gift": {"sku": "SKU-GIFT-1", "qty": 1},
            },
            {
                "redemption_id": "rdm_01JDK000000000000000000021",
                "code": CASH_CODE,
                "template": {"id": TEMPLATE_CASH, "name": "满80减20", "kind": "threshold"},
                "customer": "C-0001",
                "discount": 2000,
                "eligible_amount": 8800,
                "lines": [{"index": 0, "sku": "SKU-TEA-1", "discount": 2000}],
                "gift": None,
            },
        ],
        "order_amount": 12800,
        "discount": 6000,
        "payable": 6800,
        "lines": [
            {
                "index": 0,
                "sku": "SKU-TEA-1",
                "amount": 8800,
                "discount": 2000,
                "payable": 6800,
                "by_coupon": [{"code": CASH_CODE, "discount": 2000}],
            },
            {
                "index": 1,
                "sku": "SKU-GIFT-1",
                "amount": 4000,
                "discount": 4000,
                "payable": 0,
                "by_coupon": [{"code": GIFT_CODE, "discount": 4000}],
            },
        ],
        "reservation_id": None,
        "redeemed_at": AT,
        "recorded_at": AT,
        "staff": None,
        "order": _ORDER,
    },
}

_ORDER_REVERSED: dict[str, Any] = {
    "id": "evt_01JDK000000000000000000022",
    "type": "order.reversed",
    "occurred_at": "2026-11-25T07:00:00Z",
    "recorded_at": "2026-11-25T07:00:00Z",
    "merchant_id": MERCHANT,
    "data": {
        "order_redemption_id": ORDER_REDEMPTION,
        "status": "reversed",
        "order_id": "A-1001",
        "store": "SH-001",
        "channel": "pos",
        "discount": 6000,
        "reason": "refund",
        "reversed_at": "2026-11-25T07:00:00Z",
        "coupons": [
            {
                "redemption_id": "rdm_01JDK000000000000000000020",
                "code": GIFT_CODE,
                "discount": 4000,
                "coupon_status": "issued",
            },
            {
                "redemption_id": "rdm_01JDK000000000000000000021",
                "code": CASH_CODE,
                "discount": 2000,
                "coupon_status": "issued",
            },
        ],
        "staff": None,
        "order": _ORDER,
    },
}


def _simple(event_type: str, event_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": event_type,
        "occurred_at": AT,
        "recorded_at": AT,
        "merchant_id": MERCHANT,
        "data": data,
    }


_SAMPLES: dict[str, list[dict[str, Any]]] = {
    "coupon.redeemed": [_REDEEMED_GIFT, _REDEEMED_CASH],
    "coupon.redemption_reversed": [
        _reversed(_REDEEMED_GIFT, "evt_01JDK000000000000000000010"),
        _reversed(_REDEEMED_CASH, "evt_01JDK000000000000000000009"),
    ],
    "order.redeemed": [_ORDER_REDEEMED],
    "order.reversed": [_ORDER_REVERSED],
    "coupon.issued": [
        _simple(
            "coupon.issued",
            "evt_01JDK000000000000000000004",
            {
                "code": GIFT_CODE,
                "customer": "C-0001",
                "channel": "pos",
                "valid_from": AT,
                "valid_until": "2026-12-25T16:00:00Z",
                "template_id": TEMPLATE_GIFT,
                "kind": "exchange",
            },
        )
    ],
    "coupon.claimed": [
        _simple(
            "coupon.claimed",
            "evt_01JDK000000000000000000002",
            {"code": GIFT_CODE, "customer": "C-0001", "template_id": TEMPLATE_GIFT},
        )
    ],
    "coupon.voided": [
        _simple(
            "coupon.voided",
            "evt_01JDK000000000000000000011",
            {"code": GIFT_CODE, "template_id": TEMPLATE_GIFT, "reason": None},
        )
    ],
    "coupon.expired": [
        _simple(
            "coupon.expired",
            "evt_01JDK000000000000000000003",
            {
                "code": GIFT_CODE,
                "template_id": TEMPLATE_GIFT,
                "valid_until": "2026-12-25T16:00:00Z",
            },
        )
    ],
    "coupon.expiring": [
        _simple(
            "coupon.expiring",
            "evt_01JDK000000000000000000028",
            {
                "code": GIFT_CODE,
                "customer": "C-0001",
                "template_id": TEMPLATE_GIFT,
                "template": {"id": TEMPLATE_GIFT, "name": "Free gift tea", "kind": "exchange"},
                "valid_until": "2026-11-27T16:00:00Z",
                "days_before": 3,
                "remind_at": "2026-11-24T16:00:00Z",
            },
        )
    ],
    "coupon.transfer_offered": [
        _simple(
            "coupon.transfer_offered",
            "evt_01JDK000000000000000000018",
            {
                "code": GIFT_CODE,
                "transfer_id": TRANSFER,
                "from_customer": "C-0001",
                "template_id": TEMPLATE_GIFT,
                "expires_at": "2026-11-26T06:30:00Z",
            },
        )
    ],
    "coupon.transferred": [
        _simple(
            "coupon.transferred",
            "evt_01JDK000000000000000000019",
            {
                "code": GIFT_CODE,
                "transfer_id": TRANSFER,
                "from_customer": "C-0001",
                "to_customer": "C-0002",
                "template_id": TEMPLATE_GIFT,
            },
        )
    ],
    "coupon.transfer_cancelled": [
        _simple(
            "coupon.transfer_cancelled",
            "evt_01JDK00000000000000000001A",
            {
                "code": GIFT_CODE,
                "transfer_id": TRANSFER,
                "from_customer": "C-0001",
                "template_id": TEMPLATE_GIFT,
            },
        )
    ],
    "template.paused": [
        _simple("template.paused", "evt_01JDK000000000000000000005", {"template_id": TEMPLATE_GIFT})
    ],
    "template.resumed": [
        _simple(
            "template.resumed", "evt_01JDK000000000000000000008", {"template_id": TEMPLATE_GIFT}
        )
    ],
    "alert.raised": [
        _simple(
            "alert.raised",
            "evt_01JDK000000000000000000001",
            {
                "alert": "subscription_circuit_open",
                "severity": "warning",
                "message": "Subscription failed 10 times in a row.",
                "details": {"subscription_id": "sub_01JDK000000000000000000015"},
            },
        )
    ],
    "redemption.offline_conflict": [
        _simple(
            "redemption.offline_conflict",
            "evt_01JDK000000000000000000026",
            {
                "conflict_id": CONFLICT,
                "code": GIFT_CODE,
                "store": "SH-001",
                "channel": "pos",
                "terminal_id": "T-07",
                "order": _ORDER,
                "offline_discount": 2000,
                "occurred_at": AT,
                "redemption_id": None,
                "redeemed_store": "BJ-001",
                "redeemed_at": AT,
            },
        )
    ],
    "redemption.offline_conflict_settled": [
        _simple(
            "redemption.offline_conflict_settled",
            "evt_01JDK000000000000000000027",
            {
                "conflict_id": CONFLICT,
                "code": GIFT_CODE,
                "store": "SH-001",
                "redemption_id": None,
                "settlement": "refunded the customer at the till",
                "settled_at": AT,
            },
        )
    ],
    **{
        f"reservation.{name}": [_simple(f"reservation.{name}", event_id, _reservation(status))]
        for name, status, event_id in (
            ("created", "held", "evt_01JDK000000000000000000023"),
            ("released", "released", "evt_01JDK000000000000000000024"),
            ("expired", "expired", "evt_01JDK000000000000000000025"),
        )
    },
    "sale.recorded": [
        _simple(
            "sale.recorded",
            "evt_01JDK00000000000000000002A",
            {
                "sale_id": "sal_01JDK00000000000000000002B",
                "order_id": "A-1002",
                "store": "SH-001",
                "channel": "pos",
                "customer": "C-0001",
                "amount": 5600,
                "coupon_order": False,
                "occurred_at": AT,
                "recorded_at": AT,
            },
        )
    ],
}


def sample_events(event_type: str) -> list[dict[str, Any]]:
    """Sample envelopes of ``event_type`` (a fresh deep copy each call). Redemption events
    come in an exchange (gift, moves stock) and a threshold (no stock) variant."""
    return copy.deepcopy(_SAMPLES.get(event_type, []))


def sample_event(event_type: str, *, kind: str | None = None) -> dict[str, Any]:
    """One sample of ``event_type``; ``kind`` picks the template kind where samples vary."""
    for event in sample_events(event_type):
        template = event["data"].get("template") or {}
        if kind is None or template.get("kind", kind) == kind:
            return event
    raise LookupError(f"no sample {event_type} event of kind {kind!r}")


def all_samples() -> list[dict[str, Any]]:
    return [e for t in _SAMPLES for e in sample_events(t)]

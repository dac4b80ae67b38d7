"""Hostile and broken request bodies every inbound connector must refuse cleanly, and
sample hub results for rendering replies."""

from __future__ import annotations

from typing import Any

from hub.connectors import InboundResult
from hub.testing.events import CASH_CODE, GIFT_CODE

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<POSLog xmlns="http://www.nrf-arts.org/IXRetail/namespace/"><Transaction>&lol9;</Transaction>
</POSLog>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<POSLog xmlns="http://www.nrf-arts.org/IXRetail/namespace/"><Transaction>
<RetailStoreID>&xxe;</RetailStoreID></Transaction></POSLog>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE POSLog SYSTEM "http://127.0.0.1:9/evil.dtd">
<POSLog xmlns="http://www.nrf-arts.org/IXRetail/namespace/"/>"""

DEEP_JSON = b"[" * 5000 + b"]" * 5000

GARBAGE: tuple[bytes, ...] = (
    b"",
    b"\x00\xff\xfe\x01",
    b"{",
    b"[]",
    b'"text"',
    b"null",
    b"12",
    b'{"unexpected": true}',
    b"<not-closed",
    b'<?xml version="1.0"?><root/>',
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    EXTERNAL_DTD,
    DEEP_JSON,
)


def _redeem_body(code: str) -> dict[str, Any]:
    return {
        "redemption_id": "rdm_01JDK000000000000000000013",
        "status": "redeemed",
        "code": code,
        "store": "SH-001",
        "channel": "pos",
        "order_id": "A-1001",
        "template": {"id": "tpl_01JDK000000000000000000017", "name": "gift", "kind": "exchange"},
        "customer": "C-0001",
        "discount": 4000,
        "eligible_amount": 4000,
        "payable": 8800,
        "lines": [{"index": 1, "sku": "SKU-GIFT-1", "discount": 4000}],
        "redeemed_at": "2026-11-25T06:30:00Z",
        "recorded_at": "2026-11-25T06:30:00Z",
    }


def _problem(code: str, status: int, detail: str) -> dict[str, Any]:
    return {
        "type": f"urn:redemption-hub:error:{code}",
        "title": detail,
        "status": status,
        "detail": detail,
        "code": code,
    }


SUCCESS: dict[str, InboundResult] = {
    "redeem": InboundResult(201, _redeem_body(GIFT_CODE)),
    "validate": InboundResult(
        200,
        {
            "status": "valid",
            "code": CASH_CODE,
            "store": "SH-001",
            "channel": "pos",
            "template": {
                "id": "tpl_01JDK000000000000000000016",
                "name": "cash",
                "kind": "threshold",
            },
            "discount": 2000,
            "eligible_amount": 12800,
            "payable": 10800,
            "lines": [],
        },
    ),
    "reverse": InboundResult(
        201,
        {
            "redemption_id": "rdm_01JDK000000000000000000013",
            "status": "reversed",
            "code": GIFT_CODE,
            "store": "SH-001",
            "order_id": "A-1001",
            "discount": 4000,
            "reason": "refund",
            "reversed_at": "2026-11-25T07:00:00Z",
            "coupon_status": "issued",
        },
    ),
}

REFUSALS: tuple[InboundResult, ...] = (
    InboundResult(404, _problem("coupon_not_found", 404, "No coupon with this code.")),
    InboundResult(409, _problem("coupon_already_redeemed", 409, "Redeemed already.")),
    InboundResult(422, _problem("threshold_not_met", 422, "Below the threshold.")),
    InboundResult(422, _problem("invalid_pos_payload", 422, "The payload lacks a field.")),
    InboundResult(500, _problem("internal_error", 500, "Unexpected failure.")),
)

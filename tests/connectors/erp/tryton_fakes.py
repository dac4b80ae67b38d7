"""Canned Tryton REST answers for the connector's unit and contract tests (no network).

:func:`tryton_answer` answers like a healthy Tryton 8.2 server with enough stock: no
earlier decrement, every product found, each button moving the shipment one state on,
and (for a reversal) one done decrement shipment with one done move.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hub.connectors import OutboundRequest, OutboundResponse

# a subscription config the unit and contract tests share
CONFIG: dict[str, Any] = {
    "base_url": "https://erp.example.com",
    "database": "tryton",
    "app_key": "0123456789abcdef0123456789abcdef",
    "company": 1,
    "locations": {"SH-001": 3, "SH-002": 3, "BJ-001": 11},
    "lost_found_location": 4,
}


BUTTON_STATES = {
    "wait": "waiting",
    "assign_try": "assigned",
    "assign_force": "assigned",
    "do": "done",
    "cancel": "cancelled",
}


def ok(body: Any, status: int = 200) -> OutboundResponse:
    return OutboundResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def user_error(message: str) -> OutboundResponse:
    return ok({"status": 400, "message": message, "description": ""}, status=400)


def parse(request: OutboundRequest) -> tuple[str, list[str], dict[str, list[str]]]:
    """(method, path parts after /rest/model/, query) of a request."""
    url = urlsplit(request.url)
    _, _, model_path = url.path.partition("/rest/model/")
    return request.method, model_path.split("/"), parse_qs(url.query)


def domain_of(request: OutboundRequest) -> list[Any]:
    _, _, query = parse(request)
    if "d" not in query:
        return []
    return list(json.loads(base64.urlsafe_b64decode(query["d"][0])))


def done_shipment(reference: str, move_id: int = 7, shipment_id: int = 5) -> dict[str, Any]:
    return {
        "id": shipment_id,
        "__name__": "stock.shipment.internal",
        "state": "done",
        "reference": reference,
        "company": 1,
        "moves": [
            {
                "id": move_id,
                "__name__": "stock.move",
                "state": "done",
                "product": 1,
                "unit": 1,
                "quantity": 1.0,
                "from_location": 3,
                "to_location": 4,
            }
        ],
    }


def tryton_answer(request: OutboundRequest) -> OutboundResponse:
    method, parts, _query = parse(request)
    model = parts[0]
    if method == "GET" and len(parts) == 2:
        return ok({"id": int(parts[1]), "__name__": model, "rec_name": "x"})
    if method == "GET" and model == "stock.shipment.internal":
        domain = domain_of(request)
        _field, operator, value = domain[0]
        if operator == "like":  # the reversal's look-up: the earlier decrement
            return ok([done_shipment(value.replace("%", "evt_earlier"))])
        return ok([])
    if method == "GET" and model == "product.product":
        (_field, _op, codes), *_ = domain_of(request)
        return ok(
            [
                {"id": i, "__name__": model, "code": code, "default_uom": 1}
                for i, code in enumerate(codes, start=1)
            ]
        )
    if method == "GET" and model == "stock.move":
        return ok([])
    if method == "POST" and len(parts) == 1:
        return ok({"id": 5 if model == "stock.shipment.internal" else 9, "state": "draft"})
    if method == "POST" and len(parts) == 3:
        return ok({"id": int(parts[1]), "__name__": model, "state": BUTTON_STATES[parts[2]]})
    return OutboundResponse(404, {}, b"")

"""Sample configs and fake receivers (Salesforce, HubSpot) for the CRM connector tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hub.connectors import OutboundRequest, OutboundResponse

SF_BASE = "https://acme.my.salesforce.com"
SF_DATA = f"{SF_BASE}/services/data/v60.0"
SF_SECRET = "sf-client-secret-canary-93f1"
SF_CONFIG: dict[str, Any] = {
    "instance_url": SF_BASE,
    "client_id": "3MVG9-client-id",
    "client_secret": SF_SECRET,
    "program_name": "Inner Circle",
    "process_name": "Credit Points",
    "debit_process_name": "Debit Points",
}

HS_BASE = "https://api.hubapi.com"
HS_TOKEN = "pat-na1-canary-0b7e-token"
HS_CONFIG: dict[str, Any] = {"access_token": HS_TOKEN, "id_property": "hub_customer_id"}
HS_EVENT_CONFIG: dict[str, Any] = {
    **HS_CONFIG,
    "mode": "event",
    "event_name": "pe4711_loyalty_points",
}

WEBHOOK_CONFIG: dict[str, Any] = {
    "url": "https://crm.example/loyalty",
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}

JSON = {"content-type": "application/json"}


def json_response(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> OutboundResponse:
    return OutboundResponse(status, {**JSON, **(headers or {})}, json.dumps(body).encode())


def query_of(request: OutboundRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


def process_ok(points_key: str = "PointsCredited", points: float = 88.0) -> OutboundResponse:
    return json_response(
        201,
        {
            "message": None,
            "outputParameters": {"outputParameters": {"results": [{points_key: points}]}},
            "simulationDetails": {},
            "status": True,
        },
    )


def salesforce_ok(request: OutboundRequest, *, token: str = "00DTEST!token-1") -> OutboundResponse:
    """Salesforce's successful answers: token, journal query (none yet), process, limits."""
    url = request.url
    if url.endswith("/services/oauth2/token"):
        return json_response(
            200,
            {
                "access_token": token,
                "instance_url": SF_BASE,
                "id": "https://login.salesforce.com/id/00D/005",
                "token_type": "Bearer",
                "issued_at": "1700000000000",
                "signature": "c2ln",
            },
        )
    if "/query?" in url:
        return json_response(200, {"totalSize": 0, "done": True, "records": []})
    if "/program-processes/" in url:
        return process_ok()
    if url.endswith("/limits"):
        return json_response(200, {"DailyApiRequests": {"Max": 15000, "Remaining": 14998}})
    return json_response(404, [{"errorCode": "NOT_FOUND", "message": "no such resource"}])


CONTACT_ID = "151"


def hubspot_contact(points: str | None = "100", ledger: str | None = None) -> OutboundResponse:
    return json_response(
        200,
        {
            "id": CONTACT_ID,
            "properties": {
                "hs_object_id": CONTACT_ID,
                "loyalty_points": points,
                "hub_points_ledger": ledger,
            },
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-11-01T00:00:00Z",
            "archived": False,
        },
    )


def hubspot_ok(request: OutboundRequest) -> OutboundResponse:
    """HubSpot's successful answers: contact look-up, update, event send, list."""
    path = urlsplit(request.url).path
    if request.method == "GET" and path.startswith("/crm/v3/objects/contacts/"):
        return hubspot_contact()
    if request.method == "PATCH":
        return json_response(200, {"id": CONTACT_ID, "properties": {}})
    if path == "/events/v3/send":
        return OutboundResponse(204, {}, b"")
    if path == "/crm/v3/objects/contacts":
        return json_response(200, {"results": []})
    return json_response(
        404, {"status": "error", "message": "nope", "category": "OBJECT_NOT_FOUND"}
    )


@dataclass
class Script:
    """Answers in order from ``answers`` (then from ``fallback``), recording requests."""

    answers: list[OutboundResponse | Callable[[OutboundRequest], OutboundResponse]]
    fallback: Callable[[OutboundRequest], OutboundResponse] = salesforce_ok
    sent: list[OutboundRequest] = field(default_factory=list)

    def __call__(self, request: OutboundRequest) -> OutboundResponse:
        self.sent.append(request)
        if self.answers:
            answer = self.answers.pop(0)
            return answer(request) if callable(answer) else answer
        return self.fallback(request)

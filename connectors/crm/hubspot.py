"""``crm.hubspot``: loyalty points on HubSpot contacts.

Every delivery first finds the member's contact by the customer external id, held in a
contact property with unique values (``id_property``)::

    GET {base_url}/crm/v3/objects/contacts/{member}?idProperty={id_property}
        &properties={points_property},{ledger_property}

then, by ``mode``:

- ``"property"`` (default): read-modify-write. If the event id is in the contact's ledger
  (``ledger_property``: a text property holding the ids of the last ``ledger_size``
  events applied, space-separated) the event was applied already: delivered, nothing
  written. Otherwise one PATCH writes the new balance and the ledger with the event id
  appended::

      PATCH {base_url}/crm/v3/objects/contacts/{contact id}
      {"properties": {"loyalty_points": "208", "hub_points_ledger": "… evt_…"}}

  The balance and the ledger change in one write, so a replay after a lost answer finds
  its id and does not count twice. A balance never set counts as 0; a reversal may take
  it below zero (the points may have been spent since) — that is written as is.

  **Race.** HubSpot has no conditional update (no ETag/If-Match on CRM objects). The hub
  delivers the events of one *coupon* in order, but two *different* coupons of one member
  can be delivered at the same time: both read balance 100, both write 100 + n, and one
  credit is lost (the ledgers race the same way). For members who redeem several coupons
  at once, use ``mode: "event"``, or let a HubSpot workflow roll the events up.

- ``"event"``: send a custom behavioral event occurrence to the contact (append-only,
  no race)::

      POST {base_url}/events/v3/send
      {"eventName": "pe<HubID>_loyalty_points", "objectId": "<contact id>",
       "occurredAt": "2026-11-25T06:30:00Z", "uuid": "<uuid5 of the event id>",
       "properties": {"points": 88, "hub_event_id": "evt_…",
                      "redemption_id": "rdm_…", "reason": "redemption"}}

  The event definition must declare the properties ``points`` (number),
  ``hub_event_id``, ``redemption_id`` and ``reason`` (strings). ``uuid`` is derived from
  the event id: HubSpot accepts the first occurrence with a given uuid within a year and
  rejects the others, so a replay does not count twice. The contact is identified by
  ``objectId`` because the customer external id is neither an email nor a ``utk``.

Followed (developers.hubspot.com): "Contacts" (CRM API v3: retrieve a record by a unique
property with ``idProperty``, update with ``PATCH /crm/v3/objects/contacts/{id}`` and a
``properties`` object), "Send custom event occurrences" (``POST /events/v3/send``:
``eventName`` = fully qualified name, ``objectId``/``email``/``utk``, ``occurredAt``,
``properties``, ``uuid`` — success is 204 without a body), "API usage guidelines"
(private app tokens as ``Authorization: Bearer``, 429 when a limit is hit, error bodies
``{"status": "error", "message", "category", "correlationId"}``).

Classification: connection errors, timeouts, 408, 429 and 5xx retry — a 429 after its
``Retry-After`` or, without one, 10 s (the burst window), an hour when the body names the
``DAILY`` policy; 401 (token revoked or wrong) and other 4xx fail with HubSpot's message;
a contact that is not found fails ("member … not found").
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from connectors.crm.points import PointsChange, PointsError, points_for, with_points_schema
from hub.connectors import (
    Delivered,
    Exchange,
    Failed,
    OutboundConnector,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
    classify_http,
    package_schema,
    retry_after_seconds,
)

DEFAULT_BASE_URL = "https://api.hubapi.com"
RATE_LIMIT_WAIT = 10.0  # seconds: HubSpot's burst limits are per rolling 10 s
DAILY_LIMIT_WAIT = 3600.0
MAX_DETAIL = 300
# uuid5 namespace of the hub's event ids (fixed: the same event always gets the same uuid)
EVENT_NAMESPACE = uuid.UUID("6f1d3c1e-3a52-5b8e-9a43-2d0c4f1b7e55")
_LEDGER_SPLIT = re.compile(r"[\s,]+")


def _error(response: OutboundResponse) -> tuple[str, str, str]:
    """``(category, message, policyName)`` of a HubSpot error body (empty when absent)."""
    body = response.json()
    if not isinstance(body, dict):
        return "", "", ""
    category = body.get("category") or body.get("errorType") or ""
    return (
        str(category),
        str(body.get("message") or "")[:MAX_DETAIL],
        str(body.get("policyName") or ""),
    )


def classify_hubspot(response: OutboundResponse | None, error: Exception | None) -> Outcome:
    """HubSpot's answer (or a transport error) as an outcome; see the module docs."""
    if response is None:
        return classify_http(None, error)
    status = response.status
    if 200 <= status < 300:
        return Delivered()
    category, message, policy = _error(response)
    detail = ": ".join(p for p in (category, message) if p)
    suffix = f" {detail}" if detail else ""
    if status == 429:
        after = retry_after_seconds(response.header("retry-after"))
        if after is None:
            after = DAILY_LIMIT_WAIT if policy.upper() == "DAILY" else RATE_LIMIT_WAIT
        return Retry(f"HTTP 429{suffix}", after=after)
    outcome = classify_http(response, None)
    if isinstance(outcome, Retry):
        return Retry(f"{outcome.reason}{suffix}", outcome.after)
    if status == 401:
        return Failed(
            "HTTP 401: HubSpot refused the access token" + (f" ({detail})" if detail else "")
        )
    return Failed(f"{outcome.reason if isinstance(outcome, Failed) else status}{suffix}")


def parse_points(value: Any) -> int | None:
    """A points property's value: HubSpot answers numbers as strings ("120", "120.0");
    never set is 0. ``None`` when it is not a whole number."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def ledger_ids(value: Any) -> list[str]:
    """The event ids of a ledger property (space- or comma-separated)."""
    if not isinstance(value, str):
        return []
    return [i for i in _LEDGER_SPLIT.split(value) if i]


def event_uuid(event_id: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, event_id))


class HubspotConnector(OutboundConnector):
    """Loyalty points to HubSpot: a contact property with a ledger, or a custom event."""

    name: ClassVar[str] = "crm.hubspot"
    kind: ClassVar[str] = "crm"
    version: ClassVar[str] = "1.0"
    summary: ClassVar[str] = (
        "Credit/debit loyalty points on HubSpot contacts (property + ledger, or custom events)"
    )
    capabilities: ClassVar[tuple[str, ...]] = ("outbound", "loyalty.credit", "loyalty.debit")
    consumes: ClassVar[tuple[str, ...]] = ("coupon.redeemed", "coupon.redemption_reversed")
    secret_fields: ClassVar[tuple[str, ...]] = ("access_token",)
    config_schema: ClassVar[dict[str, Any]] = with_points_schema(
        package_schema("connectors.crm", "hubspot.schema.json")
    )

    # ---------------------------------------------------------------- requests
    @staticmethod
    def _base(config: Mapping[str, Any]) -> str:
        return str(config.get("base_url", DEFAULT_BASE_URL)).rstrip("/")

    @staticmethod
    def _headers(config: Mapping[str, Any], *, body: bool = False) -> dict[str, str]:
        headers = {
            "authorization": f"Bearer {config['access_token']}",
            "accept": "application/json",
        }
        if body:
            headers["content-type"] = "application/json"
        return headers

    @staticmethod
    def _props(config: Mapping[str, Any]) -> tuple[str, str]:
        return (
            str(config.get("points_property", "loyalty_points")),
            str(config.get("ledger_property", "hub_points_ledger")),
        )

    def contact_lookup(self, config: Mapping[str, Any], member: str) -> OutboundRequest:
        query: dict[str, str] = {"idProperty": config["id_property"]}
        if config.get("mode", "property") == "property":
            query["properties"] = ",".join(self._props(config))
        url = (
            f"{self._base(config)}/crm/v3/objects/contacts/{quote(member, safe='')}"
            f"?{urlencode(query, safe=',')}"
        )
        return OutboundRequest(
            "GET", url, self._headers(config), timeout=float(config.get("timeout", 10.0))
        )

    def contact_update(
        self, config: Mapping[str, Any], contact_id: str, properties: Mapping[str, str]
    ) -> OutboundRequest:
        return OutboundRequest(
            "PATCH",
            f"{self._base(config)}/crm/v3/objects/contacts/{quote(contact_id, safe='')}",
            self._headers(config, body=True),
            json.dumps({"properties": dict(properties)}, ensure_ascii=False).encode(),
            timeout=float(config.get("timeout", 10.0)),
        )

    def event_send(
        self,
        config: Mapping[str, Any],
        event: Mapping[str, Any],
        change: PointsChange,
        contact_id: str,
    ) -> OutboundRequest:
        occurrence = {
            "eventName": config["event_name"],
            "objectId": contact_id,
            "occurredAt": event.get("occurred_at"),
            "uuid": event_uuid(change.reference),
            "properties": {
                "points": change.points,
                "hub_event_id": change.reference,
                "redemption_id": change.redemption_id,
                "reason": change.reason,
            },
        }
        return OutboundRequest(
            "POST",
            f"{self._base(config)}/events/v3/send",
            self._headers(config, body=True),
            json.dumps(occurrence, ensure_ascii=False).encode(),
            timeout=float(config.get("timeout", 10.0)),
        )

    # ---------------------------------------------------------------- outbound
    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        """The contact look-up; what follows depends on it (see :meth:`exchange`)."""
        change = points_for(event, config)
        return [] if change is None else [self.contact_lookup(config, change.member)]

    def exchange(self, event: dict[str, Any], config: dict[str, Any], *, now: datetime) -> Exchange:
        try:
            change = points_for(event, config)
        except PointsError as exc:
            return Failed(f"cannot compute the points: {exc}")
        if change is None:
            return Delivered()  # no customer, or no points: nothing to tell HubSpot
        answer = yield self.contact_lookup(config, change.member)
        if answer.status == 404:
            return Failed(
                f"member {change.member!r} not found: no HubSpot contact has "
                f"{config['id_property']} = {change.member!r}"
            )
        outcome = self.classify(answer, None)
        if not isinstance(outcome, Delivered):
            return outcome
        contact = answer.json()
        contact_id = contact.get("id") if isinstance(contact, dict) else None
        if isinstance(contact_id, int) and not isinstance(contact_id, bool):
            contact_id = str(contact_id)
        if not isinstance(contact_id, str) or not contact_id:
            return Failed(f"unexpected answer to the contact look-up (HTTP {answer.status})")
        if config.get("mode", "property") == "event":
            answer = yield self.event_send(config, event, change, contact_id)
            return self.classify(answer, None)
        properties = contact.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        points_property, ledger_property = self._props(config)
        ledger = ledger_ids(properties.get(ledger_property))
        if change.reference in ledger:
            return Delivered()  # a replay: the ledger says this event was applied
        balance = parse_points(properties.get(points_property))
        if balance is None:
            shown = str(properties.get(points_property))[:40]
            return Failed(
                f"contact {contact_id}: {points_property} is not a whole number: {shown!r}"
            )
        size = int(config.get("ledger_size", 50))
        written = {
            points_property: str(balance + change.points),
            ledger_property: " ".join([*ledger, change.reference][-size:]),
        }
        answer = yield self.contact_update(config, contact_id, written)
        return self.classify(answer, None)

    def classify(self, response: OutboundResponse | None, error: Exception | None) -> Outcome:
        return classify_hubspot(response, error)

    def check_requests(self, config: dict[str, Any]) -> Sequence[OutboundRequest]:
        return [
            OutboundRequest(
                "GET",
                f"{self._base(config)}/crm/v3/objects/contacts?limit=1",
                self._headers(config),
                timeout=float(config.get("timeout", 10.0)),
            )
        ]


__all__ = ["HubspotConnector", "classify_hubspot", "event_uuid", "ledger_ids", "parse_points"]

"""SAP S/4HANA goods movements (``erp.sap``) through the OData V2 service
``API_MATERIAL_DOCUMENT_SRV`` (Material Documents - Create, Read).

What moves follows the shared rule of :mod:`connectors.erp.stock` (the gift of an
exchange coupon; optionally every order line), mapped per store by ``config.plants`` to
a plant and storage location. One event posts at most one material document, so a
multi-line movement posts all or nothing.

Session (CSRF)
    SAP refuses a modifying request without a CSRF token. The session request is
    ``GET {base_url}/`` with ``x-csrf-token: Fetch`` and the credentials; the session is
    the ``x-csrf-token`` answered plus the ``Set-Cookie`` cookies (the token is bound to
    the SAP session those cookies name), sent back as ``x-csrf-token`` and ``Cookie``.
    A ``403`` answered with ``x-csrf-token: Required`` means the token expired: the hub
    fetches a new one once and resends the request.

Delivery (idempotent)
    1. ``GET {base_url}/A_MaterialDocumentHeader?$filter=MaterialDocumentHeaderText eq
       '<text>'&$format=json&$top=1``: a document with this event's header text exists
       (a replay after a lost answer) → **Delivered** without posting again.
    2. Otherwise ``POST {base_url}/A_MaterialDocumentHeader``: header
       (``GoodsMovementCode`` 03, ``PostingDate`` = ``DocumentDate`` = the calendar date
       of the event's ``occurred_at`` in ``config.timezone``, ``MaterialDocumentHeaderText``,
       ``ReferenceDocument`` = the order id when it fits 16 characters) and one item per
       movement (``Material``, ``Plant``, ``StorageLocation``, ``GoodsMovementType``
       ``201`` out / ``202`` back in, ``QuantityInEntryUnit`` as a decimal string,
       ``EntryUnit``, ``CostCenter``, ``MaterialDocumentItemText`` = the event id).

    ``MaterialDocumentHeaderText`` (BKTXT) holds 25 characters: it is the event id's
    **last 25 characters** (the whole id when shorter). For hub ids (``evt_`` + a
    26-character ULID) that is the ULID without its first character, which only
    changes every ~1,100 years, so the text is unique per event: it is the dedupe key
    SAP can be searched by. Every request also carries the whole id as
    ``x-hub-event-id``. The communication user needs read access to material
    documents for the look-up.

    The ``sap-client`` query parameter is added to every URL when ``config.sap_client``
    is set. Credentials: basic auth (``username``/``password``) and/or an ``APIKey``
    header (``api_key``, for API Management / the API Business Hub).

Classification of SAP's answers
    ===============================================  =======================================
    answer                                           outcome
    ===============================================  =======================================
    ``201`` (any 2xx) to the POST                    Delivered
    look-up finds the document                       Delivered (nothing posted)
    look-up ``200`` that is not an OData result      Retry (never post blind)
    connection error, timeout, ``408``, ``429``,     Retry, honouring ``Retry-After``
    ``5xx`` (``503`` included)
    lock messages: ``M3/897`` (plant data of the     Retry (the lock is released when the
    material locked by a user), ``MC/601`` (object   other user saves), whatever the status
    locked), codes in ``config.retry_message_codes``,
    or an English message saying "locked by" /
    "being processed by"
    ``403`` with ``x-csrf-token: Required`` after    Retry (session cookies not honoured,
    the hub's one renewal                            e.g. a load balancer without affinity)
    other ``4xx`` — business errors such as          Failed, with SAP's code and message:
    ``M7/021`` (deficit of stock), ``M7/001``,       fix the data, then replay
    ``M3/305`` / ``M3/351`` (material not found /
    not maintained in the plant), ``401``, ``403``
    ``3xx``                                          Failed (redirects are not followed)
    ===============================================  =======================================

    SAP's error body is the OData V2 one, ``{"error": {"code": "M7/021", "message":
    {"lang": "en", "value": "…"}, "innererror": {"errordetails": [{"code", "message",
    "severity"}, …]}}}``; the codes of the details count too (the top code is sometimes a
    generic ``/IWBEP/…`` one). An XML error body is read for its ``<code>`` and
    ``<message>`` the same way.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.erp.stock import StockMovement, plan
from hub.connectors import (
    Delivered,
    Exchange,
    Failed,
    OutboundConnector,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
    Session,
    classify_http,
    package_schema,
    retry_after_seconds,
)
from hub.domain.errors import refuse

HEADER_TEXT_MAX = 25  # MaterialDocumentHeaderText (BKTXT)
ITEM_TEXT_MAX = 50  # MaterialDocumentItemText (SGTXT)
REFERENCE_MAX = 16  # ReferenceDocument (XBLNR)
REASON_MAX = 500

# SAP messages that mean "someone else holds a lock on it": try again later
LOCK_MESSAGE_CODES = frozenset({"M3/897", "MC/601"})
_LOCK_TEXT = re.compile(r"\blocked by\b|\bbeing processed by\b", re.IGNORECASE)
# movement types posted against a cost center (the account assignment they need)
COST_CENTER_MOVEMENTS = frozenset({"201", "202"})

_COOKIE_ATTRIBUTES = frozenset(
    {"expires", "max-age", "domain", "path", "secure", "httponly", "samesite", "priority"}
)
# A combined Set-Cookie header (the hub's transport joins repeated headers with ", "):
# a new cookie starts after a comma followed by `name=`; an Expires date's comma is
# followed by a day number and a space, never by `name=`.
_NEXT_COOKIE = re.compile(r",\s*(?=[!#$%&'*+\-.^_`|~0-9A-Za-z]+=)")
_XML_CODE = re.compile(r"<(?:\w+:)?code>([^<]{1,100})</(?:\w+:)?code>")
_XML_MESSAGE = re.compile(r"<(?:\w+:)?message[^>]*>([^<]{1,1000})</(?:\w+:)?message>")


def header_text(event_id: str) -> str:
    """The material document header text that identifies ``event_id`` in SAP."""
    return event_id[-HEADER_TEXT_MAX:]


@dataclass(frozen=True)
class SapError:
    """What an SAP error body says: every message code and every distinct message text
    (the top one first, then the details')."""

    codes: tuple[str, ...]
    messages: tuple[str, ...]

    @property
    def message(self) -> str | None:
        return self.messages[0] if self.messages else None

    def describe(self) -> str:
        codes, texts = ", ".join(self.codes), "; ".join(self.messages)
        if codes and texts:
            return f"SAP {codes}: {texts}"
        return f"SAP {codes}" if codes else f"SAP: {texts}"

    def is_lock(self, retry_codes: frozenset[str]) -> bool:
        return any(c in retry_codes for c in self.codes) or any(
            _LOCK_TEXT.search(m) for m in self.messages
        )


def sap_error(response: OutboundResponse) -> SapError | None:
    """Read an OData V2 error body (JSON, or XML); ``None`` when it is neither."""
    body = _json(response)
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error: Mapping[str, Any] = body["error"]
        message = error.get("message")
        codes: list[object] = [error.get("code")]
        texts: list[object] = [message.get("value") if isinstance(message, Mapping) else message]
        inner = error.get("innererror")
        details = inner.get("errordetails") if isinstance(inner, Mapping) else None
        for detail in details if isinstance(details, list) else []:
            if isinstance(detail, Mapping):
                codes.append(detail.get("code"))
                texts.append(detail.get("message"))
        return _error(codes, texts)
    if body is None and response.body.lstrip()[:1] == b"<":
        raw = response.body[:20000].decode("utf-8", "replace")
        return _error(_XML_CODE.findall(raw), _XML_MESSAGE.findall(raw))
    return None


def _json(response: OutboundResponse) -> Any:
    """The body as JSON; ``None`` when it is not JSON (or nested too deep to read)."""
    try:
        return response.json()
    except RecursionError:
        return None


def _error(codes: Sequence[object], texts: Sequence[object]) -> SapError | None:
    found = tuple(dict.fromkeys(c for c in map(_code, codes) if c))
    said = tuple(
        dict.fromkeys(t.strip()[:REASON_MAX] for t in texts if isinstance(t, str) and t.strip())
    )
    return SapError(found, said) if found or said else None


def _code(value: object) -> str:
    return re.sub(r"\s+", "", value).upper()[:60] if isinstance(value, str) else ""


def classify_sap(
    response: OutboundResponse, retry_codes: frozenset[str] = LOCK_MESSAGE_CODES
) -> Outcome:
    """An SAP answer read with SAP's error semantics (see the module docstring)."""
    status = response.status
    if 200 <= status < 300:
        return Delivered()
    after = retry_after_seconds(response.header("retry-after"))
    error = sap_error(response)
    detail = f"HTTP {status}: {error.describe()}" if error else f"HTTP {status}"
    detail = detail[:REASON_MAX]
    if status == 403 and (response.header("x-csrf-token") or "").strip().lower() == "required":
        return Retry(f"{detail}: the CSRF token was refused again after renewal", after=after)
    if error is not None and error.is_lock(retry_codes):
        return Retry(detail, after=after)
    if status in (408, 429) or status >= 500:
        return Retry(detail, after=after)
    if 300 <= status < 400:
        return Failed(f"HTTP {status}: redirects are not followed")
    return Failed(detail)


def cookies_of(set_cookie: str | None) -> list[tuple[str, str]]:
    """``(name, value)`` of each cookie in a (possibly combined) ``Set-Cookie`` value."""
    found: dict[str, str] = {}
    for part in _NEXT_COOKIE.split(set_cookie or ""):
        name, sep, value = part.split(";", 1)[0].strip().partition("=")
        name = name.strip()
        if sep and name and name.lower() not in _COOKIE_ATTRIBUTES:
            found[name] = value.strip()
    return list(found.items())


class SapConnector(OutboundConnector):
    """SAP S/4HANA: a goods movement (material document) per stock-moving event."""

    name: ClassVar[str] = "erp.sap"
    kind: ClassVar[str] = "erp"
    version: ClassVar[str] = "1.0"
    summary: ClassVar[str] = (
        "SAP S/4HANA goods movements (201 out, 202 back) via API_MATERIAL_DOCUMENT_SRV"
    )
    capabilities: ClassVar[tuple[str, ...]] = ("outbound", "stock.decrement", "stock.increment")
    consumes: ClassVar[tuple[str, ...]] = ("coupon.redeemed", "coupon.redemption_reversed")
    secret_fields: ClassVar[tuple[str, ...]] = ("password", "api_key")
    config_schema: ClassVar[dict[str, Any]] = package_schema("connectors.erp", "sap.schema.json")

    # ---------------------------------------------------------------- configuration
    def check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        super().check_config(config)
        if _zone(config) is None:
            raise _config_refusal("timezone", "not an IANA time zone (e.g. Asia/Shanghai)")
        types = {_movement_type(config, "out"), _movement_type(config, "in")}
        if types & COST_CENTER_MOVEMENTS:
            for store, where in config["plants"].items():
                if not (where.get("cost_center") or config.get("cost_center")):
                    raise _config_refusal(
                        f"plants.{store}.cost_center",
                        "movement types 201/202 need a cost center: set config.cost_center "
                        "or this store's cost_center",
                    )
        return config

    # ---------------------------------------------------------------- session (CSRF)
    def session_request(self, config: dict[str, Any]) -> OutboundRequest | None:
        return OutboundRequest(
            "GET",
            _url(config, "/"),
            {**_credentials(config), "x-csrf-token": "Fetch", "Accept": "application/json"},
            timeout=_timeout(config),
        )

    def open_session(self, config: dict[str, Any], response: OutboundResponse) -> Session | Outcome:
        outcome = self.classify(response, None)
        if not isinstance(outcome, Delivered):
            return outcome
        token = (response.header("x-csrf-token") or "").strip()
        if not token or token.lower() == "required":
            return Failed(
                f"HTTP {response.status}: SAP answered the CSRF fetch without an x-csrf-token "
                "(is base_url an OData service root?)"
            )
        headers = {"x-csrf-token": token}
        # each Set-Cookie line on its own (the transport keeps repeats); a line that still
        # joins several cookies is split by cookies_of
        cookies = dict(c for v in response.header_values("set-cookie") for c in cookies_of(v))
        if cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        return Session(headers=headers)

    def session_expired(self, response: OutboundResponse) -> bool:
        token = response.header("x-csrf-token") or ""
        return response.status == 403 and token.strip().lower() == "required"

    def check_requests(self, config: dict[str, Any]) -> Sequence[OutboundRequest]:
        return [
            OutboundRequest(
                "GET",
                _url(config, "/$metadata"),
                {**_credentials(config), "Accept": "application/xml"},
                timeout=_timeout(config),
            )
        ]

    # ---------------------------------------------------------------- delivery
    def classify(self, response: OutboundResponse | None, error: Exception | None) -> Outcome:
        if response is None:
            return classify_http(None, error)
        return classify_sap(response)

    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        """The material document the exchange posts when SAP has none for the event yet
        (for previews; deliveries go through :meth:`exchange`)."""
        planned = plan(event, config, locations_key="plants")
        if isinstance(planned, Failed) or not planned:
            return []
        document = material_document(event, config, planned)
        return [] if isinstance(document, Failed) else [_post(config, event, document)]

    def exchange(self, event: dict[str, Any], config: dict[str, Any], *, now: datetime) -> Exchange:
        planned = plan(event, config, locations_key="plants")
        if isinstance(planned, Failed):
            return planned
        if not planned:
            return Delivered()  # nothing moves (a threshold coupon, a skipped store)
        document = material_document(event, config, planned)
        if isinstance(document, Failed):
            return document
        retry_codes = LOCK_MESSAGE_CODES | frozenset(
            _code(c) for c in config.get("retry_message_codes", ())
        )
        looked_up = yield _lookup(config, event)
        found = _read_lookup(looked_up, retry_codes)
        if found is not None:
            return found
        posted = yield _post(config, event, document)
        return classify_sap(posted, retry_codes)


def material_document(
    event: Mapping[str, Any], config: Mapping[str, Any], planned: Sequence[StockMovement]
) -> dict[str, Any] | Failed:
    """The ``A_MaterialDocumentHeader`` deep-insert body for ``planned`` movements."""
    zone = _zone(config)
    if zone is None:
        return Failed(f"config.timezone {config.get('timezone')!r} is not an IANA time zone")
    try:
        occurred = datetime.fromisoformat(str(event["occurred_at"]).upper())
    except (KeyError, ValueError):
        return Failed(f"event occurred_at {event.get('occurred_at')!r} is not a date-time")
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    day = occurred.astimezone(zone).date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    sap_date = f"/Date({int(midnight.timestamp()) * 1000})/"  # OData V2 Edm.DateTime
    event_id = str(event["id"])
    items = []
    for movement in planned:
        where = movement.location
        cost_center = where.get("cost_center") or config.get("cost_center")
        movement_type = _movement_type(config, movement.direction)
        item: dict[str, Any] = {
            "Material": movement.sku,
            "Plant": where["plant"],
            "StorageLocation": where["storage_location"],
            "GoodsMovementType": movement_type,
            "QuantityInEntryUnit": str(movement.qty),
            "EntryUnit": config.get("entry_unit", "EA"),
        }
        if cost_center:
            item["CostCenter"] = cost_center
        elif movement_type in COST_CENTER_MOVEMENTS:
            return Failed(
                f"movement type {movement_type} needs a cost center: set config.cost_center "
                f"or config.plants.{movement.store}.cost_center"
            )
        item["MaterialDocumentItemText"] = event_id[-ITEM_TEXT_MAX:]
        items.append(item)
    document: dict[str, Any] = {
        "GoodsMovementCode": config.get("goods_movement_code", "03"),
        "PostingDate": sap_date,
        "DocumentDate": sap_date,
        "MaterialDocumentHeaderText": header_text(event_id),
    }
    order_id = (event.get("data") or {}).get("order_id")
    if isinstance(order_id, str) and 0 < len(order_id) <= REFERENCE_MAX:
        document["ReferenceDocument"] = order_id
    document["to_MaterialDocumentItem"] = {"results": items}
    return document


def _lookup(config: Mapping[str, Any], event: Mapping[str, Any]) -> OutboundRequest:
    text = header_text(str(event["id"])).replace("'", "''")
    query = [
        ("$filter", f"MaterialDocumentHeaderText eq '{text}'"),
        ("$format", "json"),
        ("$top", "1"),
    ]
    return OutboundRequest(
        "GET",
        _url(config, "/A_MaterialDocumentHeader", query),
        {**_credentials(config), "Accept": "application/json", "x-hub-event-id": str(event["id"])},
        timeout=_timeout(config),
    )


def _read_lookup(response: OutboundResponse, retry_codes: frozenset[str]) -> Outcome | None:
    """Delivered when SAP holds the document already, ``None`` when it does not (post
    it), another outcome when the look-up failed."""
    outcome = classify_sap(response, retry_codes)
    if not isinstance(outcome, Delivered):
        return outcome
    body = _json(response)
    d = body.get("d") if isinstance(body, Mapping) else None
    results = d.get("results") if isinstance(d, Mapping) else None
    if not isinstance(results, list):
        return Retry(
            f"HTTP {response.status}: the document look-up answered no OData result; "
            "not posting without knowing whether the movement was posted already"
        )
    return Delivered() if results else None


def _post(
    config: Mapping[str, Any], event: Mapping[str, Any], document: Mapping[str, Any]
) -> OutboundRequest:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        **_credentials(config),
        "Content-Type": "application/json",
        "Accept": "application/json",
        "x-hub-event-id": str(event["id"]),
    }
    return OutboundRequest(
        "POST", _url(config, "/A_MaterialDocumentHeader"), headers, body, timeout=_timeout(config)
    )


def _url(config: Mapping[str, Any], path: str, query: Sequence[tuple[str, str]] = ()) -> str:
    params = list(query)
    if config.get("sap_client"):
        params.append(("sap-client", str(config["sap_client"])))
    url = str(config["base_url"]).rstrip("/") + path
    if params:
        url += "?" + "&".join(f"{k}={quote(v, safe=chr(39))}" for k, v in params)
    return url


def _credentials(config: Mapping[str, Any]) -> dict[str, str]:
    headers = {}
    if "username" in config and "password" in config:
        pair = f"{config['username']}:{config['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    if config.get("api_key"):
        headers["APIKey"] = str(config["api_key"])
    return headers


def _movement_type(config: Mapping[str, Any], direction: str) -> str:
    if direction == "out":
        return str(config.get("goods_movement_type", "201"))
    return str(config.get("reversal_movement_type", "202"))


def _timeout(config: Mapping[str, Any]) -> float:
    return float(config.get("timeout", 10.0))


def _zone(config: Mapping[str, Any]) -> ZoneInfo | None:
    try:
        return ZoneInfo(str(config.get("timezone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _config_refusal(field: str, message: str) -> Exception:
    return refuse(
        "invalid_config",
        f"config.{field}: {message}",
        errors=[{"field": f"config.{field}", "message": message}],
    )


__all__ = [
    "LOCK_MESSAGE_CODES",
    "SapConnector",
    "SapError",
    "classify_sap",
    "cookies_of",
    "header_text",
    "material_document",
    "sap_error",
]

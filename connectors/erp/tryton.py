"""Tryton ERP (trytond >= 7.4, verified on 8.2): gift stock leaves and comes back over REST.

An exchange coupon gives a gift that physically leaves the store. On ``coupon.redeemed``
the connector books it out of the store's storage location; on
``coupon.redemption_reversed`` it books it back in. Which SKUs move, and from which
store, is the shared ERP mapping (:mod:`connectors.erp.stock`: ``locations``,
``sku_map``, ``unmapped_store``, ``move_stock_for_lines``); an event without stock
movements sends nothing.

Tryton's REST API (``<base_url>/<database>/rest``, user application "rest", ``Authorization:
Bearer <app_key>``) cannot *do* a bare ``stock.move`` out of a storage location (it needs an
assignment, which ``stock.move`` does not expose), so the decrement is an internal shipment
from the storage location to the Lost and Found location:

1. ``GET  /model/stock.shipment.internal?d=[reference = KEY, state != cancelled]`` — the
   dedupe look-up. ``KEY`` = ``hub:<redemption_id>:<event_id>``. ``done``: delivered
   already; ``draft``/``waiting``/``assigned``: an earlier attempt died half-way, resume.
   (Two shipments with one key — a create re-sent after a lost answer — are resolved by
   driving the most advanced one and cancelling the other pending one.)
2. ``GET  /model/product.product?d=[code in CODES]&f=code&f=default_uom`` — the products
   (``sku_map`` turns a hub SKU into a Tryton product *code*; default: the SKU itself).
3. ``POST /model/stock.shipment.internal`` with its moves (one per SKU, in the product's
   default unit) -> ``draft``.
4. ``POST …/<id>/wait`` -> ``waiting``; ``POST …/<id>/assign_try`` -> ``assigned``, or still
   ``waiting`` when the stock is short. Then ``on_insufficient_stock``: ``"fail"`` (default)
   cancels the shipment (its reservation is released; a cancelled shipment is ignored by
   the look-up, so a replay starts afresh) and fails; ``"force"`` calls ``assign_force`` so
   the ERP records the gift that did leave (stock may go negative; Tryton only lets
   administrators and the group "Stock Force Assignment" press it).
5. ``POST …/<id>/do`` -> ``done``.

Each button is called with ``f=state``, so Tryton answers with the record's new state and no
extra read is needed. The reversal finds the decrement by ``reference like
"hub:<redemption_id>:%"`` and, for each of its done moves M, books a reverse move (Lost and
Found -> storage) with ``origin = "stock.move,M"`` and *does* it (a move out of Lost and
Found needs no assignment). Moves that already have a reverse move are skipped, so the
reversal is idempotent too; a decrement shipment that never got to ``done`` is cancelled
instead. (Two requests per move: a reversal of more moves than fit in the hub's 20 requests
per attempt does what fits and returns ``Retry(after=0)`` for the rest.) When no decrement
exists the reversal fails ("no decrement to reverse"): the hub delivers a coupon's events in
order and holds the reversal until the redemption was delivered, so this means the stock was
never booked out through this subscription (it was created later, or the redemption moved no
stock under the mapping of the time) — a human should look, and retrying would not help.

Every request carries the event id in ``X-Hub-Event-Id`` (and the decrement's reference
carries it in Tryton), plus ``X-Tryton-Context: {"company": <company>}`` so defaults and
dates follow the configured company.

Answers (trytond's ``protocols/rest.py`` and ``wsgi.py``): 2xx delivered; 401: the app key
is refused; 403: the method is not exposed or access denied; 404: unknown database or
record; 400 ``{"status", "message", "description"}``: a user error (validation, access
rule, refused button) — all fail with Tryton's message. A 400 whose message speaks of a
lock or concurrent change, 408, 409, 429 and 5xx (503 is trytond's answer to a database
lock / operational error, 500 its answer to an unexpected exception) retry, honouring
``Retry-After``. A 2xx whose body is not the expected record fails, naming the request.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlencode

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
    classify_http,
    package_schema,
    retry_after_seconds,
)

SHIPMENT = "stock.shipment.internal"
MOVE = "stock.move"
PRODUCT = "product.product"
# The hub stops an exchange after 20 requests; a reversal with many moves does part of the
# work per attempt (each step is idempotent) and asks to be retried for the rest.
STEP_BUDGET = 18
PENDING_STATES = ("draft", "waiting", "assigned")
_PROGRESS = {"draft": 0, "waiting": 1, "assigned": 2, "done": 3}
# a user error that says "come back later" (a locked record, a concurrent change)
RETRY_MESSAGE = re.compile(r"\b(lock(ed)?|concurren\w*|try again|time(d)?[ -]?out)\b", re.I)
MAX_REASON = 300

Json = Any
T = TypeVar("T")


def b64json(value: Json) -> str:
    """base64url(JSON): how Tryton's REST API takes domains (``d``) and the context."""
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def reference_of(redemption_id: str, event_id: str) -> str:
    """The decrement's dedupe key, stored in the internal shipment's ``reference``."""
    return f"hub:{redemption_id}:{event_id}"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def classify_tryton(response: OutboundResponse | None, error: Exception | None) -> Outcome:
    """Tryton's REST answers (see the module docstring)."""
    if response is None or 200 <= response.status < 300:
        return classify_http(response, error)
    status = response.status
    if status == 401:
        return Failed("HTTP 401: Tryton refused the app key (wrong, or not validated)")
    if status in (409, 423):
        after = retry_after_seconds(response.header("retry-after"))
        return Retry(f"HTTP {status}: conflict in Tryton", after=after)
    body = response.json()
    if status == 400 and isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
        description = body.get("description")
        if isinstance(description, str) and description.strip():
            message = f"{message} ({description})"
        if RETRY_MESSAGE.search(message):
            return Retry(_short(f"HTTP 400: Tryton: {message}"))
        return Failed(_short(f"HTTP 400: Tryton: {message}"))
    if status == 403:
        return Failed("HTTP 403: Tryton refused the call (method not exposed or access denied)")
    if status == 404:
        return Failed("HTTP 404: unknown Tryton database, model or record")
    return classify_http(response, error)


@dataclass(frozen=True)
class _Api:
    """Builds the REST requests of one delivery (pure)."""

    base: str  # <base_url>/<database>/rest
    headers: dict[str, str]
    timeout: float

    @classmethod
    def of(cls, config: dict[str, Any], event_id: str | None = None) -> _Api:
        base = f"{config['base_url'].rstrip('/')}/{quote(config['database'], safe='')}/rest"
        headers = {
            "Authorization": f"Bearer {config['app_key']}",
            "Accept": "application/json",
            "X-Tryton-Context": b64json({"company": config["company"]}),
        }
        if event_id is not None:
            headers["X-Hub-Event-Id"] = event_id
        return cls(base, headers, float(config.get("timeout", 10.0)))

    def _url(self, path: str, query: list[tuple[str, str]]) -> str:
        url = f"{self.base}/model/{path}"
        return f"{url}?{urlencode(query)}" if query else url

    def get(
        self,
        path: str,
        *,
        domain: Json | None = None,
        fields: Sequence[str] = (),
    ) -> OutboundRequest:
        query = [] if domain is None else [("d", b64json(domain))]
        query += [("f", f) for f in fields]
        return OutboundRequest("GET", self._url(path, query), self.headers, timeout=self.timeout)

    def post(
        self, path: str, body: Json | None = None, fields: Sequence[str] = ()
    ) -> OutboundRequest:
        headers = dict(self.headers)
        content = b""
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        url = self._url(path, [("f", f) for f in fields])
        return OutboundRequest("POST", url, headers, content, timeout=self.timeout)


class _Stop(Exception):
    """Ends a conversation with an outcome (raised by the readers, caught in exchange)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(str(outcome))
        self.outcome = outcome


def _describe(request: OutboundRequest) -> str:
    path = request.url.split("/rest/model/", 1)[-1].split("?", 1)[0]
    return f"{request.method} {path}"


def _body(request: OutboundRequest, response: OutboundResponse) -> Json:
    """The JSON of a successful answer; a failure becomes the classified outcome."""
    outcome = classify_tryton(response, None)
    if not isinstance(outcome, Delivered):
        raise _Stop(outcome)
    body = response.json()
    if body is None and response.status == 204:
        raise _Stop(
            Failed(
                f"Tryton answered 204 No Content to {_describe(request)}: the app key's user "
                "may not read the record"
            )
        )
    if body is None:
        raise _Stop(
            Failed(_short(f"unexpected answer to {_describe(request)}: {response.body[:120]!r}"))
        )
    return body


def _records(request: OutboundRequest, response: OutboundResponse) -> list[dict[str, Any]]:
    """A search answer: a list of records, each with an integer ``id``."""
    body = _body(request, response)
    if not isinstance(body, list) or not all(_is_record(r) for r in body):
        raise _Stop(Failed(_short(f"unexpected answer to {_describe(request)}: {body!r}")))
    return body


def _record(request: OutboundRequest, response: OutboundResponse, *keys: str) -> dict[str, Any]:
    """One record with an integer ``id`` and ``keys`` present."""
    body = _body(request, response)
    if not _is_record(body) or any(k not in body for k in keys):
        raise _Stop(Failed(_short(f"unexpected answer to {_describe(request)}: {body!r}")))
    record: dict[str, Any] = body
    return record


def _is_record(value: Json) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("id"), int)
        and not isinstance(value.get("id"), bool)
    )


def _is_id(value: Json) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _state(record: dict[str, Any]) -> str:
    state = record.get("state")
    return state if isinstance(state, str) else "?"


# A part of the conversation: yields requests, receives responses, returns a T.
Step = Generator[OutboundRequest, OutboundResponse, T]


class TrytonConnector(OutboundConnector):
    """Tryton ERP: exchange-coupon gifts leave (and return to) the store's stock over REST."""

    name: ClassVar[str] = "erp.tryton"
    kind: ClassVar[str] = "erp"
    version: ClassVar[str] = "1.0"
    summary: ClassVar[str] = (
        "Tryton ERP (REST, trytond >= 7.4): books exchange-coupon gifts out of the store's "
        "storage location on redemption and back in on reversal, idempotently"
    )
    capabilities: ClassVar[tuple[str, ...]] = ("outbound", "stock.decrement", "stock.reverse")
    consumes: ClassVar[tuple[str, ...]] = ("coupon.redeemed", "coupon.redemption_reversed")
    secret_fields: ClassVar[tuple[str, ...]] = ("app_key",)
    config_schema: ClassVar[dict[str, Any]] = package_schema("connectors.erp", "tryton.schema.json")

    # ---------------------------------------------------------------- configuration
    def check_requests(self, config: dict[str, Any]) -> Sequence[OutboundRequest]:
        """Reading the company and every configured location proves the URL, the
        database, the app key (and its user's access to them); a missing record is 404."""
        api = _Api.of(config)
        ids = sorted({int(config["lost_found_location"]), *self._location_ids(config)})
        return [
            api.get(f"company.company/{int(config['company'])}", fields=("rec_name",)),
            *(api.get(f"stock.location/{i}", fields=("rec_name", "type")) for i in ids),
        ]

    @staticmethod
    def _location_ids(config: dict[str, Any]) -> list[int]:
        locations = config.get("locations") or {}
        return [int(v) for v in locations.values() if _is_id(v)]

    # ---------------------------------------------------------------- outbound
    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        raise NotImplementedError("erp.tryton delivers through exchange()")

    def classify(self, response: OutboundResponse | None, error: Exception | None) -> Outcome:
        return classify_tryton(response, error)

    def exchange(self, event: dict[str, Any], config: dict[str, Any], *, now: datetime) -> Exchange:
        moves = plan(event, config)
        if isinstance(moves, Failed):
            return moves
        if not moves:
            return Delivered()
        api = _Api.of(config, str(event["id"]))
        data = event.get("data") or {}
        redemption_id = str(data.get("redemption_id") or "")
        if not redemption_id:
            return Failed("the event has no redemption_id")
        try:
            if event["type"] == "coupon.redemption_reversed":
                return (yield from self._reverse(api, config, redemption_id))
            return (yield from self._decrement(api, config, moves, redemption_id, event["id"]))
        except _Stop as stop:
            return stop.outcome

    # ---------------------------------------------------------------- decrement
    def _decrement(
        self,
        api: _Api,
        config: dict[str, Any],
        moves: list[StockMovement],
        redemption_id: str,
        event_id: str,
    ) -> Exchange:
        key = reference_of(redemption_id, str(event_id))
        request = api.get(
            SHIPMENT,
            domain=[["reference", "=", key], ["state", "!=", "cancelled"]],
            fields=("state", "reference"),
        )
        found = _records(request, (yield request))
        if not found:
            shipment = yield from self._create_shipment(api, config, moves, key)
            return (yield from self._drive(api, config, shipment["id"], _state(shipment), key))
        # Normally one. Two when a create was sent twice (the hub re-sends a request whose
        # answer timed out): drive the most advanced one, cancel the other pending ones
        # so they hold no reservation.
        found.sort(key=lambda s: (-_PROGRESS.get(_state(s), -1), s["id"]))
        shipment, extra = found[0], found[1:]
        for other in extra:
            if _state(other) in PENDING_STATES:
                yield from self._button(api, f"{SHIPMENT}/{other['id']}", "cancel")
        return (yield from self._drive(api, config, shipment["id"], _state(shipment), key))

    def _create_shipment(
        self, api: _Api, config: dict[str, Any], moves: list[StockMovement], key: str
    ) -> Step[dict[str, Any]]:
        codes = sorted({m.sku for m in moves})
        request = api.get(PRODUCT, domain=[["code", "in", codes]], fields=("code", "default_uom"))
        products: dict[str, list[dict[str, Any]]] = {}
        for product in _records(request, (yield request)):
            products.setdefault(str(product.get("code")), []).append(product)
        for code in codes:
            matches = products.get(code, [])
            if len(matches) != 1:
                how = "no" if not matches else f"{len(matches)}"
                raise _Stop(Failed(f"{how} active Tryton product with code {code!r} (sku_map)"))
            if not _is_id(matches[0].get("default_uom")):
                raise _Stop(Failed(f"Tryton product {code!r} has no default unit"))
        company = int(config["company"])
        lost_found = int(config["lost_found_location"])
        locations = sorted({m.location for m in moves})
        if len(locations) != 1:
            raise _Stop(Failed(f"one event moves stock at several locations: {locations}"))
        storage = int(locations[0])
        lines = [
            {
                "product": products[m.sku][0]["id"],
                "unit": products[m.sku][0]["default_uom"],
                "quantity": float(m.qty),
                "from_location": storage,
                "to_location": lost_found,
                "company": company,
            }
            for m in moves
        ]
        body = {
            "company": company,
            "from_location": storage,
            "to_location": lost_found,
            "reference": key,
            "moves": [["create", lines]],
        }
        request = api.post(SHIPMENT, body, fields=("state",))
        return _record(request, (yield request), "state")

    def _drive(
        self, api: _Api, config: dict[str, Any], shipment_id: int, state: str, key: str
    ) -> Exchange:
        """Push a decrement shipment from ``state`` on to ``done``."""
        path = f"{SHIPMENT}/{shipment_id}"
        if state == "draft":
            state = yield from self._button(api, path, "wait")
        if state == "waiting":
            state = yield from self._button(api, path, "assign_try")
            if state == "waiting":
                if config.get("on_insufficient_stock", "fail") != "force":
                    yield from self._button(api, path, "cancel")
                    return Failed(
                        f"insufficient stock in Tryton for {key}: shipment {shipment_id} "
                        "could not be assigned and was cancelled (on_insufficient_stock: fail)"
                    )
                state = yield from self._button(api, path, "assign_force")
        if state == "assigned":
            state = yield from self._button(api, path, "do")
        if state == "done":
            return Delivered()
        return Failed(f"Tryton shipment {shipment_id} for {key} is {state!r}, not done")

    def _button(self, api: _Api, path: str, button: str) -> Step[str]:
        request = api.post(f"{path}/{button}", fields=("state",))
        return _state(_record(request, (yield request), "state"))

    # ---------------------------------------------------------------- reversal
    def _reverse(self, api: _Api, config: dict[str, Any], redemption_id: str) -> Exchange:
        prefix = f"hub:{redemption_id}:"
        request = api.get(
            SHIPMENT,
            domain=[["reference", "like", prefix + "%"]],
            fields=(
                "state",
                "reference",
                "company",
                "moves.state",
                "moves.product",
                "moves.unit",
                "moves.quantity",
                "moves.from_location",
                "moves.to_location",
            ),
        )
        shipments = [
            s
            for s in _records(request, (yield request))
            if isinstance(s.get("reference"), str) and s["reference"].startswith(prefix)
        ]
        if not shipments:
            return Failed(
                f"no decrement to reverse: Tryton has no shipment {prefix}* (the redemption "
                "moved no stock through this subscription)"
            )
        steps = 1
        done_moves: list[dict[str, Any]] = []
        for shipment in sorted(shipments, key=lambda s: int(s["id"])):
            state = _state(shipment)
            if state in PENDING_STATES:  # never finished: nothing left the store
                yield from self._button(api, f"{SHIPMENT}/{shipment['id']}", "cancel")
                steps += 1
            elif state == "done":
                company = shipment.get("company", config["company"])
                done_moves += [
                    {**m, "company": company}
                    for m in shipment.get("moves") or []
                    if isinstance(m, dict) and _is_id(m.get("id")) and m.get("state") == "done"
                ]
        if not done_moves:
            return Delivered()
        origins = [f"{MOVE},{m['id']}" for m in done_moves]
        request = api.get(
            MOVE,
            domain=[["origin", "in", origins], ["state", "!=", "cancelled"]],
            fields=("state", "origin"),
        )
        steps += 1
        existing: dict[str, dict[str, Any]] = {}
        for move in _records(request, (yield request)):
            origin = move.get("origin")
            # a done reverse move wins over a stray draft one (a create sent twice)
            if isinstance(origin, str) and _state(existing.get(origin, {})) != "done":
                existing[origin] = move
        remaining = 0
        for move in done_moves:
            origin = f"{MOVE},{move['id']}"
            earlier = existing.get(origin)
            if earlier is not None and _state(earlier) == "done":
                continue
            if steps + 2 > STEP_BUDGET:
                remaining += 1
                continue
            if earlier is None:
                earlier = yield from self._create_reverse_move(api, move, origin)
                steps += 1
            if _state(earlier) != "done":
                state = yield from self._button(api, f"{MOVE}/{earlier['id']}", "do")
                steps += 1
                if state != "done":
                    return Failed(f"Tryton reverse move {earlier['id']} is {state!r}, not done")
        if remaining:
            return Retry(f"reversed part of the decrement; {remaining} move(s) left", after=0)
        return Delivered()

    def _create_reverse_move(
        self, api: _Api, move: dict[str, Any], origin: str
    ) -> Step[dict[str, Any]]:
        keys = ("product", "unit", "quantity", "from_location", "to_location")
        if not all(k in move for k in keys):
            raise _Stop(
                Failed(f"Tryton move {move['id']} lacks {[k for k in keys if k not in move]}")
            )
        body = {
            "product": move["product"],
            "unit": move["unit"],
            "quantity": move["quantity"],
            "from_location": move["to_location"],
            "to_location": move["from_location"],
            "company": move["company"],
            "origin": origin,
        }
        request = api.post(MOVE, body, fields=("state",))
        return _record(request, (yield request), "state")

"""JSON Schemas (draft 2020-12) of the event envelope and of each event type's ``data``.

Each data schema is read off the code that builds that event's ``data`` (the
``outbox.event_row`` calls in ``hub/services/issuing.py``, ``redeem.py`` and
``housekeeping.py``); the envelope is what ``outbox.envelope`` publishes.

Rules the schemas follow:

* The envelope is closed (``additionalProperties: false``): its six members are the
  whole contract, so a misspelt or leaked member is an error.
* ``data`` is open: its objects accept members not listed here, so adding a field is
  not a breaking change for a receiver that validates. What *is* listed is strict:
  required members, JSON types, integer fen for money, RFC 3339 times, identifier
  and code shapes, and the enumerations the code fixes.
* Self-contained: no ``$ref``; each schema can be copied and used on its own.

Note: :mod:`jsonschema` checks ``format: date-time`` only when the optional
``rfc3339-validator`` package is installed; :data:`FORMAT_CHECKER` registers its own
check so that times are always verified here.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from hub.domain.state import CouponState
from hub.domain.templates import CHANNELS, KINDS
from hub.services.outbox import EVENT_TYPES

Schema = dict[str, Any]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
URN = "urn:redemption-hub:events:"
ENVELOPE_ID = URN + "envelope"

ALERT_SEVERITIES = ("warning", "critical")

_ULID = "[0-9A-HJKMNP-TV-Z]{26}"  # hub.domain.ids: 26 Crockford base32 characters
_CODE = "^[2-9A-HJ-NP-Z]{14}$"  # hub.domain.codes: 13 payload + 1 check character
_STORE_CODE = r"^[A-Za-z0-9_.\-]+$"
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"


# --- date-time format check -------------------------------------------------------------

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def is_date_time(value: object) -> bool:
    """RFC 3339 ``date-time`` (offset required); non-strings pass (``type`` judges them)."""
    if not isinstance(value, str):
        return True
    if _RFC3339.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value.upper())  # ranges: month 13, 30 February, hour 24, …
    except ValueError:
        return False
    return True


FORMAT_CHECKER = FormatChecker()
FORMAT_CHECKER.checks("date-time")(is_date_time)


# --- building blocks (fresh dicts each call, so nothing is shared between schemas) --------


def _id(prefix: str, description: str) -> Schema:
    return {"type": "string", "pattern": f"^{prefix}_{_ULID}$", "description": description}


def _code() -> Schema:
    return {
        "type": "string",
        "pattern": _CODE,
        "description": "Coupon code, normalised: 14 characters, no separators.",
    }


def _time(description: str) -> Schema:
    return {"type": "string", "format": "date-time", "description": description}


def _fen(description: str, minimum: int = 0) -> Schema:
    return {
        "type": "integer",
        "minimum": minimum,
        "description": f"{description} (integer fen, 1/100 yuan).",
    }


def _text(description: str, *, nullable: bool = False) -> Schema:
    if nullable:
        return {"type": ["string", "null"], "minLength": 1, "description": description}
    return {"type": "string", "minLength": 1, "description": description}


def _store() -> Schema:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "pattern": _STORE_CODE,
        "description": "Store code.",
    }


def _channel(*, nullable: bool = False) -> Schema:
    values: list[Any] = list(CHANNELS)
    if nullable:
        values.append(None)
    return {"enum": values, "description": "Sales channel."}


def _kind() -> Schema:
    return {"enum": list(KINDS), "description": "Benefit kind of the template."}


def _order_redemption_id() -> Schema:
    return _id("ord", "The multi-coupon order redemption (POST /v1/orders/redeem).")


def _staff(what: str) -> Schema:
    return {
        "type": ["object", "null"],
        "required": ["id", "name"],
        "properties": {
            "id": _id("stf", "Staff member id."),
            "name": {"type": "string", "description": "The staff member's name."},
        },
        "description": f"The staff member who {what} (a staff session on a phone); null "
        "(or absent, before staff identities) when an API key did.",
    }


def _template_id() -> Schema:
    return _id("tpl", "Template id.")


def _object(
    required: dict[str, Schema], optional: dict[str, Schema] | None = None, **extra: Any
) -> Schema:
    """An object with these members; further members are allowed (forward compatible)."""
    return {
        "type": "object",
        **extra,
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _strings(description: str, item: Schema | None = None) -> Schema:
    return {
        "type": "array",
        "items": item or {"type": "string", "minLength": 1},
        "uniqueItems": True,
        "description": description,
    }


def _when(field: str, value: str, then: Schema) -> Schema:
    return {"if": {"properties": {field: {"const": value}}, "required": [field]}, "then": then}


def _benefit() -> Schema:
    return _object(
        {"kind": _kind()},
        description="What the coupon gives (hub.domain.template_codec.benefit_to_dict).",
        allOf=[
            _when(
                "kind",
                "threshold",
                _object(
                    {
                        "threshold": _fen("Minimum eligible amount"),
                        "discount": _fen("Amount off", minimum=1),
                    }
                ),
            ),
            _when(
                "kind",
                "percentage",
                _object(
                    {
                        "percent_off": {"type": "integer", "minimum": 1, "maximum": 99},
                        "threshold": _fen("Minimum eligible amount"),
                        "cap": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "description": "Largest discount (integer fen), or null.",
                        },
                    }
                ),
            ),
            _when(
                "kind",
                "exchange",
                _object(
                    {
                        "sku": _text("SKU the coupon gives."),
                        "qty": {"type": "integer", "minimum": 1},
                        "price": _fen("Price paid per unit (0 = free)"),
                        "threshold": _fen("Minimum eligible amount"),
                    }
                ),
            ),
        ],
    )


def _validity() -> Schema:
    return _object(
        {"type": {"enum": ["fixed", "relative"]}},
        description="The template's validity rule (validity_to_dict).",
        allOf=[
            _when(
                "type",
                "fixed",
                _object({"start": _time("Window start."), "end": _time("Window end (exclusive).")}),
            ),
            _when(
                "type",
                "relative",
                _object(
                    {
                        "days": {"type": "integer", "minimum": 1},
                        "start_after_days": {"type": "integer", "minimum": 0},
                    }
                ),
            ),
        ],
    )


def _usage() -> Schema:
    hhmm = {"type": "string", "pattern": _HHMM}
    return _object(
        {
            "weekdays": _strings(
                "ISO weekdays 1 (Monday) to 7 (Sunday); empty = any day.",
                {"type": "integer", "minimum": 1, "maximum": 7},
            ),
            "hours": {
                "type": "array",
                "items": _object({"start": dict(hhmm), "end": dict(hhmm)}),
                "description": "Local time ranges (may wrap midnight); empty = any time.",
            },
            "skus": _strings("SKUs covered; empty with no categories = whole order."),
            "categories": _strings("Product categories covered."),
            "stores": _strings("Store codes allowed; empty = every store."),
            "channels": _strings("Channels allowed; empty = every channel.", _channel()),
        },
        description="Where and when coupons may be used (usage_to_dict).",
    )


def _gift() -> Schema:
    return {
        "oneOf": [
            {"type": "null"},
            _object(
                {
                    "sku": _text("SKU handed over (stock moves out of the store)."),
                    "qty": {"type": "integer", "minimum": 1},
                }
            ),
        ],
        "description": "Exchange coupons (兑换券): the SKU and quantity the coupon gives; "
        "null for other kinds. ERP connectors move stock by it.",
    }


def _order() -> Schema:
    line = _object(
        {
            "sku": _text("SKU."),
            "category": _text("Product category, or null.", nullable=True),
            "qty": {"type": "integer", "minimum": 1},
            "unit_price": _fen("Unit price"),
        }
    )
    return _object(
        {"id": _text("The merchant's order id."), "amount": _fen("Order amount")},
        {
            "lines": {
                "type": "array",
                "items": line,
                "description": "Present only when the redeem request sent order lines.",
            }
        },
        description="The order as presented at redemption.",
    )


def _discount_lines() -> Schema:
    return {
        "type": "array",
        "items": _object(
            {
                "index": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Position in order.lines.",
                },
                "sku": _text("SKU of that line."),
                "discount": _fen("Discount on that line"),
            }
        ),
        "description": "Split of the discount over order lines; empty without order lines.",
    }


# --- data of each event type ---------------------------------------------------------------


def _data_schemas() -> dict[str, Schema]:
    template_ref = _object({"id": _template_id(), "name": _text("Template name."), "kind": _kind()})
    return {
        "coupon.issued": _object(
            {
                "code": _code(),
                "customer": _text(
                    "Holder's external id, or null for an unassigned coupon.", nullable=True
                ),
                "channel": _channel(nullable=True),
                "valid_from": _time("Start of the coupon's window."),
                "valid_until": _time("End of the coupon's window (exclusive)."),
                "template_id": _template_id(),
                "kind": _kind(),
            },
            description="A coupon was issued (issuing._insert_coupons).",
        ),
        "coupon.claimed": _object(
            {
                "code": _code(),
                "customer": _text("External id of the customer who now holds the coupon."),
                "template_id": _template_id(),
            },
            {
                "campaign_id": _id("cmp", "The campaign claimed from (campaigns.claim)."),
                "channel": _channel(nullable=False),
            },
            description="A coupon was given to a customer: an unassigned one "
            "(issuing.claim_coupon) or a new one claimed from a campaign (campaigns.claim).",
        ),
        "coupon.redeemed": _object(
            {
                "redemption_id": _id("rdm", "Redemption id (reverse with it)."),
                "status": {"const": "redeemed"},
                "code": _code(),
                "store": _store(),
                "channel": _channel(),
                "order_id": _text("The merchant's order id."),
                "template": template_ref,
                "customer": _text("Holder's external id, or null.", nullable=True),
                "discount": _fen("Total discount"),
                "eligible_amount": _fen("Amount of the order the coupon applies to"),
                "payable": _fen("Order amount minus discount"),
                "lines": _discount_lines(),
                "redeemed_at": _time("When the redemption happened (offline: at the till)."),
                "recorded_at": _time("When the hub recorded it."),
                "order": _order(),
                "gift": _gift(),
            },
            {"order_redemption_id": _order_redemption_id(), "staff": _staff("redeemed it")},
            description="A coupon was redeemed: the redeem response body plus the order "
            "(redeem._redeem_in_txn). A coupon of a multi-coupon order "
            "(orders.redeem_order_in_txn) also names its order_redemption_id; its "
            "discount, eligible_amount and lines are its share (after the coupons applied "
            "before it) and payable is the whole order's.",
        ),
        "coupon.redemption_reversed": _object(
            {
                "redemption_id": _id("rdm", "The reversed redemption."),
                "status": {"const": "reversed"},
                "code": _code(),
                "store": _store(),
                "order_id": _text("The merchant's order id."),
                "discount": _fen("Discount that was given and is now reversed"),
                "reason": _text("Reason given by the caller, or null.", nullable=True),
                "reversed_at": _time("When it was reversed."),
                "coupon_status": {
                    "enum": [CouponState.ISSUED.value, CouponState.EXPIRED.value],
                    "description": "The coupon's state after the reversal: issued again, or "
                    "expired when its window has closed.",
                },
                "channel": _channel(),
                "template_id": _template_id(),
                "template": template_ref,
                "customer": _text("Holder's external id, or null.", nullable=True),
                "order": _order(),
                "gift": _gift(),
            },
            {"order_redemption_id": _order_redemption_id(), "staff": _staff("reversed it")},
            description="A redemption was reversed: the reversal response body plus channel, "
            "template, holder, order and gift (redeem.reverse_redemption); a coupon of a "
            "multi-coupon order (reversed with its order) also names its order_redemption_id.",
        ),
        "coupon.voided": _object(
            {
                "code": _code(),
                "template_id": _template_id(),
                "reason": _text("Reason given by the caller, or null.", nullable=True),
            },
            description="A coupon was voided; final (issuing.void_coupon).",
        ),
        "coupon.expired": _object(
            {
                "code": _code(),
                "template_id": _template_id(),
                "valid_until": _time("End of the coupon's window (the event's occurred_at)."),
            },
            description="An issued coupon's window closed (housekeeping.expire_coupons).",
        ),
        "coupon.expiring": _object(
            {
                "code": _code(),
                "customer": _text("External id of the holder being reminded (the holder "
                                  "when the reminder was sent)."),
                "template_id": _template_id(),
                "template": template_ref,
                "valid_until": _time("End of the coupon's window (exclusive)."),
                "days_before": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 365,
                    "description": "Which of the template's remind_days_before this is.",
                },
                "remind_at": _time(
                    "When this reminder fell due: valid_until minus days_before days, or "
                    "the window's start if later."
                ),
            },
            description="A claimed, unredeemed coupon's window closes soon: one event per "
            "coupon and reminder of its template's remind_days_before, emitted once "
            "(reminders.send_due_reminders). When several are due at once only the "
            "nearest (smallest days_before) is sent; the others are skipped for good.",
        ),
        "coupon.transfer_offered": _object(
            {
                "code": _code(),
                "transfer_id": _id("trf", "The offer (its token is never published)."),
                "from_customer": _text("External id of the holder who offers the coupon."),
                "template_id": _template_id(),
                "expires_at": _time("When the offer lapses unless accepted."),
            },
            description="A holder offered the coupon to a friend (transfers.offer).",
        ),
        "coupon.transferred": _object(
            {
                "code": _code(),
                "transfer_id": _id("trf", "The accepted offer."),
                "from_customer": _text("External id of the customer who gave the coupon."),
                "to_customer": _text("External id of the customer who now holds it."),
                "template_id": _template_id(),
            },
            description="A friend accepted the offer and now holds the coupon "
            "(transfers.accept).",
        ),
        "coupon.transfer_cancelled": _object(
            {
                "code": _code(),
                "transfer_id": _id("trf", "The withdrawn offer."),
                "from_customer": _text("External id of the holder who withdrew it."),
                "template_id": _template_id(),
            },
            description="The holder withdrew an open offer (transfers.cancel).",
        ),
        "order.redeemed": _object(
            {
                "order_redemption_id": _order_redemption_id(),
                "status": {"const": "redeemed"},
                "order_id": _text("The merchant's order id."),
                "store": _store(),
                "channel": _channel(),
                "coupons": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {
                            "redemption_id": _id("rdm", "This coupon's redemption."),
                            "code": _code(),
                            "template": template_ref,
                            "customer": _text("Holder's external id, or null.", nullable=True),
                            "discount": _fen("This coupon's discount"),
                            "eligible_amount": _fen(
                                "What the coupons applied before it left of the amount it "
                                "applies to"
                            ),
                            "lines": _discount_lines(),
                            "gift": _gift(),
                        }
                    ),
                    "description": "The coupons in the order of application (exchange, "
                    "percentage, threshold); each also has its own coupon.redeemed event.",
                },
                "order_amount": _fen("Order amount"),
                "discount": _fen("Total discount of all the coupons"),
                "payable": _fen("Order amount minus the total discount"),
                "lines": {
                    "type": "array",
                    "items": _object(
                        {
                            "index": {"type": "integer", "minimum": 0},
                            "sku": _text("SKU of that line."),
                            "amount": _fen("Line amount"),
                            "discount": _fen("Discount on the line by all the coupons"),
                            "payable": _fen("Line amount minus its discount"),
                            "by_coupon": {
                                "type": "array",
                                "items": _object(
                                    {"code": _code(), "discount": _fen("Its discount")}
                                ),
                            },
                        }
                    ),
                    "description": "Each order line after all the coupons; empty without "
                    "order lines.",
                },
                "reservation_id": _text(
                    "The reservation confirmed by this redeem, or null.", nullable=True
                ),
                "redeemed_at": _time("When the redemption happened."),
                "recorded_at": _time("When the hub recorded it."),
                "order": _order(),
            },
            {"staff": _staff("redeemed the order")},
            description="Several coupons were redeemed on one order, all or nothing: the "
            "POST /v1/orders/redeem response body plus the order "
            "(orders.redeem_order_in_txn).",
        ),
        "order.reversed": _object(
            {
                "order_redemption_id": _order_redemption_id(),
                "status": {"const": "reversed"},
                "order_id": _text("The merchant's order id."),
                "store": _store(),
                "channel": _channel(),
                "discount": _fen("Total discount that was given and is now reversed"),
                "reason": _text("Reason given by the caller, or null.", nullable=True),
                "reversed_at": _time("When it was reversed."),
                "coupons": {
                    "type": "array",
                    "items": _object(
                        {
                            "redemption_id": _id("rdm", "The coupon's reversed redemption."),
                            "code": _code(),
                            "discount": _fen("Its discount"),
                            "coupon_status": {
                                "enum": [CouponState.ISSUED.value, CouponState.EXPIRED.value]
                            },
                        }
                    ),
                    "description": "Each coupon reversed; each also has its own "
                    "coupon.redemption_reversed event.",
                },
                "order": _order(),
            },
            {"staff": _staff("reversed the order")},
            description="Every coupon of a multi-coupon order was reversed in one go "
            "(orders._reverse_order_in_txn).",
        ),
        "template.created": _object(
            {
                "template_id": _template_id(),
                "name": _text("Template name."),
                "kind": _kind(),
                "benefit": _benefit(),
                "validity": _validity(),
                "usage": _usage(),
                "total_quantity": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "description": "Stock of coupons, or null for unlimited.",
                },
                "per_customer_limit": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "description": "Most coupons one customer may hold, or null.",
                },
            },
            {
                "transferable": {
                    "type": "boolean",
                    "description": "Holders may pass its coupons to a friend (转赠).",
                },
                "offline": {
                    "type": "boolean",
                    "description": "Terminals may redeem its coupons offline (离线核销).",
                },
                "remind_days_before": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": 365},
                    "maxItems": 5,
                    "uniqueItems": True,
                    "description": "Days before a coupon's window closes at which its "
                    "holder is reminded (coupon.expiring), largest first; empty: none.",
                },
            },
            description="A template was created; its stored rules (issuing.create_template).",
        ),
        "template.paused": _object(
            {"template_id": _template_id()},
            description="A template stopped issuing (issuing.set_template_status).",
        ),
        "template.resumed": _object(
            {"template_id": _template_id()},
            description="A paused template issues again (issuing.set_template_status).",
        ),
        "alert.raised": _object(
            {
                "alert": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Kind of alert: subscription_circuit_open, "
                    "code_enumeration_suspected (a key or address was blocked for guessing "
                    "codes), repeat_redemption_attempt (a redeemed code presented again, or "
                    "one code tried at several stores, within the repeat window), "
                    "offline_conflict (a sale made offline reached the hub after its coupon "
                    "was redeemed by another redemption).",
                    "examples": [
                        "subscription_circuit_open",
                        "code_enumeration_suspected",
                        "repeat_redemption_attempt",
                        "offline_conflict",
                    ],
                },
                "severity": {"enum": list(ALERT_SEVERITIES)},
                "message": {"type": "string", "description": "Human-readable summary."},
                "details": {"type": "object", "description": "Alert-specific facts."},
            },
            description="The hub needs an operator's attention.",
        ),
        "reservation.created": _reservation(
            "held",
            "Coupons were held for an online order while the customer pays "
            "(reservations.create); each is refused to every other redeem and reservation "
            "(coupon_reserved) until the hold ends.",
        ),
        "reservation.released": _reservation(
            "released", "A hold was ended before payment; its coupons are free again "
            "(reservations.release).",
        ),
        "reservation.expired": _reservation(
            "expired", "A hold reached expires_at unconfirmed; its coupons are free again "
            "(reservations.expire_reservations or the first confirm/release after it). "
            "Emitted once per reservation.",
        ),
        "redemption.offline_conflict": _object(
            {
                "conflict_id": _id("cfl", "The conflict (GET /v1/conflicts/{id})."),
                "code": _code(),
                "store": _store(),
                "channel": _channel(),
                "terminal_id": _text("The till that sent it, or null.", nullable=True),
                "order": _order(),
                "offline_discount": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "description": "What the offline receipt granted (integer fen), or null.",
                },
                "occurred_at": _time("When the offline sale happened (the event's occurred_at)."),
                "redemption_id": {
                    "type": ["string", "null"],
                    "pattern": f"^rdm_{_ULID}$",
                    "description": "The redemption that had the coupon first, or null.",
                },
                "redeemed_store": {
                    "type": ["string", "null"],
                    "description": "Its store, or null.",
                },
                "redeemed_at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "When it happened, or null.",
                },
            },
            description="A sale made offline reached the hub (POST /v1/redemptions/sync) "
            "after its coupon was redeemed by another redemption; recorded as an open "
            "conflict for the merchant to settle (sync.record_conflict). Once per conflict.",
        ),
        "redemption.offline_conflict_settled": _object(
            {
                "conflict_id": _id("cfl", "The conflict."),
                "code": _code(),
                "store": _store(),
                "redemption_id": {
                    "type": ["string", "null"],
                    "pattern": f"^rdm_{_ULID}$",
                    "description": "The redemption that had the coupon first, or null.",
                },
                "settlement": _text("How the merchant settled it (1-500 characters)."),
                "settled_at": _time("When it was settled."),
            },
            description="An admin settled an offline conflict (sync.settle).",
        ),
        "sale.recorded": _object(
            {
                "sale_id": _id("sal", "The hub's id of the reported order."),
                "order_id": _text("The merchant's order id (unique per merchant)."),
                "store": _store(),
                "channel": _channel(),
                "customer": _text("The customer's external id, or null.", nullable=True),
                "amount": _fen("What the customer paid"),
                "coupon_order": {
                    "type": "boolean",
                    "description": "A coupon was redeemed on this order (a redemption with "
                    "its order id within a day of it): analytics counts it through the "
                    "redemption.",
                },
                "occurred_at": _time("When the order was made."),
                "recorded_at": _time("When it was reported."),
            },
            description="An order was reported (POST /v1/sales), with or without a coupon; "
            "once per order id (sales.record_sales).",
        ),
    }


def _reservation(status: str, description: str) -> Schema:
    return _object(
        {
            "reservation_id": _id("rsv", "Reservation id."),
            "status": {"const": status},
            "codes": {
                "type": "array",
                "items": _code(),
                "minItems": 1,
                "description": "The coupons held, in the order of application.",
            },
            "store": _store(),
            "channel": _channel(),
            "order_id": _text("The merchant's order id."),
            "held_at": _time("When the hold began."),
            "expires_at": _time("When the hold ends unless confirmed or released."),
            "ended_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the hold ended (the event's occurred_at); null while held.",
            },
        },
        description=description,
    )


DATA_SCHEMAS: dict[str, Schema] = _data_schemas()

ENVELOPE_SCHEMA: Schema = {
    "$schema": DIALECT,
    "$id": ENVELOPE_ID,
    "title": "Redemption Hub event",
    "description": "Envelope of every event the hub publishes (docs/architecture.md, "
    "The outbox and delivery). "
    "`id` is stable across redeliveries: receivers deduplicate on it.",
    "type": "object",
    "required": ["id", "type", "occurred_at", "recorded_at", "merchant_id", "data"],
    "additionalProperties": False,
    "properties": {
        "id": _id("evt", "Event id; stable, the receiver's dedupe key."),
        "type": {"enum": list(EVENT_TYPES), "description": "Event type."},
        "occurred_at": _time("When it happened (UTC)."),
        "recorded_at": _time("When the hub recorded it (UTC)."),
        "merchant_id": _id("mch", "The merchant the event belongs to."),
        "data": {"type": "object", "description": "Type-specific body; see each type's schema."},
    },
}


class UnknownEventType(LookupError):
    """No schema for this event type."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"No event type {event_type!r}; known: {', '.join(DATA_SCHEMAS)}.")
        self.event_type = event_type


class InvalidEvent(ValueError):
    """An event that does not match its schema; ``errors`` lists ``"<json path>: <why>"``."""

    def __init__(self, event_id: object, event_type: object, errors: list[str]) -> None:
        self.event_id = event_id
        self.event_type = event_type
        self.errors = errors
        ident = event_id if isinstance(event_id, str) else "without id"
        kind = event_type if isinstance(event_type, str) else "unknown type"
        super().__init__(f"Event {ident} ({kind}) does not match its schema: " + "; ".join(errors))


def schema_for(event_type: str) -> Schema:
    """The full schema of one event type: the envelope with ``data`` constrained."""
    if event_type not in DATA_SCHEMAS:
        raise UnknownEventType(event_type)
    schema = copy.deepcopy(ENVELOPE_SCHEMA)
    schema["$id"] = URN + event_type
    schema["title"] = f"Redemption Hub event {event_type}"
    schema["properties"]["type"] = {"const": event_type, "description": "Event type."}
    schema["properties"]["data"] = copy.deepcopy(DATA_SCHEMAS[event_type])
    return schema


def all_schemas() -> Schema:
    """``{"envelope": …, "types": {type: schema_for(type)}}`` (what the API serves)."""
    return {
        "envelope": copy.deepcopy(ENVELOPE_SCHEMA),
        "types": {t: schema_for(t) for t in DATA_SCHEMAS},
    }


def _validator(schema: Schema) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


_ENVELOPE_VALIDATOR = _validator(ENVELOPE_SCHEMA)
_VALIDATORS: dict[str, Draft202012Validator] = {t: _validator(schema_for(t)) for t in DATA_SCHEMAS}
_MAX_MESSAGE = 300


def validate_event(event: object) -> None:
    """Check a published envelope against its type's schema; raise :class:`InvalidEvent`.

    An event of an unknown type is checked against the envelope alone (which then
    refuses the type).
    """
    event_id: object = None
    event_type: object = None
    validator = _ENVELOPE_VALIDATOR
    if isinstance(event, dict):
        event_id, event_type = event.get("id"), event.get("type")
        if isinstance(event_type, str) and event_type in _VALIDATORS:
            validator = _VALIDATORS[event_type]
    errors = sorted(
        (f"{e.json_path}: {_short(e.message)}" for e in validator.iter_errors(event)),
    )
    if errors:
        raise InvalidEvent(event_id, event_type, errors)


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"

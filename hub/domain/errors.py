"""Domain errors: every failure a caller can hit has a stable code and a one-line meaning.

The domain knows no HTTP: a :class:`DomainError` carries a ``code`` and facts (a human
message, structured ``extra``). The HTTP status of each code is looked up once, from
the error table at the edge (:data:`hub.services.problems.HTTP_STATUS`, used by the
API's exception handlers, the stored idempotent replies and the POS replies).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a stable machine-readable ``code``.

    ``extra`` carries structured details (e.g. when and where a coupon was already
    redeemed) that become members of the problem document. There is no status here:
    how a transport answers a code is the transport's business (the error table).
    """

    code: str = "domain_error"
    title: str = "Request refused"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        if "status" in extra:
            raise TypeError(
                "DomainError takes no status: the HTTP status of a code is looked up at the "
                "edge (hub.services.problems.status_for)"
            )
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra: dict[str, Any] = extra


def refuse(code: str, message: str, **extra: Any) -> DomainError:
    """Build a :class:`DomainError` for ``code`` (helper that keeps call sites short)."""
    return DomainError(message, code=code, **extra)


# The catalogue of codes with their one-line meanings. Their HTTP statuses are the edge's
# (hub/services/problems.py HTTP_STATUS); the README's error table is tested against both.
ERROR_CODES: dict[str, str] = {
    # request shape
    "malformed_json": "The body is not valid JSON.",
    "malformed_xml": "The body is not well-formed XML.",
    "duplicate_json_key": "A key appears more than once in one JSON object.",
    "invalid_characters": "Text holds a NUL character or a lone surrogate.",
    "xml_forbidden": "The XML declares a DTD or entities; they are refused (XXE, bombs).",
    "unsupported_media_type": "The Content-Type is not one the endpoint accepts.",
    "invalid_pos_payload": "A POS payload field is missing or wrong for its format.",
    "invalid_request": "The body or query has a wrong type, a missing or an unknown field.",
    "payload_too_large": "The body is larger than the endpoint accepts (64 KiB for redeem).",
    "uri_too_long": "The URL (path and query) is longer than 8 KiB.",
    "headers_too_large": "The request headers exceed 16 KiB or 100 fields.",
    "idempotency_key_required": "The Idempotency-Key header is missing.",
    "idempotency_key_invalid": "The Idempotency-Key header is empty or longer than 255.",
    "idempotency_key_repeated": "The Idempotency-Key header is sent more than once.",
    "idempotency_key_reused": "The Idempotency-Key was used with a different request.",
    "idempotency_key_in_flight": "A request with this Idempotency-Key is still running.",
    "code_malformed": "The coupon code has the wrong shape or a wrong check character.",
    "invalid_cursor": "The pagination cursor is not one this API issued.",
    "not_found": "No such resource (or it belongs to another merchant).",
    "method_not_allowed": "The method is not allowed on this path.",
    # auth
    "unauthorized": "Missing or unknown API key.",
    "forbidden": "The key's role may not do this.",
    "store_forbidden": "A store key acts only at its own store.",
    "too_many_failed_attempts": "Too many unknown or mistyped codes; see Retry-After.",
    "sign_in_code_invalid": "The staff sign-in code is unknown, used, expired or mistyped.",
    "staff_disabled": "The staff member is disabled: their sessions and codes no longer work.",
    "session_expired": "The staff session ended with the shift; sign in again with a new code.",
    # redemption outcomes
    "coupon_not_found": "No coupon with this code for this merchant.",
    "coupon_already_redeemed": "The coupon was redeemed already; says when and where.",
    "coupon_expired": "The coupon's validity window has ended.",
    "coupon_not_yet_valid": "The coupon's validity window has not started.",
    "coupon_voided": "The coupon was voided.",
    "store_not_allowed": "The coupon may not be used at this store.",
    "channel_not_allowed": "The coupon may not be used on this channel.",
    "outside_usable_time": "Not usable on this weekday or at this hour.",
    "threshold_not_met": "The eligible amount is below the coupon's threshold.",
    "no_eligible_items": "No order line is covered by the coupon.",
    "order_lines_required": "The coupon has product rules, so order.lines is required.",
    "order_amount_mismatch": "order.amount differs from the sum of order.lines.",
    "exchange_item_missing": "The order lacks the SKU the exchange coupon gives.",
    "store_not_found": "No store with this code for this merchant.",
    "sale_conflict": "The order id was reported already (POST /v1/sales) with other content.",
    "store_required": "An admin key must name the store.",
    "occurred_at_in_future": "occurred_at is later than now (beyond clock skew).",
    "occurred_at_too_old": "occurred_at is older than the offline window accepts.",
    "datetime_out_of_range": "A time is outside the UTC range of years 1 to 9999.",
    # reversal
    "redemption_not_found": "No redemption with this id for this merchant.",
    "redemption_already_reversed": "The redemption was reversed already.",
    # state machine
    "illegal_transition": "The coupon cannot make this state change.",
    "coupon_not_redeemed": "The coupon is not redeemed, so it cannot be reversed.",
    # issuing and catalogue
    "invalid_template": "The template's rules are inconsistent.",
    "template_not_found": "No such template for this merchant.",
    "template_paused": "The template is paused: no new coupons are issued.",
    "campaign_not_found": "No campaign with this id or claim token for the merchant.",
    "campaign_not_started": "The campaign's claims are not open yet (or not at this time of day).",
    "campaign_ended": "The campaign's claim period is over.",
    "campaign_sold_out": "Every coupon of the campaign has been claimed.",
    "claim_limit_reached": "The customer has claimed as many coupons of the campaign as allowed.",
    # checkout: orders, reservations, transfers
    "coupons_not_combinable": "These coupons may not share one order (stacking rules).",
    "too_many_coupons": "More coupons than the stacking rules or the hub allow on one order.",
    "duplicate_coupon": "The same coupon code is given more than once.",
    "order_redemption_not_found": "No multi-coupon order redemption with this id.",
    "order_already_reversed": "This order's redemption was reversed already.",
    "coupon_reserved": "The coupon is held for an online order until the hold ends.",
    "reservation_not_found": "No reservation with this id.",
    "reservation_expired": "The reservation's hold ended before it was confirmed.",
    "reservation_released": "The reservation was released.",
    "reservation_confirmed": "The reservation was confirmed already.",
    "coupon_not_transferable": "The coupon's template does not allow transfers.",
    "coupon_not_transferable_now": (
        "The coupon cannot be offered now (used, held, expired or offered)."
    ),
    "not_coupon_holder": "Only the coupon's holder can offer or cancel its transfer.",
    "transfer_not_found": "No open transfer offer with this token.",
    "transfer_expired": "The transfer offer has expired.",
    "transfer_closed": "The transfer offer was accepted or cancelled already.",
    "transfer_to_self": "The holder cannot accept their own offer.",
    # terminals: signed coupon tokens, offline redemption, sync, scanning
    "token_malformed": "The coupon token cannot be read: it is not a coupon token of this hub.",
    "token_signature_invalid": "The coupon token's signature does not verify: it was altered.",
    "token_unknown_key": "The coupon token names a signing key the hub does not know.",
    "token_wrong_merchant": "The coupon token was issued by another merchant.",
    "token_expired": "The coupon token's validity window has ended.",
    "offline_not_allowed": "The coupon's template does not allow offline redemption.",
    "offline_conflict": (
        "The coupon was redeemed elsewhere before this offline redemption reached the hub; "
        "it is recorded as a conflict for the merchant to settle."
    ),
    "conflict_not_found": "No offline conflict with this id.",
    "conflict_settled": "The conflict was settled already.",
    "too_many_items": "More items than one sync call takes (at most 100).",
    "image_unreadable": "The image cannot be decoded: not a JPEG, PNG or WebP picture, or damaged.",
    "image_too_large": "The image has more pixels than the scanner takes.",
    "template_out_of_stock": "Issuing would exceed the template's total stock.",
    "per_customer_limit_reached": "The customer holds the most coupons allowed.",
    "customer_not_found": "No customer with this external id for this merchant.",
    "staff_not_found": "No staff member with this id (for this merchant, or this store).",
    "staff_inactive": "The staff member is disabled; enable them before handing out a code.",
    "coupon_already_claimed": "The coupon already has a holder.",
    "already_exists": "A resource with this identifier exists already.",
    "batch_too_large": "At most 10,000 coupons per issue call.",
    # subscriptions and deliveries
    "unknown_connector": "No connector with this name is installed.",
    "invalid_config": "The connector configuration fails its JSON Schema.",
    "url_not_allowed": "A config URL is malformed or leads where the egress policy refuses.",
    "unknown_event_type": "An event type that does not exist or the connector ignores.",
    "subscription_not_found": "No such subscription for this merchant.",
    "delivery_not_found": "No such delivery for this merchant.",
    "delivery_in_progress": "Only dead or succeeded deliveries can be replayed.",
    "database_busy": "No database connection to spare right now; see Retry-After.",
    "database_unavailable": "The database cannot be reached right now; see Retry-After.",
    "draining": "The process is shutting down; send requests to another one.",
    "internal_error": "Unexpected failure; nothing was changed. Retry with the same key.",
}

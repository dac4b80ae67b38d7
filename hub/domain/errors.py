"""Domain errors: every failure a caller can hit has a stable code and an HTTP status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a stable machine-readable ``code``.

    ``status`` is the HTTP status the API answers with; the domain picks it so that
    every transport agrees. ``extra`` carries structured details (e.g. when and where
    a coupon was already redeemed) that become members of the problem document.
    """

    code: str = "domain_error"
    status: int = 422
    title: str = "Request refused"

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra: dict[str, Any] = extra


def refuse(code: str, message: str, status: int = 422, **extra: Any) -> DomainError:
    """Build a :class:`DomainError` for ``code`` (helper that keeps call sites short)."""
    return DomainError(message, code=code, status=status, **extra)


# The catalogue of codes with their HTTP status and a one-line meaning. The README's
# error table is generated from (and tested against) this mapping.
ERROR_CODES: dict[str, tuple[int, str]] = {
    # request shape
    "malformed_json": (400, "The body is not valid JSON."),
    "malformed_xml": (400, "The body is not well-formed XML."),
    "duplicate_json_key": (400, "A key appears more than once in one JSON object."),
    "invalid_characters": (422, "Text holds a NUL character or a lone surrogate."),
    "xml_forbidden": (400, "The XML declares a DTD or entities; they are refused (XXE, bombs)."),
    "unsupported_media_type": (415, "The Content-Type is not one the endpoint accepts."),
    "invalid_pos_payload": (422, "A POS payload field is missing or wrong for its format."),
    "invalid_request": (422, "The body or query has a wrong type, a missing or an unknown field."),
    "payload_too_large": (413, "The body is larger than the endpoint accepts (64 KiB for redeem)."),
    "uri_too_long": (414, "The URL (path and query) is longer than 8 KiB."),
    "headers_too_large": (431, "The request headers exceed 16 KiB or 100 fields."),
    "idempotency_key_required": (400, "The Idempotency-Key header is missing."),
    "idempotency_key_invalid": (400, "The Idempotency-Key header is empty or longer than 255."),
    "idempotency_key_repeated": (400, "The Idempotency-Key header is sent more than once."),
    "idempotency_key_reused": (422, "The Idempotency-Key was used with a different request."),
    "idempotency_key_in_flight": (409, "A request with this Idempotency-Key is still running."),
    "code_malformed": (422, "The coupon code has the wrong shape or a wrong check character."),
    "invalid_cursor": (400, "The pagination cursor is not one this API issued."),
    "not_found": (404, "No such resource (or it belongs to another merchant)."),
    "method_not_allowed": (405, "The method is not allowed on this path."),
    # auth
    "unauthorized": (401, "Missing or unknown API key."),
    "forbidden": (403, "The key's role may not do this."),
    "store_forbidden": (403, "A store key acts only at its own store."),
    "too_many_failed_attempts": (429, "Too many unknown or mistyped codes; see Retry-After."),
    # redemption outcomes
    "coupon_not_found": (404, "No coupon with this code for this merchant."),
    "coupon_already_redeemed": (409, "The coupon was redeemed already; says when and where."),
    "coupon_expired": (422, "The coupon's validity window has ended."),
    "coupon_not_yet_valid": (422, "The coupon's validity window has not started."),
    "coupon_voided": (409, "The coupon was voided."),
    "store_not_allowed": (422, "The coupon may not be used at this store."),
    "channel_not_allowed": (422, "The coupon may not be used on this channel."),
    "outside_usable_time": (422, "Not usable on this weekday or at this hour."),
    "threshold_not_met": (422, "The eligible amount is below the coupon's threshold."),
    "no_eligible_items": (422, "No order line is covered by the coupon."),
    "order_lines_required": (422, "The coupon has product rules, so order.lines is required."),
    "order_amount_mismatch": (422, "order.amount differs from the sum of order.lines."),
    "exchange_item_missing": (422, "The order lacks the SKU the exchange coupon gives."),
    "store_not_found": (422, "No store with this code for this merchant."),
    "store_required": (422, "An admin key must name the store."),
    "occurred_at_in_future": (422, "occurred_at is later than now (beyond clock skew)."),
    "occurred_at_too_old": (422, "occurred_at is older than the offline window accepts."),
    "datetime_out_of_range": (422, "A time is outside the UTC range of years 1 to 9999."),
    # reversal
    "redemption_not_found": (404, "No redemption with this id for this merchant."),
    "redemption_already_reversed": (409, "The redemption was reversed already."),
    # state machine
    "illegal_transition": (409, "The coupon cannot make this state change."),
    "coupon_not_redeemed": (409, "The coupon is not redeemed, so it cannot be reversed."),
    # issuing and catalogue
    "invalid_template": (422, "The template's rules are inconsistent."),
    "template_not_found": (404, "No such template for this merchant."),
    "template_paused": (409, "The template is paused: no new coupons are issued."),
    "template_out_of_stock": (409, "Issuing would exceed the template's total stock."),
    "per_customer_limit_reached": (409, "The customer holds the most coupons allowed."),
    "customer_not_found": (422, "No customer with this external id for this merchant."),
    "coupon_already_claimed": (409, "The coupon already has a holder."),
    "already_exists": (409, "A resource with this identifier exists already."),
    "batch_too_large": (422, "At most 10,000 coupons per issue call."),
    # subscriptions and deliveries
    "unknown_connector": (422, "No connector with this name is installed."),
    "invalid_config": (422, "The connector configuration fails its JSON Schema."),
    "url_not_allowed": (422, "A config URL is malformed or leads where the egress policy refuses."),
    "unknown_event_type": (422, "An event type that does not exist or the connector ignores."),
    "subscription_not_found": (404, "No such subscription for this merchant."),
    "delivery_not_found": (404, "No such delivery for this merchant."),
    "delivery_in_progress": (409, "Only dead or succeeded deliveries can be replayed."),
    "database_busy": (503, "No database connection to spare right now; see Retry-After."),
    "database_unavailable": (503, "The database cannot be reached right now; see Retry-After."),
    "internal_error": (500, "Unexpected failure; nothing was changed. Retry with the same key."),
}

"""RFC 9457 problem documents for domain errors (also stored for idempotent replay),
and the error table's HTTP side: the one place a code's HTTP status is looked up.

The domain names codes and their meanings (:data:`hub.domain.errors.ERROR_CODES`); how
HTTP answers each code is the edge's business, written once here (:data:`HTTP_STATUS`)
because the services store finished answers for idempotent replay and POS replies.
The API's exception handlers (:mod:`hub.api.errors`), the stored replies, the POS
replies and the OpenAPI document all use :func:`status_for`.
"""

from __future__ import annotations

from typing import Any

from hub.domain.errors import ERROR_CODES, DomainError
from hub.services.jsonio import dumps

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:redemption-hub:error:"

# The HTTP status of every code of the catalogue (same keys as ERROR_CODES; the README's
# error table is tested against both).
HTTP_STATUS: dict[str, int] = {
    # request shape
    "malformed_json": 400,
    "malformed_xml": 400,
    "duplicate_json_key": 400,
    "invalid_characters": 422,
    "xml_forbidden": 400,
    "unsupported_media_type": 415,
    "invalid_pos_payload": 422,
    "invalid_request": 422,
    "payload_too_large": 413,
    "uri_too_long": 414,
    "headers_too_large": 431,
    "idempotency_key_required": 400,
    "idempotency_key_invalid": 400,
    "idempotency_key_repeated": 400,
    "idempotency_key_reused": 422,
    "idempotency_key_in_flight": 409,
    "code_malformed": 422,
    "invalid_cursor": 400,
    "not_found": 404,
    "method_not_allowed": 405,
    # auth
    "unauthorized": 401,
    "forbidden": 403,
    "store_forbidden": 403,
    "too_many_failed_attempts": 429,
    "sign_in_code_invalid": 401,
    "staff_disabled": 401,
    "session_expired": 401,
    # redemption outcomes
    "coupon_not_found": 404,
    "coupon_already_redeemed": 409,
    "coupon_expired": 422,
    "coupon_not_yet_valid": 422,
    "coupon_voided": 409,
    "store_not_allowed": 422,
    "channel_not_allowed": 422,
    "outside_usable_time": 422,
    "threshold_not_met": 422,
    "no_eligible_items": 422,
    "order_lines_required": 422,
    "order_amount_mismatch": 422,
    "exchange_item_missing": 422,
    "store_not_found": 422,
    "sale_conflict": 409,
    "store_required": 422,
    "occurred_at_in_future": 422,
    "occurred_at_too_old": 422,
    "datetime_out_of_range": 422,
    # reversal
    "redemption_not_found": 404,
    "redemption_already_reversed": 409,
    # state machine
    "illegal_transition": 409,
    "coupon_not_redeemed": 409,
    # issuing and catalogue
    "invalid_template": 422,
    "template_not_found": 404,
    "template_paused": 409,
    # checkout: orders, reservations, transfers
    "coupons_not_combinable": 422,
    "too_many_coupons": 422,
    "duplicate_coupon": 422,
    "order_redemption_not_found": 404,
    "order_already_reversed": 409,
    "coupon_reserved": 409,
    "reservation_not_found": 404,
    "reservation_expired": 409,
    "reservation_released": 409,
    "reservation_confirmed": 409,
    "coupon_not_transferable": 422,
    "coupon_not_transferable_now": 409,
    "not_coupon_holder": 403,
    "transfer_not_found": 404,
    "transfer_expired": 409,
    "transfer_closed": 409,
    "transfer_to_self": 422,
    # terminals: signed coupon tokens, offline redemption, sync, scanning
    "token_malformed": 422,
    "token_signature_invalid": 422,
    "token_unknown_key": 422,
    "token_wrong_merchant": 422,
    "token_expired": 422,
    "offline_not_allowed": 422,
    "offline_conflict": 409,
    "conflict_not_found": 404,
    "conflict_settled": 409,
    "too_many_items": 422,
    "image_unreadable": 422,
    "image_too_large": 413,
    "template_out_of_stock": 409,
    "campaign_not_found": 404,
    "campaign_not_started": 409,
    "campaign_ended": 409,
    "campaign_sold_out": 409,
    "claim_limit_reached": 409,
    "per_customer_limit_reached": 409,
    "customer_not_found": 422,
    "staff_not_found": 404,
    "staff_inactive": 409,
    "coupon_already_claimed": 409,
    "already_exists": 409,
    "batch_too_large": 422,
    # subscriptions and deliveries
    "unknown_connector": 422,
    "invalid_config": 422,
    "url_not_allowed": 422,
    "unknown_event_type": 422,
    "subscription_not_found": 404,
    "delivery_not_found": 404,
    "delivery_in_progress": 409,
    "database_busy": 503,
    "database_unavailable": 503,
    "draining": 503,
    "internal_error": 500,
}
DEFAULT_STATUS = 422  # a plugin's own code (not in the catalogue): the request is refused


def status_for(code: str) -> int:
    """The HTTP status the hub answers ``code`` with (the error table)."""
    return HTTP_STATUS.get(code, DEFAULT_STATUS)


def problem_dict(
    code: str, status: int, detail: str, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    title = ERROR_CODES.get(code, "Request refused")
    doc: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        doc["instance"] = instance
    for k, v in extra.items():
        if k not in doc:
            doc[k] = v
    return doc


def problem_for(err: DomainError, instance: str | None = None) -> dict[str, Any]:
    return problem_dict(err.code, status_for(err.code), err.message, instance, **err.extra)


def problem_bytes(err: DomainError, instance: str | None = None) -> bytes:
    return dumps(problem_for(err, instance))

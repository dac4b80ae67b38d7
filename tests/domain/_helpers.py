"""Shared helpers for the domain tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import settings

from hub.domain.errors import ERROR_CODES, DomainError

# Hypothesis settings for every property test here: no example database, so the suite
# leaves no ``.hypothesis/`` directory behind. Combine with ``settings(NO_DB, ...)``.
NO_DB = settings(database=None)

# Every error code the domain tests expect to see raised. ``raises_code`` refuses any
# code outside this set, and ``test_errors.py`` checks the set against ERROR_CODES.
DOMAIN_CODES_RAISED: frozenset[str] = frozenset(
    {
        "code_malformed",
        "invalid_date_range",
        "date_range_too_long",
        "datetime_out_of_range",
        "coupon_already_redeemed",
        "coupon_voided",
        "coupon_expired",
        "coupon_not_yet_valid",
        "coupon_not_redeemed",
        "illegal_transition",
        "store_not_allowed",
        "channel_not_allowed",
        "outside_usable_time",
        "order_lines_required",
        "order_amount_mismatch",
        "no_eligible_items",
        "threshold_not_met",
        "exchange_item_missing",
        "invalid_template",
        "duplicate_json_key",
        "invalid_characters",
        "coupon_reserved",
        "invalid_request",
        "duplicate_coupon",
        "coupons_not_combinable",
        "too_many_coupons",
        "token_malformed",
        "token_wrong_merchant",
        "token_expired",
    }
)


@contextmanager
def raises_code(code: str, **extra: Any) -> Iterator[pytest.ExceptionInfo[DomainError]]:
    """Expect a :class:`DomainError` with a catalogued ``code`` and ``extra`` (and no HTTP
    status: the domain knows none; the edge looks it up from the error table)."""
    assert code in DOMAIN_CODES_RAISED, f"add {code!r} to DOMAIN_CODES_RAISED"
    with pytest.raises(DomainError) as info:
        yield info
    err = info.value
    assert err.code == code, f"expected {code!r}, got {err.code!r} ({err.message})"
    assert code in ERROR_CODES
    assert not hasattr(err, "status"), "a domain refusal carries no HTTP status"
    assert err.message, "a refusal carries a human-readable message"
    assert str(err) == err.message
    for key, value in extra.items():
        assert err.extra.get(key) == value, (key, err.extra)

"""Holds on coupons while an online customer pays (reservations).

A hold is two facts on the coupon row: the reservation holding it and when the hold
ends (``reserved_until``). It is *live* while ``reserved_until`` is later than now — an
expired hold blocks nothing, whether or not the expiry job has cleared it yet. Liveness
is always judged at the moment of the request (never at an offline ``occurred_at``): a
hold is about who may take the coupon now.

Every redeem and reservation of a coupon with a live hold is refused with
``coupon_reserved`` naming when the hold ends, except the reservation that holds it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.domain.errors import DomainError, refuse

DEFAULT_TTL = timedelta(seconds=900)
MIN_TTL = timedelta(seconds=60)
MAX_TTL = timedelta(seconds=1800)


def is_live(reservation_id: str | None, reserved_until: datetime | None, now: datetime) -> bool:
    """True when a hold is on the coupon at ``now``."""
    return reservation_id is not None and reserved_until is not None and reserved_until > now


def _stamp(at: datetime) -> str:
    """UTC ISO 8601 with a ``Z`` suffix and milliseconds (the API's spelling of times)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def held(reserved_until: datetime) -> DomainError:
    """The refusal of a coupon held until ``reserved_until``."""
    until = _stamp(reserved_until)
    return refuse(
        "coupon_reserved",
        f"The coupon is held for an online order until {until}.",
        held_until=until,
    )


def check_not_held(
    reservation_id: str | None,
    reserved_until: datetime | None,
    now: datetime,
    *,
    mine: str | None = None,
) -> None:
    """Refuse ``coupon_reserved`` when a live hold other than reservation ``mine`` is on
    the coupon."""
    if is_live(reservation_id, reserved_until, now) and reservation_id != mine:
        assert reserved_until is not None
        raise held(reserved_until)


def check_ttl(ttl: timedelta) -> None:
    """A hold lasts between :data:`MIN_TTL` and :data:`MAX_TTL`."""
    if not MIN_TTL <= ttl <= MAX_TTL:
        lo, hi = int(MIN_TTL.total_seconds()), int(MAX_TTL.total_seconds())
        raise refuse(
            "invalid_request",
            f"ttl_seconds is {lo} to {hi}.",
            errors=[{"field": "ttl_seconds", "message": f"between {lo} and {hi}"}],
        )

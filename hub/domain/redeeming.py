"""The redeem decision: given a coupon, its template and the request, grant or refuse.

Checks run in a fixed, documented order so that callers always see the most
fundamental reason first: state → validity window → store → channel → time of day
→ order shape → product rules → threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from hub.domain.cart import Discount, Order
from hub.domain.discount import compute_discount
from hub.domain.errors import DomainError, refuse
from hub.domain.state import Action, CouponState, transition
from hub.domain.templates import Template
from hub.domain.validity import Window


@dataclass(frozen=True)
class CouponFacts:
    """What the redeem decision needs to know about one coupon."""

    state: CouponState
    window: Window
    template: Template


@dataclass(frozen=True)
class RedeemContext:
    store: str  # store code
    channel: str
    at: datetime  # when the redemption is judged (occurred_at, or now)
    tz: ZoneInfo  # the merchant's time zone (weekday/hour rules)


def effective_state(state: CouponState, window: Window, at: datetime) -> CouponState:
    """The coupon's state as of ``at``: ``issued`` coupons past their window read as
    ``expired``, and ``expired`` ones (swept, or reversed after the window) read as
    ``issued`` at a moment inside it — the sweep only records what the window says."""
    if state is CouponState.ISSUED and at >= window.end:
        return CouponState.EXPIRED
    if state is CouponState.EXPIRED and at < window.end:
        return CouponState.ISSUED
    return state


def _expired(window: Window) -> DomainError:
    return refuse("coupon_expired", "The coupon has expired.", valid_until=window.end.isoformat())


def check_redeemable(facts: CouponFacts, ctx: RedeemContext, order: Order) -> Discount:
    """Run every check; return the discount or raise the first refusal.

    Everything is judged at ``ctx.at`` (an offline sale's ``occurred_at``): a coupon the
    expiry sweep marked ``expired`` after that moment is redeemed exactly as if the sweep
    had not run yet (the state machine decides, :mod:`hub.domain.state`), and one whose
    window had closed by then is refused with the same answer either way."""
    check_usable(facts, ctx)
    return compute_discount(facts.template, order)


def check_usable(facts: CouponFacts, ctx: RedeemContext) -> None:
    """The checks that do not look at the order: state → validity window → store →
    channel → time of day. Raise the first refusal."""
    window_open = ctx.at < facts.window.end
    try:  # state first: already redeemed / voided / expired
        transition(facts.state, Action.REDEEM, window_open=window_open)
    except DomainError as err:
        if err.code == "coupon_expired":
            raise _expired(facts.window) from None
        raise
    if ctx.at < facts.window.start:
        raise refuse(
            "coupon_not_yet_valid",
            "The coupon is not valid yet.",
            valid_from=facts.window.start.isoformat(),
        )
    if not window_open:
        raise _expired(facts.window)
    usage = facts.template.usage
    if usage.stores and ctx.store not in usage.stores:
        raise refuse("store_not_allowed", f"The coupon cannot be used at store {ctx.store}.")
    if usage.channels and ctx.channel not in usage.channels:
        raise refuse("channel_not_allowed", f"The coupon cannot be used on channel {ctx.channel}.")
    local = ctx.at.astimezone(ctx.tz)
    if usage.weekdays and local.isoweekday() not in usage.weekdays:
        raise refuse("outside_usable_time", "The coupon cannot be used on this weekday.")
    if usage.hours and not any(h.contains(local.time()) for h in usage.hours):
        raise refuse("outside_usable_time", "The coupon cannot be used at this hour.")

"""Coupon templates: what a coupon gives (its benefit) and where/when it may be used.

All money is integer fen. A template is built from plain values with
:func:`build_template`, which checks the rules are consistent and raises
``invalid_template`` naming the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Literal

from hub.domain.errors import refuse

CHANNELS = ("pos", "mini_program", "h5", "app", "web")
MAX_DAYS = 3650  # relative windows: at most this many days long, and this many days away
Kind = Literal["threshold", "percentage", "exchange"]
KINDS: tuple[Kind, ...] = ("threshold", "percentage", "exchange")


@dataclass(frozen=True)
class ThresholdBenefit:
    """满减: eligible amount ≥ ``threshold`` → ``discount`` fen off."""

    threshold: int
    discount: int
    kind: Literal["threshold"] = "threshold"


@dataclass(frozen=True)
class PercentageBenefit:
    """折扣: ``percent_off`` % off the eligible amount, optional threshold and cap."""

    percent_off: int
    threshold: int = 0
    cap: int | None = None
    kind: Literal["percentage"] = "percentage"


@dataclass(frozen=True)
class ExchangeBenefit:
    """兑换: ``qty`` units of ``sku`` free (``price`` 0) or at the fixed ``price``."""

    sku: str
    qty: int = 1
    price: int = 0
    threshold: int = 0
    kind: Literal["exchange"] = "exchange"


Benefit = ThresholdBenefit | PercentageBenefit | ExchangeBenefit

MAX_PER_ORDER = 20  # the largest ``stacking.max_per_order`` a template may set

# expiry reminders (即将过期提醒): whole days before a coupon's window closes
DEFAULT_REMIND_DAYS: tuple[int, ...] = (3,)
REMIND_DAYS_MAX = 365  # each value is 1 … this many days
REMIND_MAX_COUNT = 5  # at most this many reminders per template


@dataclass(frozen=True)
class Stacking:
    """Which coupons a coupon may share an order with (叠加规则).

    ``combines_with`` lists the benefit kinds it may be used together with; empty (the
    default) means *exclusive*: the coupon is used alone, as every coupon was before
    templates had this field (one code per redemption). Two coupons may share an order
    only when each one's kind is in the other's ``combines_with`` (a kind not in its own
    list means no second coupon of that kind). ``max_per_order`` is the most coupons an
    order may use when this one is among them (``None``: no limit of its own; the
    smallest limit of the coupons in an order applies). An exclusive coupon's limit is 1.
    """

    combines_with: frozenset[Kind] = frozenset()
    max_per_order: int | None = 1

    @property
    def exclusive(self) -> bool:
        return not self.combines_with

    def allows(self, kind: Kind) -> bool:
        """True when a coupon of ``kind`` may share an order with this one."""
        return kind in self.combines_with


@dataclass(frozen=True)
class FixedWindow:
    """Valid from ``start`` (inclusive) to ``end`` (exclusive), both UTC-aware."""

    start: datetime
    end: datetime
    type: Literal["fixed"] = "fixed"


@dataclass(frozen=True)
class RelativeWindow:
    """Valid for ``days`` local days from issue, starting ``start_after_days`` later.

    With ``start_after_days == 0`` the window opens at the moment of issue; otherwise
    at local midnight ``start_after_days`` days after the issue date. It closes at local
    midnight at the end of the last day (the end of the issue day counts as day 1).
    """

    days: int
    start_after_days: int = 0
    type: Literal["relative"] = "relative"


Validity = FixedWindow | RelativeWindow


@dataclass(frozen=True)
class HourRange:
    """Local time of day ``start`` (inclusive) to ``end`` (exclusive); may wrap midnight."""

    start: time
    end: time

    def contains(self, t: time) -> bool:
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


@dataclass(frozen=True)
class UsageRules:
    """Where and when a coupon may be used. Empty collections mean "no restriction"."""

    weekdays: frozenset[int] = frozenset()  # ISO weekdays 1 (Mon) … 7 (Sun), local time
    hours: tuple[HourRange, ...] = ()
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()  # store codes
    channels: frozenset[str] = frozenset()

    @property
    def has_product_rules(self) -> bool:
        return bool(self.skus or self.categories)


@dataclass(frozen=True)
class Template:
    benefit: Benefit
    validity: Validity
    usage: UsageRules = field(default_factory=UsageRules)
    total_quantity: int | None = None
    per_customer_limit: int | None = None
    stacking: Stacking = field(default_factory=Stacking)
    transferable: bool = False  # holders may pass its coupons to a friend (转赠)
    offline: bool = True  # terminals may redeem its coupons offline (离线核销)
    # days before the window closes at which holders are reminded (coupon.expiring),
    # largest first; empty: no reminder (hub.domain.reminders decides when each is due)
    remind_days_before: tuple[int, ...] = DEFAULT_REMIND_DAYS

    @property
    def kind(self) -> Kind:
        return self.benefit.kind

    @property
    def needs_lines(self) -> bool:
        """True when redeeming needs ``order.lines`` (product rules or an exchange)."""
        return self.usage.has_product_rules or isinstance(self.benefit, ExchangeBenefit)


def _invalid(field_name: str, message: str) -> Exception:
    return refuse("invalid_template", message, field=field_name)


def check_template(t: Template) -> Template:
    """Return ``t`` if its rules are consistent, else raise ``invalid_template``."""
    b = t.benefit
    if isinstance(b, ThresholdBenefit):
        if b.discount <= 0:
            raise _invalid("benefit.discount", "discount must be positive (fen)")
        if b.threshold < 0:
            raise _invalid("benefit.threshold", "threshold must not be negative (fen)")
    elif isinstance(b, PercentageBenefit):
        if not 1 <= b.percent_off <= 99:
            raise _invalid("benefit.percent_off", "percent_off must be between 1 and 99")
        if b.threshold < 0:
            raise _invalid("benefit.threshold", "threshold must not be negative (fen)")
        if b.cap is not None and b.cap <= 0:
            raise _invalid("benefit.cap", "cap must be positive (fen) when given")
    else:
        if not b.sku:
            raise _invalid("benefit.sku", "an exchange coupon names the SKU it gives")
        if b.qty < 1:
            raise _invalid("benefit.qty", "qty must be at least 1")
        if b.price < 0:
            raise _invalid("benefit.price", "price must not be negative (fen)")
        if b.threshold < 0:
            raise _invalid("benefit.threshold", "threshold must not be negative (fen)")
    v = t.validity
    if isinstance(v, FixedWindow):
        if v.start.tzinfo is None or v.end.tzinfo is None:
            raise _invalid("validity", "start and end must carry a time zone")
        if v.end <= v.start:
            raise _invalid("validity.end", "end must be after start")
    else:
        if not 1 <= v.days <= MAX_DAYS:
            raise _invalid("validity.days", f"days must be between 1 and {MAX_DAYS}")
        if not 0 <= v.start_after_days <= MAX_DAYS:
            raise _invalid(
                "validity.start_after_days", f"start_after_days must be between 0 and {MAX_DAYS}"
            )
    u = t.usage
    if any(d not in range(1, 8) for d in u.weekdays):
        raise _invalid("usage.weekdays", "weekdays are ISO numbers 1 (Monday) to 7 (Sunday)")
    unknown = sorted(set(u.channels) - set(CHANNELS))
    if unknown:
        raise _invalid("usage.channels", f"unknown channel(s) {unknown}; known: {list(CHANNELS)}")
    for i, h in enumerate(u.hours):
        if h.start == h.end:
            raise _invalid(f"usage.hours[{i}]", "an hour range must not be empty")
    if t.total_quantity is not None and t.total_quantity < 0:
        raise _invalid("total_quantity", "total_quantity must not be negative")
    if t.per_customer_limit is not None and t.per_customer_limit < 1:
        raise _invalid("per_customer_limit", "per_customer_limit must be at least 1")
    _check_stacking(t.stacking)
    _check_remind_days(t.remind_days_before)
    return t


def _check_remind_days(days: tuple[int, ...]) -> None:
    name = "remind_days_before"
    if len(days) > REMIND_MAX_COUNT:
        raise _invalid(name, f"at most {REMIND_MAX_COUNT} reminders per template")
    if any(isinstance(d, bool) or not isinstance(d, int) for d in days):
        raise _invalid(name, "remind_days_before lists whole numbers of days")
    if any(not 1 <= d <= REMIND_DAYS_MAX for d in days):
        raise _invalid(name, f"each reminder is 1 to {REMIND_DAYS_MAX} days before the end")
    if len(set(days)) != len(days):
        raise _invalid(name, "remind_days_before lists each number of days once")


def _check_stacking(s: Stacking) -> None:
    unknown = sorted(set(s.combines_with) - set(KINDS))
    if unknown:
        raise _invalid("stacking.combines_with", f"unknown kind(s) {unknown}; known: {list(KINDS)}")
    limit = s.max_per_order
    if s.exclusive:
        if limit != 1:
            raise _invalid(
                "stacking.max_per_order",
                "an exclusive coupon (combines_with empty) is used alone: max_per_order is 1",
            )
    elif limit is not None and not 2 <= limit <= MAX_PER_ORDER:
        raise _invalid(
            "stacking.max_per_order",
            f"max_per_order must be between 2 and {MAX_PER_ORDER} (or null: no limit) "
            "for a coupon that combines with others",
        )

"""Discount maths on a cart, in integer fen, line by line.

Rounding rule (documented in the README):

* 折扣 (percentage): the discount on the eligible amount is ``floor(eligible × N / 100)``
  — rounded *down* to the fen, so a customer never gets more than N% — then limited
  by the cap.
* 满减 (threshold): ``min(discount, eligible)``.
* The total is split over the eligible lines in proportion to their amounts with the
  largest-remainder method: each line first gets ``floor(total × amount / eligible)``;
  the fen left over go one each to the lines with the largest remainders (earlier
  line first on a tie). Line discounts therefore sum exactly to the total and no
  line is discounted below zero.
* 兑换 (exchange): up to ``qty`` units of the SKU, taken in order from its lines that
  the coupon's product rules cover, each discounted by ``unit_price − price`` (never
  below zero).

Lines not covered by the coupon are never discounted.

Several coupons on one order (:mod:`hub.domain.combination`) apply one after the other
to what the earlier ones left: :class:`CartState` holds the fen left on each line and
the units not yet given away by an exchange coupon, and :func:`discount_after` runs the
same rules on it (eligible amount, threshold, allocation and exchange units all read
the state). On a fresh state (:meth:`CartState.of`) it is :func:`compute_discount`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hub.domain.cart import Discount, Line, LineDiscount, Order
from hub.domain.errors import refuse
from hub.domain.templates import (
    ExchangeBenefit,
    PercentageBenefit,
    Template,
    ThresholdBenefit,
    UsageRules,
)


def allocate(total: int, amounts: Sequence[int]) -> list[int]:
    """Split ``total`` over ``amounts`` proportionally (largest remainder, ties to earlier).

    Requires ``0 <= total <= sum(amounts)``; each share is then ``<= amounts[i]``.
    """
    whole = sum(amounts)
    if total < 0 or total > whole:
        raise ValueError("total must be between 0 and the sum of amounts")
    if whole == 0:
        return [0] * len(amounts)
    shares = [total * a // whole for a in amounts]
    remainders = [total * a % whole for a in amounts]
    left = total - sum(shares)
    order = sorted(range(len(amounts)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def covered(line: Line, usage: UsageRules) -> bool:
    """True when ``line`` is one the coupon's product rules apply to."""
    if not usage.has_product_rules:
        return True
    return line.sku in usage.skus or (
        line.category is not None and line.category in usage.categories
    )


def check_order(order: Order, template: Template) -> None:
    """Refuse orders the discount maths cannot work on."""
    if order.lines is None:
        if template.needs_lines:
            raise refuse(
                "order_lines_required",
                "This coupon applies to particular products: send order.lines.",
            )
        return
    total = sum(line.amount for line in order.lines)
    if total != order.amount:
        raise refuse(
            "order_amount_mismatch",
            f"order.amount is {order.amount} but the lines add up to {total}.",
            amount=order.amount,
            lines_total=total,
        )


@dataclass(frozen=True)
class CartState:
    """What is left of an order after earlier coupons.

    ``remaining[i]``: fen still to pay on line ``i``; ``units[i]``: its units not yet
    given away by an exchange coupon. An order without lines has one pseudo-line (the
    whole amount, no units).
    """

    remaining: tuple[int, ...]
    units: tuple[int, ...]

    @classmethod
    def of(cls, order: Order) -> CartState:
        if order.lines is None:
            return cls((order.amount,), (0,))
        return cls(
            tuple(ln.amount for ln in order.lines), tuple(max(0, ln.qty) for ln in order.lines)
        )

    @property
    def payable(self) -> int:
        return sum(self.remaining)


def compute_discount(template: Template, order: Order) -> Discount:
    """The discount ``template`` grants on ``order`` or a refusal with its code."""
    check_order(order, template)
    return discount_after(template, order, CartState.of(order))[0]


def discount_after(
    template: Template, order: Order, state: CartState
) -> tuple[Discount, CartState]:
    """The discount ``template`` grants on what ``state`` leaves of ``order`` (already
    checked by :func:`check_order`), and the state after it; or a refusal with its code.

    The eligible amount is what is left on the covered lines, so a threshold is judged
    after the earlier coupons and a line is never discounted below zero."""
    b = template.benefit
    if order.lines is None:
        eligible_idx: list[int] = []
        eligible = state.remaining[0]
    else:
        eligible_idx = [i for i, ln in enumerate(order.lines) if covered(ln, template.usage)]
        eligible = sum(state.remaining[i] for i in eligible_idx)
        if not eligible_idx or eligible == 0:
            raise refuse("no_eligible_items", "No line of this order is covered by the coupon.")
    threshold = b.threshold
    if eligible < threshold:
        raise refuse(
            "threshold_not_met",
            f"The coupon needs {threshold} fen of eligible items; the order has {eligible}.",
            threshold=threshold,
            eligible_amount=eligible,
        )
    if isinstance(b, ExchangeBenefit):
        return _exchange(b, template.usage, order, state, eligible)
    if isinstance(b, ThresholdBenefit):
        total = min(b.discount, eligible)
    else:
        total = _percentage(b, eligible)
    if order.lines is None:
        return Discount(total=total, eligible_amount=eligible), CartState(
            (eligible - total,), state.units
        )
    shares = allocate(total, [state.remaining[i] for i in eligible_idx])
    remaining = list(state.remaining)
    for i, share in zip(eligible_idx, shares, strict=True):
        remaining[i] -= share
    discount = Discount(
        total=total,
        eligible_amount=eligible,
        lines=tuple(
            LineDiscount(i, order.lines[i].sku, s)
            for i, s in zip(eligible_idx, shares, strict=True)
        ),
    )
    return discount, CartState(tuple(remaining), state.units)


def _percentage(b: PercentageBenefit, eligible: int) -> int:
    total = eligible * b.percent_off // 100
    if b.cap is not None:
        total = min(total, b.cap)
    return total


def _exchange(
    b: ExchangeBenefit, usage: UsageRules, order: Order, state: CartState, eligible: int
) -> tuple[Discount, CartState]:
    assert order.lines is not None  # check_order guarantees it for exchange coupons
    wanted = b.qty
    parts: list[LineDiscount] = []
    remaining, units_left = list(state.remaining), list(state.units)
    for i, ln in enumerate(order.lines):
        if wanted == 0:
            break
        if ln.sku != b.sku or units_left[i] <= 0 or not covered(ln, usage):
            continue
        units = min(wanted, units_left[i])
        wanted -= units
        # never below zero: the cap only bites when an earlier coupon discounted the line
        off = min(units * max(0, ln.unit_price - b.price), remaining[i])
        units_left[i] -= units
        remaining[i] -= off
        parts.append(LineDiscount(i, ln.sku, off))
    if not parts:
        raise refuse(
            "exchange_item_missing",
            f"This coupon gives {b.qty} × {b.sku}: add it to the order.",
            sku=b.sku,
        )
    discount = Discount(
        total=sum(p.discount for p in parts),
        eligible_amount=eligible,
        lines=tuple(parts),
        units_given=b.qty - wanted,
    )
    return discount, CartState(tuple(remaining), tuple(units_left))


def exchange_bound(b: ExchangeBenefit, usage: UsageRules, order: Order) -> int:
    """The most an exchange coupon can take off ``order`` after any earlier coupons:
    its ``qty`` units at the largest per-unit discounts among its lines. (After an
    earlier exchange took the cheap units it may reach dearer ones, so its stand-alone
    discount is no bound; threshold and percentage coupons only ever lose.)"""
    if order.lines is None:
        return 0
    per_unit = sorted(
        (
            max(0, ln.unit_price - b.price)
            for ln in order.lines
            if ln.sku == b.sku and covered(ln, usage)
            for _ in range(min(max(0, ln.qty), b.qty))
        ),
        reverse=True,
    )
    return sum(per_unit[: b.qty])

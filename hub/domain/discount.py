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
from dataclasses import dataclass, field
from functools import cached_property

from hub.domain.cart import Discount, Line, LineDiscount, Order
from hub.domain.errors import DomainError, refuse
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
    left = total - sum(shares)
    if left:  # the largest remainders first, the earlier line on a tie
        by_remainder = sorted([(-(total * a % whole), i) for i, a in enumerate(amounts)])
        for _, i in by_remainder[:left]:
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
    _sums: dict[tuple[int, ...], int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, order: Order) -> CartState:
        if order.lines is None:
            return cls((order.amount,), (0,))
        return cls(
            tuple(ln.amount for ln in order.lines), tuple(max(0, ln.qty) for ln in order.lines)
        )

    @cached_property
    def payable(self) -> int:
        return sum(self.remaining)

    def eligible(self, idx: tuple[int, ...]) -> int:
        """What is left on the lines ``idx`` (remembered: coupons with the same product
        rules share it; all the lines: :attr:`payable`)."""
        if len(idx) == len(self.remaining):
            return self.payable
        found = self._sums.get(idx)
        if found is None:
            remaining = self.remaining
            found = self._sums[idx] = sum([remaining[i] for i in idx])
        return found


def compute_discount(template: Template, order: Order) -> Discount:
    """The discount ``template`` grants on ``order`` or a refusal with its code."""
    check_order(order, template)
    return discount_after(template, order, CartState.of(order))[0]


def covered_lines(order: Order, usage: UsageRules) -> tuple[int, ...]:
    """Indices of the lines of ``order`` the coupon covers (``()`` without lines)."""
    if order.lines is None:
        return ()
    if not usage.has_product_rules:
        return tuple(range(len(order.lines)))
    return tuple(i for i, ln in enumerate(order.lines) if covered(ln, usage))


# The outcome of one coupon on a state: (total, eligible, [(line, discount)], units given
# or None, state after); or a _Refused.
_Granted = tuple[int, int, list[tuple[int, int]], int | None, CartState]


class _Refused:
    __slots__ = ("code", "eligible")

    def __init__(self, code: str, eligible: int) -> None:
        self.code, self.eligible = code, eligible


def discount_after(
    template: Template, order: Order, state: CartState
) -> tuple[Discount, CartState]:
    """The discount ``template`` grants on what ``state`` leaves of ``order`` (already
    checked by :func:`check_order`), and the state after it; or a refusal with its code.

    The eligible amount is what is left on the covered lines, so a threshold is judged
    after the earlier coupons and a line is never discounted below zero."""
    out = _grant(template, order, state, covered_lines(order, template.usage))
    if isinstance(out, _Refused):
        raise _refusal(template, out)
    total, eligible, parts, units_given, after = out
    lines = order.lines or ()
    discount = Discount(
        total=total,
        eligible_amount=eligible,
        lines=tuple(LineDiscount(i, lines[i].sku, d) for i, d in parts),
        units_given=units_given,
    )
    return discount, after


def step(
    template: Template, order: Order, state: CartState, idx: tuple[int, ...]
) -> tuple[int, CartState] | None:
    """:func:`discount_after` for a search: the total and the state after, or ``None``
    when refused; ``idx`` is :func:`covered_lines` of the template, computed once."""
    out = _grant(template, order, state, idx)
    if isinstance(out, _Refused):
        return None
    return out[0], out[4]


def preview(template: Template, order: Order, state: CartState, idx: tuple[int, ...]) -> int | None:
    """The total :func:`step` would give, without splitting it over the lines (cheap: a
    search's bound needs only the totals of the candidates it may not explore)."""
    b = template.benefit
    remaining = state.remaining
    if order.lines is None:
        eligible = remaining[0]
    else:
        eligible = state.eligible(idx)
        if not idx or eligible == 0:
            return None
    if eligible < b.threshold:
        return None
    if isinstance(b, ThresholdBenefit):
        return min(b.discount, eligible)
    if isinstance(b, PercentageBenefit):
        return _percentage(b, eligible)
    out = _exchange(b, order, state, idx, eligible)
    return None if isinstance(out, _Refused) else out[0]


def _refusal(template: Template, no: _Refused) -> DomainError:
    b = template.benefit
    if no.code == "no_eligible_items":
        return refuse("no_eligible_items", "No line of this order is covered by the coupon.")
    if no.code == "threshold_not_met":
        return refuse(
            "threshold_not_met",
            f"The coupon needs {b.threshold} fen of eligible items; the order has {no.eligible}.",
            threshold=b.threshold,
            eligible_amount=no.eligible,
        )
    assert isinstance(b, ExchangeBenefit)
    return refuse(
        "exchange_item_missing",
        f"This coupon gives {b.qty} × {b.sku}: add it to the order.",
        sku=b.sku,
    )


def _grant(
    template: Template, order: Order, state: CartState, idx: tuple[int, ...]
) -> _Granted | _Refused:
    b = template.benefit
    remaining = state.remaining
    if order.lines is None:
        eligible = remaining[0]
    else:
        eligible = state.eligible(idx)
        if not idx or eligible == 0:
            return _Refused("no_eligible_items", eligible)
    if eligible < b.threshold:
        return _Refused("threshold_not_met", eligible)
    if isinstance(b, ExchangeBenefit):
        return _exchange(b, order, state, idx, eligible)
    if isinstance(b, ThresholdBenefit):
        total = min(b.discount, eligible)
    else:
        total = _percentage(b, eligible)
    if order.lines is None:
        return total, eligible, [], None, CartState((eligible - total,), state.units)
    shares = allocate(total, [remaining[i] for i in idx])
    left = list(remaining)
    for i, share in zip(idx, shares, strict=True):
        left[i] -= share
    parts = list(zip(idx, shares, strict=True))
    return total, eligible, parts, None, CartState(tuple(left), state.units)


def _percentage(b: PercentageBenefit, eligible: int) -> int:
    total = eligible * b.percent_off // 100
    if b.cap is not None:
        total = min(total, b.cap)
    return total


def _exchange(
    b: ExchangeBenefit, order: Order, state: CartState, idx: tuple[int, ...], eligible: int
) -> _Granted | _Refused:
    assert order.lines is not None  # check_order guarantees it for exchange coupons
    wanted = b.qty
    parts: list[tuple[int, int]] = []
    left, units_left = list(state.remaining), list(state.units)
    for i in idx:  # the covered lines, in order
        if wanted == 0:
            break
        ln = order.lines[i]
        if ln.sku != b.sku or units_left[i] <= 0:
            continue
        units = min(wanted, units_left[i])
        wanted -= units
        # never below zero: the cap only bites when an earlier coupon discounted the line
        off = min(units * max(0, ln.unit_price - b.price), left[i])
        units_left[i] -= units
        left[i] -= off
        parts.append((i, off))
    if not parts:
        return _Refused("exchange_item_missing", eligible)
    total = sum(d for _, d in parts)
    return total, eligible, parts, b.qty - wanted, CartState(tuple(left), tuple(units_left))


def exchange_bound(b: ExchangeBenefit, usage: UsageRules, order: Order) -> int:
    """The most an exchange coupon can take off ``order`` after any earlier coupons:
    its ``qty`` units at the largest per-unit discounts among its lines. (After an
    earlier exchange took the cheap units it may reach dearer ones, so its stand-alone
    discount is no bound; threshold and percentage coupons only ever lose.)"""
    if order.lines is None:
        return 0
    dearest_first = sorted(
        (
            (max(0, ln.unit_price - b.price), max(0, ln.qty))
            for ln in order.lines
            if ln.sku == b.sku and covered(ln, usage)
        ),
        reverse=True,
    )
    wanted, most = b.qty, 0
    for per_unit, units in dearest_first:
        taken = min(units, wanted)
        most += taken * per_unit
        wanted -= taken
    return most

"""Several coupons on one order: the fixed order of application and its arithmetic.

**Order of application** (:func:`application_order`), whatever order the coupons are
given in:

1. 兑换 ``exchange`` coupons first — they take units of a SKU off the lines;
2. 折扣 ``percentage`` coupons next, on what is left of each line;
3. 满减 ``threshold`` coupons last.

Within a kind: the higher threshold first (it is judged while more is left), then by
code. Each coupon sees only what the earlier ones left (:class:`CartState`): its
eligible amount is what is left on the lines it covers, its threshold is judged on
that amount, its discount is split over what is left of those lines, and exchange
units already given away are not given twice. So no line ever goes below zero, every
amount stays integer fen, and a single coupon is exactly :func:`compute_discount`.

:func:`apply_combination` does not judge the stacking rules; :func:`combine_given` is the
judgement of a set of codes given together (a multi-coupon redeem, a reservation): the
stacking rules (:func:`hub.domain.stacking.stacking_conflict`) first, then the set applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.domain.cart import Discount, Order
from hub.domain.discount import CartState, check_order, discount_after
from hub.domain.errors import DomainError, refuse
from hub.domain.redeeming import CouponFacts, RedeemContext, check_usable
from hub.domain.stacking import ConflictReason, stacking_conflict
from hub.domain.templates import Kind, Template

KIND_RANK: dict[Kind, int] = {"exchange": 0, "percentage": 1, "threshold": 2}


@dataclass(frozen=True)
class Candidate:
    """A coupon that may be used on the order: its code and what the decision needs."""

    code: str
    facts: CouponFacts

    @property
    def template(self) -> Template:
        return self.facts.template

    @property
    def kind(self) -> Kind:
        return self.facts.template.kind

    @property
    def expires(self) -> datetime:
        return self.facts.window.end


def application_key(c: Candidate) -> tuple[int, int, str]:
    """Sort key of the order of application: kind, higher threshold first, code."""
    return (KIND_RANK[c.kind], -c.template.benefit.threshold, c.code)


def application_order(coupons: Iterable[Candidate]) -> list[Candidate]:
    return sorted(coupons, key=application_key)


@dataclass(frozen=True)
class AppliedCoupon:
    """One coupon of a combination: its discount on what the earlier ones left
    (``discount.lines``: its share of each line)."""

    code: str
    kind: Kind
    discount: Discount


@dataclass(frozen=True)
class LineOutcome:
    """Order line ``index`` after the whole combination."""

    index: int
    sku: str
    amount: int  # as ordered
    discount: int  # by all the coupons together
    payable: int  # amount − discount, never below zero
    by_coupon: tuple[tuple[str, int], ...]  # (code, discount) in order of application


@dataclass(frozen=True)
class Combination:
    """Coupons applied in order: each one's discount, the total and what is left to pay."""

    amount: int
    applied: tuple[AppliedCoupon, ...]
    lines: tuple[LineOutcome, ...]  # empty when the order has no lines

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes in order of application."""
        return tuple(a.code for a in self.applied)

    @property
    def total(self) -> int:
        return sum(a.discount.total for a in self.applied)

    @property
    def payable(self) -> int:
        return self.amount - self.total


def combination_of(order: Order, applied: Sequence[AppliedCoupon]) -> Combination:
    """The :class:`Combination` of coupons already applied in order to ``order``."""
    outcomes: tuple[LineOutcome, ...] = ()
    if order.lines is not None:
        per_line: list[list[tuple[str, int]]] = [[] for _ in order.lines]
        for a in applied:
            for ld in a.discount.lines:
                per_line[ld.index].append((a.code, ld.discount))
        outcomes = tuple(
            LineOutcome(
                index=i,
                sku=ln.sku,
                amount=ln.amount,
                discount=sum(d for _, d in per_line[i]),
                payable=ln.amount - sum(d for _, d in per_line[i]),
                by_coupon=tuple(per_line[i]),
            )
            for i, ln in enumerate(order.lines)
        )
    return Combination(amount=order.amount, applied=tuple(applied), lines=outcomes)


def apply_combination(
    order: Order, coupons: Sequence[Candidate], ctx: RedeemContext
) -> Combination:
    """Apply ``coupons`` to ``order`` in the order of application; each must pass every
    check of a redeem (:func:`hub.domain.redeeming.check_usable`, then the order shape
    and the discount on what the earlier coupons left).

    Raises the first refusal, its ``extra`` naming the ``coupon`` refused. The stacking
    rules are not judged here (see the module docstring)."""
    state = CartState.of(order)
    applied: list[AppliedCoupon] = []
    for c in application_order(coupons):
        try:
            check_usable(c.facts, ctx)
            check_order(order, c.template)
            discount, state = discount_after(c.template, order, state)
        except DomainError as err:
            raise DomainError(err.message, code=err.code, **err.extra, coupon=c.code) from None
        applied.append(AppliedCoupon(c.code, c.kind, discount))
    return combination_of(order, applied)


# how a set that breaks the stacking rules is refused
CONFLICT_CODES: dict[ConflictReason, str] = {
    "duplicate": "duplicate_coupon",
    "not_combinable": "coupons_not_combinable",
    "too_many": "too_many_coupons",
}


def combine_given(
    order: Order, coupons: Sequence[Candidate], ctx: RedeemContext
) -> Combination:
    """The judgement of ``coupons`` given together for ``order``: the stacking rules
    first (refused with :data:`CONFLICT_CODES`' code, ``coupons`` naming the coupons at
    fault), then :func:`apply_combination` (its first refusal names the ``coupon``)."""
    conflict = stacking_conflict([(c.code, c.template) for c in coupons])
    if conflict is not None:
        raise refuse(
            CONFLICT_CODES[conflict.reason], conflict.message, coupons=list(conflict.codes)
        )
    return apply_combination(order, coupons, ctx)


__all__ = [
    "CONFLICT_CODES",
    "KIND_RANK",
    "AppliedCoupon",
    "Candidate",
    "Combination",
    "LineOutcome",
    "application_key",
    "application_order",
    "apply_combination",
    "combination_of",
    "combine_given",
]

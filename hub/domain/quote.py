"""The quote: every candidate coupon on a cart, and the best combination (自动抵扣).

:func:`best_combination` first judges each candidate alone with the redeem decision
(:func:`hub.domain.redeeming.check_redeemable`): its discount, or the refusal code.
Then it looks for the set of usable candidates that

* obeys the stacking rules (:mod:`hub.domain.stacking`),
* can be applied in the fixed order of application with every coupon passing
  (:mod:`hub.domain.combination`: a later threshold is judged on what is left), and
* gives the largest total discount.

**Tie-break** between sets with the same total (a total order, so the answer is
deterministic): fewer coupons; then the one whose coupons expire sooner (the expiry
times sorted, compared earliest first), so coupons about to lapse are used first; then
the codes (sorted, compared as text).

**Search.** Up to :data:`EXACT_LIMIT` candidates the search is exact: a depth-first
walk over every allowed subset in the order of application, each step applying one
coupon to what the step before left, with branch and bound — a branch is cut when the
total so far plus the upper bounds of all the candidates still to come (their
stand-alone discounts; for exchange coupons, ``qty`` units at the dearest lines) cannot
beat the best set found (or can only tie it with more coupons). With more usable
candidates, the exact search runs over the :data:`EXACT_LIMIT` with the largest upper
bounds (then earliest expiry, then code), and then each of the others, largest bound
first, is added to the set when the stacking rules admit it and it raises the total
(greedy). The greedy result is always a valid combination, at least as good as the
exact one over those candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.domain.cart import Discount, Order
from hub.domain.combination import (
    AppliedCoupon,
    Candidate,
    Combination,
    application_key,
    apply_combination,
    combination_of,
)
from hub.domain.discount import CartState, discount_after, exchange_bound
from hub.domain.errors import DomainError
from hub.domain.redeeming import RedeemContext, check_redeemable
from hub.domain.stacking import Mix
from hub.domain.templates import ExchangeBenefit

# The most usable candidates searched exactly. Measured with ``python -m bench.quote``:
# the worst case (every candidate combinable with every other, no limit per order, so
# nothing is cut by the stacking rules) stays within ~50 ms on the 2-core machine.
EXACT_LIMIT = 12


@dataclass(frozen=True)
class Refusal:
    """Why a candidate cannot be used on this order (a :class:`DomainError`'s facts)."""

    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """One candidate judged alone: its discount, or the refusal."""

    code: str
    discount: Discount | None
    refusal: Refusal | None = None

    @property
    def usable(self) -> bool:
        return self.discount is not None


@dataclass(frozen=True)
class Quote:
    """Every candidate alone (in the order given) and the best combination."""

    evaluations: tuple[Evaluation, ...]
    best: Combination
    exact: bool  # False when the greedy step ran (more than EXACT_LIMIT usable candidates)


def evaluate(order: Order, candidate: Candidate, ctx: RedeemContext) -> Evaluation:
    """``candidate`` alone on ``order``: the redeem decision's discount or refusal."""
    try:
        return Evaluation(candidate.code, check_redeemable(candidate.facts, ctx, order))
    except DomainError as err:
        return Evaluation(candidate.code, None, Refusal(err.code, err.message, dict(err.extra)))


def upper_bound(order: Order, candidate: Candidate, alone: Discount) -> int:
    """The most ``candidate`` can give in any combination on ``order``.

    Threshold and percentage coupons only lose from earlier coupons (less is left), so
    their stand-alone discount bounds them; an exchange coupon may reach dearer units
    once an earlier one took the cheap ones (:func:`exchange_bound`)."""
    b = candidate.template.benefit
    if isinstance(b, ExchangeBenefit):
        return max(alone.total, exchange_bound(b, candidate.template.usage, order))
    return alone.total


def _key(total: int, chosen: Sequence[Candidate]) -> tuple[int, int, list[datetime], list[str]]:
    """Smaller is better: the documented tie-break as a sort key."""
    return (
        -total,
        len(chosen),
        sorted(c.expires for c in chosen),
        sorted(c.code for c in chosen),
    )


class _Search:
    """The exact branch-and-bound search over ``cands`` (in the order of application)."""

    def __init__(self, order: Order, cands: Sequence[Candidate], bounds: Sequence[int]) -> None:
        self.order = order
        self.cands = cands
        # suffix[j]: the sum of the upper bounds of cands[j:]
        self.suffix = [0] * (len(cands) + 1)
        for j in range(len(cands) - 1, -1, -1):
            self.suffix[j] = self.suffix[j + 1] + bounds[j]
        self.best: list[AppliedCoupon] = []
        self.best_cands: list[Candidate] = []
        self.best_total = 0

    def run(self) -> list[AppliedCoupon]:
        self._walk(0, CartState.of(self.order), Mix(), [], [], 0)
        return self.best

    def _walk(
        self,
        start: int,
        state: CartState,
        mix: Mix,
        chosen: list[Candidate],
        applied: list[AppliedCoupon],
        total: int,
    ) -> None:
        if total >= self.best_total and chosen and self._better(total, chosen):
            self.best, self.best_cands, self.best_total = list(applied), list(chosen), total
        size = len(chosen) + 1
        for j in range(start, len(self.cands)):
            bound = min(self.order.amount, total + self.suffix[j])
            if bound < self.best_total or (
                bound == self.best_total and size > len(self.best_cands)
            ):
                return  # suffix sums only shrink: no later j can do better
            c = self.cands[j]
            if not mix.admits(c.kind, c.template.stacking):
                continue
            try:
                discount, after = discount_after(c.template, self.order, state)
            except DomainError:
                continue  # e.g. its threshold is no longer met after the earlier coupons
            chosen.append(c)
            applied.append(AppliedCoupon(c.code, c.kind, discount))
            self._walk(
                j + 1, after, mix.add(c.kind, c.template.stacking), chosen, applied,
                total + discount.total,
            )  # fmt: skip
            chosen.pop()
            applied.pop()

    def _better(self, total: int, chosen: Sequence[Candidate]) -> bool:
        if not self.best_cands:
            return total > 0
        return _key(total, chosen) < _key(self.best_total, self.best_cands)


def _greedy(
    order: Order,
    ctx: RedeemContext,
    chosen: list[Candidate],
    best: Combination,
    others: Sequence[Candidate],
) -> tuple[list[Candidate], Combination]:
    """Add each of ``others`` in turn when the stacking rules admit it and the total
    rises (the set stays one :func:`apply_combination` accepts)."""
    for c in others:
        mix = Mix()
        for member in chosen:
            mix = mix.add(member.kind, member.template.stacking)
        if not mix.admits(c.kind, c.template.stacking):
            continue
        try:
            trial = apply_combination(order, [*chosen, c], ctx)
        except DomainError:
            continue
        if trial.total > best.total:
            chosen, best = [*chosen, c], trial
    return chosen, best


def best_combination(
    order: Order,
    candidates: Sequence[Candidate],
    ctx: RedeemContext,
    *,
    exact_limit: int = EXACT_LIMIT,
) -> Quote:
    """Judge every candidate alone, then find the best allowed combination.

    A code given more than once is judged once (its first occurrence). The best
    combination of no usable candidate is empty (total 0, everything payable)."""
    first: dict[str, Candidate] = {}
    for c in candidates:
        first.setdefault(c.code, c)
    unique = list(first.values())
    evaluations = tuple(evaluate(order, c, ctx) for c in unique)
    usable: list[tuple[Candidate, int]] = []
    for c, ev in zip(unique, evaluations, strict=True):
        if ev.discount is not None:
            bound = upper_bound(order, c, ev.discount)
            if bound > 0:  # a coupon that can never take anything off is never chosen
                usable.append((c, bound))
    usable.sort(key=lambda cb: (-cb[1], cb[0].expires, cb[0].code))
    searched, rest = usable[:exact_limit], [c for c, _ in usable[exact_limit:]]
    ordered = sorted(searched, key=lambda cb: application_key(cb[0]))
    search = _Search(order, [c for c, _ in ordered], [b for _, b in ordered])
    best = combination_of(order, search.run())
    chosen = search.best_cands
    if rest:
        chosen, best = _greedy(order, ctx, chosen, best, rest)
    return Quote(evaluations=evaluations, best=best, exact=not rest)


__all__ = [
    "EXACT_LIMIT",
    "Evaluation",
    "Quote",
    "Refusal",
    "best_combination",
    "evaluate",
    "upper_bound",
]

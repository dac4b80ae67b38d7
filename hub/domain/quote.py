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

**Search.** Up to :data:`EXACT_LIMIT` usable candidates the search is exact: a
depth-first walk over every allowed subset in the order of application, each step
applying one coupon to what the step before left, with branch and bound. A candidate's
upper bound is its stand-alone discount (an exchange coupon's: ``qty`` units at the
dearest of its lines, since after another exchange took the cheap units it may reach
dearer ones); inside the walk the bound of each candidate still to come is refined to
what it would take off what the current set leaves (threshold and percentage coupons
only lose as more is taken, and one refused there is refused in every larger set). A
branch is cut when the total so far plus the bounds of the candidates still to come,
capped at the order amount, cannot beat the best set found, or can only tie it with
more coupons. Coupons that can never take anything off are left out.

With more usable candidates, the exact search runs over the :data:`EXACT_LIMIT` with
the largest upper bounds (then earliest expiry, then code); then each of the others,
largest bound first, joins the set when the stacking rules admit it and the total rises
(greedy); the result is never worse than the best coupon alone. It is always a valid
combination, but not always the best one (``Quote.exact`` is then false).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.domain.cart import Discount, Order
from hub.domain.combination import (
    Candidate,
    Combination,
    application_key,
    application_order,
    apply_combination,
)
from hub.domain.discount import CartState, covered_lines, exchange_bound, preview, step
from hub.domain.errors import DomainError
from hub.domain.redeeming import RedeemContext, check_redeemable
from hub.domain.stacking import Mix
from hub.domain.templates import ExchangeBenefit

# The most usable candidates searched exactly. ``python -m bench quote`` (50 lines): the
# worst case found — 满减 coupons with product rules, all combinable, no limit per order,
# the same threshold (a knapsack) — took 23-35 ms of CPU at 12 candidates (783 sets), 33 ms
# at 13 and 51 ms at 14, on the shared 2-core machine (load average 14-18). Each more
# candidate can double the work; 12 keeps the worst case under 50 ms of CPU.
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
    examined: int = 0  # sets the exact search looked at (a figure for logs and benchmarks)


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
    """The exact branch-and-bound search over ``cands`` (in the order of application).

    The candidates from :attr:`flat_from` on are whole-order threshold or percentage
    coupons: what they give depends only on the amount left, so once the walk reaches
    them it keeps that one figure instead of every line (the same totals, without the
    split over the lines; :func:`apply_combination` splits the chosen set at the end)."""

    def __init__(self, order: Order, cands: Sequence[Candidate], bounds: Sequence[int]) -> None:
        self.order = order
        self.cands = cands
        self.static = bounds
        self.idx = [covered_lines(order, c.template.usage) for c in cands]
        self.exchange = [isinstance(c.template.benefit, ExchangeBenefit) for c in cands]
        self.flat_order = Order(order.id, order.amount)  # no lines
        self.flat_from = len(cands)
        if order.lines:
            while self.flat_from > 0:
                k = self.flat_from - 1
                if self.exchange[k] or len(self.idx[k]) != len(order.lines):
                    break
                self.flat_from = k
        self.best: list[Candidate] = []
        self.best_total = 0
        self.nodes = 0

    def run(self) -> list[Candidate]:
        self._walk(0, CartState.of(self.order), Mix(), [], 0)
        return self.best

    def _at(
        self, j: int, state: CartState, flat: CartState
    ) -> tuple[Order, CartState, tuple[int, ...]]:
        """The order, state and covered lines candidate ``j`` is judged on."""
        if j >= self.flat_from:
            return self.flat_order, flat, ()
        return self.order, state, self.idx[j]

    def _walk(
        self, start: int, state: CartState, mix: Mix, chosen: list[Candidate], total: int
    ) -> None:
        self.nodes += 1
        if chosen and total >= self.best_total and self._better(total, chosen):
            self.best, self.best_total = list(chosen), total
        n = len(self.cands)
        flat = state if len(state.remaining) == 1 else CartState((state.payable,), (0,))
        # a whole-order coupon on an order with lines is refused when nothing is left
        empty = self.order.lines is not None and flat.remaining[0] == 0
        # every candidate still to come, on what this set leaves: what it would take off,
        # and (from the end) the sum of the most each one can still give
        takes: list[int | None] = [None] * (n - start)
        rest = [0] * (n - start + 1)
        for j in range(n - 1, start - 1, -1):
            c = self.cands[j]
            if mix.admits(c.kind, c.template.stacking) and not (empty and j >= self.flat_from):
                takes[j - start] = preview(c.template, *self._at(j, state, flat))
            took = takes[j - start]
            most = 0 if took is None else (self.static[j] if self.exchange[j] else took)
            rest[j - start] = rest[j - start + 1] + most
        size = len(chosen) + 1
        for j in range(start, n):
            bound = min(self.order.amount, total + rest[j - start])
            if bound < self.best_total or (bound == self.best_total and size > len(self.best)):
                return  # the bounds only shrink with j: no later candidate can do better
            if takes[j - start] is None:
                continue
            c = self.cands[j]
            got = step(c.template, *self._at(j, state, flat))
            assert got is not None  # preview said it applies
            chosen.append(c)
            self._walk(j + 1, got[1], mix.add(c.kind, c.template.stacking), chosen, total + got[0])
            chosen.pop()

    def _better(self, total: int, chosen: Sequence[Candidate]) -> bool:
        if not self.best:
            return total > 0
        return _key(total, chosen) < _key(self.best_total, self.best)


def _total(order: Order, coupons: Sequence[Candidate]) -> int | None:
    """The total of ``coupons`` (usable alone) applied in order, or ``None`` if one is
    refused on what the earlier ones left."""
    state, total = CartState.of(order), 0
    for c in application_order(coupons):
        got = step(c.template, order, state, covered_lines(order, c.template.usage))
        if got is None:
            return None
        total, state = total + got[0], got[1]
    return total


def _greedy(
    order: Order, chosen: list[Candidate], total: int, others: Sequence[Candidate]
) -> list[Candidate]:
    """Add each of ``others`` in turn when the stacking rules admit it and the total
    rises (every coupon still applies, in the order of application)."""
    for c in others:
        mix = Mix()
        for member in chosen:
            mix = mix.add(member.kind, member.template.stacking)
        if not mix.admits(c.kind, c.template.stacking):
            continue
        trial = _total(order, [*chosen, c])
        if trial is not None and trial > total:
            chosen, total = [*chosen, c], trial
    return chosen


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
    chosen = search.run()
    if rest:
        chosen = _greedy(order, chosen, search.best_total, rest)
        total = _total(order, chosen) or 0
        # never worse than the best coupon alone
        single = min(
            ((ev.discount.total, c) for c, ev in zip(unique, evaluations, strict=True)
             if ev.discount is not None and ev.discount.total > 0),
            key=lambda tc: _key(tc[0], [tc[1]]),
            default=None,
        )  # fmt: skip
        if single is not None and _key(single[0], [single[1]]) < _key(total, chosen):
            chosen = [single[1]]
    # every coupon passed check_usable alone: this only builds the per-line breakdown
    best = apply_combination(order, chosen, ctx)
    return Quote(evaluations=evaluations, best=best, exact=not rest, examined=search.nodes)


__all__ = [
    "EXACT_LIMIT",
    "Evaluation",
    "Quote",
    "Refusal",
    "best_combination",
    "evaluate",
    "upper_bound",
]

"""Stacking rules (叠加规则): which coupons may share one order.

Each template says, in its :class:`~hub.domain.templates.Stacking`, the kinds it may be
combined with and the most coupons an order may use when it is among them. A set of
coupons may be used together when

* **every pair allows each other**: coupon A's kind is in B's ``combines_with`` and B's
  kind is in A's (so an exclusive coupon, whose list is empty, is only ever used alone,
  and two coupons of the same kind need that kind in both lists);
* **the set is no larger than the smallest ``max_per_order``** of its coupons (``None``:
  no limit of its own);
* **no coupon appears twice**.

:class:`Mix` keeps what a set allows so that the search of :mod:`hub.domain.quote` can
grow a set one coupon at a time; :func:`stacking_conflict` says why a given set breaks
the rules (for a caller that receives a set of codes, e.g. a multi-coupon redeem).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hub.domain.templates import KINDS, Kind, Stacking, Template

ConflictReason = Literal["duplicate", "not_combinable", "too_many"]


@dataclass(frozen=True)
class Mix:
    """What a set of coupons allows: the kinds every member combines with, the kinds
    present, the smallest limit, the size."""

    allowed: frozenset[Kind] = frozenset(KINDS)
    kinds: frozenset[Kind] = frozenset()
    limit: int | None = None
    size: int = 0

    def admits(self, kind: Kind, stacking: Stacking) -> bool:
        """True when a coupon of ``kind`` with ``stacking`` may join the set."""
        if self.size == 0:
            return True
        if kind not in self.allowed or not self.kinds <= stacking.combines_with:
            return False
        limit = _smaller(self.limit, stacking.max_per_order)
        return limit is None or self.size + 1 <= limit

    def add(self, kind: Kind, stacking: Stacking) -> Mix:
        """The mix with one more coupon (call :meth:`admits` first)."""
        return Mix(
            allowed=self.allowed & stacking.combines_with,
            kinds=self.kinds | {kind},
            limit=_smaller(self.limit, stacking.max_per_order),
            size=self.size + 1,
        )

    @property
    def room(self) -> int | None:
        """How many more coupons the limits leave room for (``None``: no limit)."""
        return None if self.limit is None else max(0, self.limit - self.size)


def _smaller(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def can_share(a: Template, b: Template) -> bool:
    """True when coupons of templates ``a`` and ``b`` may be used in one order."""
    return a.stacking.allows(b.kind) and b.stacking.allows(a.kind)


@dataclass(frozen=True)
class StackingConflict:
    """Why a set of coupons may not be used together, naming the coupons at fault."""

    reason: ConflictReason
    codes: tuple[str, ...]
    message: str


def stacking_conflict(coupons: Sequence[tuple[str, Template]]) -> StackingConflict | None:
    """The first way ``coupons`` (code, template) break the stacking rules, or ``None``.

    Checked in this order: a code given twice, a pair that does not allow each other
    (the first such pair in the given order), more coupons than the smallest
    ``max_per_order``."""
    seen: set[str] = set()
    for code, _ in coupons:
        if code in seen:
            return StackingConflict("duplicate", (code,), "A coupon is given more than once.")
        seen.add(code)
    for i, (code_a, a) in enumerate(coupons):
        for code_b, b in coupons[i + 1 :]:
            if not can_share(a, b):
                return StackingConflict(
                    "not_combinable",
                    (code_a, code_b),
                    f"A {a.kind} coupon and a {b.kind} coupon cannot be used in one order "
                    "(their templates' stacking rules).",
                )
    limit: int | None = None
    for _, t in coupons:
        limit = _smaller(limit, t.stacking.max_per_order)
    if limit is not None and len(coupons) > limit:
        return StackingConflict(
            "too_many",
            tuple(code for code, _ in coupons),
            f"At most {limit} of these coupons may be used in one order.",
        )
    return None

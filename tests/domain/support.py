"""Builders shared by the combination, stacking and quote tests (plain values only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import combinations
from zoneinfo import ZoneInfo

from hub.domain.cart import Line, Order
from hub.domain.combination import Candidate, Combination, apply_combination
from hub.domain.errors import DomainError
from hub.domain.redeeming import CouponFacts, RedeemContext
from hub.domain.stacking import stacking_conflict
from hub.domain.state import CouponState
from hub.domain.templates import (
    KINDS,
    Benefit,
    Kind,
    RelativeWindow,
    Stacking,
    Template,
    UsageRules,
    check_template,
)
from hub.domain.validity import Window

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 6, 12, 4, 0, tzinfo=UTC)  # Wednesday 12:00 in Shanghai
CTX = RedeemContext(store="S001", channel="app", at=NOW, tz=SH)
ALL: frozenset[Kind] = frozenset(KINDS)


def stacks(*kinds: Kind, limit: int | None = None) -> Stacking:
    """``Stacking`` combining with ``kinds`` (none: exclusive)."""
    if not kinds:
        return Stacking()
    return Stacking(frozenset(kinds), limit)


def template(benefit: Benefit, stacking: Stacking | None = None, **usage: object) -> Template:
    return check_template(
        Template(
            benefit=benefit,
            validity=RelativeWindow(days=30),
            usage=UsageRules(**usage),  # type: ignore[arg-type]
            stacking=stacking or Stacking(),
        )
    )


def cand(
    code: str,
    benefit: Benefit,
    stacking: Stacking | None = None,
    *,
    days: int = 10,
    state: CouponState = CouponState.ISSUED,
    **usage: object,
) -> Candidate:
    """A coupon issued a day ago, valid for ``days`` more days."""
    window = Window(NOW - timedelta(days=1), NOW + timedelta(days=days))
    return Candidate(code, CouponFacts(state, window, template(benefit, stacking, **usage)))


def order(*lines: Line) -> Order:
    return Order("o-1", sum(ln.amount for ln in lines), tuple(lines))


def tie_key(c: Combination, by_code: dict[str, Candidate]) -> tuple[object, ...]:
    """The documented tie-break as a sort key (smaller is better)."""
    members = [by_code[code] for code in c.codes]
    return (
        -c.total,
        len(members),
        sorted(m.expires for m in members),
        sorted(m.code for m in members),
    )


def valid_combinations(order: Order, cands: Sequence[Candidate]) -> list[Combination]:
    """Every subset (the empty one too) the stacking rules allow and that applies
    without a refusal: brute force, for small candidate lists."""
    out = []
    for size in range(len(cands) + 1):
        for subset in combinations(cands, size):
            if stacking_conflict([(c.code, c.template) for c in subset]) is not None:
                continue
            try:
                out.append(apply_combination(order, subset, CTX))
            except DomainError:
                continue
    return out

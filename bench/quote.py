"""``python -m bench quote``: the time of one quote (the best coupon combination), no I/O.

    python -m bench quote [--lines 50] [--candidates 20] [--repeat 30] [--sweep 4,14]
    python -m bench.quote (the same)

Pure CPU, one process: :func:`hub.domain.quote.best_combination` on a cart of
``--lines`` lines with

* **mixed**: ``--candidates`` coupons as a merchant would hand them out — exclusive
  满减, percentage coupons that stack with 满减 and exchange, exchange coupons that
  stack with everything, some with product rules, limits of 2–4 per order;
* **all-stack**: the same number of coupons that all combine with each other, with no
  limit per order (the greedy step runs beyond ``EXACT_LIMIT``);
* **worst case** at each size of ``--sweep`` (exact search forced over every candidate):
  every family below with every coupon combinable with every other and no limit, so the
  stacking rules cut nothing and the bound cuts little — small percentages (the total
  compounds, far below the sum of the bounds), 满减 whose thresholds fail once earlier
  coupons took their share, a mix of the two with exchange coupons, and the knapsack
  (:func:`knapsack`: the hardest; with product rules, ``knapsack-lines``, each step
  also splits over the lines).

Prints µs per quote (median of ``--repeat`` runs after one warm-up), the size searched
exactly, and the load average, since the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hub.domain.cart import Line, Order
from hub.domain.combination import Candidate
from hub.domain.quote import EXACT_LIMIT, best_combination
from hub.domain.redeeming import CouponFacts, RedeemContext
from hub.domain.state import CouponState
from hub.domain.templates import (
    KINDS,
    Benefit,
    ExchangeBenefit,
    PercentageBenefit,
    RelativeWindow,
    Stacking,
    Template,
    ThresholdBenefit,
    UsageRules,
    check_template,
)
from hub.domain.validity import Window

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
CTX = RedeemContext(store="S001", channel="app", at=NOW, tz=ZoneInfo("Asia/Shanghai"))
CATEGORIES = ("drinks", "food", "bakery", "fruit", "dairy")
ALL = frozenset(KINDS)


def cart(n_lines: int) -> Order:
    lines = tuple(
        Line(f"SKU-{i:03d}", 1 + i % 3, 300 + (i * 137) % 2700, CATEGORIES[i % len(CATEGORIES)])
        for i in range(n_lines)
    )
    return Order("bench", sum(ln.amount for ln in lines), lines)


def coupon(
    i: int, benefit: Benefit, stacking: Stacking, usage: UsageRules | None = None
) -> Candidate:
    template = check_template(
        Template(benefit, RelativeWindow(30), usage or UsageRules(), stacking=stacking)
    )
    window = Window(NOW - timedelta(days=1), NOW + timedelta(days=1 + i % 7, minutes=i))
    return Candidate(f"C{i:04d}", CouponFacts(CouponState.ISSUED, window, template))


def mixed(n: int, order: Order) -> list[Candidate]:
    amount = order.amount
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:  # exclusive 满减
            out.append(
                coupon(i, ThresholdBenefit(amount // (2 + i % 3), 500 + 100 * i), Stacking())
            )
        elif kind == 1:  # 折扣 with 满减 and exchange, up to 3 per order
            cats = frozenset({CATEGORIES[i % 5]}) if i % 3 == 0 else frozenset()
            out.append(
                coupon(
                    i,
                    PercentageBenefit(5 + i % 20, cap=3000 + 100 * i),
                    Stacking(frozenset({"threshold", "exchange"}), 3),
                    UsageRules(categories=cats),
                )
            )
        elif kind == 2:  # 满减 that stacks with 折扣 and exchange, up to 4 per order
            out.append(
                coupon(
                    i,
                    ThresholdBenefit(amount // (3 + i % 4), 300 + 50 * i),
                    Stacking(frozenset({"percentage", "exchange", "threshold"}), 4),
                )
            )
        else:  # 兑换 that stacks with everything, up to 2 per order
            out.append(
                coupon(
                    i,
                    ExchangeBenefit(order_sku(order, i), qty=1 + i % 2),
                    Stacking(ALL, 2),
                )
            )
    return out


def order_sku(order: Order, i: int) -> str:
    assert order.lines is not None
    return order.lines[(i * 7) % len(order.lines)].sku


def all_stack_percentages(n: int, order: Order) -> list[Candidate]:
    return [coupon(i, PercentageBenefit(2 + i % 9), Stacking(ALL, None)) for i in range(n)]


def all_stack_thresholds(n: int, order: Order) -> list[Candidate]:
    # thresholds a little below the whole amount: after one or two coupons most fail
    a = order.amount
    return [
        coupon(i, ThresholdBenefit(a - a * (i + 1) // (4 * n), 200 + 37 * i), Stacking(ALL, None))
        for i in range(n)
    ]


def all_stack_mix(n: int, order: Order) -> list[Candidate]:
    a = order.amount
    out = []
    for i in range(n):
        if i % 3 == 0:
            b: Benefit = PercentageBenefit(3 + i % 7, threshold=a // (2 + i % 5))
        elif i % 3 == 1:
            b = ThresholdBenefit(a // (1 + i % 4) - i, 150 + 61 * i)
        else:
            b = ExchangeBenefit(order_sku(order, i), qty=1 + i % 3)
        out.append(coupon(i, b, Stacking(ALL, None)))
    return out


def knapsack(n: int, order: Order, usage: UsageRules | None = None) -> list[Candidate]:
    """满减 all with the same threshold, a quarter below what the covered lines cost, and
    discounts of 1/8 to 1/3 of that quarter: a set applies only while the discounts
    before its last coupon add up to at most the quarter — a knapsack, the hard case."""
    covered = sum(
        ln.amount for ln in order.lines or () if usage is None or ln.category in usage.categories
    )
    k = covered // 4
    return [
        coupon(i, ThresholdBenefit(covered - k, k // 8 + (i * 7919) % (k // 3 - k // 8)),
               Stacking(ALL, None), usage)
        for i in range(n)
    ]  # fmt: skip


def knapsack_lines(n: int, order: Order) -> list[Candidate]:
    """The knapsack on three of the five categories: the split over lines is kept."""
    return knapsack(n, order, UsageRules(categories=frozenset(CATEGORIES[:3])))


WORST: dict[str, Callable[[int, Order], list[Candidate]]] = {
    "percentages": all_stack_percentages,
    "thresholds": all_stack_thresholds,
    "mix": all_stack_mix,
    "knapsack": knapsack,
    "knapsack-lines": knapsack_lines,
}


@dataclass(frozen=True)
class Timing:
    wall_us: float  # median wall time per quote
    cpu_us: float  # median CPU time of this process per quote (less hurt by a busy machine)
    size: int  # coupons in the best set
    total: int
    examined: int  # sets the exact search looked at


def time_quote(
    order: Order, cands: Sequence[Candidate], repeat: int, exact_limit: int = EXACT_LIMIT
) -> Timing:
    quote = best_combination(order, cands, CTX, exact_limit=exact_limit)  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        best_combination(order, cands, CTX, exact_limit=exact_limit)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return Timing(
        statistics.median(wall) * 1e6,
        statistics.median(cpu) * 1e6,
        len(quote.best.applied),
        quote.best.total,
        quote.examined,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench quote", description=__doc__)
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--sweep", default=f"4,{EXACT_LIMIT + 2}", help="worst case: from,to sizes")
    args = ap.parse_args(argv)
    order = cart(args.lines)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cart: {args.lines} lines, {order.amount} fen; EXACT_LIMIT {EXACT_LIMIT}; load {load}")
    n = args.candidates
    print("µs per quote: wall / CPU (median); sets examined by the exact search")
    for name, make in (("mixed", mixed), ("all-stack", all_stack_percentages)):
        t = time_quote(order, make(n, order), args.repeat)
        print(
            f"{name:<10} {n} candidates: {t.wall_us:>8.0f} / {t.cpu_us:>8.0f} µs, "
            f"{t.examined} sets (best: {t.size} coupons, {t.total} fen)"
        )
    lo, hi = (int(x) for x in args.sweep.split(","))
    print("worst case, exact search over every candidate: wall / CPU µs (sets examined)")
    print(f"{'n':>4} " + " ".join(f"{k:>26}" for k in WORST))
    for size in range(lo, hi + 1):
        row = [time_quote(order, make(size, order), max(3, args.repeat // 5), size)
               for make in WORST.values()]  # fmt: skip
        mark = "  <- EXACT_LIMIT" if size == EXACT_LIMIT else ""
        cells = [f"{t.wall_us:>8.0f} / {t.cpu_us:>7.0f} ({t.examined:>5})" for t in row]
        print(f"{size:>4} " + " ".join(f"{c:>26}" for c in cells) + mark)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

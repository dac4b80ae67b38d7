"""``python -m bench recommend``: how well the recommender (hub.domain.recommend) ranks
the templates customers go on to redeem, against random and most-popular rankings.

A synthetic history is generated from the seeds (hub.synthetic: customers with habits
— home and second store, channels, liked kinds, spend band, weekly rhythm, churn) and
split by time: the model is fitted on everything before ``end - test_days`` (coupons
got, redemptions that stood at the split, orders), then every customer who redeemed in
the test period gets a ranking of the templates; the relevant ones are the templates
they redeemed in it. Metrics per method, averaged over those customers:

* ``HR@k`` (hit rate): a relevant template among the first k;
* ``P@k`` (precision): the share of the first k that are relevant;
* ``NDCG@k``: binary gains discounted by log2 of the rank, over the ideal ranking;
* ``MRR``: 1 / the rank of the first relevant template.

Baselines: ``random`` (the exact expectation over every order of the templates, or the
mean of 200 seeded shuffles when there are more than 7), ``most-popular`` (templates by
their redemptions in the training period). ``segments only`` is the recommender
without the customer's own record (what a customer with no coupon history gets).
``(true taste)`` is a reference, not a method: each customer's candidates ordered by the
kinds the generator made them like, which no recommender can see (a ceiling of sorts).
The same seed gives the same figures every run; only the fit time varies.

    python -m bench recommend [--seed 7] [--customers 5000] [--days 56] [--test-days 14]
        [--k 1,2,3] [--json out.json] [--fit-db sqlite]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.domain import recommend as rec
from hub.domain.recommend import CouponFact, Holding, OrderFact, TemplateInfo
from hub.services.recommendations import HALF_LIFE_DAYS
from hub.synthetic import History
from hub.synthetic.seeds import from_seeds

END = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # a fixed end: the same history every run
RANDOM_SHUFFLES = 200


@dataclass(frozen=True)
class Split:
    templates: tuple[TemplateInfo, ...]
    coupons: tuple[CouponFact, ...]
    orders: tuple[OrderFact, ...]
    split: datetime
    relevant: dict[str, frozenset[str]]  # customer → templates redeemed in the test period
    candidates: dict[str, tuple[TemplateInfo, ...]]  # customer → eligible at the split
    train_redemptions: Counter[str]


def split_history(h: History, test_days: int) -> Split:
    """Facts known at ``h.end - test_days`` and what each customer redeemed after it."""
    at = h.end - timedelta(days=test_days)
    kinds = {c.template_key for c in h.coupons}
    from hub.synthetic.seeds import seed_inputs

    rules = seed_inputs().templates
    templates = tuple(
        TemplateInfo(key, key, rules[key].kind, h.start + timedelta(seconds=i),
                     per_customer_limit=rules[key].per_customer_limit)
        for i, key in enumerate(sorted(kinds))
    )
    red = {r.code: r for r in h.redemptions}
    coupons = []
    train = Counter[str]()
    held: dict[str, dict[str, Holding]] = {}
    for c in h.coupons:
        got = c.claimed_at or c.issued_at
        if got >= at:
            continue
        r = red.get(c.code)
        used = r is not None and r.occurred_at < at  # reversed or not: no longer usable
        stood = used and r is not None and (r.reversed_at is None or r.reversed_at >= at)
        mine = held.setdefault(c.customer, {})
        before = mine.get(c.template_key, Holding())
        mine[c.template_key] = Holding(
            before.count + 1, before.unused or (not used and c.valid_until > at)
        )
        if stood:
            assert r is not None
            train[c.template_key] += 1
            coupons.append(CouponFact(
                c.customer, c.template_key, got, c.valid_from, c.valid_until,
                redeemed_at=r.occurred_at, store=r.store_code, channel=r.channel,
                order_id=r.order_id, order_amount=r.order_amount,
            ))  # fmt: skip
        else:
            coupons.append(CouponFact(c.customer, c.template_key, got, c.valid_from,
                                      c.valid_until))  # fmt: skip
    orders = tuple(
        OrderFact(s.customer, s.store_code, s.channel, s.amount, s.occurred_at, s.order_id)
        for s in h.sales
        if s.occurred_at < at
    )
    # the templates the API would offer each customer at the split (active, under the
    # per-customer limit, no usable coupon of it held), and those of them redeemed after
    candidates: dict[str, tuple[TemplateInfo, ...]] = {}
    relevant: dict[str, set[str]] = {}
    for r in h.redemptions:
        if at <= r.occurred_at < h.end and r.reversed_at is None:
            offered = candidates.get(r.customer)
            if offered is None:
                mine = held.get(r.customer, {})
                offered = tuple(t for t in templates if rec.eligible(t, mine.get(t.id, Holding())))
                candidates[r.customer] = offered
            if r.template_key in {t.id for t in offered}:
                relevant.setdefault(r.customer, set()).add(r.template_key)
    kept = {c: frozenset(v) for c, v in sorted(relevant.items()) if len(candidates[c]) >= 2}
    return Split(
        templates, tuple(coupons), orders, at, kept,
        {c: candidates[c] for c in kept}, train,
    )  # fmt: skip


# --- metrics ------------------------------------------------------------------------------------


def metrics(
    ranking: Sequence[str], relevant: frozenset[str], ks: Sequence[int]
) -> dict[str, float]:
    out: dict[str, float] = {}
    hits = [1.0 if t in relevant else 0.0 for t in ranking]
    for k in ks:
        top = hits[:k]
        out[f"HR@{k}"] = 1.0 if any(top) else 0.0
        out[f"P@{k}"] = sum(top) / k
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(top))
        ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
        out[f"NDCG@{k}"] = dcg / ideal if ideal else 0.0
    first = next((i for i, g in enumerate(hits) if g), None)
    out["MRR"] = 0.0 if first is None else 1.0 / (first + 1)
    return out


def _mean(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.fmean(r[k] for r in rows) for k in rows[0]} if rows else {}


def random_expectation(
    ids: Sequence[str], relevant: frozenset[str], ks: Sequence[int], rng: random.Random
) -> dict[str, float]:
    """The metrics of a random order: exact (every permutation) for up to 7 templates."""
    if len(ids) <= 7:
        orders: list[Sequence[str]] = list(itertools.permutations(ids))
    else:
        orders = []
        for _ in range(RANDOM_SHUFFLES):
            shuffled = list(ids)
            rng.shuffle(shuffled)
            orders.append(shuffled)
    return _mean([metrics(o, relevant, ks) for o in orders])


def evaluate(
    s: Split,
    model: rec.Model,
    ks: Sequence[int],
    seed: int,
    taste: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """The metrics of each method; ``taste`` (customer → the kinds the generator made
    them like, best first) adds a reference row no real method could have."""
    order = [t.id for t in s.templates]
    popular = sorted(order, key=lambda t: (-s.train_redemptions[t], order.index(t)))
    segments = replace(model, own_kind={}, own_template={})
    Ranker = Callable[[str, tuple[TemplateInfo, ...]], Sequence[str]]
    methods: dict[str, Ranker] = {
        "most-popular": lambda c, ts: [t for t in popular if t in {x.id for x in ts}],
        "recommender": lambda c, ts: [r.template_id for r in rec.rank(model, c, ts)],
        "segments only": lambda c, ts: [r.template_id for r in rec.rank(segments, c, ts)],
    }
    if taste is not None:
        def by_taste(c: str, ts: tuple[TemplateInfo, ...]) -> list[str]:
            liked = taste[c]
            return [t.id for t in sorted(ts, key=lambda t: (liked.index(t.kind)
                    if t.kind in liked else len(liked), order.index(t.id)))]  # fmt: skip

        methods["(true taste)"] = by_taste
    rng = random.Random(seed)
    rows: dict[str, list[dict[str, float]]] = {"random": []}
    for customer, relevant in s.relevant.items():
        offered = s.candidates[customer]
        rows["random"].append(random_expectation([t.id for t in offered], relevant, ks, rng))
        for name, ranker in methods.items():
            rows.setdefault(name, []).append(metrics(ranker(customer, offered), relevant, ks))
    return {name: _mean(r) for name, r in rows.items()}


def lift(table: dict[str, dict[str, float]], over: str) -> dict[str, float | None]:
    ours, base = table["recommender"], table[over]
    return {k: (ours[k] / base[k] if base[k] else None) for k in ours}


# --- fitting from a database (the service's path) ------------------------------------------------


def fit_on_demo_db(backend: str, seed: int) -> dict[str, Any]:
    """Seed a demo database (hub.seeding with its history) on ``backend`` (sqlite, or
    postgresql: a database made on ``HUB_TEST_PG_URL``'s server and dropped after), then
    time the service's fit (hub.services.recommendations.fit: queries and model) on it."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return _fit_on(os.path.join(tmp, "hub.db"), seed)
    import psycopg

    from bench.redeem import PG_ADMIN

    name = f"hub_bench_recommend_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return _fit_on(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", seed)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fit_on(url: str, seed: int) -> dict[str, Any]:
    from hub.db.engine import make_engine
    from hub.db.migrate import upgrade
    from hub.seeding import seed as seed_demo
    from hub.seeding import seed_history
    from hub.services import recommendations as svc

    engine = make_engine(url, pool_size=2, max_overflow=0)
    try:
        upgrade(engine)
        demo = seed_demo(engine, now=END - timedelta(days=1))
        loaded = seed_history(engine, demo["merchant_id"], END, seed=seed)
        times, cpu = [], []
        model = None
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            model = svc.fit(engine, demo["merchant_id"], END)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        assert model is not None
        return {
            "backend": engine.dialect.name,
            "loaded": loaded,
            "coupons_learned_from": model.exposures,
            "customers": len(model.profiles),
            "fit_ms_median": round(statistics.median(times) * 1000, 1),
            "fit_ms_max": round(max(times) * 1000, 1),
            "fit_cpu_ms_median": round(statistics.median(cpu) * 1000, 1),  # this process
        }
    finally:
        engine.dispose()


# --- the command --------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench recommend",
                                 description=(__doc__ or "").splitlines()[0])  # fmt: skip
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--days", type=int, default=56, help="the history's length")
    ap.add_argument("--test-days", type=int, default=14, help="the last days, held out")
    ap.add_argument("--k", type=_ints, default=[1, 2, 3], help="cut-offs (default 1,2,3)")
    ap.add_argument("--json", dest="json_path", help="write the figures here")
    ap.add_argument(
        "--fit-db", default=None,
        choices=["sqlite", "postgresql"],
        help="also time the service's fit on a seeded demo database (PostgreSQL: a "
        "database made and dropped on HUB_TEST_PG_URL's server, as the other benches)",
    )  # fmt: skip
    return ap


def _fmt(x: float | None) -> str:
    return "  n/a " if x is None else f"{x:6.3f}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    history = from_seeds(args.seed, customers=args.customers, days=args.days, end=END)
    gen_s = time.perf_counter() - t0
    s = split_history(history, args.test_days)
    t0, c0 = time.perf_counter(), time.process_time()
    model = rec.fit(s.templates, s.coupons, s.orders, s.split, half_life_days=HALF_LIFE_DAYS)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    taste = {c.external_id: c.kinds for c in history.customers}
    table = evaluate(s, model, args.k, args.seed, taste)
    report: dict[str, Any] = {
        "seed": args.seed,
        "customers": args.customers,
        "days": args.days,
        "test_days": args.test_days,
        "split_at": s.split.isoformat(),
        "templates": [t.id for t in s.templates],
        "train": {"coupons": len(s.coupons), "redemptions": sum(s.train_redemptions.values()),
                  "orders": len(s.orders)},
        "test_customers": len(s.relevant),
        "metrics": table,
        "lift_over_random": lift(table, "random"),
        "lift_over_most_popular": lift(table, "most-popular"),
        "timing": {
            "generate_s": round(gen_s, 2),
            "fit_ms": round(fit_s * 1000, 1),
            "fit_cpu_ms": round(fit_cpu * 1000, 1),
        },
    }
    if args.fit_db:
        report["timing"]["service_fit"] = fit_on_demo_db(args.fit_db, args.seed)
    return report


def print_report(r: dict[str, Any]) -> None:
    table = r["metrics"]
    cols = list(table["random"])
    print(f"recommendations: seed {r['seed']}, {r['customers']} customers, {r['days']} days, "
          f"test = last {r['test_days']} days (from {r['split_at']})")  # fmt: skip
    print(f"train: {r['train']['coupons']} coupons, {r['train']['redemptions']} redemptions, "
          f"{r['train']['orders']} orders; {len(r['templates'])} templates; "
          f"{r['test_customers']} test customers (redeemed in the test period)")  # fmt: skip
    print()
    print(f"{'method':<22}" + "".join(f"{c:>8}" for c in cols))
    for name, row in table.items():
        print(f"{name:<22}" + "".join(f"{row[c]:8.3f}" for c in cols))
    for label, key in (("lift over random", "lift_over_random"),
                       ("lift over most-popular", "lift_over_most_popular")):  # fmt: skip
        print(f"{label:<22}" + "".join(f"{_fmt(r[key][c]):>8}" for c in cols))
    t = r["timing"]
    print()
    print(f"fit on the training facts: {t['fit_ms']} ms ({t['fit_cpu_ms']} ms CPU; history "
          f"generated in {t['generate_s']} s)")  # fmt: skip
    if "service_fit" in t:
        f = t["service_fit"]
        print(f"service fit on a demo database ({f['backend']}, {f['coupons_learned_from']} "
              f"coupons, {f['customers']} customers): median {f['fit_ms_median']} ms "
              f"({f['fit_cpu_ms_median']} ms CPU in this process), max {f['fit_ms_max']} ms")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = run(args)
    print_report(report)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m bench quote-http``: ``POST /v1/orders/quote`` over HTTP, against ``hub serve``.

    python -m bench quote-http [--db sqlite,postgresql] [--candidates 20] [--lines 50]
                               [--requests 300] [--concurrency 1,4]

A bench merchant whose customer holds ``--candidates`` coupons of the families of
``python -m bench quote``'s *mixed* set (exclusive 满减, 折扣 that stack with 满减 and
exchange, 满减 that stack with everything but exclusives, 兑换 that stack with all),
quoted on a cart of ``--lines`` lines by a store key, two ways:

* **wallet**: ``{"customer": …}`` — the hub reads the customer's usable coupons;
* **codes**: ``{"codes": [every code]}`` — each code looked up behind the guessing guard.

``hub serve`` runs as its own process (one worker); the load generator
(:mod:`bench.loadgen`) drives it in a closed loop at each ``--concurrency``. Prints
requests/s and p50/p99 latency, with the load average (the machine is shared), and
checks every answer was 200 with the same best combination.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import loadgen, quote
from bench.redeem import setup_merchant
from bench.suite import fresh_db, hub_serve
from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.domain.cart import Order
from hub.services import catalog, issuing, keys

CUSTOMER = "BENCH-C1"
PATH = "/v1/orders/quote"
DAYS_30 = {"type": "relative", "days": 30}
EVERY_KIND = ["threshold", "percentage", "exchange"]


def template_specs(n: int, order: Order) -> list[dict[str, Any]]:
    """The *mixed* family of ``bench/quote.py`` as API template specs."""
    amount = order.amount
    out: list[dict[str, Any]] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:  # exclusive 满减
            out.append({"benefit": {"kind": "threshold", "threshold": amount // (2 + i % 3),
                                    "discount": 500 + 100 * i}})
        elif kind == 1:  # 折扣 with 满减 and exchange, up to 3 per order
            spec: dict[str, Any] = {
                "benefit": {"kind": "percentage", "percent_off": 5 + i % 20,
                            "cap": 3000 + 100 * i},
                "stacking": {"combines_with": ["threshold", "exchange"], "max_per_order": 3},
            }
            if i % 3 == 0:
                spec["usage"] = {"categories": [quote.CATEGORIES[i % 5]]}
            out.append(spec)
        elif kind == 2:  # 满减 that stacks with 折扣, exchange and 满减, up to 4 per order
            out.append({
                "benefit": {"kind": "threshold", "threshold": amount // (3 + i % 4),
                            "discount": 300 + 50 * i},
                "stacking": {"combines_with": EVERY_KIND, "max_per_order": 4},
            })
        else:  # 兑换 that stacks with everything, up to 2 per order
            out.append({
                "benefit": {"kind": "exchange", "sku": quote.order_sku(order, i),
                            "qty": 1 + i % 2},
                "stacking": {"combines_with": EVERY_KIND, "max_per_order": 2},
            })
    return [{**s, "validity": DAYS_30} for s in out]  # fmt: skip


def prepare(url: str, n: int, order: Order) -> tuple[str, list[str]]:
    """Migrate, make the bench merchant and its customer's ``n`` coupons: (store key
    token, codes)."""
    engine = make_engine(url, pool_size=2, max_overflow=2)
    try:
        upgrade(engine)
        admin, _store, token, _ = setup_merchant(engine, 0)
        now = datetime.now(UTC)
        catalog.create_customer(engine, admin, CUSTOMER, "bench customer", None, now)
        codes = []
        for i, spec in enumerate(template_specs(n, order)):
            tpl = issuing.create_template(engine, admin, f"bench-{i}", spec, now)
            out = issuing.issue_coupons(engine, admin, tpl["id"], count=None,
                                        customer_external_ids=[CUSTOMER], channel=None, now=now)
            codes += [c["code"] for c in out["coupons"]]
        assert keys.authenticate(engine, token) is not None
        return token, codes
    finally:
        engine.dispose()


def body(order: Order, codes: list[str] | None) -> bytes:
    assert order.lines is not None
    lines = [{"sku": ln.sku, "category": ln.category, "qty": ln.qty, "unit_price": ln.unit_price}
             for ln in order.lines]  # fmt: skip
    doc: dict[str, Any] = {"order": {"id": "bench", "amount": order.amount, "lines": lines}}
    doc.update({"customer": CUSTOMER} if codes is None else {"codes": codes})
    return json.dumps(doc).encode()


def run(kind: str, args: argparse.Namespace, order: Order) -> None:
    with tempfile.TemporaryDirectory(prefix="quote-http-") as tmp, fresh_db(kind, Path(tmp)) as db:
        token, codes = prepare(db.url, args.candidates, order)
        with hub_serve(db, Path(tmp), None) as (_pid, port):
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for mode, payload in (("wallet", body(order, None)), ("codes", body(order, codes))):
                first = httpx.post(f"http://127.0.0.1:{port}{PATH}", content=payload,
                                   headers=headers, timeout=30)  # fmt: skip
                assert first.status_code == 200, first.text[:500]
                got = first.json()
                assert len(got["candidates"]) == args.candidates, got["candidates"]
                best = got["best"]
                request = loadgen.request_bytes("POST", PATH, f"127.0.0.1:{port}", headers,
                                                payload)  # fmt: skip
                loadgen.drive(loadgen.Spec("127.0.0.1", port, [request] * 20, concurrency=1))
                for c in args.concurrency:
                    lat, statuses, elapsed = loadgen.drive(
                        loadgen.Spec("127.0.0.1", port, [request] * args.requests, concurrency=c)
                    )
                    lat_ms = sorted(x * 1000 for x in lat)
                    p99 = lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))]
                    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                    print(
                        f"{kind:<10} {mode:<6} c{c:<3} {len(lat) / elapsed:>7.1f} quotes/s  "
                        f"p50 {statistics.median(lat_ms):>6.1f} ms  p99 {p99:>6.1f} ms  "
                        f"statuses {statuses}  best {len(best['codes'])} coupons "
                        f"{best['discount']} fen exact={best['exact']}  load {load}"
                    )
                    assert set(statuses) == {200}, statuses


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench quote-http", description=__doc__)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", default="1,4",
                    type=lambda t: [int(x) for x in t.split(",") if x.strip()])  # fmt: skip
    args = ap.parse_args(argv)
    order = quote.cart(args.lines)
    print(f"POST {PATH}: {args.candidates} candidate coupons, {args.lines} lines "
          f"({order.amount} fen), store key, hub serve (1 process)")  # fmt: skip
    for kind in [d.strip() for d in args.db.split(",") if d.strip()]:
        run(kind, args, order)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

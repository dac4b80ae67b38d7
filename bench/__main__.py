"""``python -m bench``: the hot routes against the raw driver, one command.

    python -m bench redeem --db postgresql,sqlite --concurrency 8,32,128 --rates 300 \\
        --requests 3000 --json bench.json
    python -m bench all --quick            # redeem, validate, look-up, POS native; < 2 min
    python -m bench delivery [--quick | bench/delivery.py's options]
    python -m bench service [bench/redeem.py's options: the service loop, no HTTP]
    python -m bench quote [bench/quote.py's options: the checkout quote, pure CPU]
    python -m bench quote-http [bench/quote_http.py's options: POST /v1/orders/quote]
    python -m bench sync [bench/sync.py's options: offline sync batches, in process]
    python -m bench scan [bench/scan.py's options: the photo scan's decode rate]
    python -m bench recommend [bench/recommend.py's options: the recommender's lift]
    python -m bench analytics [bench/analytics.py's options: 1 M redemptions on PostgreSQL,
        the analytics routes' times, redeem throughput with the rollups running and without]
    python -m bench exports [--n 1000000 --db postgresql,sqlite]: export memory and speed
    python -m bench reminders [--coupons 200000]: one expiry-reminders round

Exit status: 0 when every database check passed, 1 when one failed.
"""

from __future__ import annotations

import argparse
import os
import sys

from hub.logs import configure_logging

ROUTES = ("redeem", "validate", "lookup", "pos")
DELIVERY_QUICK = ["--n", "600", "--latency-n", "100", "--baseline-n", "500", "--pipeline-n", "200"]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").splitlines()[0]
    )
    ap.add_argument(
        "what",
        nargs="?",
        default="redeem",
        choices=[
            *ROUTES, "all", "delivery", "service", "quote", "quote-http", "sync", "scan",
            "recommend",
            "analytics",
            "exports",
            "reminders",
        ],
        help="the route to load (all: the four); delivery (bench/delivery.py), service "
        "(bench/redeem.py), quote (bench/quote.py) and quote-http (bench/quote_http.py) "
        "take their own options",
    )
    ap.add_argument(
        "--target", help="routes, comma-separated (overrides WHAT): " + ",".join(ROUTES)
    )
    ap.add_argument("--db", default="postgresql,sqlite", help="postgresql, sqlite or both")
    ap.add_argument(
        "--concurrency", type=_ints, default=None, help="closed loop (default 8,32,128)"
    )
    ap.add_argument(
        "--rates", type=_floats, default=None, help="open-loop requests/s (default 300)"
    )
    ap.add_argument("--requests", type=int, default=None, help="per closed-loop run (default 3000)")
    ap.add_argument("--duration", type=float, default=None, help="seconds per open-loop rate (10)")
    ap.add_argument(
        "--processes",
        type=int,
        default=None,
        help="hub serve --workers N (only when hub serve has it; default: not passed)",
    )
    ap.add_argument("--raw-connections", type=int, default=32, help="the raw loop's cap")
    ap.add_argument("--open-connections", type=int, default=256, help="the open loop's cap")
    ap.add_argument("--warmup", type=int, default=None, help="requests before timing (200)")
    ap.add_argument("--quick", action="store_true", help="small counts: about a minute per route")
    ap.add_argument("--json", dest="json_path", help="write the figures and checks here")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["delivery"]:  # bench/delivery.py, its own options
        from bench import delivery

        rest = argv[1:]
        if "--quick" in rest:
            rest = [a for a in rest if a != "--quick"] + DELIVERY_QUICK
        sys.argv = ["python -m bench delivery", *rest]
        delivery.main()
        return 0
    if argv[:1] == ["quote"]:  # bench/quote.py: the best coupon combination, no I/O
        from bench import quote

        return quote.main(argv[1:])
    if argv[:1] == ["quote-http"]:  # bench/quote_http.py: the quote route against hub serve
        from bench import quote_http

        return quote_http.main(argv[1:])
    if argv[:1] == ["sync"]:  # bench/sync.py: offline sync batches through the service
        from bench import sync

        return sync.main(argv[1:])
    if argv[:1] == ["scan"]:  # bench/scan.py: the photo scan's decode rate, no I/O
        from bench import scan

        return scan.main(argv[1:])
    if argv[:1] == ["recommend"]:  # bench/recommend.py: ranking quality, time-based split
        from bench import recommend

        return recommend.main(argv[1:])
    if argv[:1] == ["analytics"]:  # bench/analytics.py: the dashboard's queries at 1 M rows
        from bench import analytics

        return analytics.main(argv[1:])
    if argv[:1] == ["reminders"]:  # bench/reminders.py: one reminders round, many coupons
        from bench import reminders

        return reminders.main(argv[1:])
    if argv[:1] == ["exports"]:  # bench/exports.py: the reconciliation exports' memory
        from bench import exports

        return exports.main(argv[1:])
    if argv[:1] == ["service"]:  # bench/redeem.py: the service loop against the raw loop
        from bench import redeem

        sys.argv = ["python -m bench service", *argv[1:]]
        redeem.main()
        return 0
    os.environ.setdefault("HUB_LOG_LEVEL", "WARNING")
    configure_logging()
    args = parser().parse_args(argv)
    from bench import suite

    targets = (args.target or ("all" if args.what == "all" else args.what)).split(",")
    targets = list(ROUTES) if targets == ["all"] else targets
    bad = [t for t in targets if t not in ROUTES]
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    if bad or not targets or not dbs or any(d not in ("postgresql", "sqlite") for d in dbs):
        parser().error(f"unknown route or database: {bad or dbs}")

    def pick(value: object, full: object, quick: object) -> object:
        return value if value is not None else (quick if args.quick else full)

    opts = suite.Options(
        dbs=dbs,
        targets=targets,
        concurrency=pick(args.concurrency, [8, 32, 128], [8, 32]),  # type: ignore[arg-type]
        rates=pick(args.rates, [300.0], [300.0]),  # type: ignore[arg-type]
        requests=pick(args.requests, 3000, 1000),  # type: ignore[arg-type]
        duration=pick(args.duration, 10.0, 3.0),  # type: ignore[arg-type]
        processes=args.processes,
        raw_connections=args.raw_connections,
        open_connections=args.open_connections,
        warmup=pick(args.warmup, 200, 50),  # type: ignore[arg-type]
        json_path=args.json_path,
    )
    report = suite.run(opts)
    suite.print_summary(report)
    if opts.json_path:
        suite.write_json(report, opts.json_path)
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

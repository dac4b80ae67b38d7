"""Offline sync throughput: batches of queued sales through the sync service, in process.

    .venv/bin/python -m bench sync [--batches 5] [--items 100] [--backend sqlite|postgresql|both]

For each backend it prints items/s of ``hub.services.sync.sync`` (what
``POST /v1/redemptions/sync`` runs, the items parsed as the route parses them) for
batches of fresh sales (each item redeemed in its own transaction) and for the same
batches sent again (each item replays its stored answer), sequentially, no HTTP.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import psycopg
from sqlalchemy import Engine

from bench.redeem import PG_ADMIN, setup_merchant
from hub.api.redemptions import REDEMPTION_OPERATIONS
from hub.api.sync import _item
from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.logs import configure_logging
from hub.services import sync
from hub.services.principal import Principal


def _batches(codes: list[str], size: int) -> list[list[sync.SyncItem | sync.BadItem]]:
    at = datetime.now(UTC).isoformat()  # after the coupons were issued
    out = []
    for start in range(0, len(codes), size):
        raw = [
            {
                "idempotency_key": uuid.uuid4().hex,
                "code": code,
                "order": {"id": f"OFF-{start + i}", "amount": 12800},
                "occurred_at": at,
                "offline_discount": 2000,
            }
            for i, code in enumerate(codes[start : start + size])
        ]
        out.append([_item(i, msgspec.json.encode(x)) for i, x in enumerate(raw)])
    return out


def _run(
    engine: Engine, p: Principal, batches: list[list[sync.SyncItem | sync.BadItem]], want: str
) -> float:
    n = 0
    t0 = time.perf_counter()
    for batch in batches:
        out = sync.sync(
            engine,
            p,
            "T-BENCH",
            batch,
            now=datetime.now(UTC),
            operation=REDEMPTION_OPERATIONS.redeem,
        )
        assert out["counts"][want] == len(batch), out["counts"]
        n += len(batch)
    seconds = time.perf_counter() - t0
    return n / seconds if seconds else float("inf")


def run_backend(name: str, url: str, batches: int, items: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    _admin, p, _token, codes = setup_merchant(engine, batches * items)
    work = _batches(codes, items)
    fresh = _run(engine, p, work, "redeemed")
    again = _run(engine, p, work, "replayed")
    print(
        f"{name:<10} sync of {items}-item batches, fresh sales   {fresh:8.0f} items/s "
        f"({items / fresh * 1000:6.0f} ms a batch)"
    )
    print(
        f"{name:<10} the same batches sent again (replays) {again:8.0f} items/s "
        f"({items / again * 1000:6.0f} ms a batch)"
    )
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HUB_LOG_LEVEL", "WARNING")
    configure_logging()
    ap = argparse.ArgumentParser(
        prog="python -m bench sync", description=(__doc__ or "").splitlines()[0]
    )
    ap.add_argument("--batches", type=int, default=5, help="batches per measurement")
    ap.add_argument("--items", type=int, default=sync.MAX_ITEMS, help="items a batch")
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args(argv)
    if not 1 <= args.items <= sync.MAX_ITEMS or args.batches < 1:
        ap.error(f"--items is 1 to {sync.MAX_ITEMS}, --batches at least 1")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            run_backend("sqlite", str(Path(tmp) / "bench.db"), args.batches, args.items)
    if args.backend in ("postgresql", "both"):
        name = f"hub_bench_sync_{os.getpid()}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            run_backend("postgresql", url, args.batches, args.items)
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

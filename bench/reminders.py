"""The expiry-reminder job's round on PostgreSQL, on a large coupon table.

    python -m bench.reminders [--coupons 200000] [--due-share 0.5]

A private database gets ``--coupons`` coupons of one merchant (80 % claimed, 20 %
unassigned) whose windows end over the next 10 days, so about ``--due-share`` × 3/10 of
them… more exactly: every claimed coupon ending within 3 days has its reminder due. It
times the first round (sends them, in batches of 500 per transaction), a second round
(nothing new: what every worker pays every 30 s) and prints the query plan of one
batch's read. No subscription: the events make no delivery records.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, event, func, insert, select, text

from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.db.schema import coupon_reminders, coupons, customers, outbox_events
from hub.domain.ids import new_id
from hub.logs import configure_logging
from hub.services import reminders
from tests.conftest import make_merchant, make_template
from tests.delivery.multiproc import pg_database

CHUNK = 10_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench reminders")
    ap.add_argument("--coupons", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=10, help="windows end over this many days")
    args = ap.parse_args(argv)
    configure_logging()
    now = datetime.now(UTC)
    with pg_database("hub_bench_rem") as url:
        engine = make_engine(url, pool_size=2, max_overflow=2)
        try:
            upgrade(engine)
            m = make_merchant(engine, now, customers=0)
            spec = {
                "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
                "validity": {"type": "fixed", "start": (now - timedelta(days=1)).isoformat(),
                             "end": (now + timedelta(days=args.days + 1)).isoformat()},
                "remind_days_before": [3, 1],
            }
            tid = make_template(engine, m, now, spec)
            n_customers = max(1, args.coupons // 10)
            cust_ids = [new_id("cus") for _ in range(n_customers)]
            t0 = time.perf_counter()
            with engine.begin() as conn:
                for i in range(0, n_customers, CHUNK):
                    conn.execute(insert(customers), [
                        {"id": cid, "merchant_id": m.id, "external_id": f"B{i + j:08d}",
                         "name": None, "phone": None, "created_at": now}
                        for j, cid in enumerate(cust_ids[i : i + CHUNK])
                    ])  # fmt: skip
                span = timedelta(days=args.days).total_seconds()
                for i in range(0, args.coupons, CHUNK):
                    conn.execute(insert(coupons), [
                        {"id": new_id("cpn"), "merchant_id": m.id, "template_id": tid,
                         "code": f"R{k:013d}", "status": "issued",
                         "customer_id": None if k % 5 == 4 else cust_ids[k % n_customers],
                         "channel": None, "issued_at": now,
                         "valid_from": now - timedelta(days=1),
                         "valid_until": now + timedelta(seconds=60 + span * k / args.coupons)}
                        for k in range(i, min(i + CHUNK, args.coupons))
                    ])  # fmt: skip
                conn.execute(text("ANALYZE coupons"))
            load_s = time.perf_counter() - t0
            due = sum(1 for k in range(args.coupons)
                      if k % 5 != 4 and 60 + span * k / args.coupons <= 3 * 86400)  # fmt: skip
            t0 = time.perf_counter()
            sent = reminders.send_due_reminders(engine, now)
            first_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = reminders.send_due_reminders(engine, now + timedelta(seconds=30))
            second_s = time.perf_counter() - t0
            with engine.connect() as conn:
                rows = conn.execute(select(func.count()).select_from(coupon_reminders)).scalar()
                events = conn.execute(
                    select(func.count()).where(outbox_events.c.type == "coupon.expiring")
                ).scalar()
                params = {
                    "b_merchant": m.id, "b_after": now + timedelta(days=1),
                    "b_until": now + timedelta(days=3), "b_now": now, "b_templates": [tid],
                    "b_days": 3, "b_limit": reminders.BATCH,
                }  # fmt: skip
                plan = _explain(conn, params)
        finally:
            engine.dispose()
    print(f"coupons {args.coupons} (loaded in {load_s:.1f} s), reminders due {due}")
    print(f"first round: sent {sent} in {first_s:.2f} s ({sent / first_s:.0f}/s)")
    print(f"second round: sent {again} in {second_s * 1000:.0f} ms")
    print(f"coupon_reminders rows {rows}, coupon.expiring events {events}")
    print("plan of one batch's read (after the first round):")
    print("\n".join("  " + line for line in plan))
    ok = rows == events == sent + again
    if not ok:
        print("CHECK FAILED: reminders sent differ from the rows and events written")
    return 0 if ok else 1


def _explain(conn: Connection, params: dict[str, Any]) -> list[str]:
    """EXPLAIN ANALYZE of one batch's read, through the statement the job runs."""
    captured: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", grab)
    try:
        conn.execute(reminders._DUE, params).all()
    finally:
        event.remove(conn, "before_cursor_execute", grab)
    statement, parameters = captured[-1]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
    return [str(r[0]) for r in cursor.fetchall()]


if __name__ == "__main__":
    raise SystemExit(main())

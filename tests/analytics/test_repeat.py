"""The repeat purchase rollup (``analytics_repeat``) kept by the consumer: events applied
one per transaction and out of time order (sales reported late, as an offline till
syncs), a reversal that takes an order day away, then the same tables from a rebuild
and from one batch of everything; applying again changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from hub.db.engine import write_conn
from hub.db.schema import analytics_applied, analytics_progress
from hub.domain.analytics import REPEAT_HORIZON, repeat_counts
from hub.services import rollup
from tests.analytics.helpers import TABLES, redeem, reverse, rollups
from tests.conftest import Clock, Merchant, issue, make_template

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 11-02 10:00 in Shanghai


def repeat_rows(db: Engine) -> dict[tuple[str, str, str], tuple[int, ...]]:
    return {(r[1], r[2], r[3]): r[4:] for r in rollups(db)["analytics_repeat"]}


def one_by_one(db: Engine, now: datetime) -> None:
    while rollup.consume_once(db, now, batch=1):
        pass


def sell(client: Any, m: Merchant, *orders: tuple[str, str, str, datetime]) -> None:
    body = {"orders": [
        {"order_id": oid, "store": store, "channel": "pos", "customer": cust,
         "amount": 5000, "occurred_at": at.isoformat().replace("+00:00", "Z")}
        for oid, store, cust, at in orders
    ]}  # fmt: skip
    r = client.post("/v1/sales", json=body,
                    headers={**m.auth(), "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert r.status_code in (200, 201), r.text


def summary(client: Any, m: Merchant, **params: Any) -> dict[str, Any]:
    r = client.get("/v1/analytics/summary", headers=m.auth(),
                   params={"from": "2026-11-01", "to": "2026-11-30", **params})  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json()["figures"])


def test_out_of_order_events_give_the_rebuilds_repeat_counts(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    clock.now = T0
    tpl = make_template(db, merchant, clock.now)
    c = issue(db, merchant, tpl, clock.now, customers=["M0001", "M0001", "M0002", "M0002"])
    clock.now = T0 + timedelta(hours=1)
    redeem(client, merchant, c[0], "SH-001", 12800, "A-1")  # M0001 11-02
    one_by_one(db, clock.now)
    assert repeat_rows(db) == {("2026-11-02", "SH-001", "pos"): (1, 0, 0, 0)}
    clock.now = T0 + timedelta(days=10)
    redeem(client, merchant, c[1], "SH-002", 12800, "A-2")  # M0001 11-12: 10 days on
    redeem(client, merchant, c[2], "SH-001", 12800, "A-3")  # M0002 11-12
    one_by_one(db, clock.now)
    assert repeat_rows(db) == {
        ("2026-11-02", "SH-001", "pos"): (1, 0, 1, 1),
        ("2026-11-12", "SH-001", "pos"): (1, 0, 0, 0),
        ("2026-11-12", "SH-002", "pos"): (1, 0, 0, 0),
    }
    clock.now = T0 + timedelta(days=13)
    rid = redeem(client, merchant, c[3], "SH-002", 12800, "A-4")  # M0002 11-15
    one_by_one(db, clock.now)
    assert repeat_rows(db)[("2026-11-12", "SH-001", "pos")] == (1, 1, 1, 1)
    assert repeat_rows(db)[("2026-11-15", "SH-002", "pos")] == (1, 0, 0, 0)
    # weeks later a till syncs: the orders arrive out of their time order
    clock.now = T0 + timedelta(days=40)
    sell(client, merchant,
         ("S-2", "SH-001", "M0002", T0 + timedelta(days=30)),  # M0002 12-02
         ("S-1", "SH-001", "M0001", T0 + timedelta(days=3)),  # M0001 11-05
         ("S-3", "SH-002", "M0002", T0 + timedelta(days=18)))  # M0002 11-20  # fmt: skip
    one_by_one(db, clock.now)
    reverse(client, merchant, rid)  # M0002's 11-15 is no order day any more
    one_by_one(db, clock.now)
    consumed = rollups(db)
    assert repeat_rows(db) == {
        ("2026-11-02", "SH-001", "pos"): (1, 1, 1, 1),  # next order 11-05 (S-1)
        ("2026-11-12", "SH-001", "pos"): (1, 0, 1, 1),  # next order 11-20 (S-3)
        ("2026-11-12", "SH-002", "pos"): (1, 0, 0, 0),  # M0001: nothing after 11-12
    }
    f = summary(client, merchant)
    assert (f["repeat_purchase_rate"], f["repeat_within_days"]) == ("0.6667", 30)
    assert summary(client, merchant, repeat_days=7)["repeat_purchase_rate"] == "0.3333"
    assert summary(client, merchant, repeat_days=14)["repeat_purchase_rate"] == "0.6667"
    f = summary(client, merchant, store="SH-002")
    assert f["repeat_purchase_rate"] == "0.0000" and f["average_order_without_coupon"] == 5000
    # idempotent: nothing new, nothing changes
    assert rollup.consume(db, clock.now) == 0
    assert rollups(db) == consumed
    # the rebuild from the base tables gives the same tables, twice
    rollup.rebuild_rollups(db, None, clock.now)
    assert rollups(db) == consumed
    rollup.rebuild_rollups(db, merchant.id, clock.now)
    assert rollups(db) == consumed
    # and so does one batch of every event from the start
    with write_conn(db) as conn:
        for t in (*TABLES, analytics_applied, analytics_progress):
            conn.execute(delete(t))
    rollup.consume(db, clock.now)
    assert rollups(db) == consumed


days = st.integers(min_value=0, max_value=120)


@given(st.sets(days, max_size=12), st.sets(days, max_size=8), days)
def test_a_new_order_day_changes_only_the_units_of_the_30_days_before_it(
    order_days: set[int], coupon_days: set[int], new: int
) -> None:
    """What the consumer relies on: an order day d1 can change only the units of
    [d1 − 30, d1); the counts are those of the brute force definition."""
    base = date(2026, 1, 1)

    def counts(orders: set[int]) -> dict[Any, list[int]]:
        units = [(base + timedelta(days=d), "k") for d in sorted(coupon_days)]
        return repeat_counts(units, (base + timedelta(days=d) for d in orders | coupon_days))

    before, after = counts(order_days), counts(order_days | {new})
    for (day, _k), v in after.items():
        d0 = (day - base).days
        later = [d for d in order_days | coupon_days | {new} if d > d0]
        gap = min(later) - d0 if later else None
        assert v == [1, *(int(gap is not None and gap <= n) for n in (7, 14, 30))]
        if not new - REPEAT_HORIZON <= d0 < new:
            assert v == before[(day, _k)]

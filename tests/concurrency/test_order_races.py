"""Multi-coupon orders racing, below HTTP (as tests/concurrency/test_service_races.py: the
database arbitrates — BEGIN IMMEDIATE on SQLite, row locks and the conditional UPDATE on
PostgreSQL — each thread on its own pooled connection), for many rounds:

* two orders sharing a coupon: exactly one wins, the loser redeemed nothing;
* two orders sharing two coupons named in opposite orders: no deadlock, one wins;
* an order against a single till redeem of one of its coupons: exactly one gets it.

And the lost race itself, made certain: a coupon taken between the order's checks and its
marks rolls back the marks already made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select, update

from hub.api.orders import ORDER_REDEEM
from hub.api.redemptions import REDEMPTION_OPERATIONS
from hub.db.engine import busy_reason
from hub.db.schema import coupons, order_redemptions, outbox_events, redemptions
from hub.domain.cart import Order
from hub.services import orders
from hub.services.commands import HttpResult, RedeemCommand
from hub.services.redeem import redeem
from tests.conftest import issue, make_template

ROUNDS = 25
KINDS = ["exchange", "percentage", "threshold"]
STACKING = {
    "benefit": {"kind": "threshold", "threshold": 1000, "discount": 100},
    "validity": {"type": "relative", "days": 30},
    "stacking": {"combines_with": KINDS, "max_per_order": 5},
}


@pytest.fixture(autouse=True)
def _database_arbitrates(monkeypatch: pytest.MonkeyPatch) -> None:
    # without the in-process writer queue, so SQLite's own file lock is what serialises
    monkeypatch.setattr("hub.db.engine._writer_lock", lambda engine: None)


def _patient(call: Callable[[], HttpResult]) -> HttpResult:
    for _ in range(30):  # a client retries (same key) when no connection is free
        try:
            return call()
        except Exception as exc:
            if busy_reason(exc) is None:
                raise
            time.sleep(0.2)
    raise AssertionError("no database connection for 6 s")


def order_call(db, merchant, clock, codes: list[str], key: str) -> Callable[[], HttpResult]:
    spec = orders.OrderRedeemSpec(
        codes=tuple(codes), store="SH-001", channel="pos", order=Order(id=key, amount=12800)
    )
    return lambda: _patient(
        lambda: orders.redeem_order(
            db,
            merchant.principal,
            spec,
            idempotency_key=key,
            canonical_body=msgspec.json.encode({"codes": codes, "key": key}),
            now=clock.now,
            operation=ORDER_REDEEM,
        )
    )


def single_call(db, merchant, clock, code: str, key: str) -> Callable[[], HttpResult]:
    cmd = RedeemCommand(code=code, store="SH-001", channel="pos", order=Order(id=key, amount=12800))
    return lambda: _patient(
        lambda: redeem(
            db,
            merchant.principal,
            cmd,
            idempotency_key=key,
            canonical_body=msgspec.json.encode({"code": code, "key": key}),
            now=clock.now,
            operation=REDEMPTION_OPERATIONS.redeem,
        )
    )


def race(*calls: Callable[[], HttpResult]) -> list[HttpResult]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], HttpResult]) -> HttpResult:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def body(r: HttpResult) -> dict[str, Any]:
    return msgspec.json.decode(r.body)


def states(db, codes: list[str]) -> list[str]:
    with db.connect() as conn:
        found = dict(conn.execute(select(coupons.c.code, coupons.c.status)).all())
    return [found[c] for c in codes]


def count(db, table, *where) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())


def coupon_codes(db, merchant, clock, n: int) -> list[str]:
    tpl = make_template(db, merchant, clock.now - timedelta(hours=1), STACKING, name="叠加")
    return issue(db, merchant, tpl, clock.now - timedelta(hours=1), count=n)


def test_two_orders_sharing_a_coupon_exactly_one_wins(db, merchant, clock):
    pool = coupon_codes(db, merchant, clock, 3 * ROUNDS)
    winners = 0
    for i in range(ROUNDS):
        a, shared, b = pool[3 * i : 3 * i + 3]
        first, second = [a, shared], [shared, b]
        if i % 2:  # both coupons shared, named in opposite orders: no deadlock
            first, second = [a, shared], [shared, a]
        results = race(
            order_call(db, merchant, clock, first, f"r{i}-1"),
            order_call(db, merchant, clock, second, f"r{i}-2"),
        )
        assert sorted(r.status for r in results) == [201, 409], [r.body for r in results]
        won, lost = (results[0], results[1]) if results[0].status == 201 else results[::-1]
        winner_codes, loser_codes = (first, second) if won is results[0] else (second, first)
        problem = body(lost)
        assert problem["code"] == "coupon_already_redeemed"
        assert problem["coupon"] in set(winner_codes) & set(loser_codes)
        assert {c["code"] for c in body(won)["coupons"]} == set(winner_codes)
        assert states(db, winner_codes) == ["redeemed", "redeemed"]
        only_the_losers = [c for c in loser_codes if c not in winner_codes]
        assert states(db, only_the_losers) == ["issued"] * len(only_the_losers)
        winners += 1
    assert count(db, order_redemptions) == winners == ROUNDS
    assert count(db, redemptions) == 2 * ROUNDS
    assert count(db, outbox_events, outbox_events.c.type == "order.redeemed") == ROUNDS
    assert count(db, outbox_events, outbox_events.c.type == "coupon.redeemed") == 2 * ROUNDS


def test_an_order_against_a_single_redeem_of_one_of_its_coupons(db, merchant, clock):
    pool = coupon_codes(db, merchant, clock, 2 * ROUNDS)
    order_won = 0
    for i in range(ROUNDS):
        other, shared = pool[2 * i : 2 * i + 2]
        calls = [
            order_call(db, merchant, clock, [other, shared], f"o{i}"),
            single_call(db, merchant, clock, shared, f"s{i}"),
        ]
        if i % 2:
            calls.reverse()
        names = ("single", "order") if i % 2 else ("order", "single")
        results = dict(zip(names, race(*calls), strict=True))
        assert sorted(r.status for r in results.values()) == [201, 409]
        if results["order"].status == 201:
            order_won += 1
            assert states(db, [other, shared]) == ["redeemed", "redeemed"]
            assert body(results["single"])["code"] == "coupon_already_redeemed"
        else:
            problem = body(results["order"])
            assert (problem["code"], problem["coupon"]) == ("coupon_already_redeemed", shared)
            assert states(db, [other, shared]) == ["issued", "redeemed"]
    assert count(db, order_redemptions) == order_won
    assert count(db, redemptions) == 2 * order_won + (ROUNDS - order_won)


def test_a_coupon_taken_after_the_checks_rolls_back_the_marks_made(
    db, merchant, clock, monkeypatch
):
    """The lost race made certain: between the order's checks and its marks, the coupon
    with the larger id (marked last) is taken; the mark already made on the other one is
    rolled back and the refusal stored under the key."""
    codes = coupon_codes(db, merchant, clock, 2)
    with db.connect() as conn:
        ids = dict(conn.execute(select(coupons.c.code, coupons.c.id)).all())
    first, last = sorted(codes, key=lambda c: ids[c])
    judge = orders._judge

    def judge_then_lose(conn, found, order, ctx):
        combo = judge(conn, found, order, ctx)
        conn.execute(update(coupons).where(coupons.c.code == last).values(status="redeemed"))
        return combo

    monkeypatch.setattr(orders, "_judge", judge_then_lose)
    r = order_call(db, merchant, clock, [last, first], "lost")()
    assert r.status == 409, r.body
    assert (body(r)["code"], body(r)["coupon"]) == ("coupon_already_redeemed", last)
    assert states(db, [first, last]) == ["issued", "redeemed"]
    assert count(db, redemptions) == 0 and count(db, order_redemptions) == 0
    redeemed_events = outbox_events.c.type.in_(["coupon.redeemed", "order.redeemed"])
    assert count(db, outbox_events, redeemed_events) == 0
    monkeypatch.setattr(orders, "_judge", judge)
    again = order_call(db, merchant, clock, [last, first], "lost")()
    assert again.replayed and again.body == r.body

"""The redeem's round trips (issue 11, item 2): every statement is a round trip to the
database while the transaction (and on PostgreSQL the coupon's row lock) is held, so
the hot path sends the fewest. The Idempotency-Key's claim is one statement on both
databases: on PostgreSQL the key's advisory lock is taken inside the insert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, text

from hub.api.redemptions import REDEMPTION_OPERATIONS
from hub.db.engine import make_engine
from hub.db.schema import deliveries, outbox_events, redemptions, subscriptions
from hub.domain.cart import Order
from hub.domain.errors import DomainError
from hub.services import idempotency
from hub.services.commands import RedeemCommand
from hub.services.idempotency import _lock_id
from hub.services.redeem import redeem
from tests.conftest import Clock, Merchant, issue, make_template


def work(sql: list[str]) -> list[str]:
    """The statements but the transaction's own (SQLite's BEGIN)."""
    return [s for s in sql if not s.lstrip().upper().startswith(("BEGIN", "COMMIT"))]


class Statements:
    def __init__(self, engine: Engine) -> None:
        self.sql: list[str] = []
        event.listen(engine, "before_cursor_execute", self._seen)
        self.engine = engine

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.sql.append(statement)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def test_claiming_a_key_is_one_statement(db: Engine, merchant: Merchant, clock: Clock) -> None:
    seen = Statements(db)
    try:
        with db.begin() as conn:
            assert (
                idempotency.claim(
                    conn,
                    scope="k1",
                    key="once",
                    endpoint="POST /v1/redemptions",
                    req_hash="h",
                    now=clock.now,
                    ttl=timedelta(hours=1),
                )
                is None
            )
            claim = work(seen.sql)
            idempotency.complete(conn, scope="k1", key="once", status=201, body=b"{}")
    finally:
        seen.close()
    assert len(claim) == 1, claim


def test_a_held_key_lock_still_answers_in_flight(db: Engine, clock: Clock) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: no advisory lock to hold")
    with db.connect() as holder, holder.begin():
        assert holder.execute(
            text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _lock_id("k1", "busy")}
        ).scalar_one()
        with db.begin() as conn, pytest.raises(DomainError) as err:
            idempotency.claim(
                conn,
                scope="k1",
                key="busy",
                endpoint="POST /v1/redemptions",
                req_hash="h",
                now=clock.now,
            )
        assert err.value.code == "idempotency_key_in_flight"
    with db.begin() as conn:  # the lock is gone with the holder's transaction
        assert (
            idempotency.claim(
                conn,
                scope="k1",
                key="busy",
                endpoint="POST /v1/redemptions",
                req_hash="h",
                now=clock.now,
            )
            is None
        )
        idempotency.complete(conn, scope="k1", key="busy", status=201, body=b"{}")


def _redeem(engine: Engine, merchant: Merchant, clock: Clock, code: str, key: str) -> None:
    cmd = RedeemCommand(code=code, store="SH-001", channel="pos", order=Order(id=key, amount=12800))
    r = redeem(
        engine,
        merchant.principal,
        cmd,
        idempotency_key=key,
        canonical_body=b"{}",
        now=clock.now,
        operation=REDEMPTION_OPERATIONS.redeem,
    )
    assert r.status == 201, r.body


def test_a_successful_redeem_sends_five_statements_on_postgresql_seven_on_sqlite(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    first, code = issue(db, merchant, tpl, clock.now, count=2)
    _redeem(db, merchant, clock, first, "warm")  # the guard's block state is read and cached
    seen = Statements(db)
    try:
        _redeem(db, merchant, clock, code, "counted")
    finally:
        seen.close()
    # claim, store, coupon (with the merchant's live subscriptions), conditional update,
    # then on PostgreSQL one statement: redemption + event + key completion (CTEs);
    # SQLite: redemption, event, key completion
    sent = work(seen.sql)
    expected = 5 if db.dialect.name == "postgresql" else 7
    assert len(sent) == expected, sent
    [read] = [s for s in sent if "subscriptions" in s]  # only inside the coupon read
    assert "coupons" in read, read
    assert sum("idempotency_keys" in s for s in sent) == 2, sent
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(redemptions)).scalar() == 2
        events = (
            conn.execute(
                select(outbox_events.c.data["order_id"].as_string())
                .where(outbox_events.c.type == "coupon.redeemed")
                .order_by(outbox_events.c.seq)
            )
            .scalars()
            .all()
        )
    assert events == ["warm", "counted"]


def test_a_subscription_made_elsewhere_gets_the_next_redeem_at_once(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    """Nothing about subscriptions is cached between requests: one made through another
    engine (another pool, as another process would) gets a delivery record from the very
    next redeem; the fan-out costs round trips only when a record is made."""
    tpl = make_template(db, merchant, clock.now)
    first, second = issue(db, merchant, tpl, clock.now, count=2)
    _redeem(db, merchant, clock, first, "before")
    other = make_engine(db.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    try:
        with other.begin() as conn:
            conn.execute(
                insert(subscriptions).values(
                    id="sub_elsewhere",
                    merchant_id=merchant.principal.merchant_id,
                    connector="webhook",
                    config={"url": "http://127.0.0.1:9/hook"},
                    events=["coupon.redeemed"],
                    filter={},
                    retry_schedule=None,
                    status="active",
                    consecutive_failures=0,
                    description=None,
                    created_at=clock.now,
                    updated_at=clock.now,
                )
            )
    finally:
        other.dispose()
    seen = Statements(db)
    try:
        _redeem(db, merchant, clock, second, "after")
    finally:
        seen.close()
    sent = work(seen.sql)
    # the event is inserted on its own (returning its seq) and the delivery record after
    # it: on PostgreSQL two statements more, on SQLite one (the delivery record)
    expected = 7 if db.dialect.name == "postgresql" else 8
    assert len(sent) == expected, sent
    with db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.subscription_id, outbox_events.c.data["code"].as_string()).join(
                outbox_events, outbox_events.c.id == deliveries.c.event_id
            )
        ).all()
    assert rows == [("sub_elsewhere", second)]


def test_nothing_is_left_on_the_connection_after_a_redeem(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    """The redeem keeps its pending writes and the subscriptions it read on the
    connection's ``info`` (which outlives the checkout): none of it goes back to the pool."""
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    _redeem(db, merchant, clock, code, "clean")
    with db.connect() as conn:
        leftovers = {k for k in conn.info if k.startswith(("hub_redeem", "hub_outbox"))}
    assert leftovers == set()

"""The redeem's round trips (issue 11, item 2): every statement is a round trip to the
database while the transaction (and on PostgreSQL the coupon's row lock) is held, so
the hot path sends the fewest. The Idempotency-Key's claim is one statement on both
databases: on PostgreSQL the key's advisory lock is taken inside the insert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from hub.api.redemptions import REDEMPTION_OPERATIONS
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
            assert idempotency.claim(
                conn, scope="k1", key="once", endpoint="POST /v1/redemptions",
                req_hash="h", now=clock.now, ttl=timedelta(hours=1),
            ) is None
            claim = work(seen.sql)
            idempotency.complete(conn, scope="k1", key="once", status=201, body=b"{}")
    finally:
        seen.close()
    assert len(claim) == 1, claim


def test_a_held_key_lock_still_answers_in_flight(db: Engine, clock: Clock) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: no advisory lock to hold")
    with db.connect() as holder, holder.begin():
        assert holder.execute(text("SELECT pg_try_advisory_xact_lock(:id)"),
                              {"id": _lock_id("k1", "busy")}).scalar_one()
        with db.begin() as conn, pytest.raises(DomainError) as err:
            idempotency.claim(conn, scope="k1", key="busy", endpoint="POST /v1/redemptions",
                              req_hash="h", now=clock.now)
        assert err.value.code == "idempotency_key_in_flight"
    with db.begin() as conn:  # the lock is gone with the holder's transaction
        assert idempotency.claim(conn, scope="k1", key="busy", endpoint="POST /v1/redemptions",
                                 req_hash="h", now=clock.now) is None
        idempotency.complete(conn, scope="k1", key="busy", status=201, body=b"{}")


def test_a_successful_redeem_sends_eight_statements(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    first, code = issue(db, merchant, tpl, clock.now, count=2)

    def run(c: str, key: str) -> None:
        cmd = RedeemCommand(code=c, store="SH-001", channel="pos",
                            order=Order(id=key, amount=12800))
        r = redeem(db, merchant.principal, cmd, idempotency_key=key, canonical_body=b"{}",
                   now=clock.now, operation=REDEMPTION_OPERATIONS.redeem)
        assert r.status == 201, r.body

    run(first, "warm")  # the guard's block state is read once and cached
    seen = Statements(db)
    try:
        run(code, "counted")
    finally:
        seen.close()
    # claim, store, coupon, conditional update, redemption, subscriptions, outbox event,
    # key completion
    sent = work(seen.sql)
    assert len(sent) <= 8, sent
    assert sum("idempotency_keys" in s for s in sent) == 2, sent

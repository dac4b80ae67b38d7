"""The guessing limit holds exactly under concurrency (issue 9 item 4), on both backends.

100 wrong guesses from one key at once — through a real uvicorn server, and one layer
down, 100 threads calling the services on their own pooled connections (a small,
bounded pool) — get exactly the allowed 20 answers; the other 80 are 429, and a real
code sent afterwards is refused as well. Counting and deciding is one step per scope
(an advisory lock per scope on PostgreSQL, the writer lock on SQLite).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from hub.db.engine import make_engine
from hub.db.schema import failed_attempts, outbox_events
from hub.domain.cart import Order
from hub.domain.codes import generate_code
from hub.domain.errors import DomainError
from hub.services import queries
from hub.services import redeem as svc
from hub.services.commands import RedeemCommand
from hub.services.guard import Guard, Limits
from hub.services.settings import Settings
from tests.conftest import Clock, Merchant, issue, make_template, order

N = 100
ALLOWED = 20  # the default HUB_GUESS_MAX_FAILURES


def _enumeration_alerts(db: Engine) -> int:
    with db.connect() as conn:
        rows = conn.execute(
            select(outbox_events.c.data).where(outbox_events.c.type == "alert.raised")
        ).scalars()
        return sum(1 for d in rows if d["alert"] == "code_enumeration_suspected")


def _key_failures(db: Engine) -> int:
    with db.connect() as conn:
        q = select(func.count()).where(failed_attempts.c.scope.like("key:%"))
        return int(conn.execute(q).scalar_one())


def test_a_hundred_concurrent_wrong_guesses_over_http_get_twenty_answers(
    live_server: str, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    [real] = issue(db, merchant, tpl, clock.now)
    auth = merchant.auth(merchant.store_keys["SH-001"])
    barrier = threading.Barrier(N)

    def guess(client: httpx.Client, i: int) -> int:
        code = generate_code()
        barrier.wait()
        kind = i % 4  # every way of looking a code up, at once
        if kind == 0:
            r = client.get(f"{live_server}/v1/coupons/{code}", headers=auth)
        elif kind == 1:
            r = client.post(
                f"{live_server}/v1/redemptions/validate",
                json={"code": code, "order": order()},
                headers=auth,
            )
        elif kind == 2:
            r = client.post(
                f"{live_server}/v1/redemptions",
                json={"code": code, "order": order()},
                headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
            )
        else:
            r = client.post(
                f"{live_server}/v1/pos/pos.native/reverse",
                json={"code": code},
                headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
            )
        body: dict[str, Any] = r.json()
        assert body["code"] in ("coupon_not_found", "too_many_failed_attempts"), r.text
        return r.status_code

    limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
    with httpx.Client(timeout=60, limits=limits) as client, ThreadPoolExecutor(N) as pool:
        statuses = Counter(pool.map(lambda i: guess(client, i), range(N)))
        assert statuses == {404: ALLOWED, 429: N - ALLOWED}, statuses
        # the real code is not confirmed once the limit is reached
        r = client.get(f"{live_server}/v1/coupons/{real}", headers=auth)
        assert r.status_code == 429 and r.json()["code"] == "too_many_failed_attempts"
        other = merchant.auth(merchant.store_keys["SH-002"])
        assert client.get(f"{live_server}/v1/coupons/{real}", headers=other).status_code == 200
    assert _key_failures(db) == ALLOWED
    assert _enumeration_alerts(db) == 1


@pytest.fixture
def small_pool_engine(db: Engine) -> Iterator[Engine]:
    """The test database through an engine of its own with a small, bounded pool: the
    100 threads queue for 8 connections."""
    eng = make_engine(str(db.url.render_as_string(hide_password=False)), pool_size=4,
                      max_overflow=4, pool_timeout=60)
    yield eng
    eng.dispose()


def test_a_hundred_threads_calling_the_services_get_twenty_answers(
    small_pool_engine: Engine, db: Engine, merchant: Merchant, clock: Clock, monkeypatch: Any
) -> None:
    # Without the in-process SQLite writer queue, so the database's own lock arbitrates.
    monkeypatch.setattr("hub.db.engine._writer_lock", lambda engine: None)
    eng = small_pool_engine
    tpl = make_template(db, merchant, clock.now)
    [real] = issue(db, merchant, tpl, clock.now)
    settings = Settings(guard=Guard(Limits(max_per_key=ALLOWED, cache_seconds=0)))
    p = merchant.principal
    barrier = threading.Barrier(N)

    def guess(i: int) -> str:
        code = generate_code()
        cmd = RedeemCommand(code=code, store="SH-001", channel="pos", order=Order("T", 12800))
        barrier.wait()
        try:
            if i % 2:
                svc.validate(eng, p, cmd, clock.now, settings, "192.0.2.1")
            else:
                queries.coupon_status(
                    eng, p, code, clock.now, guard=settings.guard, client="192.0.2.1"
                )
        except DomainError as err:
            return err.code
        raise AssertionError("an unknown code was found")

    with ThreadPoolExecutor(N) as pool:
        answers = Counter(pool.map(guess, range(N)))
    assert answers == {"coupon_not_found": ALLOWED, "too_many_failed_attempts": N - ALLOWED}
    with pytest.raises(DomainError) as blocked:
        queries.coupon_status(eng, p, real, clock.now, guard=settings.guard, client="192.0.2.1")
    assert blocked.value.code == "too_many_failed_attempts"
    assert _key_failures(db) == ALLOWED
    assert _enumeration_alerts(db) == 1

"""Database work in the API uses at most as many connections at once as the pool keeps
(issue 11, item 2): a burst of concurrent redeems queues on the event loop instead of
checking out overflow connections that the pool closes on return (each one a new
PostgreSQL backend: the c8 → c32 collapse of ``POST /v1/redemptions``). On PostgreSQL
the redeem runs on the hot path's asyncpg pool (hub.db.budget admits at most the pool
size at once); the psycopg pool serves the rest of the app."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, event

from hub.api import auth
from hub.api.app import create_app
from hub.db.engine import make_engine
from tests.concurrency.support import fire, outcome, redeem_call
from tests.conftest import Clock, Merchant, free_port, issue, make_template

POOL_SIZE = 2
CLIENTS = 24


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_a_burst_of_redeems_opens_no_connection_beyond_the_pool(
    db: Engine, merchant: Merchant, clock: Clock, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    # the API key stays cached for the whole test (on a loaded machine the default 5 s
    # can run out between bursts: 24 key look-ups at once are not what is measured here)
    monkeypatch.setattr(auth, "CACHE_SECONDS", 600.0)
    # psycopg: the threads' bound; asyncpg: the connection budget's (PostgreSQL only)
    monkeypatch.setenv("HUB_DB_HOT_DRIVER", driver)
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=CLIENTS * 2 + 1)
    # overflow allowed, as in production: only the bound on threads keeps it unused
    engine = make_engine(
        db.url.render_as_string(hide_password=False),
        pool_size=POOL_SIZE,
        max_overflow=30,
        pool_timeout=10,
    )
    connects: list[int] = []
    peak = [0]

    @event.listens_for(engine, "connect")
    def _connected(*_: Any) -> None:
        connects.append(1)

    @event.listens_for(engine, "checkout")
    def _checked_out(*_: Any) -> None:
        peak[0] = max(peak[0], engine.pool.checkedout())  # type: ignore[attr-defined]

    hot_connects: list[int] = []
    hot_peak = [0]
    app = create_app(engine, clock=clock)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as c:  # the key is looked up, cached
            assert redeem_call(merchant, codes[-1], "warm")(c).status_code == 201
        hot = app.state.hub._hot  # PostgreSQL: the hot path's asyncpg engine
        if hot is not None:
            hot_connects.append(hot.sync_engine.pool.checkedin())
            event.listen(hot.sync_engine, "connect", lambda *_: hot_connects.append(1))
            event.listen(
                hot.sync_engine,
                "checkout",
                lambda *_: hot_peak.__setitem__(
                    0, max(hot_peak[0], hot.sync_engine.pool.checkedout())
                ),
            )
        for burst in range(2):
            mine = codes[burst * CLIENTS : (burst + 1) * CLIENTS]
            calls = [redeem_call(merchant, code, f"burst-{code}") for code in mine]
            assert {outcome(r) for r in fire(base, calls)} == {(201, "redeemed")}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
    assert peak[0] <= POOL_SIZE, f"{peak[0]} connections checked out at once"
    assert len(connects) <= POOL_SIZE, f"{len(connects)} connections opened"
    assert hot_peak[0] <= POOL_SIZE, f"{hot_peak[0]} hot-path connections at once"
    assert sum(hot_connects) <= POOL_SIZE, f"{sum(hot_connects)} hot-path connections opened"

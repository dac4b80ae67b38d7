"""Real races against a live uvicorn server (both backends).

Every test fires parallel HTTP requests that start together (``threading.Barrier``)
and then checks the database itself, not only the responses: one coupon is redeemed
at most once, one idempotency key executes at most once, a reversal and redeems of
the same code leave a consistent state, and unrelated redeems never fail with a 500
or "database is locked".

The server's pool is bounded (``tests/conftest.py``) and the PostgreSQL server is
shared, so a request may find no connection free: it is then answered 503
``database_busy`` with ``Retry-After``, and — as a real till would — retried with the
same request and Idempotency-Key (:func:`patient`). The exactly-once assertions hold
whatever the retries.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from hub.db.schema import coupons, idempotency_keys, outbox_events, redemptions
from tests.concurrency.support import Call, fire, outcome, patient, redeem_call, reversal_call
from tests.conftest import issue, make_template


def coupon_row(db: Engine, code: str) -> Any:
    with db.connect() as conn:
        return conn.execute(
            select(coupons.c.id, coupons.c.status, coupons.c.redemption_id).where(
                coupons.c.code == code
            )
        ).one()


def redemption_rows(db: Engine, coupon_id: str) -> list[Any]:
    with db.connect() as conn:
        return list(
            conn.execute(
                select(redemptions.c.id, redemptions.c.status).where(
                    redemptions.c.coupon_id == coupon_id
                )
            )
        )


def event_counts(db: Engine, coupon_id: str) -> Counter[str]:
    with db.connect() as conn:
        rows = conn.execute(
            select(outbox_events.c.type, func.count())
            .where(outbox_events.c.coupon_id == coupon_id)
            .group_by(outbox_events.c.type)
        )
        return Counter({t: n for t, n in rows})


def test_fifty_redeems_of_one_code_redeem_it_once(live_server, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    responses = fire(live_server, [redeem_call(merchant, code, f"one-code-{i}") for i in range(50)])

    outcomes = Counter(outcome(r) for r in responses)
    assert outcomes == {(201, "redeemed"): 1, (409, "coupon_already_redeemed"): 49}
    winner = next(r.json() for r in responses if r.status_code == 201)
    losers = [r.json() for r in responses if r.status_code == 409]
    # Losers say when and where the coupon went (the winner committed before they read it).
    assert all(doc["redeemed_store"] == "SH-001" for doc in losers)
    assert all(doc["redeemed_at"] == winner["redeemed_at"] for doc in losers)

    cp = coupon_row(db, code)
    rows = redemption_rows(db, cp.id)
    assert [(r.id, r.status) for r in rows] == [(winner["redemption_id"], "redeemed")]
    assert cp.status == "redeemed" and cp.redemption_id == winner["redemption_id"]
    assert event_counts(db, cp.id) == {"coupon.issued": 1, "coupon.redeemed": 1}
    with db.connect() as conn:
        stored = conn.execute(
            select(func.count())
            .select_from(idempotency_keys)
            .where(idempotency_keys.c.key.like("one-code-%"))
        ).scalar_one()
    assert stored == 50  # every outcome, refusals included, is kept for replay


def test_fifty_requests_with_one_key_execute_once(live_server, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    responses = fire(live_server, [redeem_call(merchant, code, "same-key") for _ in range(50)])

    for r in responses:
        assert r.status_code in (201, 409), f"{r.status_code}: {r.text}"
        if r.status_code == 409:
            assert r.json()["code"] == "idempotency_key_in_flight"
            assert "Idempotent-Replayed" not in r.headers
    created = [r for r in responses if r.status_code == 201]
    originals = [r for r in created if "Idempotent-Replayed" not in r.headers]
    replays = [r for r in created if "Idempotent-Replayed" in r.headers]
    assert len(originals) == 1, [dict(r.headers) for r in created]
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in replays)
    original = originals[0].content
    assert all(r.content == original for r in replays)
    if db.dialect.name == "sqlite":
        # Writers are serialised: every duplicate waits for the first and replays it.
        assert len(replays) == 49

    cp = coupon_row(db, code)
    rows = redemption_rows(db, cp.id)
    assert [r.id for r in rows] == [originals[0].json()["redemption_id"]]
    assert cp.status == "redeemed" and cp.redemption_id == rows[0].id
    assert event_counts(db, cp.id) == {"coupon.issued": 1, "coupon.redeemed": 1}

    # Whatever happened in the race, a later retry replays the one stored response.
    with httpx.Client(base_url=live_server, timeout=30) as c:
        again = patient(redeem_call(merchant, code, "same-key"), c)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == original


def test_redeems_racing_a_reversal_leave_a_consistent_state(live_server, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=5)
    with httpx.Client(base_url=live_server, timeout=30) as c:
        first = {code: patient(redeem_call(merchant, code, f"first-{code}"), c) for code in codes}
    assert all(r.status_code == 201 for r in first.values()), [r.text for r in first.values()]

    for rnd, code in enumerate(codes):
        rid = first[code].json()["redemption_id"]
        redeems = [redeem_call(merchant, code, f"race-{rnd}-{i}") for i in range(8)]
        # The reversal sits in the middle of the batch so it does not always start first.
        calls = [*redeems[:4], reversal_call(merchant, rid, f"rev-{rnd}"), *redeems[4:]]
        responses = fire(live_server, calls)
        rev = responses[4]
        assert (rev.status_code, rev.json()["status"]) == (201, "reversed"), rev.text
        redeem_outcomes = Counter(outcome(r) for i, r in enumerate(responses) if i != 4)
        won = redeem_outcomes[(201, "redeemed")]
        assert won <= 1, redeem_outcomes
        assert redeem_outcomes[(409, "coupon_already_redeemed")] == 8 - won, redeem_outcomes

        cp = coupon_row(db, code)
        rows = redemption_rows(db, cp.id)
        live = [r.id for r in rows if r.status == "redeemed"]
        reversed_ = [r.id for r in rows if r.status == "reversed"]
        assert reversed_ == [rid]
        assert len(rows) == 1 + won
        if won:
            new_id = next(
                r.json()["redemption_id"]
                for r in responses
                if r.status_code == 201 and r.json()["status"] == "redeemed"
            )
            assert live == [new_id]
            assert cp.status == "redeemed" and cp.redemption_id == new_id
        else:
            assert live == []
            assert cp.status == "issued" and cp.redemption_id is None
        assert event_counts(db, cp.id) == {
            "coupon.issued": 1,
            "coupon.redeemed": len(rows),
            "coupon.redemption_reversed": len(reversed_),
        }


def test_twenty_reversals_of_one_redemption_reverse_it_once(live_server, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    with httpx.Client(base_url=live_server, timeout=30) as c:
        r = patient(redeem_call(merchant, code, "to-reverse"), c)
    assert r.status_code == 201, r.text
    rid = r.json()["redemption_id"]

    responses = fire(live_server, [reversal_call(merchant, rid, f"rev-{i}") for i in range(20)])
    outcomes = Counter(outcome(r) for r in responses)
    assert outcomes == {(201, "reversed"): 1, (409, "redemption_already_reversed"): 19}
    winner = next(r.json() for r in responses if r.status_code == 201)
    assert winner["coupon_status"] == "issued"
    assert all(
        r.json()["reversed_at"] == winner["reversed_at"] for r in responses if r.status_code == 409
    )

    cp = coupon_row(db, code)
    assert cp.status == "issued" and cp.redemption_id is None
    assert [(x.id, x.status) for x in redemption_rows(db, cp.id)] == [(rid, "reversed")]
    assert event_counts(db, cp.id) == {
        "coupon.issued": 1,
        "coupon.redeemed": 1,
        "coupon.redemption_reversed": 1,
    }


def test_many_codes_redeemed_concurrently_all_succeed(live_server, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=100)
    # Store-bound keys imply their own store: only the SH-001 key may name SH-001.
    tokens = [merchant.admin_key, merchant.store_keys["SH-001"]]

    def batch(worker: int) -> Call:
        mine = codes[worker::20]
        token = tokens[worker % len(tokens)]

        def run(c: httpx.Client) -> httpx.Response:
            last = None
            for code in mine:
                last = patient(redeem_call(merchant, code, f"many-{code}", token), c)
                if last.status_code != 201:
                    return last
            assert last is not None
            return last

        return run

    responses = fire(live_server, [batch(w) for w in range(20)])
    for r in responses:
        assert r.status_code == 201, f"{r.status_code}: {r.text}"

    with db.connect() as conn:
        statuses = Counter(
            conn.execute(select(coupons.c.status).where(coupons.c.code.in_(codes))).scalars()
        )
        n_redemptions = conn.execute(
            select(func.count()).select_from(redemptions).where(redemptions.c.status == "redeemed")
        ).scalar_one()
        n_events = conn.execute(
            select(func.count())
            .select_from(outbox_events)
            .where(outbox_events.c.type == "coupon.redeemed")
        ).scalar_one()
        linked = conn.execute(
            select(func.count())
            .select_from(coupons.join(redemptions, redemptions.c.id == coupons.c.redemption_id))
            .where(coupons.c.code.in_(codes), redemptions.c.coupon_id == coupons.c.id)
        ).scalar_one()
    assert statuses == {"redeemed": 100}
    assert n_redemptions == 100 and n_events == 100 and linked == 100


def test_fifty_redeems_through_a_starved_pool_still_redeem_once(db, merchant, clock):
    """The server has two connections and waits 50 ms for one (a shared PostgreSQL under
    load looks like this): requests that find none are answered 503 with Retry-After,
    retried, and the coupon is still redeemed exactly once, every answer consistent."""
    import uvicorn

    from hub.api.app import create_app
    from hub.db.engine import make_engine
    from tests.conftest import free_port

    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    starved = make_engine(db.url.render_as_string(hide_password=False),
                          pool_size=2, max_overflow=0, pool_timeout=0.05)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(starved, clock=clock), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    busy: list[int] = []
    try:
        while not server.started:
            time.sleep(0.02)

        def counting(call: Call) -> Call:
            def run(c: httpx.Client) -> httpx.Response:
                r = call(c)
                if r.status_code == 503:
                    busy.append(1)
                    assert r.headers["Retry-After"] and r.json()["code"] == "database_busy"
                return r
            return run

        calls = [counting(redeem_call(merchant, code, f"starved-{i}")) for i in range(50)]
        responses = fire(f"http://127.0.0.1:{port}", calls)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        starved.dispose()

    outcomes = Counter(outcome(r) for r in responses)
    assert outcomes == {(201, "redeemed"): 1, (409, "coupon_already_redeemed"): 49}, busy
    cp = coupon_row(db, code)
    assert cp.status == "redeemed" and len(redemption_rows(db, cp.id)) == 1
    assert event_counts(db, cp.id) == {"coupon.issued": 1, "coupon.redeemed": 1}

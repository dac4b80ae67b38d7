"""The rollup consumer: what it counts, exactly once (twice run, racing consumers, a
late-committing transaction), and that a rebuild from the base tables gives the same
tables."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from hub.db.engine import write_conn
from hub.db.schema import analytics_applied, coupons, outbox_events
from hub.services import issuing, rollup
from tests.analytics.helpers import redeem, reverse, rollups
from tests.conftest import Clock, Merchant, issue, make_template

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def small_history(client: Any, db: Engine, m: Merchant, clock: Clock) -> None:
    clock.now = T0
    tpl = make_template(db, m, clock.now)
    codes = issue(db, m, tpl, clock.now, customers=["M0001", "M0002", "M0003"])
    codes += issue(db, m, tpl, clock.now, count=2)
    clock.now = T0 + timedelta(hours=15)  # 17:00 UTC = 01:00 next day in Shanghai
    r1 = redeem(client, m, codes[0], "SH-001", 12800, "A-1")
    clock.now = T0 + timedelta(days=2)
    redeem(client, m, codes[1], "SH-002", 20000, "A-2")
    reverse(client, m, r1)


def test_consumer_counts_once_and_matches_rebuild(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    small_history(client, db, merchant, clock)
    assert rollup.consume(db, clock.now) > 0
    first = rollups(db)
    assert rollup.consume(db, clock.now) == 0
    assert rollups(db) == first
    daily = {(r[1], r[2]): r[5:] for r in first["analytics_daily"]}
    # issued 5 (3 to customers: claimed at issue) on 2026-11-02, no store
    assert daily[("2026-11-02", "")] == (5, 3, 0, 0, 0, 0, 0, 0)
    # redeemed at 01:00 local on the 3rd (UTC: the 2nd), then reversed
    assert daily[("2026-11-03", "SH-001")] == (0, 0, 1, 1, 2000, 12800, 2000, 12800)
    assert daily[("2026-11-04", "SH-002")] == (0, 0, 1, 0, 2000, 20000, 0, 0)
    rollup.rebuild_rollups(db, None, clock.now)
    assert rollups(db) == first
    rollup.rebuild_rollups(db, merchant.id, clock.now)
    assert rollups(db) == first
    assert rollup.consume(db, clock.now) == 0
    assert rollups(db) == first


def test_a_late_commit_is_counted(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    small_history(client, db, merchant, clock)
    rollup.consume(db, clock.now)
    before = rollups(db)
    started, release = threading.Event(), threading.Event()

    tpl = make_template(db, merchant, clock.now, name="late")

    def late() -> None:  # takes a seq, then waits before committing
        with write_conn(db) as conn:
            issuing.issue_one(conn, merchant.principal, tpl, "M0004", "app", clock.now)
            started.set()
            release.wait(30)

    if db.dialect.name == "sqlite":  # one writer at a time: the gap cannot arise
        pytest.skip("SQLite serialises writers")
    t = threading.Thread(target=late)
    t.start()
    assert started.wait(10)
    # a later transaction commits meanwhile
    small_event(db, merchant, clock)
    rollup.consume(db, clock.now)
    with db.connect() as conn:
        applied = conn.execute(select(analytics_applied.c.seq)).scalars().all()
    assert applied, "the event above the open gap is remembered"
    release.set()
    t.join()
    rollup.consume(db, clock.now)
    with db.connect() as conn:
        assert not conn.execute(select(analytics_applied.c.seq)).scalars().all()
        top = conn.execute(select(outbox_events.c.seq).order_by(outbox_events.c.seq.desc())).first()
    assert rollup.progress(db)[0] == top[0]
    after = rollups(db)
    issued = sum(r[5] for r in after["analytics_daily"]) - sum(
        r[5] for r in before["analytics_daily"]
    )
    assert issued == 2  # the late coupon and the one committed meanwhile


def small_event(db: Engine, m: Merchant, clock: Clock) -> None:
    tpl = make_template(db, m, clock.now, name="later")
    issue(db, m, tpl, clock.now, count=1)


def test_rebuild_gives_the_consumers_tables_on_the_fixed_history(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    from tests.analytics.dataset import NOW, build

    build(client, db, merchant, clock)
    rollup.consume(db, NOW)
    consumed = rollups(db)
    assert consumed["analytics_customer_days"]  # sales and redemptions by customer
    for merchant_id in (None, merchant.id):
        rollup.rebuild_rollups(db, merchant_id, NOW)
        assert rollups(db) == consumed
        assert rollup.consume(db, NOW) == 0  # nothing applied twice
        assert rollups(db) == consumed


def test_a_second_merchant_is_untouched_by_a_rebuild_of_the_first(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    from tests.conftest import make_merchant

    other = make_merchant(db, T0, name="Other")
    small_history(client, db, merchant, clock)
    tpl = make_template(db, other, clock.now)
    issue(db, other, tpl, clock.now, count=3)
    rollup.consume(db, clock.now)
    before = rollups(db)
    rollup.rebuild_rollups(db, other.id, clock.now)
    assert rollups(db) == before
    # an event of the rebuilt merchant committed after the rebuild is applied once
    issue(db, other, tpl, clock.now, count=1)
    rollup.consume(db, clock.now)
    issued = sum(r[5] for r in rollups(db)["analytics_daily"] if r[0] == other.id)
    assert issued == 4


def test_racing_consumers_apply_each_event_once(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    small_history(client, db, merchant, clock)
    tpl = make_template(db, merchant, clock.now, name="many")
    for _ in range(6):
        issue(db, merchant, tpl, clock.now, count=50)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(10)
            for _ in range(20):
                rollup.consume_once(db, clock.now, batch=7)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rollup.consume(db, clock.now)
    consumed = rollups(db)
    rollup.rebuild_rollups(db, None, clock.now)
    assert rollups(db) == consumed
    issued = sum(r[5] for r in consumed["analytics_daily"])
    assert issued == 5 + 300


def test_a_crash_inside_a_batch_leaves_nothing_half_applied(
    client: Any, db: Engine, merchant: Merchant, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_history(client, db, merchant, clock)
    real = rollup.add_counts
    calls = []

    def failing(conn: Any, table: Any, keys: Any, rows: Any) -> None:
        real(conn, table, keys, rows)
        calls.append(table.name)
        if len(calls) == 2:
            raise RuntimeError("the process dies here")

    monkeypatch.setattr(rollup, "add_counts", failing)
    with pytest.raises(RuntimeError):
        rollup.consume(db, clock.now)
    assert rollup.progress(db)[0] == 0
    assert not any(rollups(db).values())
    monkeypatch.setattr(rollup, "add_counts", real)
    rollup.consume(db, clock.now)
    consumed = rollups(db)
    rollup.rebuild_rollups(db, None, clock.now)
    assert rollups(db) == consumed


def test_the_runtime_runs_the_consumer(db: Engine, merchant: Merchant, clock: Clock) -> None:
    from hub.delivery.runtime import PERIODIC_JOBS

    [job] = [j for j in PERIODIC_JOBS if j.name == "analytics.rollup"]
    assert job.every == 1.0
    tpl = make_template(db, merchant, clock.now)
    issue(db, merchant, tpl, clock.now, count=2)
    assert job.run(db, clock.now) == 3  # template.created and two coupon.issued


def test_an_event_without_its_row_is_skipped_not_stuck(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    from hub.services import outbox

    with write_conn(db) as conn:
        outbox.insert_events(conn, [
            outbox.event_row(type="coupon.redeemed", merchant_id=merchant.id,
                             occurred_at=clock.now, recorded_at=clock.now,
                             data={"redemption_id": "rdm_gone"}),
            outbox.event_row(type="sale.recorded", merchant_id=merchant.id,
                             occurred_at=clock.now, recorded_at=clock.now, data={}),
        ])  # fmt: skip
    assert rollup.consume(db, clock.now) == 2
    with db.connect() as conn:
        top = conn.execute(select(func.max(outbox_events.c.seq))).scalar()
    assert rollup.progress(db)[0] == top
    assert not any(rollups(db).values())


def _post(client: Any, m: Merchant, path: str, body: dict[str, Any]) -> None:
    r = client.post(path, json=body, headers={**m.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code in (200, 201), r.text


def _open_claims(db: Engine) -> int:
    return sum(r[-1] for r in rollups(db)["analytics_open_claims"])


def test_open_claims_follow_issue_claim_redeem_reverse_void(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    """Claimed, unredeemed coupons: issued to a customer, or claimed later, count; a
    redeem or void of a held coupon takes one off, a reversal back to issued puts it
    back; an unheld coupon's redeem and void change nothing. Batch by batch the
    consumer's table equals a rebuild's."""
    clock.now = T0
    tpl = make_template(db, merchant, clock.now)
    held = issue(db, merchant, tpl, clock.now, customers=["M0001", "M0002", "M0003"])
    free = issue(db, merchant, tpl, clock.now, count=3)
    body = {"template_id": tpl, "name": "Spring", "channels": ["h5"], "total": 3,
            "per_customer": 1, "starts_at": "2026-11-01T00:00:00Z",
            "ends_at": "2026-11-09T00:00:00Z"}  # fmt: skip
    r = client.post("/v1/campaigns", headers=merchant.auth(), json=body)
    assert r.status_code == 201, r.text
    campaign = r.json()["id"]
    steps = [
        # a campaign claim emits coupon.issued (with the customer) and coupon.claimed
        lambda: _post(
            client, merchant, f"/v1/campaigns/{campaign}/claims",
            {"customer": "M0005", "channel": "h5"},
        ),
        lambda: _post(client, merchant, f"/v1/coupons/{free[0]}/claim", {"customer": "M0004"}),
        lambda: reverse(
            client, merchant, redeem(client, merchant, held[0], "SH-001", 12800, "B-1")
        ),
        lambda: redeem(client, merchant, held[1], "SH-001", 12800, "B-2"),
        lambda: _post(client, merchant, f"/v1/coupons/{held[2]}/void", {"reason": "mistake"}),
        lambda: redeem(client, merchant, free[1], "SH-002", 12800, "B-3"),
        lambda: _post(client, merchant, f"/v1/coupons/{free[2]}/void", {"reason": "mistake"}),
    ]
    expected = [3, 4, 5, 5, 4, 3, 3, 3]
    rollup.consume(db, clock.now)
    assert _open_claims(db) == expected[0]
    for step, want in zip(steps, expected[1:], strict=True):
        clock.now += timedelta(minutes=5)
        step()
        rollup.consume(db, clock.now)
        assert _open_claims(db) == want
        seen = rollups(db)
        rollup.rebuild_rollups(db, None, clock.now)
        assert rollups(db) == seen


def test_expiring_leaves_out_what_closed_earlier_today(
    client: Any, db: Engine, merchant: Merchant, clock: Clock
) -> None:
    """Today's row of analytics_open_claims holds every claimed coupon whose last day is
    today; ``expiring`` counts those still usable now. Shanghai: 11-03 local midnight is
    11-02 16:00 UTC."""
    clock.now = T0
    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, customers=["M0001", "M0002", "M0003"])
    ends = [
        datetime(2026, 11, 3, 1, 0, tzinfo=UTC),  # 09:00 local on 11-03
        datetime(2026, 11, 3, 8, 0, tzinfo=UTC),  # 16:00 local on 11-03
        datetime(2026, 11, 3, 16, 0, tzinfo=UTC),  # midnight: last usable day 11-03
    ]
    with write_conn(db) as conn:
        for code, end in zip(codes, ends, strict=True):
            conn.execute(update(coupons).where(coupons.c.code == code).values(valid_until=end))
    rollup.consume(db, clock.now)

    def total(now: datetime, days: int) -> int:
        clock.now = now
        r = client.get("/v1/analytics/expiring", params={"days": days},
                       headers=merchant.auth())  # fmt: skip
        assert r.status_code == 200, r.text
        assert sum(row["coupons"] for row in r.json()["rows"]) == r.json()["total"]
        return int(r.json()["total"])

    assert total(datetime(2026, 11, 2, 15, 0, tzinfo=UTC), 1) == 0  # 11-02: none ends today
    assert total(datetime(2026, 11, 2, 15, 0, tzinfo=UTC), 2) == 3
    assert total(datetime(2026, 11, 2, 20, 0, tzinfo=UTC), 1) == 3  # 04:00 local 11-03
    assert total(datetime(2026, 11, 3, 4, 0, tzinfo=UTC), 1) == 2  # 12:00: the first closed
    assert total(datetime(2026, 11, 3, 8, 0, tzinfo=UTC), 1) == 1  # 16:00: the second too
    assert total(datetime(2026, 11, 3, 16, 0, tzinfo=UTC), 7) == 0  # 11-04: all gone


def test_a_round_applies_one_batch_unless_it_came_back_full(monkeypatch) -> None:
    """Under load new events arrive while a batch is applied: the round does not chase them
    with a stream of tiny batches (each pays the batch's fixed reads, lock and commit);
    the next round takes them. Only a full batch (a backlog) is followed by another."""
    calls: list[int] = []
    answers = iter([7, 3, 0])

    def fake(engine: Any, now: datetime, batch: int = rollup.BATCH) -> int:
        calls.append(batch)
        return next(answers)

    monkeypatch.setattr(rollup, "consume_once", fake)
    assert rollup.consume(None, T0, batch=10) == 7  # type: ignore[arg-type]
    assert calls == [10]

    calls.clear()
    answers = iter([10, 10, 4, 9])
    assert rollup.consume(None, T0, batch=10) == 24  # type: ignore[arg-type]
    assert calls == [10, 10, 10]

    calls.clear()
    answers = iter([10] * 50)
    assert rollup.consume(None, T0, batch=10, max_batches=5) == 50  # type: ignore[arg-type]
    assert len(calls) == 5

    calls.clear()
    answers = iter([None])  # another consumer holds the lock
    assert rollup.consume(None, T0, batch=10) == 0  # type: ignore[arg-type]


def test_a_backlog_larger_than_a_batch_is_applied_in_one_round(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    issue(db, merchant, tpl, clock.now, count=25)
    assert rollup.consume(db, clock.now, batch=10) == 26  # template.created + 25 issued
    assert rollup.consume(db, clock.now, batch=10) == 0
    daily = rollups(db)["analytics_daily"]
    assert sum(r[5] for r in daily) == 25  # issued


def test_odd_event_data_is_read_as_absent_not_as_a_crash(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    """The consumer reads only a few fields of an event's data, extracted by the database:
    a JSON null, a number where an id belongs, or a field missing all count as absent."""
    from hub.services import outbox

    with write_conn(db) as conn:
        outbox.insert_events(conn, [
            outbox.event_row(type="coupon.redeemed", merchant_id=merchant.id,
                             occurred_at=clock.now, recorded_at=clock.now,
                             data={"redemption_id": 12345, "customer": None}),
            outbox.event_row(type="coupon.redemption_reversed", merchant_id=merchant.id,
                             occurred_at=clock.now, recorded_at=clock.now,
                             data={"redemption_id": None, "coupon_status": ["issued"]}),
            outbox.event_row(type="sale.recorded", merchant_id=merchant.id,
                             occurred_at=clock.now, recorded_at=clock.now,
                             data={"sale_id": {"nested": "sal_x"}}),
        ])  # fmt: skip
    assert rollup.consume(db, clock.now) == 3
    assert not any(rollups(db).values())


@pytest.fixture
def sqlite_db(tmp_path: Any) -> Any:
    from hub.db.engine import make_engine
    from hub.db.migrate import upgrade
    from tests.conftest import TEST_POOL

    eng = make_engine(str(tmp_path / "hub.db"), **TEST_POOL)
    upgrade(eng)
    yield eng
    eng.dispose()


def test_sqlite_holds_its_writer_lock_only_to_write_and_a_batch_read_stale_is_dropped(
    sqlite_db: Engine, clock: Clock, monkeypatch
) -> None:
    """SQLite's writer lock stops every redeem: the consumer reads and tallies a batch
    outside it and takes it only to write. If another consumer committed in between (the
    watermark or the applied set moved), the stale batch is dropped, not written twice."""
    from tests.conftest import make_merchant

    m = make_merchant(sqlite_db, clock.now)
    tpl = make_template(sqlite_db, m, clock.now)
    assert rollup.consume(sqlite_db, clock.now) > 0  # the first run sets the watermark
    issue(sqlite_db, m, tpl, clock.now, count=4)

    locked_while_tallying: list[bool] = []
    real_tally = rollup._tally_events

    def tally_and_check(conn: Any, events: list[Any]) -> Any:
        from hub.db.engine import _writer_lock

        writers = _writer_lock(sqlite_db)
        assert writers is not None
        locked_while_tallying.append(writers.locked())
        if not writers.locked():  # a redeem's write transaction can run meanwhile
            with write_conn(sqlite_db) as other:
                other.execute(select(1))
        return real_tally(conn, events)

    monkeypatch.setattr(rollup, "_tally_events", tally_and_check)
    assert rollup.consume_once(sqlite_db, clock.now) == 4
    assert locked_while_tallying == [False]
    issued = sum(r[5] for r in rollups(sqlite_db)["analytics_daily"])
    assert issued == 4

    issue(sqlite_db, m, tpl, clock.now, count=3)

    def another_consumer_goes_first(conn: Any, events: list[Any]) -> Any:
        monkeypatch.setattr(rollup, "_tally_events", real_tally)
        assert rollup._consume_locked(sqlite_db, clock.now, rollup.BATCH) == 3
        return real_tally(conn, events)

    monkeypatch.setattr(rollup, "_tally_events", another_consumer_goes_first)
    assert rollup.consume_once(sqlite_db, clock.now) is None  # stale: dropped
    assert rollup.consume_once(sqlite_db, clock.now) == 0
    assert sum(r[5] for r in rollups(sqlite_db)["analytics_daily"]) == 7  # each once

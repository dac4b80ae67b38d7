"""The reminder job on SQLite and PostgreSQL: which coupons get coupon.expiring, once."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, literal, select, update

from hub.db.schema import coupon_reminders, coupons, customers, outbox_events
from hub.delivery.runtime import PERIODIC_JOBS, Runtime
from hub.events.schemas import validate_event
from hub.services import catalog, issuing, outbox, reminders
from hub.services.jsonio import iso as json_time
from hub.services.reminders import REMINDER_INTERVAL, send_due_reminders
from tests.conftest import Clock, Merchant, issue, make_template

DAY = timedelta(days=1)


def iso(dt: datetime) -> str:
    return dt.isoformat()


def template(db: Engine, m: Merchant, now: datetime, days: list[int] | None, end: datetime,
             name: str = "满100减20", start: datetime | None = None) -> str:
    spec: dict[str, Any] = {
        "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
        "validity": {"type": "fixed", "start": iso(start or now - DAY), "end": iso(end)},
    }
    if days is not None:
        spec["remind_days_before"] = days
    return make_template(db, m, now, spec, name=name)


def expiring(db: Engine) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(outbox_events).where(outbox_events.c.type == "coupon.expiring")
            .order_by(outbox_events.c.seq)
        ).all()
    out = []
    for r in rows:
        env = outbox.envelope(id=r.id, type=r.type, merchant_id=r.merchant_id,
                              occurred_at=r.occurred_at, recorded_at=r.recorded_at, data=r.data)
        validate_event(env)  # every emitted event matches the published schema
        out.append(env)
    return out


def sent(db: Engine) -> list[tuple[str, int]]:
    return [(e["data"]["code"], e["data"]["days_before"]) for e in expiring(db)]


def reminder_rows(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(coupon_reminders)).scalar_one())


def test_the_job_is_a_periodic_job_every_30_seconds() -> None:
    job = next(j for j in PERIODIC_JOBS if j.name == "reminders.expiring")
    assert job.every == REMINDER_INTERVAL == 30.0


def test_three_days_then_one_day_each_once(db: Engine, merchant: Merchant, clock: Clock) -> None:
    start = clock.now
    end = start + 10 * DAY
    tid = template(db, merchant, start, [3, 1], end)
    (code,) = issue(db, merchant, tid, start, customers=["M0001"])
    assert send_due_reminders(db, start) == 0
    assert send_due_reminders(db, end - 3 * DAY - timedelta(seconds=1)) == 0
    assert send_due_reminders(db, end - 3 * DAY) == 1
    assert send_due_reminders(db, end - 3 * DAY) == 0  # twice: nothing new
    assert send_due_reminders(db, end - 2 * DAY) == 0
    assert sent(db) == [(code, 3)]
    assert send_due_reminders(db, end - DAY + timedelta(hours=1)) == 1
    assert send_due_reminders(db, end - timedelta(seconds=1)) == 0
    assert send_due_reminders(db, end + DAY) == 0
    assert sent(db) == [(code, 3), (code, 1)]
    assert reminder_rows(db) == 2
    first, second = expiring(db)
    d = first["data"]
    assert d["customer"] == "M0001"
    assert d["template"] == {"id": tid, "name": "满100减20", "kind": "threshold"}
    assert d["template_id"] == tid
    assert d["valid_until"] == json_time(end)
    assert d["remind_at"] == json_time(end - 3 * DAY)
    assert second["data"]["days_before"] == 1
    with db.connect() as conn:
        rows = conn.execute(select(coupon_reminders).order_by(coupon_reminders.c.days_before)).all()
        ev = {e["id"] for e in (first, second)}
    assert {r.event_id for r in rows} == ev  # each row names the event it emitted


def test_default_is_three_days_and_empty_is_none(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    now = clock.now
    end = now + 2 * DAY
    default = template(db, merchant, now, None, end, name="default")
    none = template(db, merchant, now, [], end, name="none")
    (a,) = issue(db, merchant, default, now, customers=["M0001"])
    issue(db, merchant, none, now, customers=["M0002"])
    assert send_due_reminders(db, now) == 1
    assert sent(db) == [(a, 3)]


def test_claimed_late_gets_the_nearest_only(db: Engine, merchant: Merchant, clock: Clock) -> None:
    """A coupon whose window is 2 days from its end when the job sees it, [3, 1]: the 3-day
    reminder at once (never both), the 1-day one later."""
    now = clock.now
    end = now + 2 * DAY
    tid = template(db, merchant, now, [3, 1], end)
    (code,) = issue(db, merchant, tid, now, customers=["M0001"])
    assert send_due_reminders(db, now) == 1
    assert send_due_reminders(db, end - DAY - timedelta(seconds=1)) == 0
    assert send_due_reminders(db, end - DAY) == 1
    assert sent(db) == [(code, 3), (code, 1)]


def test_job_down_for_days_skips_the_passed_reminder(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    now = clock.now
    end = now + 10 * DAY
    tid = template(db, merchant, now, [7, 3, 1], end)
    (code,) = issue(db, merchant, tid, now, customers=["M0001"])
    assert send_due_reminders(db, end - 2 * DAY) == 1  # 7 and 3 came; only 3 is sent
    assert send_due_reminders(db, end - 2 * DAY) == 0
    assert send_due_reminders(db, end - timedelta(hours=1)) == 1
    assert send_due_reminders(db, end - timedelta(minutes=1)) == 0
    assert sent(db) == [(code, 3), (code, 1)]


def test_unclaimed_redeemed_voided_expired_and_unopened_get_none(
    db: Engine, merchant: Merchant, clock: Clock, client: Any
) -> None:
    now = clock.now
    end = now + 2 * DAY
    tid = template(db, merchant, now, [3], end)
    unclaimed = issue(db, merchant, tid, now, count=1)
    redeemed, voided, reminded = issue(db, merchant, tid, now, customers=["M0001", "M0002",
                                                                       "M0003"])
    r = client.post(
        "/v1/redemptions",
        json={"code": redeemed, "store": "SH-001", "order": {"id": "O-1", "amount": 12800}},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    issuing.void_coupon(db, merchant.principal, voided, "mistake", now)
    # a window closed already, and one not open yet
    old = template(db, merchant, now - 10 * DAY, [3], now - timedelta(seconds=1), name="old",
                   start=now - 20 * DAY)
    issue(db, merchant, old, now - 10 * DAY, customers=["M0004"])
    later = template(db, merchant, now, [3], now + 2 * DAY, name="later",
                     start=now + DAY)
    (unopened,) = issue(db, merchant, later, now, customers=["M0005"])
    assert send_due_reminders(db, now) == 1
    assert sent(db) == [(reminded, 3)]
    assert unclaimed
    # the window opens: its reminder is due then (remind_at is the window's start)
    assert send_due_reminders(db, now + DAY) == 1
    assert sent(db)[-1] == (unopened, 3)
    assert expiring(db)[-1]["data"]["remind_at"] == json_time(now + DAY)


def test_a_reversed_redemption_is_reminded_again(
    db: Engine, merchant: Merchant, clock: Clock, client: Any
) -> None:
    now = clock.now
    end = now + 2 * DAY
    tid = template(db, merchant, now, [3, 1], end)
    (code,) = issue(db, merchant, tid, now, customers=["M0001"])
    r = client.post(
        "/v1/redemptions",
        json={"code": code, "store": "SH-001", "order": {"id": "O-1", "amount": 12800}},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    assert send_due_reminders(db, now) == 0
    r = client.post(
        f"/v1/redemptions/{r.json()['redemption_id']}/reversal", json={},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    assert send_due_reminders(db, now) == 1
    assert sent(db) == [(code, 3)]


def test_a_transferred_coupon_reminds_its_holder_when_sent(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    now = clock.now
    end = now + 5 * DAY
    tid = template(db, merchant, now, [3, 1], end)
    (code,) = issue(db, merchant, tid, now, customers=["M0001"])
    assert send_due_reminders(db, end - 3 * DAY) == 1
    with db.begin() as conn:  # what accepting a transfer does to the holder
        friend = conn.execute(
            select(customers.c.id).where(customers.c.external_id == "M0002")
        ).scalar_one()
        conn.execute(update(coupons).where(coupons.c.code == code).values(customer_id=friend))
    assert send_due_reminders(db, end - 3 * DAY + timedelta(hours=1)) == 0  # not again
    assert send_due_reminders(db, end - DAY) == 1
    assert [e["data"]["customer"] for e in expiring(db)] == ["M0001", "M0002"]


def test_batches_and_a_restart_send_each_once(db: Engine, merchant: Merchant, clock: Clock) -> None:
    now = clock.now
    end = now + 2 * DAY
    tid = template(db, merchant, now, [3], end)
    codes = issue(db, merchant, tid, now, customers=[f"M000{i}" for i in range(1, 6)])
    other = template(db, merchant, now, [3], end, name="another")
    codes += issue(db, merchant, other, now, customers=[f"M000{i}" for i in range(1, 6)])
    # batches of 3 over 10 coupons of two templates
    assert send_due_reminders(db, now, batch=3) == 10
    # a "restart": a new runtime, its periodic job run again
    rt = Runtime(db, clock=lambda: now + timedelta(minutes=1))
    try:
        job = next(j for j in PERIODIC_JOBS if j.name == "reminders.expiring")
        assert rt.run_periodic_once(job) == 0
    finally:
        rt.stop()
    assert sorted(sent(db)) == sorted((c, 3) for c in codes)
    assert reminder_rows(db) == 10


@pytest.mark.parametrize("lock", [True, False], ids=["advisory-lock", "no-lock"])
def test_concurrent_runs_send_each_once(
    db: Engine, merchant: Merchant, clock: Clock, lock: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four threads run the job at once in small batches. Without the advisory lock
    (PostgreSQL: every run works at once), the primary key and ON CONFLICT DO NOTHING
    still let only one of them emit each reminder."""
    if not lock:
        monkeypatch.setattr(reminders, "_TRY_LOCK", select(literal(True)))
    now = clock.now
    end = now + 2 * DAY
    tid = template(db, merchant, now, [3], end)
    ids = [f"C{i:04d}" for i in range(40)]
    for external_id in ids:
        catalog.create_customer(db, merchant.principal, external_id, None, None, now)
    codes = issue(db, merchant, tid, now, customers=ids)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(3):
                results.append(send_due_reminders(db, now, batch=7))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    last = send_due_reminders(db, now)  # whatever the runs locked out of a round left
    assert sum(results) + last == 40
    assert sorted(sent(db)) == sorted((c, 3) for c in codes)
    assert reminder_rows(db) == 40

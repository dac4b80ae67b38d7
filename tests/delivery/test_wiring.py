"""How the layers are wired at start-up, not by imports: the services announce new
deliveries through the outbox's hook, which the broker set-up installs; the ``deliver``
actor calls the handler the runtime gave :func:`hub.delivery.queue.configure`; the
circuit breaker raises its alert through the alerts service."""

from __future__ import annotations

import time

import dramatiq
import httpx
import pytest
import respx
from sqlalchemy import func, select
from structlog.testing import capture_logs

from hub.db.schema import deliveries, outbox_events, reservations
from hub.delivery import policy, queue
from hub.delivery.runtime import Runtime
from hub.services import outbox
from tests.conftest import issue, make_template, order
from tests.delivery.support import URL, redeem, runtime, subscribe
from tests.delivery.support import deliveries as listed


def _consume(broker: dramatiq.Broker) -> None:
    """Run the queued messages through a one-thread worker, then stop it."""
    worker = dramatiq.Worker(broker, worker_threads=1, queues={queue.QUEUE})
    worker.start()
    try:
        broker.join(queue.QUEUE, timeout=10_000)  # type: ignore[attr-defined]
        worker.join()
    finally:
        worker.stop()


def test_the_actor_calls_the_handler_given_at_configure():
    seen: list[str] = []
    broker = queue.configure(None, handler=seen.append)
    queue.enqueue(["dlv_a", "dlv_b"])
    _consume(broker)
    assert sorted(seen) == ["dlv_a", "dlv_b"]


def test_ids_waiting_together_go_out_in_one_message():
    """One message per batch of ids (at most IDS_PER_MESSAGE); a message of an older
    sender, one id, still reaches the handler."""
    seen: list[str] = []
    broker = queue.configure(None, handler=seen.append)
    ids = [f"dlv_{i}" for i in range(queue.IDS_PER_MESSAGE + 1)]
    queue.enqueue(ids)
    assert broker.queues[queue.QUEUE].qsize() == 2  # type: ignore[attr-defined]
    queue._state["actor"].send("dlv_old")
    _consume(broker)
    assert sorted(seen) == sorted([*ids, "dlv_old"])


def test_the_broker_sender_groups_what_is_waiting(monkeypatch):
    """The sender thread of a real broker: the ids waiting when it wakes go out in one
    message, a lone id alone (nothing waits for company)."""
    sent: list[tuple[str, ...]] = []

    class Actor:
        def send(self, *ids: str) -> None:
            sent.append(ids)

    from queue import SimpleQueue

    from hub.delivery.backoff import BrokerBackoff

    monkeypatch.setitem(queue._state, "backoff", BrokerBackoff("test"))
    outgoing: SimpleQueue[str | None] = SimpleQueue()
    for i in range(queue.IDS_PER_MESSAGE + 3):
        outgoing.put(f"dlv_{i}")
    outgoing.put(None)
    queue._send_loop(Actor(), outgoing)
    assert [len(m) for m in sent] == [queue.IDS_PER_MESSAGE, 3]
    sent.clear()
    outgoing.put("dlv_lone")
    outgoing.put(None)
    queue._send_loop(Actor(), outgoing)
    assert sent == [("dlv_lone",)]


def test_a_released_handler_is_called_no_more():
    seen: list[str] = []
    other: list[str] = []
    broker = queue.configure(None, handler=seen.append)
    queue.release(other.append)  # not the installed one: nothing changes
    queue.enqueue(["dlv_a"])
    _consume(broker)
    queue.release(seen.append)
    with capture_logs() as logs:
        queue.enqueue(["dlv_b"])
        _consume(broker)
    assert seen == ["dlv_a"] and other == []
    assert {"event": "delivery.no_runtime", "delivery_id": "dlv_b", "log_level": "warning"} in [
        {k: e[k] for k in ("event", "delivery_id", "log_level") if k in e} for e in logs
    ]


def test_configure_installs_the_announcer_redeems_reach_the_handler(client, db, merchant, clock):
    """services → outbox hook → queue → actor → handler, no runtime object anywhere."""
    subscribe(client, merchant, events=["coupon.redeemed"])
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    seen: list[str] = []
    broker = queue.configure(None, handler=seen.append)
    redeem(client, merchant, code)
    _consume(broker)
    [made] = listed(client, merchant)
    assert seen == [made["id"]]


def test_new_deliveries_are_announced_after_commit_and_never_on_rollback(
    client, db, merchant, clock
):
    subscribe(client, merchant, events=["coupon.issued"])
    tpl = make_template(db, merchant, clock.now)
    announced: list[list[str]] = []
    outbox.announce_with(announced.append)
    row = outbox.event_row(
        type="coupon.issued",
        merchant_id=merchant.id,
        occurred_at=clock.now,
        recorded_at=clock.now,
        data={"template_id": tpl},
    )
    with pytest.raises(RuntimeError), db.begin() as conn:
        outbox.append(conn, [row])
        assert announced == []  # not before the commit
        raise RuntimeError("roll back")
    assert announced == []
    with db.connect() as conn:
        assert conn.execute(select(deliveries.c.id)).all() == []

    issue(db, merchant, tpl, clock.now, count=2)
    with db.connect() as conn:
        made = set(conn.execute(select(deliveries.c.id)).scalars())
    assert len(made) == 2 and [set(ids) for ids in announced] == [made]


def test_without_an_announcer_the_records_wait_for_the_sweeper(client, db, merchant, clock):
    subscribe(client, merchant, events=["coupon.issued"])
    outbox.announce_with(None)
    issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    [made] = listed(client, merchant)
    assert made["status"] == "pending"
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=httpx.Response(200))
        with runtime(db, clock) as rt:
            assert rt.sweep_once() == [] and rt.drain() == 1  # due, found by the sweep
    assert route.call_count == 1


def test_a_started_runtime_delivers_through_the_broker_and_stops_cleanly(
    client, db, merchant, clock, receiver
):
    """The embedded set-up of ``hub serve``: the runtime configures the stub broker with
    itself as the handler; a redeem's delivery arrives with no drain (the sweeper would
    only re-send it after ``sweeper.STALE``)."""
    subscribe(client, merchant, receiver.url, events=["coupon.redeemed"])
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    rt = Runtime(db, clock=clock)
    rt.start(worker=True, threads=1)
    try:
        redeem(client, merchant, code)
        deadline = time.monotonic() + 20
        while not receiver.events and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        rt.stop()
    assert [e["type"] for e in receiver.events] == ["coupon.redeemed"]
    broker = queue.configure(None)  # the same broker; the stopped runtime let go of it
    with capture_logs() as logs:
        queue.enqueue(["dlv_after_stop"])
        _consume(broker)
    assert ("delivery.no_runtime", "dlv_after_stop") in [
        (e["event"], e.get("delivery_id")) for e in logs
    ]


def test_the_circuit_alert_is_raised_through_the_alerts_service(
    client, db, merchant, clock, monkeypatch
):
    monkeypatch.setattr(policy, "CIRCUIT_THRESHOLD", 2)
    sub = subscribe(client, merchant, events=["coupon.redeemed"], retry_schedule=[1] * 5)
    codes = issue(db, merchant, make_template(db, merchant, clock.now), clock.now, count=2)
    for code in codes:
        redeem(client, merchant, code)
    with capture_logs() as logs, respx.mock() as mock:
        mock.post(URL).mock(return_value=httpx.Response(503))
        with runtime(db, clock) as rt:
            rt.drain()
    raised = [e for e in logs if e["event"] == "alert.raised"]
    assert [(e["alert"], e["merchant_id"]) for e in raised] == [
        ("subscription_circuit_open", merchant.id)
    ]
    assert any(
        e["event"] == "subscription.circuit_open" and e["subscription_id"] == sub for e in logs
    )


def test_a_started_runtime_ends_lapsed_reservations(client, db, merchant, clock, monkeypatch):
    """The sweeper's loop (embedded ``hub serve`` and every ``hub worker``) also records
    reservations whose hold lapsed, with their one ``reservation.expired`` event."""
    from hub.delivery import runtime as rt_module

    monkeypatch.setattr(rt_module, "SWEEP_INTERVAL", 0.05)
    monkeypatch.setattr(rt_module, "RESERVATION_EXPIRY_INTERVAL", 0.1)
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    r = client.post("/v1/reservations", json={"codes": [code], "store": "SH-001",
                                              "channel": "web", "order": order(),
                                              "ttl_seconds": 60},
                    headers={**merchant.auth(), "Idempotency-Key": "lapse"})
    assert r.status_code == 201, r.text
    clock.advance(seconds=61)
    rt = Runtime(db, clock=clock)
    rt.start(worker=True, threads=1)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with db.connect() as conn:
                status = conn.execute(select(reservations.c.status)).scalar()
            if status == "expired":
                break
            time.sleep(0.05)
    finally:
        rt.stop()
    assert status == "expired"
    with db.connect() as conn:
        n = conn.execute(select(func.count()).select_from(outbox_events).where(
            outbox_events.c.type == "reservation.expired")).scalar_one()
    assert n == 1

"""/health, /ready and /metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from hub.delivery import queue
from hub.delivery.runtime import Runtime
from tests.conftest import issue, make_template, order
from tests.delivery.support import subscribe


def test_health_and_ready_need_no_key(client):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "database": "ok", "broker": "ok"}


def test_ready_says_when_the_broker_is_down(client, monkeypatch):
    monkeypatch.setenv("HUB_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    queue.reset()
    r = client.get("/ready")
    assert r.status_code == 503
    assert r.json()["broker"].startswith("error") and r.json()["database"] == "ok"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_deliveries_attempts_and_latency(client, db, merchant, clock, receiver):
    receiver.script = [503]
    sub = subscribe(client, merchant, receiver.url, retry_schedule=[1, 1])
    tpl = make_template(db, merchant, clock.now)
    a, b = issue(db, merchant, tpl, clock.now, count=2)
    for i, code in enumerate((a, b)):
        r = client.post("/v1/redemptions", json={"code": code, "store": "SH-001",
                                                 "order": order()},
                        headers={**merchant.auth(), "Idempotency-Key": f"m{i}"})
        assert r.status_code == 201
    rt = Runtime(db, clock=clock)
    try:
        rt.drain()
        text = client.get("/metrics").text
        s = _samples(text)
        assert s[("hub_deliveries", (("status", "retrying"),))] == 1
        assert s[("hub_deliveries", (("status", "succeeded"),))] == 1
        assert s[("hub_delivery_attempts_total", (("outcome", "retry"),))] == 1
        assert s[("hub_delivery_attempts_total", (("outcome", "delivered"),))] == 1
        assert ("hub_oldest_waiting_delivery_age_seconds", (("subscription", sub),)) in s
        assert s[("hub_delivery_attempt_latency_seconds_count", ())] == 2
        clock.advance(seconds=2)
        rt.drain()
    finally:
        rt.stop()
    s = _samples(client.get("/metrics").text)
    assert s[("hub_deliveries", (("status", "succeeded"),))] == 2
    assert not any(k[0] == "hub_oldest_waiting_delivery_age_seconds" for k in s)

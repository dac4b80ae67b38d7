"""HUB_PERIODIC_JOBS_OFF: the periodic jobs a runtime leaves out, by name."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from hub.delivery import runtime
from hub.delivery.runtime import PeriodicJob, Runtime, jobs_off


def test_names_are_comma_separated_and_trimmed():
    assert jobs_off({}) == frozenset()
    assert jobs_off({"HUB_PERIODIC_JOBS_OFF": " analytics.rollup, ,reminders "}) == {
        "analytics.rollup",
        "reminders",
    }


def test_a_job_turned_off_does_not_run(db, monkeypatch: pytest.MonkeyPatch):
    ran: list[str] = []
    both = threading.Event()

    def job(name: str):
        def run(_engine, _now):
            ran.append(name)
            if "on" in ran:
                both.set()

        return run

    monkeypatch.setattr(runtime, "SWEEP_INTERVAL", 0.01)
    jobs = [PeriodicJob("off", 0.01, job("off")), PeriodicJob("on", 0.01, job("on"))]
    monkeypatch.setattr(runtime, "PERIODIC_JOBS", jobs)
    monkeypatch.setenv("HUB_PERIODIC_JOBS_OFF", "off")
    rt = Runtime(db, clock=lambda: datetime.now(UTC))
    rt._stop.clear()
    t = threading.Thread(target=rt._sweep_loop, daemon=True)
    t.start()
    assert both.wait(10)
    rt._stop.set()
    t.join(5)
    assert "off" not in ran

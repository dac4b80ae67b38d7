"""Scale-out (issue 11, item 4): `hub serve --workers N` (API processes sharing one
port), `hub worker --processes M`, and a graceful stop on SIGTERM for both.

Real subprocesses on loopback. Which process holds a connection is read from the kernel
(/proc: the listening socket's and each accepted connection's inode, and which process
holds it open): no header or endpoint names a process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from tests.delivery.multiproc import (
    PREEXEC,
    RedisServer,
    Sink,
    free_port,
    pg_database,
    start_sink,
    wait_until,
)
from tests.support import alive, children, holders, listening_children, tcp_inodes

HUB = str(Path(sys.executable).with_name("hub"))
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_EGRESS_ALLOW="127.0.0.0/8", HUB_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1", **extra
    )
    return env


# --- what the kernel says ----------------------------------------------------------------


def _server_of_new_connection(port: int, children: set[int]) -> tuple[socket.socket, set[int]]:
    """Open a connection, get an answer on it, and say which process holds its other end."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"GET /health HTTP/1.1\r\nHost: hub\r\n\r\n")
    assert conn.recv(4096).startswith(b"HTTP/1.1 200")
    mine = conn.getsockname()[1]
    inode = tcp_inodes(port).get(("01", mine))
    return conn, holders(inode, children) if inode else set()


def _draining(port: int) -> bool:
    r = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
    return r.status_code == 503 and r.json().get("code") == "draining"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


# --- running hub ---------------------------------------------------------------------------


@contextlib.contextmanager
def running(
    args: list[str], workdir: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / f"{args[0]}.log", "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen([HUB, *args], cwd=workdir, env=env, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=PREEXEC)
    try:
        yield proc
    finally:
        started = children(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)
        for child in started:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
        log.close()


def _log(workdir: Path, name: str) -> str:
    return (workdir / f"{name}.log").read_text(errors="replace")


def _serve(workdir: Path, port: int, *extra: str) -> list[str]:
    return ["serve", "--port", str(port), "--demo-file", str(workdir / "demo.json"), *extra]


def _wait_up(proc: subprocess.Popen[bytes], port: int, workdir: Path) -> dict[str, Any]:
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"hub serve exited {proc.returncode}:\n{_log(workdir, 'serve')}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 90, 0.2, "hub serve /ready")
    return json.loads((workdir / "demo.json").read_text())  # type: ignore[no-any-return]


def _redeem(port: int, demo: dict[str, Any], code: str, key: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/redemptions",
        json={"code": code, "order": {"id": f"O-{code}", "amount": 12800}},
        headers={"Authorization": f"Bearer {demo['store_keys']['SH-001']}",
                 "Idempotency-Key": key},
        timeout=60,
    )


def _subscribe(port: int, demo: dict[str, Any], url: str) -> None:
    r = httpx.post(
        f"http://127.0.0.1:{port}/v1/subscriptions",
        json={"connector": "webhook",
              "config": {"url": url, "secret": "whsec_" + "A" * 32, "timeout": 30},
              "events": ["coupon.redeemed"]},
        headers={"Authorization": f"Bearer {demo['admin_key']}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text


def _delivery_statuses(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT status FROM deliveries")]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_database("hub_scale") as url:
        yield url


# --- the tests -----------------------------------------------------------------------------


def test_more_than_one_api_process_on_sqlite_is_refused_before_anything_starts(tmp_path: Path):
    port = free_port()
    done = subprocess.run([HUB, *_serve(tmp_path, port, "--workers", "2")], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "--workers" in done.stderr and "PostgreSQL" in done.stderr
    assert "Redemption Hub" not in done.stderr and not (tmp_path / "demo.json").exists()


def test_two_api_processes_serve_one_port_and_a_killed_one_is_replaced(
    pg_url: str, tmp_path: Path
):
    port = free_port()
    with running(_serve(tmp_path, port, "--workers", "2"), tmp_path,
                 _env(HUB_DATABASE_URL=pg_url)) as proc:
        demo = _wait_up(proc, port, tmp_path)
        wait_until(lambda: len(listening_children(proc.pid, port)) == 2, 30, 0.2,
                   "two processes listening")
        api = listening_children(proc.pid, port)

        # both processes accept connections on the one port (kept open while counting)
        served: set[int] = set()
        conns = []
        try:
            for _ in range(300):
                conn, holder = _server_of_new_connection(port, api)
                conns.append(conn)
                served |= holder
                if served == api:
                    break
        finally:
            for conn in conns:
                conn.close()
        assert served == api, f"connections were served by {served} of {api}"

        # one API process dies: the other keeps answering, the supervisor replaces it
        victim = min(api)
        os.kill(victim, signal.SIGKILL)
        codes = demo["codes"]["threshold"]
        for _ in range(20):
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        assert _redeem(port, demo, codes[0], "after-kill").status_code == 201
        wait_until(lambda: len(listening_children(proc.pid, port)) == 2, 60, 0.2,
                   "a replacement process")
        assert victim not in listening_children(proc.pid, port)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, _log(tmp_path, "serve")
        assert _refused(port)


def test_api_processes_do_not_outlive_a_killed_parent(pg_url: str, tmp_path: Path):
    """`kill -9` of the parent: its API processes drain and go (no orphan keeps the port,
    so the service can start again at once)."""
    port = free_port()
    with running(_serve(tmp_path, port, "--workers", "2", "--no-demo"), tmp_path,
                 _env(HUB_DATABASE_URL=pg_url)) as proc:
        wait_until(lambda: len(listening_children(proc.pid, port)) == 2, 90, 0.2,
                   "two processes listening")
        api = listening_children(proc.pid, port)
        proc.kill()
        proc.wait(timeout=20)
        wait_until(lambda: not any(alive(pid) for pid in api), 90, 0.1,
                   "the API processes gone")
        assert _refused(port)


def _lock_coupons(url: str) -> psycopg.Connection[Any]:
    """Hold a lock that makes every redeem wait (reads go on)."""
    conn = psycopg.connect(url)
    conn.execute("LOCK TABLE coupons IN EXCLUSIVE MODE")
    return conn


def _waiting_on_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


def test_sigterm_drains_api_processes_and_the_in_process_delivery_worker(
    pg_url: str, tmp_path: Path
):
    """Two API processes on PostgreSQL, no broker (the parent runs the delivery worker):
    SIGTERM during a redeem held up by a lock and during a delivery the receiver answers
    slowly. /ready says 503 draining while it drains, then new connections are refused,
    the redeem answers 201, the delivery is recorded, and the exit status is 0."""
    port = free_port()
    sink: Sink = start_sink()
    try:
        with running(_serve(tmp_path, port, "--workers", "2", "--drain-seconds", "5"),
                     tmp_path, _env(HUB_DATABASE_URL=pg_url)) as proc:
            demo = _wait_up(proc, port, tmp_path)
            codes = demo["codes"]["threshold"]
            _subscribe(port, demo, sink.url)
            sink.delay = 12.0  # still in flight when the API processes are gone
            assert _redeem(port, demo, codes[0], "first").status_code == 201
            wait_until(lambda: bool(sink.unanswered()), 30, 0.05, "a delivery in flight")

            lock = _lock_coupons(pg_url)
            answer: dict[str, httpx.Response] = {}
            slow = threading.Thread(
                target=lambda: answer.update(r=_redeem(port, demo, codes[1], "slow"))
            )
            slow.start()
            try:
                wait_until(lambda: _waiting_on_lock(pg_url), 30, 0.05, "a redeem in flight")
                proc.send_signal(signal.SIGTERM)

                wait_until(lambda: _draining(port), 5, 0.05, "/ready 503 draining")
                r = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
                assert r.headers["content-type"].startswith("application/problem+json")
                wait_until(lambda: _refused(port), 15, 0.1, "new connections refused")
                assert proc.poll() is None  # still finishing the redeem
                assert sink.unanswered()  # and the delivery
            finally:
                lock.commit()
                lock.close()
            slow.join(timeout=60)
            assert answer["r"].status_code == 201, answer["r"].text
            assert proc.wait(timeout=60) == 0, _log(tmp_path, "serve")
        assert sink.unanswered() == set()
        statuses = _delivery_statuses(pg_url)
        assert "succeeded" in statuses and "delivering" not in statuses, statuses
    finally:
        sink.close()


def test_sigterm_on_one_embedded_sqlite_process_finishes_a_delivery_in_flight(tmp_path: Path):
    """The embedded default (SQLite, in-process delivery worker): SIGTERM while the
    receiver holds a delivery lets it finish and ends with exit status 0 (it used to
    end with 143 and leave the delivery `delivering` until its lease ran out)."""
    port = free_port()
    sink = start_sink()
    try:
        with running(_serve(tmp_path, port, "--drain-seconds", "3"), tmp_path, _env()) as proc:
            demo = _wait_up(proc, port, tmp_path)
            _subscribe(port, demo, sink.url)
            sink.delay = 8.0
            assert _redeem(port, demo, demo["codes"]["threshold"][0], "k1").status_code == 201
            wait_until(lambda: bool(sink.unanswered()), 30, 0.05, "a delivery in flight")
            proc.send_signal(signal.SIGTERM)
            wait_until(lambda: _draining(port), 3, 0.05, "/ready 503 draining")
            wait_until(lambda: _refused(port), 10, 0.1, "new connections refused")
            assert proc.poll() is None and sink.unanswered()  # waiting for the delivery
            assert proc.wait(timeout=60) == 0, _log(tmp_path, "serve")
        assert sink.unanswered() == set() and sink.count() == 1
        import sqlite3

        with contextlib.closing(sqlite3.connect(tmp_path / "hub.db")) as db:
            assert [r[0] for r in db.execute("SELECT status FROM deliveries")] == ["succeeded"]
    finally:
        sink.close()


def test_worker_processes_consume_and_finish_in_flight_deliveries_on_sigterm(
    pg_url: str, tmp_path: Path
):
    """The production layout: `hub serve --workers 2` enqueues to Redis, `hub worker
    --processes 2` consumes; SIGTERM to the worker while deliveries are in flight lets
    them finish (recorded `succeeded`, answered by the receiver) and exits 0."""
    port = free_port()
    sink = start_sink()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = _env(HUB_DATABASE_URL=pg_url, HUB_BROKER_URL=redis.url,
               HUB_SECRET_KEY=Fernet.generate_key().decode())
    try:
        with running(_serve(tmp_path, port, "--workers", "2"), tmp_path, env) as api:
            demo = _wait_up(api, port, tmp_path)
            _subscribe(port, demo, sink.url)
            with running(["worker", "--processes", "2", "--threads", "2"], tmp_path,
                         env) as worker:
                wait_until(lambda: _log(tmp_path, "worker").count("2 processes") == 2, 60,
                           0.1, "both worker processes consuming")
                codes = demo["codes"]["threshold"][:4]
                for i, code in enumerate(codes[:2]):
                    assert _redeem(port, demo, code, f"w{i}").status_code == 201
                wait_until(lambda: sink.count() == 2, 60, 0.1, "two deliveries")
                sink.delay = 4.0
                for i, code in enumerate(codes[2:]):
                    assert _redeem(port, demo, code, f"s{i}").status_code == 201
                wait_until(lambda: len(sink.unanswered()) == 2, 30, 0.05, "two in flight")
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=60) == 0, _log(tmp_path, "worker")
            assert sink.unanswered() == set()
            statuses = _delivery_statuses(pg_url)
            assert sorted(statuses) == ["succeeded"] * 4, statuses
            api.send_signal(signal.SIGTERM)
            assert api.wait(timeout=60) == 0, _log(tmp_path, "serve")
    finally:
        redis.stop()
        sink.close()

"""hub/api/serving.py: the request metrics of ``hub serve --workers N`` are shared by its
API processes without the operator naming a directory (issue 11, items 3 and 4)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.api.ops import DRAINING
from hub.api.serving import (
    MULTIPROC_DIR,
    DrainingServer,
    server_config,
    shared_metrics_dir,
)
from tests.delivery.multiproc import PREEXEC, free_port, pg_database, wait_until
from tests.support import holders, listening_children, tcp_inodes

HUB = str(Path(sys.executable).with_name("hub"))


def test_several_processes_get_a_private_directory_removed_afterwards(monkeypatch):
    monkeypatch.delenv(MULTIPROC_DIR, raising=False)
    with shared_metrics_dir(2) as path:
        assert path is not None and os.environ[MULTIPROC_DIR] == path
        assert Path(path).is_dir() and not any(Path(path).iterdir())
        (Path(path) / "counter_1.db").write_bytes(b"x")  # what the processes write
    assert MULTIPROC_DIR not in os.environ
    assert not Path(path).exists()


def test_a_directory_the_operator_named_is_used_and_kept(monkeypatch, tmp_path):
    monkeypatch.setenv(MULTIPROC_DIR, str(tmp_path))
    with shared_metrics_dir(4) as path:
        assert path == str(tmp_path)
    assert os.environ[MULTIPROC_DIR] == str(tmp_path) and tmp_path.is_dir()


def test_one_process_needs_no_directory(monkeypatch):
    monkeypatch.delenv(MULTIPROC_DIR, raising=False)
    with shared_metrics_dir(1) as path:
        assert path is None and MULTIPROC_DIR not in os.environ


def _served_by(port: int, pids: set[int]) -> set[int]:
    """GET /health on a new connection; which of ``pids`` holds its other end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: hub\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        inode = tcp_inodes(port).get(("01", conn.getsockname()[1]))
        return holders(inode, pids) if inode else set()


def _health_count(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "hub_http_requests_total" and s.labels == {
                "method": "GET", "route": "/health", "status": "200", "outcome": "ok"
            }:  # fmt: skip
                return float(s.value)
    return 0.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_metrics_of_two_api_processes_are_summed_with_no_directory_named(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.pop(MULTIPROC_DIR, None)
    with pg_database("hub_serving") as url:
        env.update(HUB_DATABASE_URL=url, HUB_LOG_LEVEL="WARNING")
        log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            [HUB, "serve", "--no-demo", "--port", str(port), "--workers", "2"], cwd=tmp_path,
            env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=PREEXEC,
        )  # fmt: skip
        try:
            wait_until(lambda: len(listening_children(proc.pid, port)) == 2, 90, 0.2,
                       "two API processes listening")  # fmt: skip
            api = listening_children(proc.pid, port)
            dirs = set()
            for pid in api:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                dirs |= {e.split(b"=", 1)[1].decode() for e in environ
                         if e.startswith(MULTIPROC_DIR.encode() + b"=")}  # fmt: skip
            [shared] = dirs  # one directory, the same for both processes
            assert Path(shared).is_dir()

            served: dict[int, int] = {}
            for _ in range(400):
                for pid in _served_by(port, api):
                    served[pid] = served.get(pid, 0) + 1
                if set(served) == api and min(served.values()) >= 3:
                    break
            assert set(served) == api, f"both processes answer: {served}"
            sent = sum(served.values())
            # whichever process answers the scrape, it counts the requests of both
            assert {_health_count(port) for _ in range(6)} == {float(sent)}

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=90) == 0, (tmp_path / "serve.log").read_text()
            assert not Path(shared).exists()  # removed with the processes' files
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=20)
            log.close()


def _serve_in_a_thread(drain_seconds: float) -> tuple[DrainingServer, threading.Thread]:
    """A DrainingServer on a loopback socket in a thread of its own (no signal handlers:
    only the main thread can install them, as in the start-up window of an API process)."""
    from litestar import Litestar

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = DrainingServer(server_config(Litestar([]), 1), drain_seconds)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True
    )
    thread.start()
    wait_until(lambda: server.started, 30, 0.02, "the server started")
    return server, thread


@pytest.mark.parametrize("drain_seconds", [0.0, 0.3])
def test_a_signal_before_the_servers_handlers_still_drains_the_server(drain_seconds):
    """SIGTERM in the start-up window (the parent died while this API process was still
    importing: PR_SET_PDEATHSIG) only sets DRAINING, before uvicorn's handlers are in
    place. The running server notices within a tick and drains: no orphan keeps the port."""
    server, thread = _serve_in_a_thread(drain_seconds)
    try:
        assert not server.should_exit
        DRAINING.set()  # what drain_on_signals' handler does, and nothing else
        thread.join(timeout=10)
        assert not thread.is_alive(), "the server went on serving after DRAINING was set"
    finally:
        DRAINING.clear()
        server.should_exit = True
        thread.join(timeout=10)

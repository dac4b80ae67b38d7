"""Helpers for the multi-process delivery tests (test_broker_*.py, test_crash_*.py) and
bench/delivery.py: a fresh PostgreSQL database, a private redis-server, `hub serve` and
`hub worker` subprocesses, a fast loopback webhook receiver, and bounded waits.

Everything binds to 127.0.0.1; every process started here is stopped by the context
manager that started it (SIGKILL as a last resort), whatever the test's outcome.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine, func, select

from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.db.schema import deliveries
from hub.services import subscriptions as subscription_service

PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("HUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = "condition"
) -> float:
    """Poll ``check`` until true; returns the seconds it took, raises TimeoutError."""
    t0 = time.monotonic()
    while True:
        if check():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
        time.sleep(interval)


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # looked up here: the child of a fork must not import anything


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """SIGKILL this child if the thread that started it dies (a killed test run leaves
    no workers or redis-servers behind)."""
    _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


PREEXEC = _die_with_parent if _PRCTL is not None else None


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


# --- PostgreSQL ---------------------------------------------------------------------


@contextlib.contextmanager
def pg_database(prefix: str = "hub_mp") -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards, connections forced out)."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def migrated_engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    upgrade(engine)  # once, here: the subprocesses then find nothing to migrate
    try:
        yield engine
    finally:
        engine.dispose()


# --- brokers ------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on a free loopback port (no persistence), so a test can
    stop and restart its broker without touching the machine's shared Redis."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not on PATH")
        self.exe = exe

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=PREEXEC,
        )
        log.close()
        wait_until(lambda: _port_open(self.port), 10, 0.05, f"redis-server on {self.port}")

    def stop(self) -> None:
        """Stop at once (SIGKILL: nothing is saved, in-flight connections drop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers (a hung broker)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def purge_rabbitmq_queue(url: str, queue: str = "hub-deliveries") -> int:
    """Drop the messages left in the queue by earlier runs; returns how many."""
    import pika  # type: ignore[import-untyped]

    params = pika.URLParameters(url)
    params.socket_timeout = 5
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        try:
            return int(channel.queue_purge(queue).method.message_count)
        except pika.exceptions.ChannelClosedByBroker as exc:  # no such queue yet
            if exc.reply_code == 404:
                return 0
            raise
    finally:
        with contextlib.suppress(Exception):
            connection.close()


# --- hub processes ------------------------------------------------------------------


def _secret_keys(db_url: str) -> str:
    """``HUB_SECRET_KEY`` of this process, else the keys of its key file (made now if
    need be), as ``HUB_SECRET_KEY`` takes them."""
    from hub.secrets import ENV_VAR, key_file_for, keyring

    if os.environ.get(ENV_VAR, "").strip():
        return os.environ[ENV_VAR]
    keyring(db_url)  # creates the key file on first use
    path = key_file_for(db_url)
    return ",".join(path.read_text().split()) if path is not None else ""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  [{self.name}] {line}" for line in text[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None


class Cluster:
    """One `hub serve` (API; enqueues after commit, sweeps) and N `hub worker`s against
    one PostgreSQL database and one broker. Use as a context manager."""

    def __init__(
        self,
        db_url: str,
        broker_url: str,
        workdir: Path,
        *,
        workers: int = 2,
        threads: int = 8,
        env: dict[str, str] | None = None,
        api: bool = True,
        log_level: str = "WARNING",
    ) -> None:
        self.db_url = db_url
        self.broker_url = broker_url
        self.workdir = workdir
        self.n_workers = workers
        self.threads = threads
        self.extra_env = env or {}
        self.with_api = api
        self.log_level = log_level
        self.port = free_port()
        self.api: Proc | None = None
        self.workers: list[Proc] = []
        self._all: list[Proc] = []
        self._seq = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(
            # the keys this test process encrypts subscription secrets with (the processes
            # run in another directory: a key file of their own would not open them)
            HUB_SECRET_KEY=_secret_keys(self.db_url),
            HUB_BROKER_URL=self.broker_url,
            HUB_LOG_LEVEL=self.log_level,
            # the receivers are on loopback: the egress policy must let them be reached
            HUB_EGRESS_ALLOW=os.environ.get("HUB_EGRESS_ALLOW", "127.0.0.0/8,::1/128"),
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str]) -> Proc:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as fh:
            popen = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(),
                cwd=self.workdir,
                preexec_fn=PREEXEC,
            )
        proc = Proc(name, popen, log)
        self._all.append(proc)
        return proc

    def start_api(self) -> Proc:
        self.api = self._spawn(
            "api",
            [
                "serve",
                "--no-demo",
                "--db",
                self.db_url,
                "--port",
                str(self.port),
                "--demo-file",
                str(self.workdir / "demo.json"),
            ],
        )

        def up() -> bool:
            if not self.api or not self.api.alive():
                raise RuntimeError(f"hub serve exited:\n{self.api.tail() if self.api else ''}")
            try:
                return httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, 0.1, "hub serve /health")
        return self.api

    def start_worker(self, *, wait: bool = True, env: dict[str, str] | None = None) -> Proc:
        self._seq += 1
        saved = self.extra_env
        self.extra_env = {**saved, **(env or {})}
        try:
            proc = self._spawn(
                f"worker{self._seq}",
                ["worker", "--db", self.db_url, "--threads", str(self.threads)],
            )
        finally:
            self.extra_env = saved
        self.workers.append(proc)
        if wait:

            def ready() -> bool:
                if not proc.alive():
                    raise RuntimeError(f"hub worker exited:\n{proc.tail()}")
                return "hub worker: broker" in proc.log.read_text(errors="replace")

            wait_until(ready, 30, 0.1, f"{proc.name} start")
        return proc

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        if proc.alive():
            proc.popen.send_signal(sig)
            proc.popen.wait(timeout=15)
        if proc in self.workers:
            self.workers.remove(proc)

    def tails(self) -> str:
        return "\n".join(p.tail() for p in self._all)

    def __enter__(self) -> Cluster:
        try:
            if self.with_api:
                self.start_api()
            for _ in range(self.n_workers):
                self.start_worker()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in self._all:
            if proc.alive():
                proc.popen.terminate()
        deadline = time.monotonic() + 10
        for proc in self._all:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=10)


# --- the receiver -------------------------------------------------------------------


@dataclass
class Arrival:
    event_id: str
    at: float  # time.time() when the request was read
    status: int


@dataclass
class Sink:
    """A webhook receiver on loopback (HTTP/1.1 keep-alive, a thread per connection).

    Records the ``webhook-id`` (the event id) of every request as it arrives, then waits
    ``delay`` seconds and answers ``status``; both can be changed at any time."""

    url: str = ""
    status: int = 200
    delay: float = 0.0
    arrivals: list[Arrival] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)  # read, not yet answered
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def ids(self) -> list[str]:
        with self.lock:
            return [a.event_id for a in self.arrivals]

    def accepted_ids(self) -> list[str]:
        """Event ids of requests answered 2xx (what the receiver would have kept)."""
        with self.lock:
            return [a.event_id for a in self.arrivals if a.status < 300]

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def unanswered(self) -> set[str]:
        with self.lock:
            return {eid for eid, n in self.in_flight.items() if n > 0}

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a worker killed mid-request leaves a broken pipe: expected here


def start_sink() -> Sink:
    sink = Sink()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            self.rfile.read(length)
            event_id = self.headers.get("webhook-id", "")
            status = sink.status
            arrival = Arrival(event_id, time.time(), status)
            with sink.lock:
                sink.arrivals.append(arrival)
                sink.in_flight[event_id] += 1
            try:
                if sink.delay:
                    time.sleep(sink.delay)
                payload = b'{"ok":true}' if status < 300 else b'{"error":"refused"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            finally:
                with sink.lock:
                    sink.in_flight[event_id] -= 1

        def log_message(self, *args: Any) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    sink.server = server
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True, name="sink").start()
    return sink


@contextlib.contextmanager
def sinks(n: int) -> Iterator[list[Sink]]:
    started: list[Sink] = []
    try:
        for _ in range(n):
            started.append(start_sink())
        yield started
    finally:
        for s in started:
            s.close()


# --- data and traffic ---------------------------------------------------------------


def subscribe(engine: Engine, merchant: Any, url: str, **extra: Any) -> str:
    created = subscription_service.create(
        engine,
        merchant.principal,
        connector="webhook",
        config={"url": url, "secret": SECRET},
        events=["coupon.redeemed"],
        flt=None,
        retry_schedule=extra.get("retry_schedule"),
        description=None,
        now=datetime.now(UTC),
    )
    return str(created["id"])


@dataclass
class Redeemed:
    code: str
    status: int
    sent_at: float  # time.time() before the request
    latency: float  # seconds, client-side
    body: dict[str, Any]


def redeem_all(
    base_url: str, token: str, codes: list[str], *, concurrency: int = 8, prefix: str = "k"
) -> list[Redeemed]:
    """POST /v1/redemptions for every code, ``concurrency`` clients at a time."""
    out: list[Redeemed] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {token}"}

    def run(chunk: list[tuple[int, str]]) -> None:
        with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
            for i, code in chunk:
                t0 = time.time()
                p0 = time.perf_counter()
                r = client.post(
                    "/v1/redemptions",
                    json={"code": code, "order": {"id": f"O-{i}", "amount": 12800}},
                    headers={"Idempotency-Key": f"{prefix}-{i}"},
                )
                item = Redeemed(code, r.status_code, t0, time.perf_counter() - p0, r.json())
                with lock:
                    out.append(item)

    items = list(enumerate(codes))
    chunks = [items[i::concurrency] for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(run, c) for c in chunks if c]:
            f.result()
    return out


def delivery_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        ).all()
    return {str(s): int(n) for s, n in rows}


def wait_delivered(
    engine: Engine, expected: int, timeout: float, status: str = "succeeded"
) -> float:
    """Wait until ``expected`` deliveries have ``status``; returns seconds waited."""
    last: dict[str, int] = {}

    def done() -> bool:
        nonlocal last
        last = delivery_counts(engine)
        return last.get(status, 0) >= expected

    try:
        return wait_until(done, timeout, 0.25, f"{expected} deliveries {status}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; delivery counts now {last}") from None


def event_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(deliveries.c.event_id).distinct()).scalars())


@dataclass
class Tally:
    expected: int
    missing: int
    duplicates: int  # extra arrivals beyond the first, per event id
    max_copies: int

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.expected} events expected, {self.missing} missing, "
            f"{self.duplicates} duplicate arrivals (max {self.max_copies} copies of one id)"
        )


def tally(expected: set[str], received: list[str]) -> Tally:
    counts = Counter(received)
    missing = len(expected - set(counts))
    dupes = sum(n - 1 for eid, n in counts.items() if eid in expected)
    return Tally(len(expected), missing, dupes, max(counts.values(), default=0))

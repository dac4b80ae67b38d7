"""Serving the API: a uvicorn server that drains on SIGTERM, and the entry point of the
API processes ``hub serve --workers N`` starts.

Draining (SIGTERM, or Ctrl-C): ``/ready`` answers 503 ``draining`` at once; the process
keeps serving for ``drain_seconds`` (so a load balancer polling ``/ready`` takes it out of
rotation), then stops accepting connections, finishes the requests in flight (at most
``graceful_timeout`` seconds) and returns normally, so the process exits 0. A second
Ctrl-C skips the rest of the drain delay; a third stops at once (uvicorn's force exit).
Repeated SIGTERMs change nothing (systemd and a supervisor may both send one).

Request metrics of several API processes: :func:`shared_metrics_dir` gives them one
prometheus-client multiprocess directory unless the operator named one.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from litestar import Litestar

from hub.api.hardening import MAX_REQUEST_HEAD
from hub.api.ops import DRAINING
from hub.api.protocol import event_loop, http_protocol
from hub.settings import foreign_env, set_foreign_env


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float = 0.0) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._timer: threading.Timer | None = None
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Never recorded in ``_captured_signals``: uvicorn would raise it again after the
        # shutdown and the default action of SIGTERM would end the process with 143.
        DRAINING.set()
        if not self._draining:
            self._begin_drain()
        elif sig == signal.SIGINT:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        # A signal that came before uvicorn's own handlers were in place (start-up: the
        # parent died while this process was still importing) only set DRAINING: the
        # drain starts here, within a tick, so no process goes on serving as an orphan.
        if DRAINING.is_set() and not self._draining:
            self._begin_drain()
        return await super().on_tick(counter)

    def _begin_drain(self) -> None:
        self._draining = True
        if self.drain_seconds > 0:
            self._timer = threading.Timer(self.drain_seconds, self._stop_accepting)
            self._timer.daemon = True
            self._timer.start()
        else:
            self.should_exit = True

    def _stop_accepting(self) -> None:
        self.should_exit = True


def drain_on_signals() -> None:
    """Until the server's own handlers are in place (start-up) and once they are gone
    (the rest of the shutdown), SIGTERM and SIGINT only mark the process as draining: a
    signal during start-up makes the server stop as soon as it has started, and none
    ends the process half-way with 143 instead of a clean exit."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: DRAINING.set())


def stop_with_parent() -> None:
    """In a child of a supervisor: get SIGTERM (and so drain) when the parent dies, even
    by ``kill -9``, instead of going on holding the port as an orphan (Linux)."""
    import multiprocessing
    import os
    import sys

    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent.pid:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def server_config(app: Litestar | str, graceful_timeout: float, **options: Any) -> uvicorn.Config:
    """``hub serve``'s uvicorn settings (``options``: more of them, e.g. host and port)."""
    settings: dict[str, Any] = dict(
        log_level="warning",
        access_log=False,
        loop=event_loop(),  # uvloop when installed (hub.api.protocol)
        http=http_protocol(),  # httptools with the head cap when installed, else h11
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD,  # request line + headers (h11)
        timeout_graceful_shutdown=max(1, round(graceful_timeout)),
    )
    return uvicorn.Config(app, **(settings | options))


def serve(
    app: Litestar, sock: socket.socket, *, drain_seconds: float, graceful_timeout: float
) -> None:
    """Serve ``app`` on the bound ``sock`` until SIGTERM/SIGINT, draining as above. The
    socket is closed when the server stops accepting."""
    from hub.logs import cache_loggers

    cache_loggers()  # a serving process: each logger built once, not on every call
    server = DrainingServer(server_config(app, graceful_timeout), drain_seconds)
    server.should_exit = DRAINING.is_set()  # told to stop while starting
    server.run(sockets=[sock])


MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def shared_metrics_dir(processes: int) -> Iterator[str | None]:
    """For ``processes`` > 1 API processes, the directory their request metrics share
    (prometheus-client's multiprocess mode, so ``/metrics`` sums every process's figures
    whichever one is scraped): ``PROMETHEUS_MULTIPROC_DIR`` when set, else a private
    empty temporary directory, named in this process's environment (the spawned API
    processes, replacements included, inherit it) and removed with its files when the
    block ends. One process: ``None``, nothing changes."""
    named = foreign_env(MULTIPROC_DIR)
    if processes <= 1 or named:
        yield named if processes > 1 else None
        return
    path = tempfile.mkdtemp(prefix="hub-metrics-")
    set_foreign_env(MULTIPROC_DIR, path)
    try:
        yield path
    finally:
        set_foreign_env(MULTIPROC_DIR, None)
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class ApiProcess:
    """What one API process of ``hub serve --workers N`` needs (picklable: the processes
    are spawned, not forked, so no thread or connection of the parent is inherited)."""

    db_url: str
    drain_seconds: float
    graceful_timeout: float


def run_api_process(spec: ApiProcess, sock: socket.socket) -> None:  # pragma: no cover
    """The body of one API process (run in a spawned child): its own engine and pool,
    enqueueing to ``HUB_BROKER_URL`` if set (else the parent's sweeper finds the new
    deliveries), serving the shared socket until told to drain."""
    from hub.api.app import create_app
    from hub.db.engine import make_engine
    from hub.delivery.queue import broker_url
    from hub.delivery.runtime import Runtime
    from hub.logs import configure_logging

    configure_logging()
    drain_on_signals()
    stop_with_parent()
    engine = make_engine(spec.db_url)
    runtime = Runtime(engine) if broker_url() is not None else None
    if runtime is not None:
        runtime.start(worker=False)
    try:
        serve(
            create_app(engine),
            sock,
            drain_seconds=spec.drain_seconds,
            graceful_timeout=spec.graceful_timeout,
        )
    finally:
        if runtime is not None:
            runtime.stop()
        engine.dispose()

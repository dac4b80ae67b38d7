"""``hub serve``'s HTTP machinery (hub/api/protocol.py): uvloop and httptools when they
are installed (both are dependencies), asyncio and h11 otherwise, and the head cap h11
has, kept with httptools."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from uvicorn.protocols.http.h11_impl import H11Protocol

from hub.api import protocol
from hub.api.app import create_app
from hub.api.hardening import MAX_REQUEST_HEAD
from hub.api.serving import server_config
from tests.conftest import Clock, free_port, serve_in_thread


def test_uvloop_and_httptools_are_chosen_when_installed() -> None:
    pytest.importorskip("uvloop")
    pytest.importorskip("httptools")
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert protocol.event_loop() == "uvloop"
    http = protocol.http_protocol()
    assert issubclass(http, HttpToolsProtocol) and http is protocol.head_limited_httptools()
    config = server_config(object(), 30)  # type: ignore[arg-type]
    assert config.loop == "uvloop" and config.http is http
    assert config.h11_max_incomplete_event_size == MAX_REQUEST_HEAD


def test_asyncio_and_h11_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "has_module", lambda name: False)
    assert protocol.event_loop() == "asyncio"
    assert protocol.http_protocol() is H11Protocol
    config = server_config(object(), 30, port=1234)  # type: ignore[arg-type]
    assert (config.loop, config.http, config.port) == ("asyncio", H11Protocol, 1234)


@pytest.fixture
def served(db: Engine, clock: Clock) -> Iterator[tuple[str, int]]:
    """The app under uvicorn as ``hub serve`` configures it."""
    port = free_port()
    config = server_config(
        create_app(db, clock=clock), 10, host="127.0.0.1", port=port, log_level="critical"
    )
    with serve_in_thread(config):
        yield "127.0.0.1", port


def _read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """The status lines of ``count`` responses (each with a Content-Length body)."""
    data = b""
    statuses: list[bytes] = []
    while len(statuses) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            chunk = sock.recv(65536)
            assert chunk, (statuses, data[:200])
            data += chunk
            continue
        head = data[:head_end].decode("latin-1")
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        while len(data) < head_end + 4 + length:
            data += sock.recv(65536)
        statuses.append(head.split("\r\n", 1)[0].encode())
        data = data[head_end + 4 + length :]
    return statuses


def test_a_body_is_never_counted_as_a_head(served: tuple[str, int]) -> None:
    """A large body and, in the same read, the start of the next (pipelined) request:
    the body is not the next request's head, so both are answered."""
    body = b"{" + b" " * (MAX_REQUEST_HEAD + 4096) + b"}"
    first = (
        b"POST /v1/stores HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(served, timeout=10) as sock:
        sock.sendall(first + b"GET /health HTTP/1.1\r\nHost: hub\r\n")
        time.sleep(0.3)
        sock.sendall(b"\r\n")
        statuses = _read_responses(sock, 2)
    assert statuses == [b"HTTP/1.1 401 Unauthorized", b"HTTP/1.1 200 OK"]


def test_a_head_that_never_ends_is_refused_past_the_cap(served: tuple[str, int]) -> None:
    with socket.create_connection(served, timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: hub\r\nX-Pad: ")
        for _ in range(MAX_REQUEST_HEAD // 8192 + 2):  # a slow client, a piece at a time
            try:
                sock.sendall(b"p" * 8192)
            except OSError:
                break
            time.sleep(0.01)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert protocol.HEAD_TOO_LARGE.encode() in answer or b"Invalid" in answer


def test_requests_are_answered_one_after_another_on_a_connection(
    served: tuple[str, int],
) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: hub\r\n\r\n"
    with socket.create_connection(served, timeout=10) as sock:
        sock.sendall(request * 3)  # pipelined, one write
        assert _read_responses(sock, 3) == [b"HTTP/1.1 200 OK"] * 3


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_writes_in_one_turn_of_the_loop_go_out_as_one() -> None:
    async def main() -> tuple[list[bytes], list[bytes], _Transport]:
        inner = _Transport()
        t = protocol.CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 201 Created\r\n\r\n")
        t.write(b"{}")
        before = list(inner.writes)
        await asyncio.sleep(0)
        after = list(inner.writes)
        t.write(b"last")
        t.close()  # what is pending goes first
        assert t.get_extra_info("peername") == "info:peername"
        return before, after, inner

    before, after, inner = asyncio.run(main())
    assert before == [] and after == [b"HTTP/1.1 201 Created\r\n\r\n{}"]
    assert inner.writes[-1] == b"last" and inner.closed

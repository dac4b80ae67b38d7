"""The HTTP machinery ``hub serve`` runs on: uvloop and httptools when installed (both
are dependencies; the pure-Python asyncio loop and h11 parser stay as the fallback).

uvloop runs the event loop and its sockets in C, and httptools (llhttp) parses requests
in C: together they take a third of the per-request CPU of the pure-Python pair off the
hub's hot path (bench/README.md).

h11 refuses a request line plus headers above ``h11_max_incomplete_event_size`` with a
plain 400 before the app sees it; httptools has no such cap and would buffer a head that
never ends (slowloris) without bound. :class:`HeadLimitedHttpToolsProtocol` keeps the same
cap (:data:`hub.api.hardening.MAX_REQUEST_HEAD`): a head still incomplete after that many
bytes is answered with a plain 400 and the connection closed. A complete head below it
reaches the app, whose own limits (URL 8 KiB, headers 16 KiB) answer in problem+json.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any, Final, Literal, cast

from hub.api.hardening import MAX_REQUEST_HEAD

HEAD_TOO_LARGE: Final = "Request line and headers too large."


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def event_loop() -> Literal["uvloop", "asyncio"]:
    """uvicorn's ``loop``: uvloop when it is installed (not on Windows), else asyncio's."""
    return "uvloop" if has_module("uvloop") else "asyncio"


def http_protocol() -> type[asyncio.Protocol]:
    """uvicorn's ``http``: the httptools protocol with the head cap, else h11's."""
    if has_module("httptools"):
        return head_limited_httptools()
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


class CoalescingTransport:
    """A transport whose writes within one turn of the event loop go out as one write.

    uvicorn writes a response's status line and headers as soon as the app sends them,
    and the body a moment later: two system calls and two TCP segments for a small JSON
    answer, which py-spy showed as the largest single cost of ``hub serve`` (the write
    of the headers). Here they are joined and written once, at the loop's next turn
    (microseconds later). ``close`` writes what is pending first; everything else is the
    wrapped transport's."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


_protocol: type[asyncio.Protocol] | None = None


def head_limited_httptools() -> type[asyncio.Protocol]:
    """The class below, made once (it subclasses uvicorn's, which imports httptools)."""
    global _protocol
    if _protocol is None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
            """uvicorn's httptools protocol, refusing a head that grows past ``max_head``
            bytes without ending (a plain 400, as h11 answers, and the connection
            closed).

            Counted: every byte received while a request's head is open, from the chunk
            that starts it. A chunk that also ends an earlier (pipelined) request is not
            counted, so a body is never mistaken for a head; the following chunks are."""

            max_head: int = MAX_REQUEST_HEAD

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self._head_open = False
                self._head_bytes = 0
                self._completed = False

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                coalescing = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
                super().connection_made(coalescing)  # type: ignore[arg-type]

            def on_message_begin(self) -> None:
                super().on_message_begin()
                self._head_open = True
                self._head_bytes = 0

            def on_headers_complete(self) -> None:
                self._head_open = False
                super().on_headers_complete()

            def on_message_complete(self) -> None:
                self._completed = True
                super().on_message_complete()

            def data_received(self, data: bytes) -> None:
                open_before = self._head_open
                self._completed = False
                super().data_received(data)
                if not self._head_open or self.transport.is_closing():
                    return
                if open_before or not self._completed:
                    self._head_bytes += len(data)
                if self._head_bytes > self.max_head:
                    self._head_open = False
                    self.logger.warning(HEAD_TOO_LARGE)
                    self.send_400_response(HEAD_TOO_LARGE)

        _protocol = HeadLimitedHttpToolsProtocol
    return _protocol


__all__ = [
    "HEAD_TOO_LARGE",
    "CoalescingTransport",
    "event_loop",
    "has_module",
    "head_limited_httptools",
    "http_protocol",
]

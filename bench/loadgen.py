"""A lean HTTP/1.1 keep-alive load generator on asyncio streams.

httpx tops out near 400 requests/s on this machine even against an empty handler,
which would measure the client, not the hub; this client sends raw requests over
persistent connections and parses only the status line and Content-Length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


class Result:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.elapsed = 0.0


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: bytes,
    result: Result,
    started: float | None = None,
) -> None:
    """Send one request, read its response, record status and latency (from ``started``,
    the intended send time, when given)."""
    t0 = time.perf_counter() if started is None else started
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    result.latencies.append(time.perf_counter() - t0)
    result.statuses[status] = result.statuses.get(status, 0) + 1


async def _one_connection(
    host: str, port: int, next_request: Callable[[], bytes | None], result: Result
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (request := next_request()) is not None:
            await _exchange(reader, writer, request, result)
    finally:
        writer.close()


def request_bytes(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(
    host: str, port: int, next_request: Callable[[], bytes | None], connections: int
) -> Result:
    result = Result()
    t0 = time.perf_counter()
    await asyncio.gather(
        *(_one_connection(host, port, next_request, result) for _ in range(connections))
    )
    result.elapsed = time.perf_counter() - t0
    return result


async def run_paced(
    host: str, port: int, next_request: Callable[[], bytes | None], rate: float, connections: int
) -> Result:
    """Open-loop-ish: at most ``rate`` requests/s spread over ``connections``."""
    interval = connections / rate
    result = Result()

    async def paced() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            next_at = time.perf_counter()
            while True:
                request = next_request()
                if request is None:
                    return
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
                await _exchange(reader, writer, request, result)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(paced() for _ in range(connections)))
    result.elapsed = time.perf_counter() - t0
    return result


async def run_open(
    host: str, port: int, requests: list[bytes], rate: float, max_connections: int = 256
) -> Result:
    """Open loop without coordinated omission: request ``i`` is due at ``t0 + i / rate``
    and its latency is measured from that intended send time, not from when a connection
    became free. Connections are opened as needed, up to ``max_connections``; beyond
    that a due request waits for one, and the wait counts in its latency, so a slow
    server makes the queue, and the latency, grow instead of slowing the sender."""
    result = Result()
    slots = asyncio.Semaphore(max_connections)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(request: bytes, due: float) -> None:
        async with slots:
            if idle:
                conn = idle.pop()
            else:
                conn = await asyncio.open_connection(host, port)
                opened.append(conn[1])
            await _exchange(conn[0], conn[1], request, result, started=due)
            idle.append(conn)

    t0 = time.perf_counter() + 0.05
    for i, request in enumerate(requests):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - t0
    for writer in opened:
        writer.close()
    return result


@dataclass(frozen=True)
class Spec:
    """One load run, sent to the load generator's own process: the prebuilt requests and
    either ``concurrency`` (closed loop) or ``rate`` (open loop, requests/s, at most
    ``max_connections`` open)."""

    host: str
    port: int
    requests: list[bytes]
    concurrency: int = 0
    rate: float = 0.0
    max_connections: int = 256  # open loop


def drive(spec: Spec) -> tuple[list[float], dict[int, int], float]:
    """Entry point of the load generator's process (``bench.suite`` runs it in a
    ``spawn`` process pool): latencies (seconds), statuses and elapsed seconds."""
    if spec.rate:
        result = asyncio.run(
            run_open(spec.host, spec.port, spec.requests, spec.rate, spec.max_connections)
        )
    else:
        pending = iter(spec.requests)
        result = asyncio.run(
            run(spec.host, spec.port, lambda: next(pending, None), spec.concurrency)
        )
    return result.latencies, result.statuses, result.elapsed

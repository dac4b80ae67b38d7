"""A lean HTTP/1.1 keep-alive load generator on asyncio streams.

httpx tops out near 400 requests/s on this machine even against an empty handler,
which would measure the client, not the hub; this client sends raw requests over
persistent connections and parses only the status line and Content-Length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Result:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.elapsed = 0.0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, result: Result
) -> None:
    """Send one request, read its response, record status and latency."""
    t0 = time.perf_counter()
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

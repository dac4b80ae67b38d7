"""What the request metrics (hub.api.metrics) cost per request, as ratios.

    .venv/bin/python -m bench.metrics_overhead [--n 2000] [--rounds 5]

The app is driven in this process through raw ASGI calls (no network, no load
generator: only the app's own CPU is timed), on a fresh SQLite file, in alternating
rounds with the metrics wrapper on (the app as built) and off (the wrapper removed):

* ``GET /health`` — the cheapest route, where the metrics' share is largest;
* ``POST /v1/redemptions`` — the hot path (fresh coupon, unique Idempotency-Key);
* a refusal (``POST /v1/redemptions/validate`` of an unknown code: problem+json, whose
  code the edge reads);
* a do-nothing ASGI app with and without the wrapper (the wrapper's whole cost);
* ``record`` — the recording alone (outcome, two label look-ups, a counter and a
  histogram) in a tight loop.

It prints the CPU time per request (process time, best of the rounds) with and without
metrics, their ratio, and the cost of the recording alone as a share of a redeem.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar

from bench.redeem import setup_merchant
from hub.api import metrics
from hub.api.app import create_app
from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from hub.logs import configure_logging
from hub.services.guard import Guard, Limits
from hub.services.settings import Settings


class _Sink:
    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


def _scope(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if body:
        raw += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), *raw],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _call(app: Litestar, scope: dict[str, Any], body: bytes) -> int:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    sink = _Sink()
    await app(scope, receive, sink)  # type: ignore[arg-type]
    return sink.status


Request = Callable[[int], tuple[dict[str, Any], bytes, int]]


def _time(app: Litestar, make: Request, first: int, n: int) -> float:
    """CPU seconds per request for requests ``first``..``first+n``."""

    async def run() -> None:
        for i in range(first, first + n):
            scope, body, expect = make(i)
            status = await _call(app, scope, body)
            assert status == expect, (status, expect)

    t0 = time.process_time()
    asyncio.run(run())
    return (time.process_time() - t0) / n


def _ab(app: Litestar, make: Request, n: int, rounds: int) -> tuple[float, float]:
    """Best CPU time per request with and without metrics, rounds alternated."""
    wrapped = app.asgi_handler
    assert isinstance(wrapped, metrics.RequestMetrics)
    on: list[float] = []
    off: list[float] = []
    offset = 0
    for r in range(rounds):
        for metered in (True, False) if r % 2 == 0 else (False, True):
            app.asgi_handler = wrapped if metered else wrapped.app
            (on if metered else off).append(_time(app, make, offset, n))
            offset += n
    app.asgi_handler = wrapped
    return min(on), min(off)


def _record_cost(n: int) -> float:
    scope = {"method": "POST", "path_template": "/v1/redemptions", "state": {}}
    seen = metrics.Exchange()
    seen.status = 201
    t0 = time.process_time()
    for _ in range(n):
        metrics._record(scope, seen, 0.003)  # type: ignore[arg-type]
    return (time.process_time() - t0) / n


def _wrapper_cost(n: int) -> tuple[float, float]:
    """CPU per call of a do-nothing ASGI app answering 201, with and without the wrapper."""

    async def null_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    wrapped = metrics.RequestMetrics(null_app)  # type: ignore[arg-type]

    async def loop(app: Any) -> float:
        sink = _Sink()
        t0 = time.process_time()
        for _ in range(n):
            scope = {"type": "http", "method": "POST", "path_template": "/v1/redemptions",
                     "headers": [], "state": {}}
            await app(scope, None, sink)
        return (time.process_time() - t0) / n

    on = min(asyncio.run(loop(wrapped)) for _ in range(5))
    off = min(asyncio.run(loop(null_app)) for _ in range(5))
    return on, off


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="requests per round and kind")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("HUB_LOG_LEVEL", "WARNING")  # one log line a redeem is not ours
    configure_logging()
    n, rounds = args.n, args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        _admin, _p, token, codes = setup_merchant(engine, n * rounds * 2)
        # the guard off: it would block the refusals' key; the figure is the edge's
        app = create_app(engine, Settings(guard=Guard(Limits(max_per_key=0, max_per_address=0))))
        auth = {"authorization": f"Bearer {token}"}

        def health(i: int) -> tuple[dict[str, Any], bytes, int]:
            return _scope("GET", "/health", {}, b""), b"", 200

        def redeem(i: int) -> tuple[dict[str, Any], bytes, int]:
            body = msgspec.json.encode(
                {"code": codes[i], "order": {"id": f"B-{i}", "amount": 12800}}
            )
            headers = {**auth, "idempotency-key": f"bench-{i}"}
            return _scope("POST", "/v1/redemptions", headers, body), body, 201

        def refusal(i: int) -> tuple[dict[str, Any], bytes, int]:
            body = b'{"code": "NOPE", "order": {"id": "B", "amount": 12800}}'
            return _scope("POST", "/v1/redemptions/validate", auth, body), body, 422

        rows = []
        for name, make in (("GET /health", health), ("POST /v1/redemptions", redeem),
                           ("refusal (validate)", refusal)):
            on, off = _ab(app, make, n, rounds)
            rows.append((name, on, off))
        record = statistics.median(_record_cost(20_000) for _ in range(5))
        rows.append(("wrapper on a null app", *_wrapper_cost(20_000)))
        engine.dispose()
    print(f"{'request':<24} {'with metrics':>14} {'without':>10} {'ratio':>7} {'cost':>9}")
    for name, on, off in rows:
        print(f"{name:<24} {on * 1e6:>11.1f} µs {off * 1e6:>7.1f} µs {on / off:>7.3f} "
              f"{(on - off) * 1e6:>6.1f} µs")
    redeem_cpu = rows[1][2]
    print(f"recording alone: {record * 1e6:.2f} µs per request = "
          f"{record / redeem_cpu:.4f} of a redeem's CPU ({redeem_cpu * 1e6:.0f} µs)")


if __name__ == "__main__":
    main()

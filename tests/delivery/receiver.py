"""A real HTTP receiver on loopback for delivery tests: records every request and answers
with a scripted status sequence (then 200)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)  # statuses to answer first
    retry_after: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else 200

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.event for r in self.requests]


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            rec = holder["r"]
            status = rec.answer()
            with rec.lock:
                rec.requests.append(Received({k.lower(): v for k, v in self.headers.items()},
                                             body))
            self.send_response(status)
            if status in (429, 503) and rec.retry_after:
                self.send_header("Retry-After", rec.retry_after)
            payload = b'{"ok": true}' if status < 300 else b'{"error": "scripted"}'
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return holder["r"], server


def receiver_fixture() -> Iterator[Receiver]:
    rec, server = start_receiver()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()

"""Operations endpoints: /health (alive), /ready (database and broker), /metrics."""

from __future__ import annotations

import threading
from typing import Any

import anyio.to_thread
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, text

from hub.api.dto import HealthOut, ReadyOut
from hub.api.metrics import request_collectors
from hub.api.openapi import ok
from hub.api.state import hub
from hub.delivery import queue
from hub.delivery.metrics import render
from hub.services.jsonio import dumps
from hub.services.problems import PROBLEM_MEDIA_TYPE, problem_dict, status_for

DRAINING = threading.Event()
"""Set once this process drains (SIGTERM; :mod:`hub.api.serving`): ``/ready`` answers
503 ``draining`` so that a load balancer stops sending it new requests."""

# Served without a key: `security: [{}]` says so in the OpenAPI document.
PUBLIC: list[dict[str, list[str]]] = [{}]


@get(
    "/health",
    summary="Liveness: the process answers",
    tags=["ops"],
    security=PUBLIC,
    responses={200: ok(HealthOut)},
)
async def health() -> dict[str, str]:
    return {"status": "ok"}


def _check_database(engine: Engine) -> str:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return "ok"


def _check(engine: Engine) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        checks["database"] = _check_database(engine)
    except Exception as exc:  # reported, not raised: this endpoint exists to say so
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        checks["broker"] = queue.check_broker()
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
    return checks


@get(
    "/ready",
    summary="Readiness: database and broker reachable",
    tags=["ops"],
    security=PUBLIC,
    responses={
        200: ok(ReadyOut, "`status: ready`, each check `ok`"),
        503: ResponseSpec(
            ReadyOut,
            description="`status: not_ready`, the failing check `error: <kind>`; while "
            "the process drains after SIGTERM, a problem+json with `code: draining`",
            generate_examples=False,
        ),
    },
)
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
    if DRAINING.is_set():
        detail = (
            "This process is shutting down (SIGTERM): it finishes the requests in flight "
            "and stops accepting connections; send new requests to another process."
        )
        return Response(
            content=dumps(problem_dict("draining", status_for("draining"), detail, "/ready")),
            status_code=status_for("draining"),
            media_type=PROBLEM_MEDIA_TYPE,
        )
    checks = await anyio.to_thread.run_sync(_check, hub(request).engine)
    ok = all(v == "ok" for v in checks.values())
    return Response(
        content=dumps({"status": "ready" if ok else "not_ready", **checks}),
        status_code=200 if ok else 503,
        media_type="application/json",
    )


# litestar appends "; charset=utf-8" to text/* media types itself
_METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")


@get(
    "/metrics",
    summary="Prometheus metrics",
    tags=["ops"],
    security=PUBLIC,
    include_in_schema=True,
    media_type=_METRICS_MEDIA_TYPE,
)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = await anyio.to_thread.run_sync(render, hub(request).engine, *request_collectors())
    return Response(content=body, media_type=_METRICS_MEDIA_TYPE)

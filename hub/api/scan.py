"""``POST /v1/scan``: the codes and coupon tokens in a photo, optionally validated.

The body is the image itself (``Content-Type: image/jpeg``, ``image/png`` or
``image/webp``; at most :data:`hub.services.scan.MAX_BYTES`). Decoding is CPU work: it
runs in a worker thread, at most :data:`SCAN_CONCURRENCY` at once per process (a
burst of photos waits on the event loop, holding no thread, and never takes the
threads or connections the redeem path uses), and its fallbacks stop after
:data:`hub.services.scan.TIME_BUDGET` seconds. With ``validate=true`` each token or
code found is validated as ``POST /v1/redemptions/validate`` would (the same service,
counted by the code-guessing guard); a refusal is that item's problem document.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Final, Literal

import anyio
import anyio.to_thread
import msgspec
import structlog
from litestar import Controller, Request, Response, post
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import QueryParameter

from hub.api.client import client_address
from hub.api.hardening import media_type_of
from hub.api.openapi import ok
from hub.api.responses import problem_docs, too_many_docs
from hub.api.state import hub, principal, run_hot
from hub.connectors.pos_types import FEN_MAX, STORE_MAX, STORE_PATTERN, TEXT_MAX, Channel
from hub.domain.cart import Order
from hub.domain.commands import RedeemCommand
from hub.domain.errors import DomainError, refuse
from hub.services import redeem as redeem_svc
from hub.services import scan as svc
from hub.services.problems import problem_for

SCAN_CONCURRENCY: Final = 2  # decodes at once per process (the machine's cores, not more)
log = structlog.get_logger("hub.api.scan")
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def scan_limiter() -> anyio.CapacityLimiter:
    """The running event loop's bound on concurrent decodes (one per loop: a limiter
    belongs to the loop it was first used in)."""
    loop = asyncio.get_running_loop()
    limiter = _LIMITERS.get(loop)
    if limiter is None:
        limiter = _LIMITERS[loop] = anyio.CapacityLimiter(SCAN_CONCURRENCY)
    return limiter


class Point(msgspec.Struct):
    x: int
    y: int


class Position(msgspec.Struct):
    top_left: Point
    top_right: Point
    bottom_right: Point
    bottom_left: Point


class FoundOut(msgspec.Struct):
    text: str
    kind: Literal["token", "code", "other"]
    format: str
    position: Position
    code: str | None  # the coupon code: a token's claim (unverified) or the code itself
    validation: dict[str, Any] | None  # the validate answer, or its problem document


class ScanOut(msgspec.Struct):
    found: list[FoundOut]
    count: int


@dataclass
class ScanOperation(Operation):
    """The operation with its request body: the image bytes (litestar documents none for
    a handler that reads the raw body)."""

    def __post_init__(self) -> None:
        binary = OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        )
        self.request_body = RequestBody(
            content={media: binary for media in svc.MEDIA_TYPES},
            required=True,
            description=f"The photo, at most {svc.MAX_BYTES // svc.MIB} MiB and "
            f"{svc.MAX_PIXELS:,} pixels.",
        )


class ScanController(Controller):
    path = "/v1/scan"
    tags = ["redemptions"]
    request_max_body_size = svc.MAX_BYTES

    @post(
        "/",
        status_code=200,
        summary="Read the coupon codes and tokens in a photo (QR and other barcodes)",
        description="The body is the image (JPEG, PNG or WebP). With `validate=true` each "
        "token or code found is validated at `store` for an order of `amount` fen, as "
        "`POST /v1/redemptions/validate` would; a refusal is that item's `validation` "
        "(a problem document).",
        operation_class=ScanOperation,
        responses={200: ok(ScanOut)} | problem_docs(400, 401, 403, 413, 415, 422) | too_many_docs(),
    )
    async def scan(
        self,
        request: Request[Any, Any, Any],
        store: Annotated[
            str | None,
            QueryParameter(
                description="validate at this store (a store key: its own)",
                min_length=1,
                max_length=STORE_MAX,
                pattern=STORE_PATTERN,
            ),
        ] = None,
        validate: Annotated[
            bool, QueryParameter(description="validate each token or code found")
        ] = False,
        amount: Annotated[
            int,
            QueryParameter(
                description="the order's amount in fen (required with validate=true)",
                ge=0,
                le=FEN_MAX,
            ),
        ] = 0,
        channel: Annotated[
            Channel, QueryParameter(description="the channel to validate on")
        ] = "pos",
        order_id: Annotated[
            str | None,
            QueryParameter(
                description="the order's id (default: scan)", min_length=1, max_length=TEXT_MAX
            ),
        ] = None,
    ) -> Response[ScanOut]:
        media, _ = media_type_of(request.headers.get("content-type"))
        if media not in svc.MEDIA_TYPES:
            sent = media or "no Content-Type"
            raise refuse(
                "unsupported_media_type",
                f"Send the photo as image/jpeg, image/png or image/webp, not {sent[:100]}.",
                accepted=list(svc.MEDIA_TYPES),
            )
        if validate and "amount" not in request.query_params:
            raise refuse(
                "invalid_request",
                "amount (the order's amount in fen) is needed to validate what is found.",
                errors=[{"field": "amount", "message": "required with validate=true"}],
            )
        data = await request.body()  # litestar stops reading past MAX_BYTES (413)
        outcome = await anyio.to_thread.run_sync(
            partial(svc.find_codes, data), limiter=scan_limiter()
        )
        items = []
        for f in outcome.found:
            kind = svc.classify(f.text)
            items.append(
                FoundOut(
                    text=f.text,
                    kind=kind.kind,  # type: ignore[arg-type]
                    format=f.format,
                    position=msgspec.convert(f.position, Position),
                    code=kind.code,
                    validation=None,
                )
            )
        if validate:
            order = Order(id=order_id or "scan", amount=amount)
            for item in items:
                if item.kind != "other":
                    item.validation = await _validate(request, item.text, store, channel, order)
        log.info(
            "scan.read",
            count=len(items),
            kinds=[i.kind for i in items],
            formats=[i.format for i in items],
            passes=outcome.attempts,
            pixels=list(outcome.pixels),
            seconds=round(outcome.seconds, 3),
            validated=validate,
        )
        # which passes ran (as_is, then the fallbacks tried): why a photo was slow or unread
        passes = {"Scan-Passes": ",".join(outcome.attempts)}
        return Response(ScanOut(found=items, count=len(items)), headers=passes)


async def _validate(
    request: Request[Any, Any, Any], text: str, store: str | None, channel: str, order: Order
) -> dict[str, Any]:
    h = hub(request)
    cmd = RedeemCommand(code=text, store=store, channel=channel, order=order)
    try:
        return await run_hot(
            request,
            redeem_svc.validate,
            principal(request),
            cmd,
            h.clock(),
            h.settings,
            client_address(request),
        )
    except DomainError as err:
        return problem_for(err)

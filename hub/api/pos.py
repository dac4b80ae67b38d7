"""``POST /v1/pos/{connector}/{operation}``: POS terminals in their own formats.

The connector (``pos.native``, ``pos.poslog``, ``pos.mapped.<mapping>``, or a plugin's)
reads the body; the hub redeems, validates or reverses exactly as ``/v1/redemptions``
does; the answer goes back in the vendor's format. Authentication and store scope are
the native API's: a store key acts only at its own store.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from hub.api.client import client_address
from hub.api.metrics import note_pos
from hub.api.redemptions import REDEMPTION_OPERATIONS
from hub.api.state import hub, principal, run_hot
from hub.connectors import OPERATIONS, InboundConnector, get_connector
from hub.domain.errors import DomainError, refuse
from hub.services import inbound

POS_MAX_BODY = 256 * 1024


def _inbound_connector(name: str, operation: str) -> InboundConnector:
    try:
        found = get_connector(name)
    except DomainError:
        found = None
    serves = found.operations if isinstance(found, InboundConnector) else ()  # outbound: none
    if not isinstance(found, InboundConnector) or operation not in serves:
        known = "" if found is None else f" ({', '.join(serves) or 'none'})"
        raise refuse(
            "not_found",
            f"No POS connector {name!r} with operation {operation!r}{known}.",
        )
    return found


def _media_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


class PosController(Controller):
    path = "/v1/pos"
    tags = ["pos"]
    request_max_body_size = POS_MAX_BODY

    @post(
        "/{connector:str}/{operation:str}",
        status_code=200,
        summary="Redeem, validate or reverse in a POS vendor's format",
        description="`connector`: an inbound connector (`hub connectors list`), e.g. "
        "`pos.native`, `pos.poslog`, `pos.mapped.acme`; `operation`: "
        f"{', '.join(OPERATIONS)}. The body and the reply are in the connector's format "
        "(JSON or POSLog XML); the vendor's request id is the idempotency key.",
        # The reply (and a refusal of the payload) is in the connector's format, JSON or
        # XML, so it has no one schema; 401/403/404/413/415 come before the connector and
        # are problem+json (documented by hub.api.hardening.document_problems).
        responses={
            s: ResponseSpec(data_container=None, description=f"{what}, in the connector's format")
            for s, what in (
                (200, "The outcome"),
                (400, "The payload is not well-formed"),
                (409, "The coupon's state refuses the operation"),
                (422, "The payload or a redemption rule refuses the operation"),
                (429, "Too many unknown or mistyped codes from this key or address"),
            )
        },
    )
    async def pos(
        self,
        request: Request[Any, Any, Any],
        connector: FromPath[str],
        operation: FromPath[str],
        raw_body: NamedDependency[bytes],
    ) -> Response[bytes]:
        impl = _inbound_connector(connector, operation)
        on_result = note_pos(request.scope, impl.name, operation)  # counted per connector
        media = _media_type(request)
        if impl.media_types and media not in impl.media_types:
            raise refuse(
                "unsupported_media_type",
                f"{impl.name} takes {', '.join(impl.media_types)}, not {media or 'no type'}.",
                accepted=list(impl.media_types),
            )
        h = hub(request)
        reply = await run_hot(
            request,
            inbound.handle,
            principal(request),
            impl,
            operation,  # checked against impl.operations above
            raw_body,
            dict(request.headers),
            now=h.clock(),
            settings=h.settings,
            operations=REDEMPTION_OPERATIONS,
            client=client_address(request),
            on_result=on_result,
        )
        return Response(
            content=reply.body,
            status_code=reply.status,
            media_type=reply.media_type,
            headers=dict(reply.headers) or None,
        )

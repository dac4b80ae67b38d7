"""Offline sync of a till's queued sales, and the conflicts it records
(hub/services/sync.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import Meta, Struct

from hub.api.client import client_address
from hub.api.dto import Channel, Fen, OrderIn, RedeemIn, RedemptionOut, StoreCode, UtcTime
from hub.api.metrics import count_sync_items
from hub.api.openapi import ok
from hub.api.params import IdempotencyKey, Since, Until, query_time
from hub.api.redemptions import REDEMPTION_OPERATIONS, to_command
from hub.api.responses import problem_docs, send, too_many_docs
from hub.api.state import hub, principal
from hub.api.strict import Strict, strict
from hub.domain.errors import DomainError
from hub.services import sync as svc
from hub.services.jsonio import dumps

SYNC_MAX_BODY = 2 * 1024 * 1024  # 100 items; an order of many lines takes more room
ITEM_CODE_MAX = 1024  # a coupon code or a signed coupon token (HT1.…)
TerminalId = Annotated[str, Meta(min_length=1, max_length=64)]


class SyncItemIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One queued sale: the ``POST /v1/redemptions`` body plus its Idempotency-Key, with
    ``occurred_at`` required (when the sale happened)."""

    idempotency_key: Annotated[str, Meta(description="The key the online redeem would carry")]
    code: Annotated[str, Meta(min_length=1, max_length=ITEM_CODE_MAX)]
    order: OrderIn
    occurred_at: UtcTime
    store: StoreCode | None = None
    channel: Channel = "pos"
    offline_discount: Fen | None = None


class SyncIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """At most 100 items (``too_many_items``); each is judged on its own."""

    items: list[SyncItemIn]
    terminal_id: TerminalId | None = None


class _Envelope(Struct, forbid_unknown_fields=True):
    items: list[msgspec.Raw]
    terminal_id: TerminalId | None = None


class SyncItemOut(Struct):
    idempotency_key: str | None
    outcome: Literal["redeemed", "replayed", "refused", "conflict"]
    status: int
    redemption: RedemptionOut | None
    problem: dict[str, Any] | None
    conflict_id: str | None


class SyncCounts(Struct):
    redeemed: int
    replayed: int
    refused: int
    conflict: int


class SyncOut(Struct):
    items: list[SyncItemOut]
    counts: SyncCounts


class ConflictOut(Struct):
    id: str
    status: Literal["open", "settled"]
    code: str
    store: str
    channel: str
    terminal_id: str | None
    idempotency_key: str
    order: dict[str, Any]
    offline_discount: int | None
    occurred_at: str
    recorded_at: str
    redemption_id: str | None
    redeemed_store: str | None
    redeemed_at: str | None
    settled_at: str | None
    settlement: str | None


class ConflictPage(Struct):
    items: list[ConflictOut]
    next_cursor: str | None


class SettleIn(Struct, forbid_unknown_fields=True):
    settlement: Annotated[str, Meta(min_length=1, max_length=svc.MAX_SETTLEMENT)]


class SyncBatch:
    """The decoded sync body: each item read on its own (a bad one is refused alone)."""

    def __init__(self, terminal_id: str | None, items: list[svc.SyncItem | svc.BadItem]):
        self.terminal_id = terminal_id
        self.items = items


def _item(index: int, raw: bytes) -> svc.SyncItem | svc.BadItem:
    try:
        data = strict(raw, SyncItemIn)
    except DomainError as err:
        return svc.BadItem(key=_key_of(raw), problem=_at_item(index, err))
    redeem = RedeemIn(
        code=data.code,
        order=data.order,
        store=data.store,
        channel=data.channel,
        occurred_at=data.occurred_at,
    )
    return svc.SyncItem(
        key=data.idempotency_key,
        command=to_command(redeem),
        # byte for byte what POST /v1/redemptions hashes for the same request
        canonical_body=msgspec.json.encode(redeem),
        offline_discount=data.offline_discount,
    )


def _key_of(raw: bytes) -> str | None:
    """The item's idempotency_key when it has a readable one (to name it in the answer)."""
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    key = value.get("idempotency_key") if isinstance(value, dict) else None
    return key if isinstance(key, str) and len(key) <= 255 else None


def _at_item(index: int, err: DomainError) -> DomainError:
    """``err`` with its field names prefixed by the item's place in ``items``."""
    errors = err.extra.get("errors")
    if isinstance(errors, list):
        err.extra["errors"] = [
            {**e, "field": f"items[{index}].{e.get('field', 'body')}"} for e in errors
        ]
    return err


T = TypeVar("T")


class SyncBody(Strict[T]):
    """The sync body: the envelope strictly (not the sync shape: 4xx for the call), then
    each item on its own (a bad item: refused for that item only)."""

    def decode_bytes(self, value: bytes) -> Any:
        envelope = strict(value, _Envelope)
        svc.check_count(len(envelope.items))
        items = [_item(i, bytes(raw)) for i, raw in enumerate(envelope.items)]
        return SyncBatch(envelope.terminal_id, items)


def _batch(data: object) -> SyncBatch:
    assert isinstance(data, SyncBatch), type(data)
    return data


class SyncController(Controller):
    path = "/v1"
    tags = ["redemptions"]

    @post(
        "/redemptions/sync",
        sync_to_thread=True,
        status_code=200,
        summary="Sync a till's offline sales: each item judged as POST /v1/redemptions "
        "with its own Idempotency-Key, in order; conflicts recorded",
        description="At most 100 items (`too_many_items`). Each item's outcome: "
        "`redeemed`, `replayed` (its key had an answer: that answer), `refused` (its problem "
        "document) or `conflict` (409 `offline_conflict`: the coupon was redeemed by another "
        "redemption meanwhile; recorded for the merchant to settle).",
        responses={200: ok(SyncOut)}
        | problem_docs(400, 401, 403, 413, 415, 422, 503)
        | too_many_docs(),
        request_max_body_size=SYNC_MAX_BODY,
        dto=SyncBody[SyncIn],
        return_dto=None,
    )
    def sync(self, request: Request[Any, Any, Any], data: JSONBody[SyncIn]) -> Response[bytes]:
        h = hub(request)
        batch = _batch(data)
        body = svc.sync(
            h.engine,
            principal(request),
            batch.terminal_id,
            batch.items,
            now=h.clock(),
            operation=REDEMPTION_OPERATIONS.redeem,
            settings=h.settings,
            client=client_address(request),
        )
        count_sync_items(body["items"])
        return Response(content=dumps(body), status_code=200, media_type="application/json")

    @get(
        "/conflicts",
        sync_to_thread=True,
        summary="Offline conflicts, newest first (cursor pagination)",
        responses={200: ok(ConflictPage)} | problem_docs(400, 401, 403, 422),
    )
    def list_conflicts(
        self,
        request: Request[Any, Any, Any],
        status: FromQuery[Literal["open", "settled"] | None] = None,
        store: Annotated[str | None, QueryParameter(max_length=64)] = None,
        since: Since = None,
        until: Until = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> ConflictPage:
        f = svc.ConflictFilter(
            status=status,
            store=store,
            since=query_time("from", since),
            until=query_time("to", until),
        )
        page = svc.list_conflicts(hub(request).engine, principal(request), f, limit, cursor)
        return msgspec.convert(page, ConflictPage)

    @get(
        "/conflicts/{conflict_id:str}",
        sync_to_thread=True,
        summary="One offline conflict",
        responses={200: ok(ConflictOut)} | problem_docs(401, 403, 404),
    )
    def get_conflict(
        self, request: Request[Any, Any, Any], conflict_id: FromPath[str]
    ) -> ConflictOut:
        body = svc.get_conflict(hub(request).engine, principal(request), conflict_id)
        return msgspec.convert(body, ConflictOut)

    @post(
        "/conflicts/{conflict_id:str}/settle",
        sync_to_thread=True,
        status_code=200,
        summary="Settle an open offline conflict (admin; Idempotency-Key)",
        responses={200: ok(ConflictOut)} | problem_docs(400, 401, 403, 404, 409, 422),
        dto=Strict[SettleIn],
        return_dto=None,
    )
    def settle(
        self,
        request: Request[Any, Any, Any],
        conflict_id: FromPath[str],
        data: JSONBody[SettleIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        h = hub(request)
        return send(
            svc.settle(
                h.engine,
                principal(request),
                conflict_id,
                data.settlement,
                idempotency_key,
                h.clock(),
                operation="POST /v1/conflicts/{conflict_id}/settle",
            )
        )

"""Inbound POS requests: a connector reads the vendor payload, the hub runs the same
redeem/validate/reverse as ``/v1/redemptions`` (same idempotency contract), and the
connector writes the vendor's reply.

The vendor's own request id becomes the idempotency key (prefixed with the connector's
name, so two formats never collide); without one, the ``Idempotency-Key`` header is
used, as on the native API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import msgspec
import structlog
from sqlalchemy import Engine, bindparam, select

from hub.connectors import (
    InboundCommand,
    InboundConnector,
    InboundReply,
    InboundResult,
    Operation,
    PayloadError,
    header,
)
from hub.db.engine import read_conn
from hub.db.schema import coupons, redemptions
from hub.domain.errors import DomainError, refuse
from hub.services import redeem as svc
from hub.services.commands import HttpResult
from hub.services.jsonio import check_json_text
from hub.services.lookup import CodeLookup
from hub.services.principal import Principal
from hub.services.problems import problem_dict, problem_for, status_for
from hub.services.settings import Settings

log = structlog.get_logger("hub.inbound")


def idempotency_key(
    connector: InboundConnector, command: InboundCommand, headers: Mapping[str, str]
) -> str | None:
    if command.request_id:
        return f"{connector.name}:{command.request_id}"
    return header(headers, "idempotency-key")


def _from_http(result: HttpResult) -> InboundResult:
    return InboundResult(result.status, json.loads(result.body), replayed=result.replayed)


_COUPON_REDEMPTION = select(coupons.c.id, coupons.c.redemption_id).where(
    coupons.c.code == bindparam("b_code"), coupons.c.merchant_id == bindparam("b_merchant")
)


def _redemption_of(
    engine: Engine,
    p: Principal,
    code: str,
    now: datetime,
    settings: Settings,
    client: str | None,
) -> str:
    """The coupon's current redemption, else its latest one (so a retried reversal meets
    its idempotency record instead of a new refusal). Behind the guessing guard, like
    every look-up by code: unknown and mistyped codes count, a blocked key gets 429."""
    with CodeLookup(engine, settings.guard, p, now, client) as lookup:
        normalised = lookup.parse(code)
        with read_conn(engine) as conn:
            coupon = lookup.find(conn, _COUPON_REDEMPTION, normalised)
            if coupon.redemption_id is not None:
                return str(coupon.redemption_id)
            latest = conn.execute(
                select(redemptions.c.id)
                .where(redemptions.c.coupon_id == coupon.id)
                .order_by(redemptions.c.recorded_at.desc())
                .limit(1)
            ).scalar()
    if latest is None:
        raise refuse("coupon_not_redeemed", "The coupon has not been redeemed.")
    return str(latest)


def execute(
    engine: Engine,
    p: Principal,
    connector: InboundConnector,
    command: InboundCommand,
    headers: Mapping[str, str],
    *,
    now: datetime,
    settings: Settings,
    operations: svc.Operations,
    client: str | None = None,
) -> InboundResult:
    """Run ``command`` as the native API would; refusals come back as problem results."""
    key = idempotency_key(connector, command, headers)
    try:
        if command.operation == "reverse":
            redemption_id = command.redemption_id or (
                _redemption_of(engine, p, command.code, now, settings, client)
                if command.code
                else None
            )
            if redemption_id is None:
                raise refuse(
                    "invalid_pos_payload",
                    "A reversal names the coupon code or the redemption id.",
                    errors=[{"field": "code", "message": "missing"}],
                )
            return _from_http(
                svc.reverse(
                    engine,
                    p,
                    redemption_id,
                    command.reason,
                    idempotency_key=key,
                    canonical_body=msgspec.json.encode({"reason": command.reason}),
                    now=now,
                    operation=operations.reverse(redemption_id),
                    settings=settings,
                )
            )
        if command.redeem is None:
            raise refuse("invalid_pos_payload", "The payload names no coupon to redeem.")
        if command.operation == "validate":
            return InboundResult(
                200, svc.validate(engine, p, command.redeem, now, settings, client)
            )
        return _from_http(
            svc.redeem(
                engine,
                p,
                command.redeem,
                idempotency_key=key,
                canonical_body=msgspec.json.encode(command.redeem),
                now=now,
                operation=operations.redeem,
                settings=settings,
                client=client,
            )
        )
    except DomainError as err:
        return InboundResult(status_for(err.code), problem_for(err))


def _is_json(headers: Mapping[str, str]) -> bool:
    media = (header(headers, "content-type") or "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _parse(
    connector: InboundConnector, operation: Operation, body: bytes, headers: Mapping[str, str]
) -> InboundCommand:
    try:
        return connector.parse(operation, body, headers)
    except DomainError:
        raise
    except Exception as exc:  # a connector's bug: refuse the payload, never a 500
        log.error("pos.parse_failed", connector=connector.name, error=type(exc).__name__)
        raise refuse(
            "invalid_pos_payload", f"The {connector.name} connector could not read the payload."
        ) from None


def handle(
    engine: Engine,
    p: Principal,
    connector: InboundConnector,
    operation: Operation,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: datetime,
    settings: Settings,
    operations: svc.Operations,
    client: str | None = None,
    on_result: Callable[[InboundResult], None] | None = None,
) -> InboundReply:
    """Parse, execute and reply, all in the vendor's format. Never raises for a
    connector's fault: a connector that cannot render its reply gets a problem+json.
    ``on_result`` hears the hub's result (its outcome code) before the vendor's reply
    hides it in the vendor's format (the API's metrics count it)."""
    command: InboundCommand | None = None
    try:
        command = _parse(connector, operation, body, headers)
        if _is_json(headers):  # every JSON format, a plugin's too: as on the native routes
            check_json_text(body)
        if command.operation != operation:
            raise refuse(
                "invalid_pos_payload", f"The payload is a {command.operation}, not a {operation}."
            )
        if (
            command.store is not None
            and command.redeem is None
            and p.store_code is not None
            and command.store != p.store_code
        ):
            raise refuse(
                "store_forbidden",
                f"This key belongs to store {p.store_code}; it cannot act at {command.store}.",
            )
        result = execute(
            engine,
            p,
            connector,
            command,
            headers,
            now=now,
            settings=settings,
            operations=operations,
            client=client,
        )
    except PayloadError as err:  # readable: the reply still echoes what was read
        command = command or err.partial
        result = InboundResult(status_for(err.code), problem_for(err))
    except DomainError as err:
        result = InboundResult(status_for(err.code), problem_for(err))
    log.info(
        "pos.request",
        connector=connector.name,
        operation=operation,
        status=result.status,
        code=result.code,
        replayed=result.replayed,
    )
    if on_result is not None:
        on_result(result)
    try:
        return _replay_signal(connector.reply(operation, command, result), result)
    except Exception as exc:  # a connector bug must not become a 500 with a stack trace
        log.error(
            "pos.reply_failed", connector=connector.name, error=f"{type(exc).__name__}: {exc}"
        )
        doc: dict[str, Any] = problem_dict(
            result.code or "internal_error",
            result.status,
            f"The {connector.name} connector could not write its reply; the hub's "
            f"answer is attached.",
            hub_result=dict(result.body),
        )
        fallback = InboundReply(result.status, "application/problem+json", msgspec.json.encode(doc))
        return _replay_signal(fallback, result)


REPLAYED = "Idempotent-Replayed"


def _replay_signal(reply: InboundReply, result: InboundResult) -> InboundReply:
    """A replayed answer carries ``Idempotent-Replayed: true``, in every format, as on the
    native API; the body is the connector's reply to the same result."""
    if not result.replayed or any(k.lower() == REPLAYED.lower() for k in reply.headers):
        return reply
    return replace(reply, headers={**reply.headers, REPLAYED: "true"})

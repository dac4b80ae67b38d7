"""What every handler needs: the engine, the clock and settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from litestar import Request
from sqlalchemy import Engine

from hub.services.principal import Principal
from hub.services.redeem import Settings


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class HubState:
    engine: Engine
    settings: Settings = field(default_factory=Settings)
    clock: Callable[[], datetime] = utcnow


def hub(request: Request) -> HubState:  # type: ignore[type-arg]
    state: HubState = request.app.state.hub
    return state


def principal(request: Request) -> Principal:  # type: ignore[type-arg]
    p: Principal = request.scope["auth"]
    return p

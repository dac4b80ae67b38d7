"""Who is calling: the merchant, role and (for store keys) store of an API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from hub.domain.errors import refuse

Role = Literal["admin", "store"]
ROLES: tuple[Role, ...] = ("admin", "store")


@dataclass(frozen=True)
class Principal:
    key_id: str
    merchant_id: str
    role: Role
    tz: ZoneInfo
    store_id: str | None = None
    store_code: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise refuse("forbidden", "This needs an admin key.", status=403)

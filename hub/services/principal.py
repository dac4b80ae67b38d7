"""Who is calling: the merchant, role and (for store keys) store of an API key — or of
a staff member's shift session (role ``store``, ``key_id`` the session's id, and the
staff member in ``staff_id`` / ``staff_name``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from hub.domain.errors import refuse

Role = Literal["admin", "store", "integrator", "analyst", "app"]
ROLES: tuple[Role, ...] = ("admin", "store", "integrator", "analyst", "app")


@dataclass(frozen=True)
class Principal:
    key_id: str
    merchant_id: str
    role: Role
    tz: ZoneInfo
    store_id: str | None = None
    store_code: str | None = None
    # analyst keys may be limited to these store codes (None: every store)
    stores: tuple[str, ...] | None = None
    # app keys act on these channels (None: every channel)
    channels: tuple[str, ...] | None = None
    # a staff session (hub/services/staff_sessions.py): who acts (None: an API key)
    staff_id: str | None = None
    staff_name: str | None = None

    @property
    def staff(self) -> dict[str, str] | None:
        """``{"id", "name"}`` of the staff member acting, as answers and events name
        them (None: an API key acts)."""
        if self.staff_id is None:
            return None
        return {"id": self.staff_id, "name": self.staff_name or ""}

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def operator(cls, merchant_id: str, tz: ZoneInfo | None = None) -> Principal:
        """The command line acting as the merchant's admin (it holds the database)."""
        return cls(key_id="cli", merchant_id=merchant_id, role="admin", tz=tz or ZoneInfo("UTC"))

    def require_admin(self) -> None:
        if not self.is_admin:
            raise refuse("forbidden", "This needs an admin key.")

    def require(self, *roles: Role) -> None:
        """Defence in depth behind the API's permission table (hub/api/permissions.py)."""
        if self.role not in roles:
            raise refuse(
                "forbidden", f"This needs a key with role {' or '.join(roles)}."
            )

    def require_channel(self, channel: str) -> None:
        """An app key acts only on the channels it was created for."""
        if self.channels is not None and channel not in self.channels:
            raise refuse(
                "forbidden",
                f"This key acts on channels {', '.join(self.channels)}, not {channel}.",
            )

    @property
    def store_scope(self) -> tuple[str, ...] | None:
        """The store codes this key's reads are limited to (None: all)."""
        if self.store_code is not None:
            return (self.store_code,)
        return self.stores

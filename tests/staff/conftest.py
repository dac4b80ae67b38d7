"""Staff on a phone: a merchant with a staff member at SH-001, signed in through the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Clock, Merchant, issue, make_template


@dataclass
class Shop:
    client: Any
    db: Any
    m: Merchant
    clock: Clock
    tpl: str

    def admin(self) -> dict[str, str]:
        return self.m.auth()

    def store_key(self, store: str = "SH-001") -> dict[str, str]:
        return self.m.auth(self.m.store_keys[store])

    def add_staff(self, name: str = "Li Lei", store: str = "SH-001", **extra: Any) -> str:
        r = self.client.post(
            f"/v1/stores/{store}/staff", json={"name": name, **extra}, headers=self.admin()
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def code_for(self, staff_id: str, auth: dict[str, str] | None = None) -> str:
        r = self.client.post(
            f"/v1/staff/{staff_id}/sign-in-codes", headers=auth or self.admin()
        )
        assert r.status_code == 201, r.text
        return str(r.json()["code"])

    def sign_in(self, code: str, **headers: str) -> Any:
        return self.client.post("/v1/staff/sessions", json={"code": code}, headers=headers)

    def session(self, staff_id: str) -> dict[str, str]:
        r = self.sign_in(self.code_for(staff_id))
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def coupons(self, n: int = 1) -> list[str]:
        return issue(self.db, self.m, self.tpl, self.clock.now, count=n)


@pytest.fixture
def shop(client, db, merchant, clock) -> Shop:
    return Shop(client, db, merchant, clock, make_template(db, merchant, clock.now))

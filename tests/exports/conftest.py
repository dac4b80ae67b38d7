"""A fixed data set for the reconciliation exports (Asia/Shanghai, UTC+8), inserted with
fixed ids so the expected CSV can be written out as text.

Range 2026-11-24 … 2026-11-25 (local); the clock (``as_of``) is 2026-12-01T00:00Z.

=======  ======  ===================  ==================  ===========================
id       store   occurred (UTC)       local               reversed (UTC)
=======  ======  ===================  ==================  ===========================
rdm_01   SH-001  11-24 02:00          11-24 10:00
rdm_02   SH-001  11-24 15:30          11-24 23:30         (late in the local day)
rdm_03   SH-002  11-24 16:30          11-25 00:30         11-25 03:00 (in range): a
                                      (UTC day 11-24)     reversal row at 11-25 11:00
rdm_04   SH-001  11-23 10:00          11-23 18:00 (out)   11-24 04:00: only its
                                                          reversal row (12:00 local)
rdm_05   SH-001  11-25 16:00          11-26 00:00 (out: the range's end is exclusive)
rdm_06   SH-002  11-23 16:00          11-24 00:00:00 (in: the start is inclusive);
                                      reversed 11-26 02:00, after the range: counted
                                      ``reversed`` on 11-24, no reversal row
rdm_07   SH-001  11-25 01:00          recorded 12-02, after as_of: not exported
=======  ======  ===================  ==================  ===========================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from hub.db.schema import (
    api_keys,
    coupon_templates,
    coupons,
    customers,
    merchants,
    redemptions,
    stores,
)
from hub.services import keys
from tests.conftest import Clock

MERCHANT = "mch_EXPORTS"
AS_OF = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
RANGE = {"from": "2026-11-24", "to": "2026-11-25"}


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Data:
    client: Any
    db: Engine
    clock: Clock
    admin: dict[str, str]
    store_sh1: dict[str, str]
    analyst: dict[str, str]
    analyst_sh2: dict[str, str]
    integrator: dict[str, str]

    def get(self, path: str, auth: dict[str, str] | None = None, **params: str) -> Any:
        return self.client.get(path, params=params, headers=auth or self.admin)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def load_fixed(db: Engine) -> None:
    created = t("2026-11-01 00:00:00")
    with db.begin() as conn:
        conn.execute(
            insert(merchants).values(
                id=MERCHANT, name="Export Tea", timezone="Asia/Shanghai", created_at=created
            )
        )
        conn.execute(
            insert(stores),
            [
                {"id": "sto_1", "merchant_id": MERCHANT, "code": "SH-001", "name": "静安店",
                 "created_at": created},
                {"id": "sto_2", "merchant_id": MERCHANT, "code": "SH-002", "name": "徐汇店",
                 "created_at": created},
                {"id": "sto_3", "merchant_id": MERCHANT, "code": "BJ-001", "name": "=Beijing",
                 "created_at": created},
            ],
        )  # fmt: skip
        conn.execute(
            insert(customers).values(
                id="cus_1", merchant_id=MERCHANT, external_id="M0001", created_at=created
            )
        )
        conn.execute(
            insert(api_keys),
            [
                {"id": "key_till1", "merchant_id": MERCHANT, "role": "store",
                 "store_id": "sto_1", "name": "Till 1", "secret_hash": "x" * 64,
                 "created_at": created, "revoked_at": created},
                {"id": "key_app", "merchant_id": MERCHANT, "role": "app", "store_id": None,
                 "name": "小程序", "secret_hash": "y" * 64, "created_at": created,
                 "revoked_at": created},
                {"id": "key_office", "merchant_id": MERCHANT, "role": "admin",
                 "store_id": None, "name": "Back office", "secret_hash": "z" * 64,
                 "created_at": created, "revoked_at": created},
            ],
        )  # fmt: skip
        rules: dict[str, Any] = {}
        conn.execute(
            insert(coupon_templates),
            [
                {"id": "tpl_a", "merchant_id": MERCHANT, "name": "满100减20",
                 "kind": "threshold", "rules": rules, "status": "active", "created_at": created},
                {"id": "tpl_b", "merchant_id": MERCHANT, "name": "奶茶8折, 限堂食",
                 "kind": "percentage", "rules": rules, "status": "active",
                 "created_at": created},
            ],
        )  # fmt: skip
        plan = [
            # id, store, channel, tpl, customer, order, amount, discount, occurred,
            # recorded, reversed, reason, key, order redemption
            ("01", "SH-001", "pos", "tpl_a", None, "A-1", 12800, 2000, "2026-11-24 02:00:00",
             None, None, None, "key_till1", None),
            ("02", "SH-001", "pos", "tpl_a", None, "A-2", 10000, 2000, "2026-11-24 15:30:00",
             None, None, None, "key_till1", None),
            ("03", "SH-002", "mini_program", "tpl_b", "cus_1", "W-3", 5000, 1000,
             "2026-11-24 16:30:00", "2026-11-24 16:30:05.25", "2026-11-25 03:00:00",
             "refund", "key_app", "ord_03"),
            ("04", "SH-001", "pos", "tpl_a", None, "=1+2", 20000, 2000, "2026-11-23 10:00:00",
             None, "2026-11-24 04:00:00", "customer returned, 退货", "key_till1", None),
            ("05", "SH-001", "pos", "tpl_a", None, "A-5", 10000, 2000, "2026-11-25 16:00:00",
             None, None, None, "key_till1", None),
            ("06", "SH-002", "pos", "tpl_a", None, "B-6", 9900, 1, "2026-11-23 16:00:00",
             None, "2026-11-26 02:00:00", None, "key_office", None),
            ("07", "SH-001", "pos", "tpl_a", None, "A-7", 10000, 2000, "2026-11-25 01:00:00",
             "2026-12-02 00:00:00", None, None, "key_till1", None),
        ]  # fmt: skip
        for (n, store, channel, tpl, customer, order_id, amount, discount, occurred,
             recorded, reversed_at, reason, key, order_rdm) in plan:  # fmt: skip
            conn.execute(
                insert(coupons).values(
                    id=f"cpn_{n}", merchant_id=MERCHANT, template_id=tpl, code=f"CODE00{n}",
                    status="redeemed" if reversed_at is None else "issued",
                    customer_id=customer, channel=None, issued_at=created, valid_from=created,
                    valid_until=t("2027-01-01 00:00:00"),
                    redemption_id=f"rdm_{n}" if reversed_at is None else None,
                )
            )  # fmt: skip
            conn.execute(
                insert(redemptions).values(
                    id=f"rdm_{n}", merchant_id=MERCHANT, coupon_id=f"cpn_{n}", template_id=tpl,
                    store_id="sto_1" if store == "SH-001" else "sto_2", store_code=store,
                    channel=channel, order_id=order_id, order_amount=amount, discount=discount,
                    detail={}, status="redeemed" if reversed_at is None else "reversed",
                    occurred_at=t(occurred), recorded_at=t(recorded or occurred),
                    reversed_at=t(reversed_at) if reversed_at else None, reversal_reason=reason,
                    api_key_id=key, order_redemption_id=order_rdm,
                )
            )  # fmt: skip


@pytest.fixture
def data(client: Any, db: Engine, clock: Clock) -> Data:
    clock.now = AS_OF
    load_fixed(db)

    def key(role: str, **kw: Any) -> dict[str, str]:
        return _bearer(keys.create_key(db, MERCHANT, role, AS_OF, name=f"t {role}", **kw).token)

    return Data(
        client=client,
        db=db,
        clock=clock,
        admin=key("admin"),
        store_sh1=key("store", store_code="SH-001"),
        analyst=key("analyst"),
        analyst_sh2=key("analyst", store_codes=["SH-002"]),
        integrator=key("integrator"),
    )

"""Reading the rollup tables back, for comparisons; redeeming and reversing through the
API for the consumer's tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, select

from hub.db.schema import (
    analytics_cohorts,
    analytics_cohorts_monthly,
    analytics_customer_days,
    analytics_daily,
    analytics_lags,
    analytics_lags_monthly,
    analytics_monthly,
    analytics_open_claims,
    analytics_repeat,
    analytics_sales,
)
from tests.conftest import Merchant, order

TABLES = (
    analytics_daily, analytics_cohorts, analytics_lags, analytics_customer_days,
    analytics_sales, analytics_repeat, analytics_monthly, analytics_cohorts_monthly,
    analytics_lags_monthly, analytics_open_claims,
)  # fmt: skip


def rollups(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup row with a non-zero count, sorted (rows all zero mean nothing)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for t in TABLES:
            keys = [c for c in t.c if c.primary_key]
            counts = [c for c in t.c if not c.primary_key]
            rows = conn.execute(select(*keys, *counts)).all()
            out[t.name] = sorted(
                (tuple(str(v) for v in r[: len(keys)]) + tuple(int(v) for v in r[len(keys) :]))
                for r in rows
                if any(int(v) for v in r[len(keys) :])
            )
    return out


def redeem(client: Any, m: Merchant, code: str, store: str, amount: int, oid: str) -> str:
    r = client.post(
        "/v1/redemptions",
        json={"code": code, "store": store, "channel": "pos", "order": order(amount, order_id=oid)},
        headers={**m.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["redemption_id"])


def reverse(client: Any, m: Merchant, rid: str) -> None:
    r = client.post(
        f"/v1/redemptions/{rid}/reversal",
        json={"reason": "refund"},
        headers={**m.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code in (200, 201), r.text

"""A fixed, hand-made history for the figure tests (merchant time zone Asia/Shanghai,
UTC+8), made through the real API and services. Every figure the tests expect is
worked out by hand in test_figures.py from the table below.

Templates: A "满100减20" (threshold 10000 → 2000 off, valid 7 local days),
           P "九折" (percentage 10 % off, valid 5 local days).

Issued (UTC → local):
  2026-11-02T02:00Z (11-02 10:00)  A×4 channel pos to M0001..M0004 (a1..a4), A×1 pos
                                   unassigned (a5), P×2 mini_program unassigned (p1, p2)
  2026-11-03T20:00Z (11-04 04:00)  P×2 channel app to M0005, M0001 (p3, p4)
Claimed:
  2026-11-02T05:00Z (11-02 13:00)  p1 by M0002
Redeemed:
  R1 a1 SH-001 pos          O-1 12800 → 2000  2026-11-02T17:30Z (local 11-03 01:30!)  lag 0
  R2 a2 SH-002 pos          O-2 15000 → 2000  2026-11-03T03:00Z (11-03)              lag 1
  R3 p1 SH-001 mini_program O-3  8000 →  800  2026-11-04T02:00Z (11-04)              lag 2
  R4 a3 BJ-001 pos          O-4 20000 → 2000  2026-11-05T06:00Z (11-05)  reversed 2026-11-06T01:00Z
  R5 p3 SH-002 app          O-5  5000 →  500  2026-11-05T10:00Z (11-05)              lag 1
Sales reported (2026-11-06T04:00Z):
  O-1  SH-001 pos M0001 12800 2026-11-02T17:30Z  (a coupon order: R1)
  S-2  SH-001 pos M0001  6000 2026-11-04T04:00Z  (local 11-04)
  S-3  SH-002 web  —     3000 2026-11-05T12:00Z  (local 11-05)
  S-4  BJ-001 pos M0003  9000 2026-11-06T03:00Z  (local 11-06)
Now: 2026-11-06T04:00Z (local 11-06 12:00).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from hub.services import issuing
from tests.conftest import Clock, Merchant

NOW = datetime(2026, 11, 6, 4, 0, tzinfo=UTC)
A_SPEC = {
    "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
    "validity": {"type": "relative", "days": 7},
}
P_SPEC = {
    "benefit": {"kind": "percentage", "percent_off": 10},
    "validity": {"type": "relative", "days": 5},
}


@dataclass
class Data:
    a: str  # template ids
    p: str
    codes: dict[str, str]


def at(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _issue(
    db: Engine, m: Merchant, tpl: str, now: datetime, channel: str,
    customers: list[str] | None = None, count: int | None = None,
) -> list[str]:  # fmt: skip
    out = issuing.issue_coupons(
        db, m.principal, tpl, count=count, customer_external_ids=customers,
        channel=channel, now=now,
    )  # fmt: skip
    return [c["code"] for c in out["coupons"]]


def _post(client: Any, m: Merchant, path: str, body: dict[str, Any]) -> Any:
    r = client.post(path, json=body, headers={**m.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code in (200, 201), r.text
    return r.json()


def build(client: Any, db: Engine, m: Merchant, clock: Clock) -> Data:
    clock.now = at("2026-11-02T01:00:00Z")
    a = issuing.create_template(db, m.principal, "满100减20", A_SPEC, clock.now)["id"]
    p = issuing.create_template(db, m.principal, "九折", P_SPEC, clock.now)["id"]
    t1 = at("2026-11-02T02:00:00Z")
    codes: dict[str, str] = {}
    for name, code in zip(
        ("a1", "a2", "a3", "a4"),
        _issue(db, m, a, t1, "pos", customers=["M0001", "M0002", "M0003", "M0004"]),
        strict=True,
    ):
        codes[name] = code
    codes["a5"] = _issue(db, m, a, t1, "pos", count=1)[0]
    codes["p1"], codes["p2"] = _issue(db, m, p, t1, "mini_program", count=2)
    codes["p3"], codes["p4"] = _issue(
        db, m, p, at("2026-11-03T20:00:00Z"), "app", customers=["M0005", "M0001"]
    )
    clock.now = at("2026-11-02T05:00:00Z")
    _post(client, m, f"/v1/coupons/{codes['p1']}/claim", {"customer": "M0002"})

    def redeem(code: str, store: str, channel: str, oid: str, amount: int, when: str) -> str:
        clock.now = at(when)
        body = {"code": code, "store": store, "channel": channel,
                "order": {"id": oid, "amount": amount}}  # fmt: skip
        return str(_post(client, m, "/v1/redemptions", body)["redemption_id"])

    redeem(codes["a1"], "SH-001", "pos", "O-1", 12800, "2026-11-02T17:30:00Z")
    redeem(codes["a2"], "SH-002", "pos", "O-2", 15000, "2026-11-03T03:00:00Z")
    redeem(codes["p1"], "SH-001", "mini_program", "O-3", 8000, "2026-11-04T02:00:00Z")
    r4 = redeem(codes["a3"], "BJ-001", "pos", "O-4", 20000, "2026-11-05T06:00:00Z")
    redeem(codes["p3"], "SH-002", "app", "O-5", 5000, "2026-11-05T10:00:00Z")
    clock.now = at("2026-11-06T01:00:00Z")
    _post(client, m, f"/v1/redemptions/{r4}/reversal", {"reason": "refund"})
    clock.now = NOW
    orders = [
        {"order_id": "O-1", "store": "SH-001", "channel": "pos", "customer": "M0001",
         "amount": 12800, "occurred_at": "2026-11-02T17:30:00Z"},
        {"order_id": "S-2", "store": "SH-001", "channel": "pos", "customer": "M0001",
         "amount": 6000, "occurred_at": "2026-11-04T04:00:00Z"},
        {"order_id": "S-3", "store": "SH-002", "channel": "web",
         "amount": 3000, "occurred_at": "2026-11-05T12:00:00Z"},
        {"order_id": "S-4", "store": "BJ-001", "channel": "pos", "customer": "M0003",
         "amount": 9000, "occurred_at": "2026-11-06T03:00:00Z"},
    ]  # fmt: skip
    out = _post(client, m, "/v1/sales", {"orders": orders})
    assert out["recorded"] == 4
    return Data(a=a, p=p, codes=codes)

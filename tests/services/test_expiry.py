"""Expiry sweep: issued coupons past their window become `expired`, with an event each."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from hub.cli import main
from hub.db.schema import coupons, outbox_events
from hub.services.housekeeping import expire_coupons
from tests.conftest import issue, make_template, order

ONE_DAY = {"benefit": {"kind": "threshold", "threshold": 0, "discount": 100},
           "validity": {"type": "relative", "days": 1}}


def _statuses(db, codes):
    with db.connect() as conn:
        rows = conn.execute(select(coupons.c.code, coupons.c.status)
                            .where(coupons.c.code.in_(codes))).all()
    return {r.code: r.status for r in rows}


def test_sweep_expires_only_issued_coupons_past_their_window(client, db, merchant, clock):
    short = make_template(db, merchant, clock.now, ONE_DAY, name="1 day")
    long = make_template(db, merchant, clock.now)  # 30 days
    a, b, c, d, e = issue(db, merchant, short, clock.now, count=5)
    [keep] = issue(db, merchant, long, clock.now)
    r = client.post("/v1/redemptions", json={"code": a, "store": "SH-001", "order": order()},
                    headers={**merchant.auth(), "Idempotency-Key": "exp-1"})
    assert r.status_code == 201
    assert expire_coupons(db, clock.now) == 0  # nothing is due yet
    clock.advance(days=2)
    assert expire_coupons(db, clock.now, batch=2) == 4  # b, c, d, e, over three batches
    assert _statuses(db, [a, b, c, d, e, keep]) == {
        a: "redeemed", b: "expired", c: "expired", d: "expired", e: "expired", keep: "issued"}
    assert expire_coupons(db, clock.now) == 0  # idempotent
    with db.connect() as conn:
        events = conn.execute(select(outbox_events.c.type, outbox_events.c.data)
                              .where(outbox_events.c.type == "coupon.expired")).all()
    assert sorted(ev.data["code"] for ev in events) == sorted([b, c, d, e])
    r = client.post("/v1/redemptions", json={"code": b, "store": "SH-001", "order": order()},
                    headers={**merchant.auth(), "Idempotency-Key": "exp-2"})
    assert (r.status_code, r.json()["code"]) == (422, "coupon_expired")
    history = client.get(f"/v1/coupons/{b}", headers=merchant.auth()).json()
    assert history["status"] == "expired"
    assert [h["type"] for h in history["history"]] == ["coupon.issued", "coupon.expired"]
    r = client.post(f"/v1/coupons/{b}/void", headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (409, "illegal_transition")


def test_cli_expire(tmp_path, clock):
    db_path = str(tmp_path / "x.db")
    runner = CliRunner()
    assert runner.invoke(main, ["migrate", "--db", db_path]).exit_code == 0
    result = runner.invoke(main, ["coupons", "expire", "--db", db_path])
    assert result.exit_code == 0, result.output
    assert "expired 0 coupons" in result.output

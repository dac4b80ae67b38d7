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


# --- offline redemptions are judged at occurred_at, swept or not (issue 9, item 8) --------

import threading  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import timedelta  # noqa: E402

import msgspec  # noqa: E402

from hub.api.redemptions import REDEMPTION_OPERATIONS  # noqa: E402
from hub.domain.cart import Order  # noqa: E402
from hub.services.commands import RedeemCommand  # noqa: E402
from hub.services.jsonio import iso  # noqa: E402
from hub.services.redeem import redeem as redeem_service  # noqa: E402


def _one_hour_window(db, merchant, clock):
    """A template valid from an hour ago to an hour from now; the clock then moves on
    two hours, so the window closed after a sale at +30 min but before the upload."""
    start, end = clock.now - timedelta(hours=1), clock.now + timedelta(hours=1)
    spec = {"benefit": {"kind": "threshold", "threshold": 0, "discount": 100},
            "validity": {"type": "fixed", "start": iso(start), "end": iso(end)}}
    return make_template(db, merchant, clock.now, spec, name="2 hours"), end


def _offline(client, merchant, code, at, key, path="/v1/redemptions"):
    body = {"code": code, "store": "SH-001", "order": order(order_id=f"OFF-{key}"),
            "occurred_at": iso(at)}
    headers = {**merchant.auth(), "Idempotency-Key": key}
    return client.post(path, json=body, headers=headers)


def _without_ids(doc):
    return {k: v for k, v in doc.items()
            if k not in ("redemption_id", "code", "order_id", "recorded_at")}


def test_offline_sale_inside_the_window_redeems_the_same_before_and_after_the_sweep(
    client, db, merchant, clock
):
    tpl, end = _one_hour_window(db, merchant, clock)
    before, after, v_before, v_after = issue(db, merchant, tpl, clock.now, count=4)
    sold_at = end - timedelta(minutes=30)
    clock.advance(hours=2)  # the terminal comes back online after the window closed

    # validate and redeem before the sweep ran: judged at occurred_at, inside the window
    v1 = _offline(client, merchant, v_before, sold_at, "v1", "/v1/redemptions/validate")
    assert (v1.status_code, v1.json()["status"]) == (200, "valid"), v1.text
    r1 = _offline(client, merchant, before, sold_at, "off-1")
    assert r1.status_code == 201, r1.text

    assert expire_coupons(db, clock.now) == 3  # the sweep: after, v_before, v_after
    assert _statuses(db, [after, v_after]) == {after: "expired", v_after: "expired"}

    # the same after the sweep
    v2 = _offline(client, merchant, v_after, sold_at, "v2", "/v1/redemptions/validate")
    assert (v2.status_code, v2.json()["status"]) == (200, "valid"), v2.text
    assert {**v2.json(), "code": None} == {**v1.json(), "code": None}
    r2 = _offline(client, merchant, after, sold_at, "off-2")
    assert r2.status_code == 201, r2.text
    assert _without_ids(r2.json()) == _without_ids(r1.json())
    assert r2.json()["redeemed_at"] == iso(sold_at)
    assert _statuses(db, [before, after]) == {before: "redeemed", after: "redeemed"}
    history = client.get(f"/v1/coupons/{after}", headers=merchant.auth()).json()
    assert history["status"] == "redeemed"
    assert [h["type"] for h in history["history"]] == [
        "coupon.issued", "coupon.expired", "coupon.redeemed"]

    # exactly once still: a second upload of another sale is refused, swept or not
    again = _offline(client, merchant, after, sold_at, "off-3")
    assert (again.status_code, again.json()["code"]) == (409, "coupon_already_redeemed")
    # and a replay of the first upload is the first answer
    replay = _offline(client, merchant, after, sold_at, "off-2")
    assert replay.content == r2.content and replay.headers["Idempotent-Replayed"] == "true"


def test_offline_sale_after_the_window_is_refused_the_same_before_and_after_the_sweep(
    client, db, merchant, clock
):
    tpl, end = _one_hour_window(db, merchant, clock)
    before, after = issue(db, merchant, tpl, clock.now, count=2)
    sold_at = end + timedelta(minutes=30)
    clock.advance(hours=2)
    refused = {}
    for name, code in (("before", before), ("after", after)):
        if name == "after":
            assert expire_coupons(db, clock.now) == 2
        for path in ("/v1/redemptions/validate", "/v1/redemptions"):
            r = _offline(client, merchant, code, sold_at, f"late-{name}-{path[-4:]}", path)
            refused[name, path] = (r.status_code, r.json())
    for path in ("/v1/redemptions/validate", "/v1/redemptions"):
        status, doc = refused["after", path]
        assert (status, doc["code"]) == (422, "coupon_expired")
        assert refused["before", path] == (status, doc)  # the same answer, byte for byte
    assert _statuses(db, [before, after]) == {before: "expired", after: "expired"}


def test_voided_coupons_stay_refused_whatever_occurred_at(client, db, merchant, clock):
    tpl, end = _one_hour_window(db, merchant, clock)
    [code] = issue(db, merchant, tpl, clock.now)
    r = client.post(f"/v1/coupons/{code}/void", headers=merchant.auth(), json={})
    assert r.status_code == 200, r.text
    clock.advance(hours=2)
    for swept in (False, True):
        if swept:
            assert expire_coupons(db, clock.now) == 0  # the sweep leaves voided coupons
        for path in ("/v1/redemptions/validate", "/v1/redemptions"):
            sold_at = end - timedelta(minutes=30)
            r = _offline(client, merchant, code, sold_at, f"vd-{swept}-{path[-4:]}", path)
            assert (r.status_code, r.json()["code"]) == (409, "coupon_voided"), r.text
    assert _statuses(db, [code]) == {code: "voided"}


def test_swept_coupon_is_redeemed_once_under_a_race(db, merchant, clock):
    tpl, end = _one_hour_window(db, merchant, clock)
    [code] = issue(db, merchant, tpl, clock.now)
    clock.advance(hours=2)
    assert expire_coupons(db, clock.now) == 1
    n = 12
    barrier = threading.Barrier(n)

    def attempt(i: int) -> int:
        cmd = RedeemCommand(code=code, store="SH-001", channel="pos",
                            order=Order(id=f"R-{i}", amount=12800),
                            occurred_at=end - timedelta(minutes=5))
        barrier.wait()
        result = redeem_service(db, merchant.principal, cmd, idempotency_key=f"race-{i}",
                                canonical_body=msgspec.json.encode({"i": i}), now=clock.now,
                                operation=REDEMPTION_OPERATIONS.redeem)
        if result.status != 201:
            assert msgspec.json.decode(result.body)["code"] == "coupon_already_redeemed"
        return result.status

    with ThreadPoolExecutor(n) as pool:
        statuses = sorted(pool.map(attempt, range(n)))
    assert statuses == [201] + [409] * (n - 1)
    with db.connect() as conn:
        events = conn.execute(select(outbox_events.c.type)
                              .where(outbox_events.c.type == "coupon.redeemed")).all()
    assert len(events) == 1 and _statuses(db, [code]) == {code: "redeemed"}

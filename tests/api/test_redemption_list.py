"""GET /v1/redemptions (filters, order, cursor pagination) and offline ``occurred_at``."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub.db.schema import redemptions
from hub.services.jsonio import iso
from tests.conftest import THRESHOLD_SPEC, issue, make_template, order

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai

PCT_SPEC: dict[str, Any] = {
    "benefit": {"kind": "percentage", "percent_off": 10},
    "validity": {"type": "relative", "days": 30},
}


def _utc(s: str) -> datetime:
    assert s.endswith("Z"), s
    return datetime.fromisoformat(s)


def redeem(client, m, code: str, *, store: str, key: str, channel: str = "pos",
           occurred_at: datetime | None = None, amount: int = 12800) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "store": store, "channel": channel,
                            "order": order(amount, order_id=f"O-{key}")}
    if occurred_at is not None:
        body["occurred_at"] = iso(occurred_at)
    r = client.post("/v1/redemptions", json=body, headers={**m.auth(), "Idempotency-Key": key})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


@dataclass
class Seeded:
    tpl_a: str
    tpl_b: str
    ids: list[str]  # redemption ids, newest first
    at: dict[str, datetime]  # redemption id -> occurred_at
    store: dict[str, str]
    channel: dict[str, str]
    template: dict[str, str]
    reversed_id: str


# (hours before NOW, store, channel, template) — two share the same time on purpose
PLAN = [
    (1, "SH-001", "pos", "a"),
    (5, "SH-002", "mini_program", "b"),
    (20, "SH-001", "app", "a"),
    (20, "BJ-001", "pos", "b"),
    (48, "SH-001", "pos", "b"),
    (100, "SH-002", "pos", "a"),
    (150, "BJ-001", "mini_program", "a"),
]


@pytest.fixture
def seeded(client, db, merchant, clock) -> Seeded:
    clock.now = NOW - timedelta(days=8)
    tpl_a = make_template(db, merchant, clock.now, spec=THRESHOLD_SPEC, name="A")
    tpl_b = make_template(db, merchant, clock.now, spec=PCT_SPEC, name="B")
    codes_a = issue(db, merchant, tpl_a, clock.now, count=4)
    codes_b = issue(db, merchant, tpl_b, clock.now, count=3)
    clock.now = NOW
    s = Seeded(tpl_a, tpl_b, [], {}, {}, {}, {}, "")
    # record them in an order unrelated to their occurred_at
    for i in (3, 0, 6, 1, 5, 2, 4):
        hours, store, channel, which = PLAN[i]
        code = (codes_a if which == "a" else codes_b).pop()
        out = redeem(client, merchant, code, store=store, key=f"seed-{i}", channel=channel,
                     occurred_at=NOW - timedelta(hours=hours))
        rid = out["redemption_id"]
        s.at[rid] = NOW - timedelta(hours=hours)
        s.store[rid] = store
        s.channel[rid] = channel
        s.template[rid] = tpl_a if which == "a" else tpl_b
    s.ids = sorted(s.at, key=lambda rid: (s.at[rid], rid), reverse=True)
    # reverse the one at 48 h
    s.reversed_id = next(rid for rid in s.ids if s.at[rid] == NOW - timedelta(hours=48))
    r = client.post(f"/v1/redemptions/{s.reversed_id}/reversal", json={"reason": "refund"},
                    headers={**merchant.auth(), "Idempotency-Key": "seed-rev"})
    assert r.status_code == 201, r.text
    return s


def listing(client, m, key: str | None = None, **params: Any) -> dict[str, Any]:
    r = client.get("/v1/redemptions", params=params, headers=m.auth(key))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def ids_of(page: dict[str, Any]) -> list[str]:
    return [it["redemption_id"] for it in page["items"]]


def test_all_newest_first(client, merchant, seeded):
    page = listing(client, merchant)
    assert ids_of(page) == seeded.ids
    assert page["next_cursor"] is None
    times = [_utc(it["redeemed_at"]) for it in page["items"]]
    assert times == sorted(times, reverse=True)
    assert [_utc(it["redeemed_at"]) for it in page["items"]] == [seeded.at[r] for r in seeded.ids]
    first = page["items"][0]
    assert first["store"] == "SH-001" and first["channel"] == "pos"
    assert first["template_id"] == seeded.tpl_a and first["status"] == "redeemed"
    assert first["order_amount"] == 12800 and first["discount"] == 2000
    assert first["code"] is not None and first["reversed_at"] is None
    assert all(_utc(it["recorded_at"]) == NOW for it in page["items"])


def test_filter_by_store(client, merchant, seeded):
    for store in ("SH-001", "SH-002", "BJ-001"):
        page = listing(client, merchant, store=store)
        expected = [r for r in seeded.ids if seeded.store[r] == store]
        assert ids_of(page) == expected and expected
        assert {it["store"] for it in page["items"]} == {store}
    assert listing(client, merchant, store="XX-404")["items"] == []
    # a store key sees its own store only, whatever it asks for
    own = listing(client, merchant, key=merchant.store_keys["SH-002"])
    assert ids_of(own) == [r for r in seeded.ids if seeded.store[r] == "SH-002"]
    assert listing(client, merchant, key=merchant.store_keys["SH-002"], store="SH-001")[
        "items"
    ] == []


def test_filter_by_time_range_with_offsets(client, merchant, seeded):
    since = NOW - timedelta(hours=20)
    until = NOW - timedelta(hours=1)
    # the same instants written in Shanghai time: from is inclusive, to exclusive
    page = listing(client, merchant,
                   **{"from": since.astimezone(merchant.tz).isoformat(),
                      "to": until.astimezone(merchant.tz).isoformat()})
    assert "+08:00" in since.astimezone(merchant.tz).isoformat()
    expected = [r for r in seeded.ids if since <= seeded.at[r] < until]
    assert len(expected) == 3  # 5 h and the two at 20 h
    assert ids_of(page) == expected
    page = listing(client, merchant, **{"from": iso(NOW - timedelta(hours=49))})
    assert ids_of(page) == [r for r in seeded.ids if seeded.at[r] >= NOW - timedelta(hours=49)]
    page = listing(client, merchant, to="2026-11-15T12:00:00+08:00")  # 04:00Z, 120 h ago
    assert ids_of(page) == [r for r in seeded.ids if seeded.at[r] < NOW - timedelta(hours=120)]
    assert len(ids_of(page)) == 1


@pytest.mark.parametrize("param", ["from", "to"])
def test_naive_times_are_refused(client, merchant, seeded, param):
    r = client.get("/v1/redemptions", params={param: "2026-11-19T08:00:00"},
                   headers=merchant.auth())
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_request"
    assert param in r.json()["detail"]
    r = client.get("/v1/redemptions", params={param: "yesterday"}, headers=merchant.auth())
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")
    assert r.json()["errors"] == [{"field": param, "message": "not an ISO 8601 time"}]


def test_filter_by_template_channel_and_status(client, merchant, seeded):
    for tpl in (seeded.tpl_a, seeded.tpl_b):
        page = listing(client, merchant, template=tpl)
        assert ids_of(page) == [r for r in seeded.ids if seeded.template[r] == tpl]
    for channel in ("pos", "mini_program", "app"):
        page = listing(client, merchant, channel=channel)
        assert ids_of(page) == [r for r in seeded.ids if seeded.channel[r] == channel]
        assert {it["channel"] for it in page["items"]} == {channel}
    page = listing(client, merchant, status="reversed")
    assert ids_of(page) == [seeded.reversed_id]
    assert page["items"][0]["status"] == "reversed"
    assert _utc(page["items"][0]["reversed_at"]) == NOW
    page = listing(client, merchant, status="redeemed")
    assert ids_of(page) == [r for r in seeded.ids if r != seeded.reversed_id]
    # filters combine
    page = listing(client, merchant, store="SH-001", channel="pos", template=seeded.tpl_a)
    assert ids_of(page) == [
        r for r in seeded.ids
        if seeded.store[r] == "SH-001" and seeded.channel[r] == "pos"
        and seeded.template[r] == seeded.tpl_a
    ]


def test_cursor_pagination_visits_each_once(client, merchant, seeded):
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = listing(client, merchant, **params)
        pages += 1
        assert len(page["items"]) <= 2
        seen.extend(ids_of(page))
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 2
        assert pages < 10
    assert pages == 4
    assert len(seen) == len(set(seen)) == 7
    assert seen == seeded.ids
    # the cursor carries the filters' result set forward too
    page = listing(client, merchant, limit=1, store="SH-001")
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = listing(client, merchant, limit=10, store="SH-001", cursor=page["next_cursor"])
    assert ids_of(page) + ids_of(rest) == [r for r in seeded.ids if seeded.store[r] == "SH-001"]
    assert rest["next_cursor"] is None
    # exactly a page's worth: no empty extra page
    page = listing(client, merchant, limit=7)
    assert len(page["items"]) == 7 and page["next_cursor"] is None


def test_tampered_cursor_is_refused(client, merchant, seeded):
    cursor = listing(client, merchant, limit=2)["next_cursor"]
    assert cursor
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert raw.startswith(b'["')
    bad = [
        "not-a-cursor",
        cursor[:-3],
        base64.urlsafe_b64encode(raw[:-2]).decode(),  # truncated JSON
        base64.urlsafe_b64encode(raw.replace(b'"', b"'")).decode(),  # not JSON
        base64.urlsafe_b64encode(b'["2026-11-19T08:00:00", "rdm_x"]').decode(),  # naive time
        base64.urlsafe_b64encode(b'{"at": 1}').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe garbage").decode(),
    ]
    for c in bad:
        r = client.get("/v1/redemptions", params={"cursor": c}, headers=merchant.auth())
        assert r.status_code == 400, (c, r.text)
        assert r.json()["code"] == "invalid_cursor"
        assert r.headers["content-type"].startswith("application/problem+json")


# --- offline redemptions: occurred_at apart from recorded_at ---------------------------


def test_occurred_at_is_kept_apart_from_recorded_at(client, db, merchant, clock):
    clock.now = NOW
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now - timedelta(days=1))
    occurred = NOW - timedelta(hours=3, minutes=7)
    out = redeem(client, merchant, code, store="SH-002", key="off-1", occurred_at=occurred)
    assert _utc(out["redeemed_at"]) == occurred
    assert _utc(out["recorded_at"]) == NOW
    item = listing(client, merchant)["items"][0]
    assert _utc(item["redeemed_at"]) == occurred and _utc(item["recorded_at"]) == NOW
    with db.connect() as conn:
        row = conn.execute(
            select(redemptions.c.occurred_at, redemptions.c.recorded_at)
            .where(redemptions.c.id == out["redemption_id"])
        ).one()
    assert row.occurred_at == occurred and row.recorded_at == NOW
    look = client.get(f"/v1/coupons/{code}", headers=merchant.auth()).json()
    ev = look["history"][-1]
    assert ev["type"] == "coupon.redeemed"
    assert _utc(ev["at"]) == occurred and _utc(ev["recorded_at"]) == NOW
    # without occurred_at both are now
    [code2] = issue(db, merchant, tpl, clock.now)
    out = redeem(client, merchant, code2, store="SH-002", key="on-1")
    assert _utc(out["redeemed_at"]) == _utc(out["recorded_at"]) == NOW


def test_offline_redemption_is_judged_at_occurred_at(client, db, merchant, clock):
    clock.now = NOW
    spec = {
        "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
        "validity": {"type": "fixed", "start": iso(NOW - timedelta(days=3)),
                     "end": iso(NOW - timedelta(hours=1))},
    }
    tpl = make_template(db, merchant, NOW - timedelta(days=3), spec=spec)
    a, b, c = issue(db, merchant, tpl, NOW - timedelta(days=3), count=3)
    # online now: the window ended an hour ago
    r = client.post("/v1/redemptions", json={"code": a, "store": "SH-001", "order": order()},
                    headers={**merchant.auth(), "Idempotency-Key": "late-now"})
    assert (r.status_code, r.json()["code"]) == (422, "coupon_expired")
    # offline: the sale happened two hours ago, inside the window
    out = redeem(client, merchant, a, store="SH-001", key="late-offline",
                 occurred_at=NOW - timedelta(hours=2))
    assert out["status"] == "redeemed" and out["discount"] == 2000
    assert _utc(out["redeemed_at"]) == NOW - timedelta(hours=2)
    # but a sale after the window closed is still refused
    r = client.post("/v1/redemptions",
                    json={"code": b, "store": "SH-001", "order": order(),
                          "occurred_at": iso(NOW - timedelta(minutes=30))},
                    headers={**merchant.auth(), "Idempotency-Key": "late-after"})
    assert (r.status_code, r.json()["code"]) == (422, "coupon_expired")
    # and one from before the window opened is not yet valid
    r = client.post("/v1/redemptions",
                    json={"code": c, "store": "SH-001", "order": order(),
                          "occurred_at": iso(NOW - timedelta(days=3, hours=1))},
                    headers={**merchant.auth(), "Idempotency-Key": "late-before"})
    assert (r.status_code, r.json()["code"]) == (422, "coupon_not_yet_valid")
    r = client.post("/v1/redemptions",
                    json={"code": c, "store": "SH-001", "order": order(),
                          "occurred_at": iso(NOW + timedelta(hours=1))},
                    headers={**merchant.auth(), "Idempotency-Key": "late-future"})
    assert (r.status_code, r.json()["code"]) == (422, "occurred_at_in_future")
    assert ids_of(listing(client, merchant)) == [out["redemption_id"]]


def test_offline_redemption_older_than_seven_days_is_refused(client, db, merchant, clock):
    clock.now = NOW
    tpl = make_template(db, merchant, NOW - timedelta(days=9))
    [code] = issue(db, merchant, tpl, NOW - timedelta(days=9))
    r = client.post("/v1/redemptions",
                    json={"code": code, "store": "SH-001", "order": order(),
                          "occurred_at": iso(NOW - timedelta(days=7, minutes=1))},
                    headers={**merchant.auth(), "Idempotency-Key": "too-old"})
    assert (r.status_code, r.json()["code"]) == (422, "occurred_at_too_old")
    out = redeem(client, merchant, code, store="SH-001", key="just-in-time",
                 occurred_at=NOW - timedelta(days=6, hours=23))
    assert _utc(out["redeemed_at"]) == NOW - timedelta(days=6, hours=23)

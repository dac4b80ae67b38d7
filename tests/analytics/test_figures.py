"""Every figure of every analytics route on the fixed data set (tests/analytics/dataset.py),
compared with values worked out by hand, on SQLite and PostgreSQL.

Worked out by hand (local days, Asia/Shanghai):
  issued 9 (11-02: 7 — A×5 pos, P×2 mini_program; 11-04: 2 P app), claimed 7 (11-02: 4 A
  held at issue + p1 claimed; 11-04: p3, p4 held at issue)
  redeemed 5 (11-03: R1 — 17:30Z on 11-02 is 01:30 on 11-03 — and R2; 11-04: R3;
  11-05: R4, R5), reversed 1 (R4, on its redemption's day 11-05), net 4
  discount 2000+2000+800+500 = 5300; order amount 12800+15000+8000+5000 = 40800
  cohort: 9 issued, 4 redeemed and not reversed (a1, a2, p1, p3) → 4/9 = 0.4444
  lags (whole days): R1 0, R2 1, R3 2, R5 1 → sorted 0 1 1 2: median rank ⌈2⌉ = 1,
  p90 rank ⌈3.6⌉ = 4 → 2; within 2 days (lag < 2): 3/9 = 0.3333
  average with coupon 40800/4 = 10200; without: S-2 6000, S-3 3000, S-4 9000 → 6000
  (O-1 is R1's order: counted by its redemption)
  repeat (30 days), per coupon customer-day (a customer with a net redemption that local
  day at a store through a channel): M0001 11-03 SH-001 pos (R1), M0002 11-03 SH-002 pos
  (R2), M0002 11-04 SH-001 mini_program (R3), M0005 11-05 SH-002 app (R5) — M0003's only
  redemption was reversed; M0001 bought 11-04 (S-2) and M0002 redeemed again 11-04 (R3):
  both 11-03 days repeated within a day; M0002 ordered nothing after 11-04, M0005 nothing
  after 11-05 → 2/4 = 0.5000 (7, 14 and 30 days alike)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from hub.services import keys, rollup
from tests.analytics.dataset import NOW, Data, build
from tests.conftest import Clock, Merchant

RANGE = {"from": "2026-11-02", "to": "2026-11-06"}


@pytest.fixture
def data(client: Any, db: Engine, merchant: Merchant, clock: Clock) -> Iterator[Data]:
    d = build(client, db, merchant, clock)
    rollup.consume(db, NOW)
    yield d


def get(client: Any, m: Merchant, path: str, key: str | None = None, **params: Any) -> Any:
    r = client.get(f"/v1/analytics/{path}", params={**RANGE, **params}, headers=m.auth(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["timezone"] == "Asia/Shanghai"
    assert body["lag_seconds"] == 2
    assert body["as_of"] == "2026-11-06T04:00:00.000Z"  # caught up: now
    return body


def test_summary(client: Any, merchant: Merchant, data: Data) -> None:
    body = get(client, merchant, "summary")
    assert body["from"] == "2026-11-02" and body["to"] == "2026-11-06"
    assert body["figures"] == {
        "issued": 9,
        "claimed": 7,
        "redeemed": 5,
        "reversed": 1,
        "net_redeemed": 4,
        "redemption_rate": "0.4444",
        "redemption_rate_within": {"days": 7, "rate": "0.4444"},
        "discount": 5300,
        "order_amount": 40800,
        "average_order_with_coupon": 10200,
        "average_order_without_coupon": 6000,
        "repeat_purchase_rate": "0.5000",
        "repeat_within_days": 30,
        "time_to_redeem_days": {"median": 1, "p90": 2},
    }
    f = get(client, merchant, "summary", within_days=2, repeat_days=7)["figures"]
    assert f["redemption_rate_within"] == {"days": 2, "rate": "0.3333"}
    # within 7 days: M0001 (11-03 → S-2 on 11-04) and M0002 (11-03 → R3 on 11-04)
    assert f["repeat_purchase_rate"] == "0.5000" and f["repeat_within_days"] == 7
    f = get(client, merchant, "summary", within_days=1)["figures"]
    assert f["redemption_rate_within"] == {"days": 1, "rate": "0.1111"}  # R1 only


def test_summary_of_one_local_day_across_the_utc_boundary(
    client: Any, merchant: Merchant, data: Data
) -> None:
    # 11-03 local: R1 (11-02 17:30 UTC) and R2; nothing issued that day
    f = get(client, merchant, "summary", **{"from": "2026-11-03", "to": "2026-11-03"})["figures"]
    assert (f["issued"], f["redeemed"], f["net_redeemed"], f["discount"], f["order_amount"]) == (
        0, 2, 2, 4000, 27800,
    )  # fmt: skip
    assert f["redemption_rate"] is None  # no cohort that day
    assert f["time_to_redeem_days"] == {"median": None, "p90": None}
    assert f["average_order_with_coupon"] == 13900
    # redeemers that day: M0001, M0002; both bought again on 11-04
    assert f["repeat_purchase_rate"] == "1.0000"
    assert f["average_order_without_coupon"] is None  # no order without a coupon that day
    # 11-02 local: nothing redeemed (R1 is the 3rd locally)
    f = get(client, merchant, "summary", **{"from": "2026-11-02", "to": "2026-11-02"})["figures"]
    assert (f["issued"], f["claimed"], f["redeemed"]) == (7, 5, 0)
    assert f["redemption_rate"] == "0.4286"  # a1, a2, p1 of the 7 issued that day


ZERO = {"issued": 0, "claimed": 0, "redeemed": 0, "reversed": 0, "net_redeemed": 0,
        "discount": 0, "order_amount": 0}  # fmt: skip


def test_series_by_day_week_month(client: Any, merchant: Merchant, data: Data) -> None:
    body = get(client, merchant, "series", group="day")
    assert body["group"] == "day"
    assert body["points"] == [
        {"period": "2026-11-02", **ZERO, "issued": 7, "claimed": 5},
        {"period": "2026-11-03", **ZERO, "redeemed": 2, "net_redeemed": 2, "discount": 4000,
         "order_amount": 27800},
        {"period": "2026-11-04", **ZERO, "issued": 2, "claimed": 2, "redeemed": 1,
         "net_redeemed": 1, "discount": 800, "order_amount": 8000},
        {"period": "2026-11-05", **ZERO, "redeemed": 2, "reversed": 1, "net_redeemed": 1,
         "discount": 500, "order_amount": 5000},
        {"period": "2026-11-06", **ZERO},
    ]  # fmt: skip
    total = {"issued": 9, "claimed": 7, "redeemed": 5, "reversed": 1, "net_redeemed": 4,
             "discount": 5300, "order_amount": 40800}  # fmt: skip
    week = get(client, merchant, "series", group="week", **{"from": "2026-10-31"})
    assert week["points"] == [{"period": "2026-W44", **ZERO}, {"period": "2026-W45", **total}]
    month = get(client, merchant, "series", group="month", **{"from": "2026-10-31"})
    assert month["points"] == [{"period": "2026-10", **ZERO}, {"period": "2026-11", **total}]
    assert get(client, merchant, "series")["group"] == "day"


def test_breakdowns(client: Any, merchant: Merchant, data: Data) -> None:
    def rows(by: str) -> list[dict[str, Any]]:
        body = get(client, merchant, "breakdown", by=by)
        assert body["by"] == by
        return list(body["rows"])

    assert rows("store") == [
        {"key": "BJ-001", "label": "Store BJ-001", "issued": None, "claimed": None,
         "redeemed": 1, "reversed": 1, "net_redeemed": 0, "discount": 0, "order_amount": 0,
         "redemption_rate": "0.0000"},
        {"key": "SH-001", "label": "Store SH-001", "issued": None, "claimed": None,
         "redeemed": 2, "reversed": 0, "net_redeemed": 2, "discount": 2800,
         "order_amount": 20800, "redemption_rate": "0.2222"},
        {"key": "SH-002", "label": "Store SH-002", "issued": None, "claimed": None,
         "redeemed": 2, "reversed": 0, "net_redeemed": 2, "discount": 2500,
         "order_amount": 20000, "redemption_rate": "0.2222"},
    ]  # fmt: skip
    pos = {"issued": 5, "claimed": 4, "redeemed": 3, "reversed": 1, "net_redeemed": 2,
           "discount": 4000, "order_amount": 27800, "redemption_rate": "0.4000"}  # fmt: skip
    assert rows("channel") == [
        {"key": "app", "label": "app", "issued": 2, "claimed": 2, "redeemed": 1, "reversed": 0,
         "net_redeemed": 1, "discount": 500, "order_amount": 5000, "redemption_rate": "0.5000"},
        {"key": "mini_program", "label": "mini_program", "issued": 2, "claimed": 1,
         "redeemed": 1, "reversed": 0, "net_redeemed": 1, "discount": 800,
         "order_amount": 8000, "redemption_rate": "0.5000"},
        {"key": "pos", "label": "pos", **pos},
    ]  # fmt: skip
    online = {"issued": 4, "claimed": 3, "redeemed": 2, "reversed": 0, "net_redeemed": 2,
              "discount": 1300, "order_amount": 13000, "redemption_rate": "0.5000"}  # fmt: skip
    assert rows("online") == [
        {"key": "offline", "label": "offline", **pos},
        {"key": "online", "label": "online", **online},
    ]
    assert rows("template") == [
        {"key": data.a, "label": "满100减20", **pos},
        {"key": data.p, "label": "九折", **online},
    ]
    assert rows("kind") == [
        {"key": "percentage", "label": "percentage", **online},
        {"key": "threshold", "label": "threshold", **pos},
    ]


def test_league(client: Any, merchant: Merchant, data: Data) -> None:
    body = get(client, merchant, "stores/league")
    assert body["margin"] == "0.20"
    # averages over the 3 stores: 4/3, 5300/3, (0 + 0.2222 + 0.2222)/3
    assert body["merchant_average"] == {
        "net_redeemed": "1.3333", "discount": "1766.6667", "redemption_rate": "0.1481",
    }  # fmt: skip
    assert body["rows"] == [
        {"rank": 1, "store": "SH-001", "name": "Store SH-001", "net_redeemed": 2,
         "discount": 2800, "order_amount": 20800, "redemption_rate": "0.2222",
         "lagging": False, "reason": None},
        {"rank": 2, "store": "SH-002", "name": "Store SH-002", "net_redeemed": 2,
         "discount": 2500, "order_amount": 20000, "redemption_rate": "0.2222",
         "lagging": False, "reason": None},
        {"rank": 3, "store": "BJ-001", "name": "Store BJ-001", "net_redeemed": 0,
         "discount": 0, "order_amount": 0, "redemption_rate": "0.0000", "lagging": True,
         "reason": "net_redeemed, discount, redemption_rate below the store average by "
                   "more than 20%"},
    ]  # fmt: skip
    # margin 0.5: SH-002's discount 2500 is not below 1766.67 × 0.5; BJ-001 still lags
    body = get(client, merchant, "stores/league", margin="0.5")
    assert body["margin"] == "0.50"
    assert [r["lagging"] for r in body["rows"]] == [False, False, True]


def test_funnel(client: Any, merchant: Merchant, data: Data) -> None:
    assert get(client, merchant, "funnel")["steps"] == [
        {"step": "issued", "count": 9, "rate_from_previous": None, "rate_from_first": "1.0000"},
        {"step": "claimed", "count": 7, "rate_from_previous": "0.7778",
         "rate_from_first": "0.7778"},
        {"step": "redeemed", "count": 4, "rate_from_previous": "0.5714",
         "rate_from_first": "0.4444"},
    ]  # fmt: skip


def test_expiring(client: Any, merchant: Merchant, data: Data) -> None:
    # claimed, unredeemed: a3 (back to issued by R4's reversal), a4 — A issued 11-02 for 7
    # local days: last day 11-08 — and p4 (P issued 11-04 for 5 days: last day 11-08).
    # p2 and a5 have no holder; p1, a1, a2, p3 are redeemed.
    body = get(client, merchant, "expiring", days=3)  # today 11-06, 11-07, 11-08
    assert body["days"] == 3
    assert body["rows"] == [
        {"day": "2026-11-08", "template_id": data.a, "template_name": "满100减20", "coupons": 2},
        {"day": "2026-11-08", "template_id": data.p, "template_name": "九折", "coupons": 1},
    ]
    assert body["total"] == 3
    assert get(client, merchant, "expiring", days=2)["rows"] == []
    assert get(client, merchant, "expiring")["total"] == 3  # default 7 days
    assert get(client, merchant, "expiring", kind="percentage")["total"] == 1


def test_filters(client: Any, merchant: Merchant, data: Data) -> None:
    f = get(client, merchant, "summary", channel="online")["figures"]
    assert (f["issued"], f["claimed"], f["redeemed"], f["net_redeemed"], f["discount"]) == (
        4, 3, 2, 2, 1300,
    )  # fmt: skip
    assert f["redemption_rate"] == "0.5000"
    # online: S-3 (web, 3000) without a coupon; coupon days M0002 11-04 mini_program and
    # M0005 11-05 app, neither followed by an order
    assert f["average_order_without_coupon"] == 3000 and f["repeat_purchase_rate"] == "0.0000"
    f = get(client, merchant, "summary", template=data.a)["figures"]
    assert f["average_order_without_coupon"] is None and f["repeat_purchase_rate"] is None
    assert (f["issued"], f["redeemed"], f["reversed"], f["redemption_rate"]) == (5, 3, 1, "0.4000")
    f = get(client, merchant, "summary", kind="exchange")["figures"]
    assert (f["issued"], f["redeemed"], f["redemption_rate"]) == (0, 0, None)
    f = get(client, merchant, "summary", store="SH-002")["figures"]
    # issued and claimed belong to no store; R2 and R5 at SH-002 (lags 1, 1)
    assert (f["issued"], f["claimed"], f["redeemed"], f["discount"], f["order_amount"]) == (
        9, 7, 2, 2500, 20000,
    )  # fmt: skip
    assert f["redemption_rate"] == "0.2222"
    assert f["time_to_redeem_days"] == {"median": 1, "p90": 1}


def test_a_store_key_sees_its_store(client: Any, merchant: Merchant, data: Data) -> None:
    key = merchant.store_keys["SH-001"]
    f = get(client, merchant, "summary", key=key)["figures"]
    assert (f["redeemed"], f["reversed"], f["discount"], f["order_amount"]) == (2, 0, 2800, 20800)
    assert f["redemption_rate"] == "0.2222"
    assert f["average_order_with_coupon"] == 10400
    # SH-001: S-2 (6000) without a coupon; coupon days M0001 11-03 (repeated on 11-04) and
    # M0002 11-04 (not)
    assert f["average_order_without_coupon"] == 6000 and f["repeat_purchase_rate"] == "0.5000"
    assert f["time_to_redeem_days"] == {"median": 0, "p90": 2}  # R1 0, R3 2
    rows = get(client, merchant, "breakdown", key=key, by="store")["rows"]
    assert [r["key"] for r in rows] == ["SH-001"]
    league = get(client, merchant, "stores/league", key=key)["rows"]
    assert [r["store"] for r in league] == ["SH-001"]
    assert get(client, merchant, "funnel", key=key)["steps"][2]["count"] == 2
    r = client.get(
        "/v1/analytics/summary", params={"store": "SH-002"}, headers=merchant.auth(key)
    )
    assert r.status_code == 403 and r.json()["code"] == "store_forbidden"


def test_an_analyst_limited_to_stores(
    client: Any, db: Engine, merchant: Merchant, data: Data
) -> None:
    key = keys.create_key(
        db, merchant.id, "analyst", NOW, store_codes=["SH-002", "BJ-001"]
    ).token
    f = get(client, merchant, "summary", key=key)["figures"]
    assert (f["redeemed"], f["reversed"], f["net_redeemed"], f["discount"]) == (3, 1, 2, 2500)
    assert f["redemption_rate"] == "0.2222"  # a2, p3 of 9
    rows = get(client, merchant, "breakdown", key=key, by="store")["rows"]
    assert [r["key"] for r in rows] == ["BJ-001", "SH-002"]
    r = client.get(
        "/v1/analytics/series", params={"store": "SH-001"}, headers=merchant.auth(key)
    )
    assert r.status_code == 403 and r.json()["code"] == "store_forbidden"
    everyone = keys.create_key(db, merchant.id, "analyst", NOW).token
    assert get(client, merchant, "summary", key=everyone)["figures"]["redeemed"] == 5


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("summary", {"from": "2026-13-01"}, 422, "invalid_request"),
        ("summary", {"from": "2026-11-31"}, 422, "invalid_request"),
        ("summary", {"to": "yesterday"}, 422, "invalid_request"),
        ("summary", {"from": "2026-11-06", "to": "2026-11-01"}, 422, "invalid_request"),
        ("summary", {"from": "2020-01-01", "to": "2026-11-01"}, 422, "invalid_request"),
        ("summary", {"within_days": "0"}, 422, "invalid_request"),
        ("summary", {"repeat_days": "x"}, 422, "invalid_request"),
        ("summary", {"repeat_days": "10"}, 422, "invalid_request"),  # only 7, 14, 30
        ("summary", {"channel": "fax"}, 422, "invalid_request"),
        ("summary", {"kind": "bogus"}, 422, "invalid_request"),
        ("summary", {"template": "nope"}, 422, "invalid_request"),
        ("summary", {"template": "tpl_01JDK000000000000000000017"}, 404, "template_not_found"),
        ("summary", {"store": "XX-999"}, 422, "store_not_found"),
        ("summary", {"store": "SH\x00001"}, 422, "invalid_characters"),
        ("summary", {"store": "S" * 65}, 422, "invalid_request"),
        ("summary", {"from": "\u0662\u0660\u0662\u0666-11-02"}, 422, "invalid_request"),
        ("funnel", {"channel": "pos\x00"}, 422, "invalid_characters"),
        ("series", {"group": "year"}, 422, "invalid_request"),
        ("breakdown", {"by": "colour"}, 422, "invalid_request"),
        ("breakdown", {}, 422, "invalid_request"),
        ("stores/league", {"margin": "1.5"}, 422, "invalid_request"),
        ("stores/league", {"margin": "-0.1"}, 422, "invalid_request"),
        ("stores/league", {"margin": "NaN"}, 422, "invalid_request"),
        ("expiring", {"days": "0"}, 422, "invalid_request"),
        ("expiring", {"days": "91"}, 422, "invalid_request"),
    ],
)
def test_bad_parameters(
    client: Any, merchant: Merchant, path: str, params: dict[str, str], status: int, code: str
) -> None:
    r = client.get(f"/v1/analytics/{path}", params=params, headers=merchant.auth())
    assert r.status_code == status, r.text
    assert r.json()["code"] == code


def test_the_default_range_is_the_last_30_local_days(
    client: Any, merchant: Merchant, clock: Clock
) -> None:
    r = client.get("/v1/analytics/summary", headers=merchant.auth())
    assert r.status_code == 200
    body = r.json()
    today = clock.now.astimezone(merchant.tz).date()
    assert body["to"] == today.isoformat()
    assert (today - __import__("datetime").date.fromisoformat(body["from"])).days == 29


@pytest.mark.parametrize(
    ("wide", "narrow"),
    [
        # whole months only (October to December): the monthly rollups alone
        ({"from": "2026-10-01", "to": "2026-12-31"}, RANGE),
        # a whole October from the monthly level, 1–4 November from the daily one
        ({"from": "2026-10-01", "to": "2026-11-04"}, {"from": "2026-11-02", "to": "2026-11-04"}),
        # cut months at both ends and whole ones between
        ({"from": "2026-09-15", "to": "2026-12-03"}, RANGE),
    ],
)
def test_long_ranges_read_from_the_monthly_level_give_the_same_figures(
    client: Any, merchant: Merchant, data: Data, wide: dict[str, str], narrow: dict[str, str]
) -> None:
    def figures(path: str, rng: dict[str, str], **params: Any) -> Any:
        body = get(client, merchant, path, **rng, **params)
        for k in ("from", "to", "as_of"):
            body.pop(k)
        return body

    for path, params in (
        ("summary", {}), ("summary", {"store": "SH-002"}), ("summary", {"channel": "online"}),
        ("funnel", {}), ("stores/league", {}),
        *(("breakdown", {"by": by}) for by in ("store", "channel", "online", "template", "kind")),
    ):  # fmt: skip
        assert figures(path, wide, **params) == figures(path, narrow, **params), (path, params)
    month = figures("series", wide, group="month")["points"]
    day = figures("series", narrow, group="day")["points"]
    assert sum(p["net_redeemed"] for p in month) == sum(p["net_redeemed"] for p in day)

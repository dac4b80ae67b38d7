"""Reconciliation exports over HTTP, on both databases, against the fixed data set of
``conftest.py``: the exact CSV text, the summary, the XLSX read back, who sees what, and
the refusals (each before a byte of the file is sent)."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal
from typing import Any

import openpyxl
import pytest

from tests.conftest import order
from tests.exports.conftest import RANGE, Data

BOM = "\ufeff"

HEADER = (
    "record_type,redemption_id,local_time,utc_time,store_code,store_name,channel,"
    "template_id,template_name,kind,coupon_code,order_id,order_amount_fen,order_amount_yuan,"
    "discount_fen,discount_yuan,payable_fen,payable_yuan,customer,order_redemption_id,"
    "api_key_id,api_key_name,redeemed_local_time,reversed_local_time,recorded_utc,"
    "reversal_reason"
)
ROWS = [
    # the local day starts at 00:00:00 (16:00 UTC the day before): included
    "redemption,rdm_06,2026-11-24 00:00:00,2026-11-23T16:00:00.000Z,SH-002,徐汇店,pos,tpl_a,"
    "满100减20,threshold,CODE0006,B-6,9900,99.00,1,0.01,9899,98.99,,,key_office,Back office,"
    "2026-11-24 00:00:00,2026-11-26 10:00:00,2026-11-23T16:00:00.000Z,",
    "redemption,rdm_01,2026-11-24 10:00:00,2026-11-24T02:00:00.000Z,SH-001,静安店,pos,tpl_a,"
    "满100减20,threshold,CODE0001,A-1,12800,128.00,2000,20.00,10800,108.00,,,key_till1,"
    "Till 1,2026-11-24 10:00:00,,2026-11-24T02:00:00.000Z,",
    # a reversal of a redemption made before the range: its own row, negative, its time;
    # the order id "=1+2" is kept from being read as a formula
    "reversal,rdm_04,2026-11-24 12:00:00,2026-11-24T04:00:00.000Z,SH-001,静安店,pos,tpl_a,"
    "满100减20,threshold,CODE0004,'=1+2,-20000,-200.00,-2000,-20.00,-18000,-180.00,,,"
    "key_till1,Till 1,2026-11-23 18:00:00,2026-11-24 12:00:00,2026-11-23T10:00:00.000Z,"
    '"customer returned, 退货"',
    "redemption,rdm_02,2026-11-24 23:30:00,2026-11-24T15:30:00.000Z,SH-001,静安店,pos,tpl_a,"
    "满100减20,threshold,CODE0002,A-2,10000,100.00,2000,20.00,8000,80.00,,,key_till1,"
    "Till 1,2026-11-24 23:30:00,,2026-11-24T15:30:00.000Z,",
    # 16:30 UTC on 11-24 is 00:30 on 11-25 in Shanghai
    "redemption,rdm_03,2026-11-25 00:30:00,2026-11-24T16:30:00.000Z,SH-002,徐汇店,"
    'mini_program,tpl_b,"奶茶8折, 限堂食",percentage,CODE0003,W-3,5000,50.00,1000,10.00,'
    "4000,40.00,M0001,ord_03,key_app,小程序,2026-11-25 00:30:00,2026-11-25 11:00:00,"
    "2026-11-24T16:30:05.250Z,",
    "reversal,rdm_03,2026-11-25 11:00:00,2026-11-25T03:00:00.000Z,SH-002,徐汇店,"
    'mini_program,tpl_b,"奶茶8折, 限堂食",percentage,CODE0003,W-3,-5000,-50.00,-1000,'
    "-10.00,-4000,-40.00,M0001,ord_03,key_app,小程序,2026-11-25 00:30:00,"
    "2026-11-25 11:00:00,2026-11-24T16:30:05.250Z,refund",
]
SUMMARY = [
    "day,store_code,store_name,redeemed,reversed,net_redeemed,discount_fen,discount_yuan,"
    "order_amount_fen,order_amount_yuan,reversals_made,reversals_made_discount_fen,"
    "reversals_made_discount_yuan,reversals_made_order_amount_fen,"
    "reversals_made_order_amount_yuan",
    "2026-11-24,SH-001,静安店,2,0,2,4000,40.00,22800,228.00,1,2000,20.00,20000,200.00",
    # rdm_06 was reversed on 11-26: it counts against 11-24, its own day
    "2026-11-24,SH-002,徐汇店,1,1,0,0,0.00,0,0.00,0,0,0.00,0,0.00",
    "2026-11-25,SH-002,徐汇店,1,1,0,0,0.00,0,0.00,1,1000,10.00,5000,50.00",
    "total,SH-001,静安店,2,0,2,4000,40.00,22800,228.00,1,2000,20.00,20000,200.00",
    "total,SH-002,徐汇店,2,2,0,0,0.00,0,0.00,1,1000,10.00,5000,50.00",
    "total,,,4,2,2,4000,40.00,22800,228.00,2,3000,30.00,25000,250.00",
]


def text(lines: list[str]) -> bytes:
    return (BOM + "".join(line + "\r\n" for line in lines)).encode()


def parsed(body: bytes) -> list[list[str]]:
    assert body.startswith(BOM.encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def ids(body: bytes) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in parsed(body)[1:]]


def test_the_csv_is_exactly_this_text(data: Data) -> None:
    r = data.get("/v1/exports/redemptions.csv", **RANGE)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        'attachment; filename="redemptions_2026-11-24_2026-11-25.csv"'
    )
    assert r.headers["cache-control"] == "no-store"
    assert r.content == text([HEADER, *ROWS])


def test_the_summary_csv_is_exactly_this_text(data: Data) -> None:
    r = data.get("/v1/exports/summary.csv", **RANGE)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert "summary_2026-11-24_2026-11-25.csv" in r.headers["content-disposition"]
    assert r.content == text(SUMMARY)


def _cell_text(v: Any) -> str:
    return "" if v is None else str(v)


def test_the_xlsx_holds_the_same_rows_and_summary(data: Data) -> None:
    r = data.get("/v1/exports/redemptions.xlsx", **RANGE)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert int(r.headers["content-length"]) == len(r.content)
    assert "redemptions_2026-11-24_2026-11-25.xlsx" in r.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    assert wb.sheetnames == ["Redemptions", "Summary"]
    header, *rows = list(wb["Redemptions"].iter_rows(values_only=True))
    expected = parsed(text([HEADER, *ROWS]))
    assert list(header) == expected[0]
    assert len(rows) == len(ROWS)
    for got, want in zip(rows, expected[1:], strict=True):
        for name, g, w in zip(expected[0], got, want, strict=True):
            if name.endswith("_fen"):
                assert g == int(w), name
            elif name.endswith("_yuan"):  # a number shown with two decimals
                assert isinstance(g, int | float) and f"{Decimal(str(g)):.2f}" == w, name
            elif name == "order_id" and w == "'=1+2":
                assert g == "=1+2"  # a text cell: never a formula, nothing to escape
            else:
                assert _cell_text(g) == w, name
    s_header, *s_rows = list(wb["Summary"].iter_rows(values_only=True))
    want_summary = parsed(text(SUMMARY))
    assert list(s_header) == want_summary[0]
    for got, want in zip(s_rows, want_summary[1:], strict=True):
        assert [_cell_text(g) for g in got[:3]] == want[:3]
        numbers = [f"{Decimal(str(g)):.2f}" if "_yuan" in n else str(g)
                   for n, g in zip(want_summary[0][3:], got[3:], strict=True)]  # fmt: skip
        assert numbers == want[3:]
    # the totals add up: the last row is every day row summed, column by column
    days = [g for g in s_rows if g[0] != "total"]
    grand = s_rows[-1]
    for c in range(3, len(s_header)):
        assert grand[c] == pytest.approx(sum(row[c] for row in days))
    assert grand[5] == grand[3] - grand[4]  # net = redeemed - reversed


def test_a_store_key_exports_its_own_store(data: Data) -> None:
    r = data.get("/v1/exports/redemptions.csv", data.store_sh1, **RANGE)
    assert ids(r.content) == [
        ("redemption", "rdm_01"), ("reversal", "rdm_04"), ("redemption", "rdm_02")
    ]  # fmt: skip
    named = data.get("/v1/exports/redemptions.csv", data.store_sh1, store="SH-001", **RANGE)
    assert named.content == r.content
    other = data.get("/v1/exports/summary.csv", data.store_sh1, store="SH-002", **RANGE)
    assert other.status_code == 403 and other.json()["code"] == "store_forbidden"
    summary = parsed(data.get("/v1/exports/summary.csv", data.store_sh1, **RANGE).content)
    assert {row[1] for row in summary[1:]} == {"SH-001", ""}


def test_an_analyst_limited_to_stores_exports_only_those(data: Data) -> None:
    r = data.get("/v1/exports/redemptions.csv", data.analyst_sh2, **RANGE)
    assert ids(r.content) == [
        ("redemption", "rdm_06"), ("redemption", "rdm_03"), ("reversal", "rdm_03")
    ]  # fmt: skip
    refused = data.get("/v1/exports/redemptions.xlsx", data.analyst_sh2, store="SH-001", **RANGE)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    everyone = data.get("/v1/exports/redemptions.csv", data.analyst, **RANGE)
    assert everyone.content == text([HEADER, *ROWS])


def test_other_roles_are_refused(data: Data) -> None:
    r = data.get("/v1/exports/redemptions.csv", data.integrator, **RANGE)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_filters_by_store_and_template(data: Data) -> None:
    r = data.get("/v1/exports/redemptions.csv", template="tpl_b", **RANGE)
    assert ids(r.content) == [("redemption", "rdm_03"), ("reversal", "rdm_03")]
    r = data.get("/v1/exports/redemptions.csv", store="SH-002", template="tpl_a", **RANGE)
    assert ids(r.content) == [("redemption", "rdm_06")]
    assert "redemptions_SH-002_2026-11-24" in r.headers["content-disposition"]


def test_the_default_range_is_the_last_30_local_days(data: Data) -> None:
    r = data.get("/v1/exports/redemptions.csv")  # today (local) is 2026-12-01
    assert "redemptions_2026-11-02_2026-12-01.csv" in r.headers["content-disposition"]
    assert ids(r.content) == [
        ("redemption", "rdm_04"),
        ("redemption", "rdm_06"),
        ("redemption", "rdm_01"),
        ("reversal", "rdm_04"),
        ("redemption", "rdm_02"),
        ("redemption", "rdm_03"),
        ("reversal", "rdm_03"),
        ("redemption", "rdm_05"),
        ("reversal", "rdm_06"),
    ]  # rdm_07 was recorded after as_of (the request's time): not yet


def test_one_day_and_an_empty_range(data: Data) -> None:
    one = data.get("/v1/exports/redemptions.csv", **{"from": "2026-11-25", "to": "2026-11-25"})
    assert ids(one.content) == [("redemption", "rdm_03"), ("reversal", "rdm_03")]
    empty = data.get("/v1/exports/redemptions.csv", **{"from": "2025-01-01", "to": "2025-01-31"})
    assert empty.content == text([HEADER])
    summary = data.get("/v1/exports/summary.csv", **{"from": "2025-01-01", "to": "2025-01-31"})
    assert summary.content == text([SUMMARY[0], "total,,,0,0,0,0,0.00,0,0.00,0,0,0.00,0,0.00"])
    xlsx = data.get("/v1/exports/redemptions.xlsx", **{"from": "2025-01-01", "to": "2025-01-31"})
    wb = openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True)
    assert len(list(wb["Redemptions"].iter_rows())) == 1  # the header


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"from": "2026-13-01"}, 422, "invalid_request"),
        ({"to": "20261125"}, 422, "invalid_request"),
        ({"from": "2026-11-24T00:00:00Z"}, 422, "invalid_request"),
        ({"from": "", "to": "2026-11-25"}, 422, "invalid_request"),
        ({"from": "2026-11-26", "to": "2026-11-25"}, 422, "invalid_date_range"),
        ({"from": "2025-11-24", "to": "2026-11-25"}, 422, "date_range_too_long"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, 422, "datetime_out_of_range"),
        ({"to": "9999-12-31"}, 422, "datetime_out_of_range"),
        ({"store": "NOPE"}, 422, "store_not_found"),
        ({"template": "tpl_nope"}, 404, "template_not_found"),
    ],
)
@pytest.mark.parametrize(
    "path", ["/v1/exports/redemptions.csv", "/v1/exports/redemptions.xlsx",
             "/v1/exports/summary.csv"],
)  # fmt: skip
def test_bad_parameters_are_refused_before_the_file_starts(
    data: Data, path: str, params: dict[str, str], status: int, code: str
) -> None:
    r = data.get(path, **params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


def test_the_longest_range_is_accepted(data: Data) -> None:
    r = data.get("/v1/exports/summary.csv", **{"from": "2025-11-25", "to": "2026-11-25"})
    assert r.status_code == 200  # 366 days


def test_a_redemption_and_its_reversal_made_through_the_api(client, merchant, db, clock) -> None:
    """Not the fixed data: a real redeem and reverse, then the export of today."""
    from tests.conftest import issue, make_template

    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    redeemed = client.post(
        "/v1/redemptions",
        json={"code": code, "store": "SH-001", "order": order(12800)},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert redeemed.status_code == 201, redeemed.text
    rid = redeemed.json()["redemption_id"]
    clock.advance(minutes=5)
    reversed_ = client.post(
        f"/v1/redemptions/{rid}/reversal",
        json={"reason": "void"},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert reversed_.status_code == 201, reversed_.text
    r = client.get("/v1/exports/redemptions.csv", headers=merchant.auth())
    rows = parsed(r.content)
    h = rows[0]
    got = [dict(zip(h, row, strict=True)) for row in rows[1:]]
    assert [(g["record_type"], g["redemption_id"]) for g in got] == [
        ("redemption", rid), ("reversal", rid)
    ]  # fmt: skip
    assert got[0]["coupon_code"] == code and got[0]["store_name"] == "Store SH-001"
    assert (got[0]["order_amount_yuan"], got[0]["discount_yuan"]) == ("128.00", "20.00")
    assert (got[1]["order_amount_fen"], got[1]["payable_yuan"]) == ("-12800", "-108.00")
    assert got[1]["reversal_reason"] == "void"
    assert got[0]["reversed_local_time"] == got[1]["local_time"]
    summary = parsed(client.get("/v1/exports/summary.csv", headers=merchant.auth()).content)
    assert summary[-1][3:6] == ["1", "1", "0"]  # redeemed, reversed, net
    assert summary[-1][10] == "1"  # one reversal made


def test_a_failure_mid_stream_is_not_a_short_file_that_looks_whole(
    data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first chunk the status is sent; a later failure must abort the response
    (the server closes the connection), not end it quietly. Litestar's own wrapper of a
    sync iterator turns a ValueError into the end of the body: the exports do not use it."""
    from hub.services import exports as svc

    def broken(engine: Any, ex: Any) -> Any:
        yield b"\xef\xbb\xbfrecord_type\r\n"
        raise ValueError("the database went away")

    monkeypatch.setattr(svc, "csv_chunks", broken)
    with pytest.raises(Exception, match=r"database went away|after response started"):
        data.get("/v1/exports/redemptions.csv", **RANGE)

"""hub.domain.analytics: rates, averages, nearest-rank percentiles, buckets, the league."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain import analytics as a

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


def test_rate_examples() -> None:
    assert a.rate(0, 0) is None
    assert a.rate(0, 5) == "0.0000"
    assert a.rate(4, 9) == "0.4444"
    assert a.rate(2, 3) == "0.6667"
    assert a.rate(1, 8) == "0.1250"
    assert a.rate(1, 20000) == "0.0001"  # 0.00005 rounds half up
    assert a.rate(1, 20001) == "0.0000"
    assert a.rate(5, 4) == "1.2500"


@given(st.integers(0, 10**12), st.integers(1, 10**12))
def test_rate_is_the_quotient_to_four_places(n: int, d: int) -> None:
    r = a.rate(n, d)
    assert r is not None and len(r.split(".")[1]) == 4
    assert abs(Decimal(r) - Decimal(n) / Decimal(d)) <= Decimal("0.00005")


def test_average_examples() -> None:
    assert a.average(10, 0) is None
    assert a.average(40800, 4) == 10200
    assert a.average(5, 2) == 3  # half up
    assert a.average(-5, 2) == -2
    assert a.average(7, 3) == 2


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**6))
def test_average_is_the_nearest_integer(total: int, count: int) -> None:
    avg = a.average(total, count)
    assert avg is not None and abs(Fraction(total, count) - avg) <= Fraction(1, 2)


def test_nearest_rank_examples() -> None:
    assert a.nearest_rank({}, a.MEDIAN) is None
    assert a.nearest_rank({3: 0}, a.MEDIAN) is None
    h = {0: 1, 1: 2, 2: 1}  # 0 1 1 2
    assert a.nearest_rank(h, a.MEDIAN) == 1
    assert a.nearest_rank(h, a.P90) == 2
    assert a.nearest_rank({5: 1}, a.P90) == 5
    assert a.nearest_rank({1: 1, 9: 1}, a.MEDIAN) == 1  # rank ⌈1⌉: the lower one
    assert a.nearest_rank({d: 1 for d in range(1, 11)}, a.P90) == 9
    with pytest.raises(ValueError):
        a.nearest_rank(h, Fraction(0))


@given(st.lists(st.integers(0, 400), min_size=1, max_size=200), st.sampled_from([a.MEDIAN, a.P90]))
def test_nearest_rank_matches_the_sorted_list(values: list[int], q: Fraction) -> None:
    hist: dict[int, int] = {}
    for v in values:
        hist[v] = hist.get(v, 0) + 1
    ordered = sorted(values)
    assert a.nearest_rank(hist, q) == ordered[math.ceil(q * len(ordered)) - 1]


def test_periods_examples() -> None:
    assert a.period(date(2026, 11, 2), "day") == "2026-11-02"
    assert a.period(date(2026, 11, 2), "week") == "2026-W45"
    assert a.period(date(2026, 11, 1), "week") == "2026-W44"  # a Sunday
    assert a.period(date(2027, 1, 1), "week") == "2026-W53"  # ISO year
    assert a.period(date(2024, 12, 30), "week") == "2025-W01"
    assert a.period(date(2026, 11, 30), "month") == "2026-11"
    assert a.periods(date(2026, 10, 31), date(2026, 11, 2), "week") == ["2026-W44", "2026-W45"]
    assert a.periods(date(2026, 11, 2), date(2026, 11, 1), "day") == []


@given(days, st.integers(0, 800), st.sampled_from(a.GROUPS))
def test_periods_cover_the_range_in_order_once(start: date, n: int, group: a.Group) -> None:
    end = start + timedelta(days=n)
    ps = a.periods(start, end, group)
    assert len(ps) == len(set(ps)) and ps == sorted(ps)
    every = {a.period(start + timedelta(days=i), group) for i in range(n + 1)}
    assert set(ps) == every
    if group == "day":
        assert len(ps) == a.days(start, end)


def test_league_example() -> None:
    stores = [
        a.StoreFigures("SH-001", 2, 2800, Decimal("0.2222")),
        a.StoreFigures("SH-002", 2, 2500, Decimal("0.2222")),
        a.StoreFigures("BJ-001", 0, 0, Decimal("0.0000")),
    ]
    t = a.league(stores, Decimal("0.2"))
    assert [a.fixed(t.averages[k]) for k in a.LEAGUE_FIGURES] == ["1.3333", "1766.6667", "0.1481"]
    assert [(r.rank, r.store, r.lagging) for r in t.rows] == [
        (1, "SH-001", False), (2, "SH-002", False), (3, "BJ-001", True),
    ]  # fmt: skip
    assert t.rows[2].reasons == ("net_redeemed", "discount", "redemption_rate")


def test_league_edges() -> None:
    assert a.league([], Decimal("0.2")).rows == []
    one = a.league([a.StoreFigures("A", 1, 1, None)], Decimal(0))
    assert one.rows[0].lagging is False and one.averages["redemption_rate"] is None
    # exactly at the margin's edge does not lag: 8 = 10 × (1 − 0.2)
    t = a.league([a.StoreFigures("A", 12, 0, None), a.StoreFigures("B", 8, 0, None)],
                 Decimal("0.2"))  # fmt: skip
    assert not any(r.lagging for r in t.rows)


@given(
    st.lists(
        st.tuples(st.integers(0, 1000), st.integers(0, 10**6)), min_size=1, max_size=20
    ),
    st.decimals(min_value=0, max_value=Decimal("0.99"), places=2),
)
def test_league_flags_exactly_the_stores_below_the_margin(
    figures: list[tuple[int, int]], margin: Decimal
) -> None:
    stores = [a.StoreFigures(f"S{i:02d}", n, d, None) for i, (n, d) in enumerate(figures)]
    t = a.league(stores, margin)
    avg_n = Decimal(sum(n for n, _ in figures)) / len(figures)
    avg_d = Decimal(sum(d for _, d in figures)) / len(figures)
    by = {s.store: s for s in stores}
    assert [r.rank for r in t.rows] == list(range(1, len(stores) + 1))
    for r in t.rows:
        s = by[r.store]
        expect = s.net_redeemed < avg_n * (1 - margin) or s.discount < avg_d * (1 - margin)
        assert r.lagging == expect
    nets = [by[r.store].net_redeemed for r in t.rows]
    assert nets == sorted(nets, reverse=True)


def test_month_spans_examples() -> None:
    d = date
    nov = [(False, d(2026, 11, 2), d(2026, 11, 30))]
    assert a.month_spans(d(2026, 11, 2), d(2026, 11, 30)) == nov
    whole = [(True, d(2026, 11, 1), d(2026, 11, 1))]
    assert a.month_spans(d(2026, 11, 1), d(2026, 11, 30)) == whole
    assert a.month_spans(d(2025, 12, 5), d(2026, 12, 4)) == [
        (False, d(2025, 12, 5), d(2025, 12, 31)),
        (True, d(2026, 1, 1), d(2026, 11, 1)),
        (False, d(2026, 12, 1), d(2026, 12, 4)),
    ]


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
       st.integers(min_value=0, max_value=800))  # fmt: skip
def test_month_spans_cover_every_day_once(start: date, n: int) -> None:
    end = start + timedelta(days=n)
    covered: list[date] = []
    for monthly, lo, hi in a.month_spans(start, end):
        if monthly:
            assert lo.day == 1 and hi.day == 1 and lo <= hi
            m = lo
            while m <= hi:
                nxt = (m + timedelta(days=32)).replace(day=1)
                covered += [m + timedelta(days=i) for i in range((nxt - m).days)]
                m = nxt
        else:
            assert lo <= hi
            covered += [lo + timedelta(days=i) for i in range((hi - lo).days + 1)]
    assert covered == [start + timedelta(days=i) for i in range(n + 1)]

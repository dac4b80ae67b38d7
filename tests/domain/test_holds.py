"""Holds on coupons (reservations): when a hold is live, who it blocks, how long it lasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain import holds
from hub.domain.errors import DomainError

from ._helpers import NO_DB, raises_code

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def test_a_hold_is_live_until_its_end_and_not_at_it() -> None:
    end = NOW + timedelta(minutes=15)
    assert holds.is_live("rsv_1", end, NOW)
    assert holds.is_live("rsv_1", end, end - timedelta(microseconds=1))
    assert not holds.is_live("rsv_1", end, end)  # ended: blocks nothing
    assert not holds.is_live(None, end, NOW)  # cleared by a release or the job
    assert not holds.is_live("rsv_1", None, NOW)


def test_a_live_hold_refuses_everyone_but_its_own_reservation() -> None:
    end = NOW + timedelta(minutes=15)
    with raises_code("coupon_reserved", held_until="2026-12-04T08:15:00.000Z") as info:
        holds.check_not_held("rsv_1", end, NOW)
    assert "2026-12-04T08:15:00.000Z" in info.value.message
    with raises_code("coupon_reserved"):
        holds.check_not_held("rsv_1", end, NOW, mine="rsv_2")
    holds.check_not_held("rsv_1", end, NOW, mine="rsv_1")  # the confirm of that hold
    holds.check_not_held("rsv_1", end, end)  # lapsed: nobody is refused
    holds.check_not_held(None, None, NOW)


def test_held_until_is_spelled_in_utc_whatever_zone_the_end_is_in() -> None:
    from zoneinfo import ZoneInfo

    end = datetime(2026, 12, 4, 16, 15, tzinfo=ZoneInfo("Asia/Shanghai"))
    with raises_code("coupon_reserved", held_until="2026-12-04T08:15:00.000Z"):
        holds.check_not_held("rsv_1", end, NOW)


@pytest.mark.parametrize("seconds", [60, 900, 1800])
def test_a_hold_lasts_one_minute_to_half_an_hour(seconds: int) -> None:
    holds.check_ttl(timedelta(seconds=seconds))


@pytest.mark.parametrize("seconds", [0, 59, 1801, -60])
def test_a_hold_outside_the_bounds_is_refused_naming_the_field(seconds: int) -> None:
    with raises_code("invalid_request") as info:
        holds.check_ttl(timedelta(seconds=seconds))
    assert info.value.extra["errors"][0]["field"] == "ttl_seconds"


@NO_DB
@given(
    until=st.integers(min_value=-3600, max_value=3600),
    rid=st.sampled_from([None, "rsv_a", "rsv_b"]),
    mine=st.sampled_from([None, "rsv_a", "rsv_b"]),
)
def test_refused_exactly_when_live_and_not_ones_own(
    until: int, rid: str | None, mine: str | None
) -> None:
    end = NOW + timedelta(seconds=until)
    refused = True
    try:
        holds.check_not_held(rid, end, NOW, mine=mine)
    except DomainError as err:
        assert err.code == "coupon_reserved"
    else:
        refused = False
    assert refused == (rid is not None and until > 0 and rid != mine)

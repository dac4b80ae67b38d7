"""hub.domain.staff: the sign-in code's shape and the shift session's end (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.codes import ALPHABET
from hub.domain.staff import (
    SHIFT_CUTOFF,
    SHIFT_MAX,
    SIGN_IN_CODE_LENGTH,
    display_sign_in_code,
    new_sign_in_code,
    next_cutoff,
    parse_sign_in_code,
    shift_end,
)

ZONES = ["Asia/Shanghai", "UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe",
         "America/Havana", "Pacific/Chatham", "Asia/Kathmandu"]
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(instants, st.sampled_from(ZONES))
def test_a_session_ends_within_12_hours_at_the_latest_at_the_next_local_4am(
    now: datetime, zone: str
) -> None:
    tz = ZoneInfo(zone)
    end = shift_end(now, tz)
    assert now < end <= now + SHIFT_MAX
    cutoff = next_cutoff(now, tz)
    assert end == min(now + SHIFT_MAX, cutoff)
    # the cutoff is a 04:00 wall clock (or the instant after a gap skipped it) and no
    # other 04:00 comes between now and it
    local = cutoff.astimezone(tz)
    assert local.time() == SHIFT_CUTOFF or _skipped(local, tz)
    assert cutoff - now <= timedelta(hours=26)


def _skipped(local: datetime, tz: ZoneInfo) -> bool:
    """04:00 did not exist on that local day (a daylight-saving gap)."""
    for day in (local.date(), local.date() - timedelta(days=1)):
        wall = datetime.combine(day, SHIFT_CUTOFF, tzinfo=tz)
        if wall.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall.replace(tzinfo=None):
            return True
    return False


def test_shift_ends_in_shanghai() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    at = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # 18:00 local
    assert shift_end(at, tz) == datetime(2026, 12, 4, 20, 0, tzinfo=UTC)  # 04:00 next day
    at = datetime(2026, 12, 4, 0, 30, tzinfo=UTC)  # 08:30 local
    assert shift_end(at, tz) == datetime(2026, 12, 4, 12, 30, tzinfo=UTC)  # 12 h
    at = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)  # 04:00 local exactly: the next one
    assert next_cutoff(at, tz) == datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    assert shift_end(at, tz) == at + SHIFT_MAX


@given(st.data())
def test_codes_are_eight_alphabet_characters_read_back_however_typed(data: st.DataObject) -> None:
    code = new_sign_in_code()
    assert len(code) == SIGN_IN_CODE_LENGTH and set(code) <= set(ALPHABET)
    shown = display_sign_in_code(code)
    assert shown == f"{code[:4]}-{code[4:]}"
    typed = data.draw(st.sampled_from([shown, shown.lower(), f" {code[:4]} {code[4:]}\r\n",
                                       shown.replace("-", "－"), code]))
    assert parse_sign_in_code(typed) == code


@given(st.text(max_size=80))
def test_anything_else_is_no_code(raw: str) -> None:
    parsed = parse_sign_in_code(raw)
    if parsed is not None:
        assert len(parsed) == SIGN_IN_CODE_LENGTH and set(parsed) <= set(ALPHABET)


def test_wrong_shapes_are_no_code() -> None:
    for raw in ("", "ABCD-EFG", "ABCD-EFGHJ", "ABCD-EFG0", "ABCD-EFGI", "A" * 100):
        assert parse_sign_in_code(raw) is None

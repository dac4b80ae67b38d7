"""The coupon state machine: every (state, action) pair."""

from __future__ import annotations

import itertools

import pytest

from hub.domain.errors import ERROR_CODES, DomainError
from hub.domain.state import Action, CouponState, redeemable_states, transition
from hub.services.problems import status_for

from ._helpers import raises_code

S, A = CouponState, Action

# (state, action, window_open) → next state, for the legal moves
LEGAL: dict[tuple[CouponState, Action, bool], CouponState] = {
    (S.ISSUED, A.REDEEM, True): S.REDEEMED,
    (S.ISSUED, A.REDEEM, False): S.REDEEMED,
    (S.ISSUED, A.EXPIRE, True): S.EXPIRED,
    (S.ISSUED, A.EXPIRE, False): S.EXPIRED,
    (S.ISSUED, A.VOID, True): S.VOIDED,
    (S.ISSUED, A.VOID, False): S.VOIDED,
    (S.REDEEMED, A.REVERSE, True): S.ISSUED,
    (S.REDEEMED, A.REVERSE, False): S.EXPIRED,
    # an offline redemption judged inside the window, uploaded after the expiry sweep
    (S.EXPIRED, A.REDEEM, True): S.REDEEMED,
}

# (state, action) → refusal code, for the illegal moves
ILLEGAL: dict[tuple[CouponState, Action], str] = {
    (S.ISSUED, A.REVERSE): "coupon_not_redeemed",
    (S.REDEEMED, A.REDEEM): "coupon_already_redeemed",
    (S.REDEEMED, A.EXPIRE): "illegal_transition",
    (S.REDEEMED, A.VOID): "illegal_transition",
    (S.EXPIRED, A.REVERSE): "coupon_not_redeemed",
    (S.EXPIRED, A.EXPIRE): "illegal_transition",
    (S.EXPIRED, A.VOID): "illegal_transition",
    (S.VOIDED, A.REDEEM): "coupon_voided",
    (S.VOIDED, A.REVERSE): "coupon_not_redeemed",
    (S.VOIDED, A.EXPIRE): "illegal_transition",
    (S.VOIDED, A.VOID): "illegal_transition",
}

ALL_PAIRS = list(itertools.product(CouponState, Action))


def test_enums():
    assert [s.value for s in CouponState] == ["issued", "redeemed", "expired", "voided"]
    assert [a.value for a in Action] == ["redeem", "reverse", "expire", "void"]
    assert str(S.ISSUED) == "issued"
    assert S("redeemed") is S.REDEEMED


# legal only with the window open at the judged time (else the refusal given)
WINDOW_BOUND: dict[tuple[CouponState, Action], str] = {(S.EXPIRED, A.REDEEM): "coupon_expired"}


def test_table_covers_every_pair_exactly_once():
    legal_pairs = {(s, a) for s, a, _ in LEGAL}
    assert legal_pairs.isdisjoint(ILLEGAL)
    assert legal_pairs | set(ILLEGAL) == set(ALL_PAIRS)
    assert len(ALL_PAIRS) == 16


@pytest.mark.parametrize("window_open", [False, None])
def test_expired_redeems_only_with_the_window_open_at_the_judged_time(window_open):
    for (state, action), code in WINDOW_BOUND.items():
        with raises_code(code):
            transition(state, action, window_open=window_open)


def test_redeemable_states_are_issued_and_expired_not_voided_or_redeemed():
    assert redeemable_states() == (S.ISSUED, S.EXPIRED)


@pytest.mark.parametrize(("state", "action", "window_open"), sorted(LEGAL))
def test_legal_transitions(state, action, window_open):
    assert transition(state, action, window_open=window_open) is LEGAL[state, action, window_open]


def test_legal_default_window_is_open():
    assert transition(S.REDEEMED, A.REVERSE) is S.ISSUED
    assert transition(S.ISSUED, A.REDEEM) is S.REDEEMED


def test_reverse_with_closed_window_expires():
    assert transition(S.REDEEMED, A.REVERSE, window_open=False) is S.EXPIRED


@pytest.mark.parametrize("window_open", [True, False])
@pytest.mark.parametrize(("state", "action"), sorted(ILLEGAL))
def test_illegal_transitions(state, action, window_open):
    code = ILLEGAL[state, action]
    with raises_code(code) as info:
        transition(state, action, window_open=window_open)
    err = info.value
    expected_status = 422 if code == "coupon_expired" else 409
    assert status_for(err.code) == expected_status
    if code == "illegal_transition":
        assert err.extra == {"state": state.value, "action": action.value}
        assert state.value in err.message and action.value in err.message
    else:
        assert err.extra == {}


@pytest.mark.parametrize("final", [S.EXPIRED, S.VOIDED])
def test_final_states_admit_no_move(final):
    for action in Action:
        if (final, action) in WINDOW_BOUND:
            continue
        for window_open in (True, False):
            with pytest.raises(DomainError) as info:
                transition(final, action, window_open=window_open)
            assert info.value.code in ERROR_CODES


def test_redeem_reverse_cycle():
    state = S.ISSUED
    for _ in range(3):
        state = transition(state, A.REDEEM)
        assert state is S.REDEEMED
        state = transition(state, A.REVERSE, window_open=True)
        assert state is S.ISSUED
    state = transition(transition(state, A.REDEEM), A.REVERSE, window_open=False)
    assert state is S.EXPIRED

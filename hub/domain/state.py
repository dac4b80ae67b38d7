"""The coupon state machine — the one place that says which state changes are legal.

::

    issued ──redeem──▶ redeemed ──reverse (window still open)──▶ issued
      │                   └──────reverse (window closed)──────▶ expired
      ├──expire──▶ expired ──redeem (judged inside the window)──▶ redeemed
      └──void────▶ voided

``voided`` is final. ``expired`` only records that the window closed while the coupon
was unused (the expiry sweep, or a reversal after the window): an offline redemption
judged at an ``occurred_at`` inside the window may still redeem it, so a redemption
is decided the same way whether the sweep ran before the upload or not. Every other
move is refused with a code.
"""

from __future__ import annotations

from enum import StrEnum

from hub.domain.errors import DomainError, refuse


class CouponState(StrEnum):
    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    VOIDED = "voided"


class Action(StrEnum):
    REDEEM = "redeem"
    REVERSE = "reverse"
    EXPIRE = "expire"
    VOID = "void"


_REFUSALS: dict[tuple[CouponState, Action], tuple[str, str]] = {
    (CouponState.REDEEMED, Action.REDEEM): (
        "coupon_already_redeemed",
        "The coupon was redeemed already.",
    ),
    (CouponState.EXPIRED, Action.REDEEM): ("coupon_expired", "The coupon has expired."),
    (CouponState.VOIDED, Action.REDEEM): ("coupon_voided", "The coupon was voided."),
    (CouponState.ISSUED, Action.REVERSE): ("coupon_not_redeemed", "The coupon is not redeemed."),
    (CouponState.EXPIRED, Action.REVERSE): ("coupon_not_redeemed", "The coupon is not redeemed."),
    (CouponState.VOIDED, Action.REVERSE): ("coupon_not_redeemed", "The coupon is not redeemed."),
}


def transition(
    state: CouponState, action: Action, *, window_open: bool | None = None
) -> CouponState:
    """The state after ``action``, or a :class:`DomainError` naming why it is illegal.

    ``window_open`` says whether the coupon's validity window is open at the moment the
    action is judged (a redemption's ``occurred_at``, else now):

    * reverse: a coupon whose window has closed goes to ``expired`` instead of back to
      ``issued`` (not given: open);
    * redeem: an ``expired`` coupon is redeemable only when the window is open at the
      judged time (an offline sale before the window closed, uploaded after the expiry
      sweep); not given, it is refused. An ``issued`` coupon's window is checked by the
      redeem decision itself (``hub.domain.redeeming``).
    """
    if state is CouponState.ISSUED:
        if action is Action.REDEEM:
            return CouponState.REDEEMED
        if action is Action.EXPIRE:
            return CouponState.EXPIRED
        if action is Action.VOID:
            return CouponState.VOIDED
    elif state is CouponState.REDEEMED and action is Action.REVERSE:
        return CouponState.EXPIRED if window_open is False else CouponState.ISSUED
    elif state is CouponState.EXPIRED and action is Action.REDEEM and window_open is True:
        return CouponState.REDEEMED
    raise _illegal(state, action)


def redeemable_states() -> tuple[CouponState, ...]:
    """The states a redemption may start from when the window is open at the judged
    time — what the conditional ``UPDATE`` of a redeem accepts (``issued``, ``expired``)."""
    out = []
    for state in CouponState:
        try:
            transition(state, Action.REDEEM, window_open=True)
        except DomainError:
            continue
        out.append(state)
    return tuple(out)


def _illegal(state: CouponState, action: Action) -> DomainError:
    if (state, action) in _REFUSALS:
        code, message = _REFUSALS[(state, action)]
        return refuse(code, message)
    return refuse(
        "illegal_transition",
        f"A coupon that is {state} cannot {action}.",
        state=str(state),
        action=str(action),
    )

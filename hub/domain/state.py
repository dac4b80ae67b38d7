"""The coupon state machine — the one place that says which state changes are legal.

::

    issued ──redeem──▶ redeemed ──reverse (window still open)──▶ issued
      │                   └──────reverse (window closed)──────▶ expired
      ├──expire──▶ expired
      └──void────▶ voided

``expired`` and ``voided`` are final. Every other move is refused with a code.
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


def transition(state: CouponState, action: Action, *, window_open: bool = True) -> CouponState:
    """The state after ``action``, or a :class:`DomainError` naming why it is illegal.

    ``window_open`` matters only for a reversal: a coupon whose validity window has
    closed goes to ``expired`` instead of back to ``issued``.
    """
    if state is CouponState.ISSUED:
        if action is Action.REDEEM:
            return CouponState.REDEEMED
        if action is Action.EXPIRE:
            return CouponState.EXPIRED
        if action is Action.VOID:
            return CouponState.VOIDED
    elif state is CouponState.REDEEMED and action is Action.REVERSE:
        return CouponState.ISSUED if window_open else CouponState.EXPIRED
    raise _illegal(state, action)


def _illegal(state: CouponState, action: Action) -> DomainError:
    if (state, action) in _REFUSALS:
        code, message = _REFUSALS[(state, action)]
        return refuse(code, message, status=409 if code != "coupon_expired" else 422)
    return refuse(
        "illegal_transition",
        f"A coupon that is {state} cannot {action}.",
        status=409,
        state=str(state),
        action=str(action),
    )

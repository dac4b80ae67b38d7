"""Periodic chores: expiring coupons past their window, dropping old Idempotency-Keys."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import Engine, bindparam, or_, select, update

from hub.db.engine import write_conn
from hub.db.schema import coupons
from hub.domain.state import Action, CouponState, transition
from hub.services import outbox
from hub.services.idempotency import purge_expired
from hub.services.jsonio import iso

log = structlog.get_logger("hub.housekeeping")

EXPIRE_BATCH = 1000

# A coupon held for an online order is left alone while the hold is live: the order's
# confirm judges it at the moment of the hold; the next sweep after the hold expires it.
_NOT_HELD = or_(coupons.c.reservation_id.is_(None), coupons.c.reserved_until <= bindparam("b_now"))

_DUE = (
    select(
        coupons.c.id,
        coupons.c.merchant_id,
        coupons.c.code,
        coupons.c.template_id,
        coupons.c.valid_until,
    )
    .where(
        coupons.c.status == CouponState.ISSUED.value,
        coupons.c.valid_until <= bindparam("b_now"),
        _NOT_HELD,
    )
    .order_by(coupons.c.valid_until, coupons.c.id)
    .limit(bindparam("b_limit"))
)
_EXPIRE_ONE = (
    update(coupons)
    .where(
        coupons.c.id == bindparam("b_id"),
        coupons.c.status == CouponState.ISSUED.value,
        _NOT_HELD,
    )
    .values(
        status=transition(CouponState.ISSUED, Action.EXPIRE).value, version=coupons.c.version + 1
    )
    .returning(coupons.c.id)
)


def purge_idempotency(engine: Engine, now: datetime) -> int:
    with write_conn(engine) as conn:
        n = purge_expired(conn, now)
    if n:
        log.info("idempotency.purged", count=n)
    return n


def expire_coupons(engine: Engine, now: datetime, batch: int = EXPIRE_BATCH) -> int:
    """Move issued coupons whose window has closed to ``expired``, one ``coupon.expired``
    event each, in batches of ``batch`` per transaction. Returns how many.

    Redeeming already refuses such coupons (they read as expired); this makes the state
    explicit and tells subscribers. A coupon redeemed meanwhile is skipped by the
    conditional update.
    """
    total = 0
    while True:
        with write_conn(engine) as conn:
            due = conn.execute(_DUE, {"b_now": now, "b_limit": batch}).all()
            events = []
            for row in due:
                if conn.execute(_EXPIRE_ONE, {"b_id": row.id, "b_now": now}).first() is None:
                    continue
                events.append(
                    outbox.event_row(
                        type="coupon.expired",
                        merchant_id=row.merchant_id,
                        coupon_id=row.id,
                        occurred_at=row.valid_until,
                        recorded_at=now,
                        data={
                            "code": row.code,
                            "template_id": row.template_id,
                            "valid_until": iso(row.valid_until),
                        },
                    )
                )
            outbox.append(conn, events)
        total += len(events)
        if len(due) < batch:
            break
    if total:
        log.info("coupons.expired", count=total)
    return total

"""Expiry reminders (即将过期提醒): the periodic job that emits ``coupon.expiring``.

Which reminder of a coupon is due when is :mod:`hub.domain.reminders` (the nearest one
whose moment has come; the others are skipped for good). This module finds the coupons
that have one due and sends it, exactly once:

* Only claimed (``customer_id`` set), unredeemed (``status = issued``) coupons whose
  window is open (``valid_from <= now < valid_until``) are reminded; a redeemed,
  voided or expired coupon never is. The reminder names the holder *when it is sent*
  (a coupon transferred to a friend reminds the friend; a reminder already sent to the
  giver is not sent again to the friend).
* For each template reminder ``D`` (with ``D_next`` the next smaller one, 0 after the
  last) the coupons due are those with ``now + D_next days < valid_until <= now + D
  days`` — a range of ``ix_coupons_merchant_valid_until`` per merchant — and no
  ``coupon_reminders`` row for ``(coupon, D)`` yet.
* A read finds whether anything is due first, so the usual round, with nothing to
  send, opens no write transaction. Each batch (at most ``batch`` coupons) is one
  transaction: ``INSERT … ON CONFLICT DO NOTHING RETURNING`` of the
  ``coupon_reminders`` rows, then one ``coupon.expiring`` event
  (:func:`hub.services.outbox.append`) per row that went in. The row and its event
  commit together or not at all, and the primary key ``(coupon_id, days_before)``
  lets only one of any number of workers insert it: each reminder is emitted once,
  across restarts and processes. On PostgreSQL a batch first takes a
  transaction-scoped advisory lock without waiting; a process that finds it taken
  leaves the round to the holder (two workers do not do the same work at once).

A coupon redeemed in the very instant its reminder is being sent may still get it (the
reminder does not lock the coupon: that would stall redeems).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, bindparam, func, select

from hub.db.engine import read_conn, write_conn
from hub.db.schema import coupon_reminders, coupon_templates, coupons, customers
from hub.db.upsert import InsertIfAbsent
from hub.domain.ids import new_id
from hub.domain.reminders import slot_bounds
from hub.domain.state import CouponState
from hub.domain.template_codec import remind_days_from_dict
from hub.services import outbox
from hub.services.jsonio import iso

log = structlog.get_logger("hub.reminders")

REMINDER_INTERVAL = 30.0  # seconds between two runs in each delivery runtime
BATCH = 500  # coupons per transaction
# pg_try_advisory_xact_lock key of the job (any fixed 64-bit number; "REMINDER")
LOCK_ID = 0x52454D494E444552


@dataclass(frozen=True)
class _Template:
    id: str
    merchant_id: str
    name: str
    kind: str
    days: tuple[int, ...]


_TEMPLATES = select(
    coupon_templates.c.id,
    coupon_templates.c.merchant_id,
    coupon_templates.c.name,
    coupon_templates.c.kind,
    coupon_templates.c.rules,
)

_DUE = (
    select(
        coupons.c.id,
        coupons.c.code,
        coupons.c.template_id,
        coupons.c.valid_from,
        coupons.c.valid_until,
        customers.c.external_id,
    )
    .join(customers, customers.c.id == coupons.c.customer_id)
    .where(
        coupons.c.merchant_id == bindparam("b_merchant"),
        coupons.c.valid_until > bindparam("b_after"),
        coupons.c.valid_until <= bindparam("b_until"),
        coupons.c.valid_from <= bindparam("b_now"),
        coupons.c.status == CouponState.ISSUED.value,
        coupons.c.template_id.in_(bindparam("b_templates", expanding=True)),
        # OFFSET 0 keeps this a per-row probe of coupon_reminders' primary key on
        # PostgreSQL: unnested into an anti join, its plan follows the table's statistics,
        # which lag behind the rows this very job is inserting (a fresh table estimated
        # at 10 rows got a re-scanned materialised copy: quadratic in the reminders sent)
        ~select(coupon_reminders.c.coupon_id)
        .where(
            coupon_reminders.c.coupon_id == coupons.c.id,
            coupon_reminders.c.days_before == bindparam("b_days"),
        )
        .offset(0)
        .exists(),
    )
    .order_by(coupons.c.valid_until, coupons.c.id)
    .limit(bindparam("b_limit"))
)

_INSERT = InsertIfAbsent(
    coupon_reminders, coupon_reminders.c.coupon_id, coupon_reminders.c.days_before
)
_TRY_LOCK = select(func.pg_try_advisory_xact_lock(bindparam("b_lock")))


def _templates(conn: Connection) -> list[_Template]:
    out = []
    for row in conn.execute(_TEMPLATES):
        try:
            days = remind_days_from_dict((row.rules or {}).get("remind_days_before"))
        except Exception:  # a stored rule the codec refuses: no reminders, not a failed job
            log.warning("reminders.bad_rule", template_id=row.id)
            continue
        if days:
            out.append(_Template(row.id, row.merchant_id, row.name, row.kind, days))
    return out


def _slots(templates: Sequence[_Template]) -> dict[tuple[str, int, int], list[_Template]]:
    """``(merchant, D, D_next)`` → the templates with that reminder slot."""
    slots: dict[tuple[str, int, int], list[_Template]] = defaultdict(list)
    for t in templates:
        for d, d_next in slot_bounds(t.days):
            slots[(t.merchant_id, d, d_next)].append(t)
    return slots


def _event(row: Any, t: _Template, days: int, event_id: str, now: datetime) -> dict[str, Any]:
    remind_at = max(row.valid_until - timedelta(days=days), row.valid_from)
    event = outbox.event_row(
        type="coupon.expiring",
        merchant_id=t.merchant_id,
        coupon_id=row.id,
        occurred_at=now,
        recorded_at=now,
        data={
            "code": row.code,
            "customer": row.external_id,
            "template_id": t.id,
            "template": {"id": t.id, "name": t.name, "kind": t.kind},
            "valid_until": iso(row.valid_until),
            "days_before": days,
            "remind_at": iso(remind_at),
        },
    )
    event["id"] = event_id
    return event


def _params(
    key: tuple[str, int, int], templates: list[_Template], now: datetime, limit: int
) -> dict[str, Any]:
    merchant_id, days, d_next = key
    return {
        "b_merchant": merchant_id,
        "b_after": now + timedelta(days=d_next),
        "b_until": now + timedelta(days=days),
        "b_now": now,
        "b_templates": [t.id for t in templates],
        "b_days": days,
        "b_limit": limit,
    }


def _anything_due(
    engine: Engine, key: tuple[str, int, int], templates: list[_Template], now: datetime
) -> bool:
    """A read first: a round with nothing to send (the usual one) opens no write
    transaction (SQLite: takes no write lock; PostgreSQL: no advisory lock)."""
    with read_conn(engine) as conn:
        return conn.execute(_DUE, _params(key, templates, now, 1)).first() is not None


def _batch(
    conn: Connection,
    key: tuple[str, int, int],
    templates: list[_Template],
    now: datetime,
    limit: int,
) -> tuple[int, int] | None:
    """One transaction's worth: returns (coupons found, reminders sent), or None when
    another process holds the job's lock (PostgreSQL)."""
    if conn.dialect.name == "postgresql" and not conn.execute(
        _TRY_LOCK, {"b_lock": LOCK_ID}
    ).scalar():
        return None
    merchant_id, days, _ = key
    by_id = {t.id: t for t in templates}
    due = conn.execute(_DUE, _params(key, templates, now, limit)).all()
    if not due:
        return 0, 0
    rows = [
        {
            "coupon_id": r.id,
            "days_before": days,
            "merchant_id": merchant_id,
            "event_id": new_id("evt"),
            "sent_at": now,
        }
        for r in due
    ]
    won = {c for c, _ in conn.execute(_INSERT.statement(conn), rows).all()}
    ids = {r["coupon_id"]: r["event_id"] for r in rows}
    events = [
        _event(r, by_id[r.template_id], days, ids[r.id], now) for r in due if r.id in won
    ]
    outbox.append(conn, events)
    return len(due), len(events)


def send_due_reminders(engine: Engine, now: datetime, batch: int = BATCH) -> int:
    """Emit every reminder due at ``now`` that has not been sent (one ``coupon.expiring``
    each), in transactions of at most ``batch`` coupons. Returns how many were sent by
    this call (0 when another process is doing the round: PostgreSQL)."""
    with read_conn(engine) as conn:
        templates = _templates(conn)
    total = 0
    for key, group in sorted(_slots(templates).items(), key=lambda kv: kv[0]):
        while _anything_due(engine, key, group, now):
            with write_conn(engine) as conn:
                done = _batch(conn, key, group, now, batch)
            if done is None:  # another worker is on it: this round is theirs
                _log(total)
                return total
            found, sent = done
            total += sent
            if found < batch:
                break
    _log(total)
    return total


def _log(total: int) -> None:
    if total:
        log.info("reminders.sent", count=total)

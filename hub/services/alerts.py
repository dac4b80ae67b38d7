"""Alerts: raising them (as ``alert.raised`` outbox events) and listing them.

An alert is an event like any other — written with the change it reports, in the same
transaction — so a subscription to ``alert.raised`` can page someone. Kinds:

* ``subscription_circuit_open`` — a subscription's deliveries keep failing
  (hub/delivery/breaker.py);
* ``code_enumeration_suspected`` — a key or address was blocked for guessing codes
  (hub/services/guard.py);
* ``repeat_redemption_attempt`` — 同一券码短时间内多次核销: a redeemed code presented
  again (redeem or validate refused with ``coupon_already_redeemed``) within the repeat
  window of its redemption, or one code tried (any outcome) at two or more stores
  within that window. At most one per code per window;
* ``offline_conflict`` — a sale made offline reached the hub after its coupon was
  redeemed by another redemption (hub/services/sync.py): one per conflict.

For the second rule, refused attempts at existing coupons are kept in
``code_attempts`` (refusals only: a successful validate stays a read-only dry run). A
successful redeem or validate learns whether its coupon had recent refusals from the
coupon read it already does (an ``EXISTS`` on an index), so it pays no extra round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    update,
)

from hub.db.engine import read_conn
from hub.db.schema import code_attempts, outbox_events, redemptions, repeat_alerts
from hub.db.upsert import InsertIfAbsent
from hub.domain.codes import mask
from hub.services import outbox
from hub.services.jsonio import iso
from hub.services.paging import newest_first, split_page
from hub.services.principal import Principal

log = structlog.get_logger("hub.alerts")

ALERT_KINDS = (
    "subscription_circuit_open",
    "code_enumeration_suspected",
    "repeat_redemption_attempt",
    "offline_conflict",
)
REPEAT_ALERT = "repeat_redemption_attempt"


def raise_alert(
    conn: Connection,
    *,
    merchant_id: str,
    kind: str,
    severity: str,
    message: str,
    details: dict[str, Any],
    now: datetime,
    store_code: str | None = None,
) -> None:
    """Write an ``alert.raised`` event in the caller's transaction."""
    outbox.append(
        conn,
        [
            outbox.event_row(
                type="alert.raised",
                merchant_id=merchant_id,
                store_code=store_code,
                occurred_at=now,
                recorded_at=now,
                data={"alert": kind, "severity": severity, "message": message, "details": details},
            )
        ],
    )
    log.warning("alert.raised", alert=kind, merchant_id=merchant_id, store=store_code)


# --- repeat redemption attempts ------------------------------------------------------------


@dataclass
class Attempt:
    """What one redeem or validate saw of its coupon, filled in as it goes."""

    since: datetime  # attempts after this are recent (now − repeat window)
    coupon_id: str | None = None
    code: str = ""
    store: str | None = None
    redemption_id: str | None = None  # the coupon's redemption (the new one after a redeem)
    refused_recently: bool = False  # the coupon read saw code_attempts rows after ``since``
    redeemed_now: bool = False

    def saw(self, row: Any, store: str) -> None:
        """Record the coupon row (of redeem.py's coupon read) and the store."""
        self.coupon_id = row.id
        self.code = row.code
        self.store = store
        self.redemption_id = row.redemption_id
        self.refused_recently = bool(row.refused_recently)


_INSERT_ATTEMPT = insert(code_attempts)
_PRUNE_COUPON = delete(code_attempts).where(
    code_attempts.c.coupon_id == bindparam("b_coupon"),
    code_attempts.c.at <= bindparam("b_since"),
)
_ATTEMPTS = (
    select(code_attempts.c.store_code, code_attempts.c.outcome, code_attempts.c.at)
    .where(
        code_attempts.c.coupon_id == bindparam("b_coupon"),
        code_attempts.c.at > bindparam("b_since"),
    )
    .order_by(code_attempts.c.at, code_attempts.c.id)
)
_REDEMPTION = select(redemptions.c.id, redemptions.c.store_code, redemptions.c.occurred_at).where(
    redemptions.c.id == bindparam("b_id")
)
_FIRST_ALERT = InsertIfAbsent(repeat_alerts, repeat_alerts.c.coupon_id)
_NEXT_ALERT = (
    update(repeat_alerts)
    .where(
        repeat_alerts.c.coupon_id == bindparam("b_coupon"),
        repeat_alerts.c.alerted_at <= bindparam("b_since"),
    )
    .values(alerted_at=bindparam("b_now"))
    .returning(repeat_alerts.c.coupon_id)
)


def note_attempt(
    conn: Connection,
    window: timedelta,
    p: Principal,
    seen: Attempt,
    refusal: str | None,
    now: datetime,
) -> None:
    """After a refusal (``refusal`` = its code) or a success of a coupon with recent
    refusals, in a write transaction: keep the refusal and raise
    ``repeat_redemption_attempt`` when the rules say so."""
    if seen.coupon_id is None or seen.store is None:
        return
    since = now - window
    if refusal is not None:
        conn.execute(
            _INSERT_ATTEMPT,
            {
                "merchant_id": p.merchant_id,
                "coupon_id": seen.coupon_id,
                "store_code": seen.store,
                "outcome": refusal[:64],
                "at": now,
            },
        )
        conn.execute(_PRUNE_COUPON, {"b_coupon": seen.coupon_id, "b_since": since})
    red = None
    if seen.redemption_id is not None:
        red = conn.execute(_REDEMPTION, {"b_id": seen.redemption_id}).first()
    if red is not None and red.occurred_at <= since:
        red = None
    trail: list[dict[str, Any]] = []
    if red is not None:
        trail.append(
            {
                "store": red.store_code,
                "at": iso(red.occurred_at),
                "outcome": "redeemed",
                "redemption_id": red.id,
            }
        )
    for a in conn.execute(_ATTEMPTS, {"b_coupon": seen.coupon_id, "b_since": since}).all():
        trail.append({"store": a.store_code, "at": iso(a.at), "outcome": a.outcome})
    if refusal is None and not seen.redeemed_now:
        trail.append({"store": seen.store, "at": iso(now), "outcome": "valid"})
    trail.sort(key=lambda t: str(t["at"]))
    stores = list(dict.fromkeys(str(t["store"]) for t in trail))
    presented_again = refusal == "coupon_already_redeemed" and red is not None
    if not presented_again and len(stores) < 2:
        return
    if not _first_in_window(conn, seen.coupon_id, p.merchant_id, since, now):
        return
    masked = mask(seen.code)
    minutes = f"{window.total_seconds() / 60:g}"
    if presented_again and red is not None:
        message = (
            f"Coupon {masked}, redeemed at store {red.store_code} at {iso(red.occurred_at)}, "
            f"was presented again at store {seen.store} within {minutes} min."
        )
    else:
        message = (
            f"Coupon {masked} was tried at {len(stores)} stores ({', '.join(stores)}) "
            f"within {minutes} min."
        )
    raise_alert(
        conn,
        merchant_id=p.merchant_id,
        kind=REPEAT_ALERT,
        severity="warning",
        message=message,
        details={
            "reason": "presented_after_redemption" if presented_again else "several_stores",
            "code": masked,
            "coupon_id": seen.coupon_id,
            "store": seen.store,
            "stores": stores,
            "attempts": trail,
            "redemption_id": red.id if red is not None else None,
            "redeemed_at": iso(red.occurred_at) if red is not None else None,
            "redeemed_store": red.store_code if red is not None else None,
            "key_id": p.key_id,
            "window_seconds": int(window.total_seconds()),
        },
        now=now,
        store_code=seen.store,
    )


def _first_in_window(
    conn: Connection, coupon_id: str, merchant_id: str, since: datetime, now: datetime
) -> bool:
    """Claim this window's one alert for the coupon (race-safe on both backends)."""
    row = {"coupon_id": coupon_id, "merchant_id": merchant_id, "alerted_at": now}
    if _FIRST_ALERT.inserted(conn, row):
        return True
    again = {"b_coupon": coupon_id, "b_since": since, "b_now": now}
    return conn.execute(_NEXT_ALERT, again).first() is not None


def prune(conn: Connection, now: datetime, window: timedelta) -> int:
    """Delete attempt and alert marks older than the repeat window; returns how many."""
    a = conn.execute(delete(code_attempts).where(code_attempts.c.at <= now - window))
    b = conn.execute(delete(repeat_alerts).where(repeat_alerts.c.alerted_at <= now - window))
    return int(a.rowcount or 0) + int(b.rowcount or 0)


# --- GET /v1/alerts ----------------------------------------------------------------------


@dataclass(frozen=True)
class AlertFilter:
    alert: str | None = None
    severity: str | None = None
    since: datetime | None = None  # occurred_at >= since
    until: datetime | None = None  # occurred_at < until


# a literal, not a bound value, so both databases use the partial index on alert rows
_IS_ALERT = outbox_events.c.type == literal_column("'alert.raised'")


def list_alerts(
    engine: Engine, p: Principal, f: AlertFilter, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The merchant's alerts, newest first (cursor pagination like the redemption list).
    Keys limited to some stores see only alerts of those stores."""
    e = outbox_events
    q = select(e.c.id, e.c.occurred_at, e.c.store_code, e.c.data).where(
        e.c.merchant_id == p.merchant_id, _IS_ALERT
    )
    scope = p.store_scope
    if scope is not None:
        q = q.where(e.c.store_code.in_(scope))
    if f.alert is not None:
        q = q.where(e.c.data["alert"].as_string() == f.alert)
    if f.severity is not None:
        q = q.where(e.c.data["severity"].as_string() == f.severity)
    if f.since is not None:
        q = q.where(e.c.occurred_at >= f.since)
    if f.until is not None:
        q = q.where(e.c.occurred_at < f.until)
    q = newest_first(q, e.c.occurred_at, e.c.id, limit, cursor)
    with read_conn(engine) as conn:
        rows = conn.execute(q).all()
    page, next_cursor = split_page(rows, limit, "occurred_at")
    items = []
    for row in page:
        message, details = row.data.get("message"), row.data.get("details") or {}
        if scope is not None:
            message, details = _scoped(message, details, scope)
        items.append(
            {
                "id": row.id,
                "alert": row.data.get("alert"),
                "severity": row.data.get("severity"),
                "message": message,
                "details": details,
                "occurred_at": iso(row.occurred_at),
                "store": row.store_code,
            }
        )
    return {"items": items, "next_cursor": next_cursor}


def _scoped(
    message: Any, details: dict[str, Any], scope: tuple[str, ...]
) -> tuple[Any, dict[str, Any]]:
    """An alert as a key limited to ``scope`` sees it: other stores' attempts keep their
    time and outcome but lose their store and redemption id; the original redemption is
    named only when it was at one of the key's stores."""
    hidden = False
    out = dict(details)
    attempts = details.get("attempts")
    if isinstance(attempts, list):
        kept = []
        for a in attempts:
            if isinstance(a, dict) and a.get("store") not in scope:
                hidden = True
                kept.append({k: a[k] for k in ("at", "outcome") if k in a})
            else:
                kept.append(a)
        out["attempts"] = kept
    stores = details.get("stores")
    if isinstance(stores, list):
        out["stores"] = [s for s in stores if s in scope]
        hidden = hidden or len(out["stores"]) != len(stores)
    redeemed_store = details.get("redeemed_store")
    if redeemed_store is not None and redeemed_store not in scope:
        hidden = True
        out["redemption_id"] = None
        out["redeemed_store"] = None
    if hidden and details.get("code") is not None:
        message = (
            f"Coupon {details['code']} was presented at another store or again after "
            "its redemption within the window; other stores' details are hidden for this key."
        )
    return message, out

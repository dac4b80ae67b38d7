"""The transactional outbox: event rows and their delivery records, written in the
caller's transaction.

Every service writes events through :func:`append`. It inserts the event rows and, in
the same transaction, one delivery record per (event, matching subscription), so an
event can never exist without its deliveries. Who is told about the new deliveries once
the transaction commits is not this module's business: the delivery runtime installs
an announcer at start-up (:func:`announce_with`; ``hub.delivery.queue.configure`` does),
and with none installed the records simply wait for the sweeper.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import JSON, Connection, ScalarSelect, bindparam, func, insert, or_, select

from hub.db.engine import after_commit
from hub.db.fastexec import FastStatement
from hub.db.schema import deliveries, outbox_events, subscriptions
from hub.domain.ids import new_id
from hub.services.jsonio import iso

EVENT_TYPES = (
    "coupon.issued",
    "coupon.claimed",
    "coupon.redeemed",
    "coupon.redemption_reversed",
    "coupon.voided",
    "coupon.expired",
    "coupon.expiring",
    "coupon.transfer_offered",
    "coupon.transferred",
    "coupon.transfer_cancelled",
    "order.redeemed",
    "order.reversed",
    "template.created",
    "template.paused",
    "template.resumed",
    "alert.raised",
    "reservation.created",
    "reservation.released",
    "reservation.expired",
    "redemption.offline_conflict",
    "redemption.offline_conflict_settled",
    "sale.recorded",
)

# alert.raised data: {"alert": <kind>, "severity": "warning"|"critical", "message": str,
#                     "details": {...}}; kinds so far: "subscription_circuit_open",
#                     "code_enumeration_suspected", "repeat_redemption_attempt",
#                     "offline_conflict" (hub/services/alerts.py lists them and explains each).

# subscriptions that get delivery records (a paused or open-circuit one keeps them for later)
LIVE_STATUSES = ("active", "paused", "circuit_open")

Announcer = Callable[[list[str]], None]
"""Told the ids of delivery records once the transaction that made them has committed."""


# the installed announcer, one per process (None: nobody is told; the sweeper finds the
# records within its STALE interval)
_announcer: Announcer | None = None


def announce_with(announcer: Announcer | None) -> None:
    """Install how new or re-opened deliveries are announced after commit (the delivery
    runtime does, at start-up); ``None`` uninstalls it."""
    global _announcer
    _announcer = announcer


def announce_after_commit(conn: Connection, ids: list[str]) -> None:
    """Announce delivery ``ids`` once ``conn``'s write transaction has committed (never
    before: a worker must find the records; never on rollback)."""
    announcer = _announcer
    if ids and announcer is not None:
        after_commit(conn, lambda: announcer(ids))


def event_row(
    *,
    type: str,
    merchant_id: str,
    occurred_at: datetime,
    recorded_at: datetime,
    data: dict[str, Any],
    coupon_id: str | None = None,
    store_code: str | None = None,
) -> dict[str, Any]:
    assert type in EVENT_TYPES, type
    return {
        "id": new_id("evt"),
        "merchant_id": merchant_id,
        "type": type,
        "coupon_id": coupon_id,
        "store_code": store_code,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "data": data,
    }


def envelope(
    *,
    id: str,
    type: str,
    merchant_id: str,
    occurred_at: datetime,
    recorded_at: datetime,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The published form of an event (docs/architecture.md, "The outbox and delivery");
    ``id`` is the dedupe key."""
    return {
        "id": id,
        "type": type,
        "occurred_at": iso(occurred_at),
        "recorded_at": iso(recorded_at),
        "merchant_id": merchant_id,
        "data": data,
    }


# --- fan-out: one delivery record per (event, matching subscription) ----------------------


class Sub(NamedTuple):
    """A live subscription as the fan-out needs it."""

    id: str
    events: list[str]
    filter: dict[str, Any]


# ``status IN (…)`` spelled as ORs of plain parameters: an IN list is an "expanding"
# parameter that SQLAlchemy re-renders into the SQL on every execution.
_LIVE = or_(*(subscriptions.c.status == s for s in LIVE_STATUSES))
_SUBSCRIPTIONS = select(subscriptions.c.id, subscriptions.c.events, subscriptions.c.filter).where(
    subscriptions.c.merchant_id == bindparam("b_merchant"), _LIVE
)


def live_subscriptions_column(dialect: str) -> ScalarSelect[Any]:
    """The merchant's (``b_merchant``) live subscriptions as one JSON array of
    ``[id, events, filter]``, to read inside another statement (the redeem's coupon
    read) instead of a round trip of its own; :func:`know_subscriptions` takes it."""
    if dialect == "postgresql":
        row = func.json_build_array(
            subscriptions.c.id, subscriptions.c.events, subscriptions.c.filter
        )
        agg = func.json_agg(row, type_=JSON)
    else:
        row = func.json_array(
            subscriptions.c.id, func.json(subscriptions.c.events), func.json(subscriptions.c.filter)
        )
        agg = func.json_group_array(row, type_=JSON)
    return (
        select(agg)
        .where(subscriptions.c.merchant_id == bindparam("b_merchant"), _LIVE)
        .scalar_subquery()
    )


_SUBS_KEY = "hub_outbox_subscriptions"
_HOLD_KEY = "hub_outbox_hold"
_HELD_KEY = "hub_outbox_held"


def know_subscriptions(conn: Connection, merchant_id: str, found: Any) -> None:
    """What :func:`live_subscriptions_column` read for ``merchant_id`` in this
    transaction: :func:`append` uses it instead of reading the subscriptions again.
    The caller calls :func:`forget` before the connection goes back to the pool."""
    subs = [Sub(str(i), list(e or []), dict(f or {})) for i, e, f in (found or [])]
    conn.info.setdefault(_SUBS_KEY, {})[merchant_id] = subs


def hold_next(conn: Connection) -> None:
    """Let the next :func:`append` of a single event that makes no delivery record keep
    the row for the caller (:func:`take_held`), who inserts it together with other
    writes in one statement (PostgreSQL: the redeem's completion)."""
    conn.info[_HOLD_KEY] = True


def take_held(conn: Connection) -> list[dict[str, Any]]:
    """The event rows :func:`append` kept (see :func:`hold_next`): the caller must insert
    them in this transaction (:func:`insert_events` or its own statement)."""
    held: list[dict[str, Any]] = conn.info.pop(_HELD_KEY, [])
    return held


def forget(conn: Connection) -> None:
    """Drop what this module remembered on ``conn`` (subscriptions read, a hold)."""
    for k in (_SUBS_KEY, _HOLD_KEY, _HELD_KEY):
        conn.info.pop(k, None)


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert event rows that make no delivery record (as :func:`append` would)."""
    if rows:
        _insert_rows(conn, list(rows))


def _subscriptions(conn: Connection, merchant_id: str) -> list[Sub]:
    known: Mapping[str, list[Sub]] = conn.info.get(_SUBS_KEY, {})
    found = known.get(merchant_id)
    if found is not None:
        return found
    rows = conn.execute(_SUBSCRIPTIONS, {"b_merchant": merchant_id}).all()
    return [Sub(r.id, r.events, r.filter) for r in rows]


_INSERT_EVENTS_RETURNING = insert(outbox_events).returning(
    outbox_events.c.seq, sort_by_parameter_order=True
)
_INSERT_EVENTS = insert(outbox_events)
_INSERT_DELIVERIES = insert(deliveries)
# the columns of an event row (event_row); one such row without delivery records (the
# redeem's usual event) goes in through the fast path (hub/db/fastexec.py)
EVENT_COLUMNS = (
    "id", "merchant_id", "type", "coupon_id", "store_code", "occurred_at", "recorded_at", "data",
)  # fmt: skip
_INSERT_ONE_EVENT = FastStatement(
    insert(outbox_events).values(
        {c: bindparam(c, type_=outbox_events.c[c].type) for c in EVENT_COLUMNS}
    )
)


_EVENT_KEYS = frozenset(EVENT_COLUMNS)


def _insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if len(rows) == 1 and rows[0].keys() == _EVENT_KEYS:
        _INSERT_ONE_EVENT.run(conn, rows[0])
    else:
        conn.execute(_INSERT_EVENTS, rows)


def template_of_event(data: dict[str, Any]) -> str | None:
    tid = data.get("template_id")
    if tid is None and isinstance(data.get("template"), dict):
        tid = data["template"].get("id")
    return tid if isinstance(tid, str) else None


def matches(sub_events: list[str], sub_filter: dict[str, Any], row: dict[str, Any]) -> bool:
    """Does a subscription want this event? Event types (``*`` = all); a store filter
    keeps only events at those stores (events with no store never match it); a template
    filter keeps only events about those templates."""
    if "*" not in sub_events and row["type"] not in sub_events:
        return False
    stores = sub_filter.get("stores") or []
    if stores and row.get("store_code") not in stores:
        return False
    templates = sub_filter.get("templates") or []
    return not templates or template_of_event(row["data"]) in templates


def append(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert event rows and their delivery records in the current transaction (commit
    makes them visible); the deliveries are announced after the commit. The
    subscriptions come from :func:`know_subscriptions` when the caller read them
    already; a single event with no delivery record is kept for the caller when it
    asked with :func:`hold_next`."""
    hold = conn.info.pop(_HOLD_KEY, None) is True
    if not rows:
        return
    subs: dict[str, list[Sub]] = {}
    for merchant_id in {r["merchant_id"] for r in rows}:
        subs[merchant_id] = _subscriptions(conn, merchant_id)
    wanted = [
        [sub for sub in subs[row["merchant_id"]] if matches(sub.events, sub.filter, row)]
        for row in rows
    ]
    if not any(wanted):
        if hold and len(rows) == 1:
            conn.info[_HELD_KEY] = list(rows)
            return
        _insert_rows(conn, list(rows))
        return
    seqs = conn.execute(_INSERT_EVENTS_RETURNING, list(rows)).scalars().all()
    created: list[dict[str, Any]] = []
    for row, seq, row_subs in zip(rows, seqs, wanted, strict=True):
        now: datetime = row["recorded_at"]
        for sub in row_subs:
            created.append(
                {
                    "id": new_id("dlv"),
                    "merchant_id": row["merchant_id"],
                    "subscription_id": sub.id,
                    "event_id": row["id"],
                    "event_seq": seq,
                    "event_type": row["type"],
                    "coupon_id": row.get("coupon_id"),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "enqueued_at": now,  # enqueued right after the commit
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if created:
        conn.execute(_INSERT_DELIVERIES, created)
        announce_after_commit(conn, [d["id"] for d in created])

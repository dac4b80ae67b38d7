"""Templates (create, list, get, pause/resume), issuing coupons and claiming them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from hub.db.engine import read_conn, write_conn
from hub.db.schema import coupon_templates, coupons, customers
from hub.domain import holds
from hub.domain.codes import generate_code
from hub.domain.errors import refuse
from hub.domain.ids import new_id
from hub.domain.redeeming import effective_state
from hub.domain.state import Action, CouponState, transition
from hub.domain.template_codec import (
    remind_days_from_dict,
    stacking_from_dict,
    stacking_to_dict,
    template_from_dict,
    template_to_dict,
)
from hub.domain.templates import CHANNELS
from hub.domain.validity import Window, check_issuable, window_for
from hub.services import audit, outbox
from hub.services.guard import Guard
from hub.services.jsonio import iso
from hub.services.lookup import CodeLookup, default_guard
from hub.services.principal import Principal
from hub.services.template_cache import template_of

MAX_BATCH = 10_000


def _template_view(row: Any) -> dict[str, Any]:
    rules = dict(row.rules)
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "status": row.status,
        "benefit": rules["benefit"],
        "validity": rules["validity"],
        "usage": rules["usage"],
        "total_quantity": row.total_quantity,
        "per_customer_limit": row.per_customer_limit,
        # rules stored before templates had stacking read as exclusive
        "stacking": stacking_to_dict(stacking_from_dict(rules.get("stacking"))),
        "transferable": bool(rules.get("transferable", False)),
        "offline": bool(rules.get("offline", True)),
        # rules stored before templates had reminders remind 3 days before
        "remind_days_before": list(remind_days_from_dict(rules.get("remind_days_before"))),
        "issued_count": row.issued_count,
        "created_at": iso(row.created_at),
    }


def create_template(
    engine: Engine, p: Principal, name: str, spec: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """``spec`` has ``benefit``, ``validity``, ``usage``, ``total_quantity``,
    ``per_customer_limit``, ``stacking`` (the API form); the domain checks it."""
    p.require_admin()
    template = template_from_dict(spec)
    check_issuable(template.validity, now)  # a window already closed could never be used
    rules = template_to_dict(template)
    template_id = new_id("tpl")
    with write_conn(engine) as conn:
        conn.execute(
            insert(coupon_templates).values(
                id=template_id,
                merchant_id=p.merchant_id,
                name=name,
                kind=template.kind,
                rules=rules,
                status="active",
                total_quantity=template.total_quantity,
                per_customer_limit=template.per_customer_limit,
                issued_count=0,
                created_at=now,
            )
        )
        outbox.append(
            conn,
            [
                outbox.event_row(
                    type="template.created",
                    merchant_id=p.merchant_id,
                    occurred_at=now,
                    recorded_at=now,
                    data={"template_id": template_id, "name": name, "kind": template.kind, **rules},
                )
            ],
        )
        audit.record(conn, p, "template.created", "template", template_id, now, name=name)
        row = _get_row(conn, p, template_id)
    return _template_view(row)


def _get_row(conn: Connection, p: Principal, template_id: str, *, lock: bool = False) -> Any:
    q = select(coupon_templates).where(
        coupon_templates.c.id == template_id, coupon_templates.c.merchant_id == p.merchant_id
    )
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise refuse("template_not_found", f"No template {template_id}.")
    return row


def get_template_row(
    conn: Connection, p: Principal, template_id: str, *, lock: bool = False
) -> Any:
    """The merchant's template row, or ``template_not_found``; ``lock``: hold its row
    lock (PostgreSQL) until the transaction ends, as issuing does while it counts
    holdings against the per-customer limit."""
    return _get_row(conn, p, template_id, lock=lock)


def get_template(engine: Engine, p: Principal, template_id: str) -> dict[str, Any]:
    with read_conn(engine) as conn:
        return _template_view(_get_row(conn, p, template_id))


def list_templates(engine: Engine, p: Principal) -> list[dict[str, Any]]:
    with read_conn(engine) as conn:
        rows = conn.execute(
            select(coupon_templates)
            .where(coupon_templates.c.merchant_id == p.merchant_id)
            .order_by(coupon_templates.c.created_at, coupon_templates.c.id)
        )
        return [_template_view(r) for r in rows]


def set_template_status(
    engine: Engine, p: Principal, template_id: str, status: str, now: datetime
) -> dict[str, Any]:
    """Pause (stop issuing; coupons already issued stay usable) or resume."""
    p.require_admin()
    with write_conn(engine) as conn:
        row = _get_row(conn, p, template_id, lock=True)
        if row.status != status:
            conn.execute(
                update(coupon_templates)
                .where(coupon_templates.c.id == template_id)
                .values(status=status)
            )
            outbox.append(
                conn,
                [
                    outbox.event_row(
                        type="template.paused" if status == "paused" else "template.resumed",
                        merchant_id=p.merchant_id,
                        occurred_at=now,
                        recorded_at=now,
                        data={"template_id": template_id},
                    )
                ],
            )
            action = "template.paused" if status == "paused" else "template.resumed"
            audit.record(conn, p, action, "template", template_id, now)
        return _template_view(_get_row(conn, p, template_id))


def _customer_ids(conn: Connection, p: Principal, external_ids: Sequence[str]) -> dict[str, str]:
    wanted = sorted(set(external_ids))
    found: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        for r in conn.execute(
            select(customers.c.external_id, customers.c.id).where(
                customers.c.merchant_id == p.merchant_id, customers.c.external_id.in_(chunk)
            )
        ):
            found[r.external_id] = r.id
    missing = [x for x in wanted if x not in found]
    if missing:
        raise refuse(
            "customer_not_found", f"Unknown customer(s): {missing[:10]}", customers=missing[:100]
        )
    return found


def _check_customer_limit(
    conn: Connection, template_id: str, limit: int | None, wanted: Counter[str]
) -> None:
    if limit is None or not wanted:
        return
    held: dict[str, int] = {}
    ids = list(wanted)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for r in conn.execute(
            select(coupons.c.customer_id, func.count())
            .where(coupons.c.template_id == template_id, coupons.c.customer_id.in_(chunk))
            .group_by(coupons.c.customer_id)
        ):
            held[r[0]] = int(r[1])
    over = [cid for cid, n in wanted.items() if held.get(cid, 0) + n > limit]
    if over:
        raise refuse(
            "per_customer_limit_reached",
            f"{len(over)} customer(s) would hold more than {limit} coupon(s) of this template.",
            limit=limit,
        )


def check_holding_limit(
    conn: Connection, template_id: str, limit: int | None, customer_id: str
) -> None:
    """Refuse ``per_customer_limit_reached`` when one more coupon of the template would
    put the customer over ``limit`` (hold the template's lock: :func:`get_template_row`)."""
    _check_customer_limit(conn, template_id, limit, Counter({customer_id: 1}))


def _take_stock(conn: Connection, row: Any, n: int) -> None:
    """Count ``n`` more coupons of the template, or refuse beyond its total stock."""
    bumped = conn.execute(
        update(coupon_templates)
        .where(
            coupon_templates.c.id == row.id,
            (coupon_templates.c.total_quantity.is_(None))
            | (coupon_templates.c.issued_count + n <= coupon_templates.c.total_quantity),
        )
        .values(issued_count=coupon_templates.c.issued_count + n)
        .returning(coupon_templates.c.issued_count)
    ).first()
    if bumped is None:
        left = (row.total_quantity or 0) - row.issued_count
        raise refuse(
            "template_out_of_stock",
            f"Only {max(left, 0)} coupon(s) of this template are left.",
            remaining=max(left, 0),
        )


def issue_one(
    conn: Connection,
    p: Principal,
    template_id: str,
    customer_external_id: str,
    channel: str,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """One coupon of the template for one customer, inside the caller's transaction
    (campaign claims): the template's stock and per-customer limit hold as for
    :func:`issue_coupons`, with its ``coupon.issued`` event. Returns (coupon id, view)."""
    row = _get_row(conn, p, template_id, lock=True)
    if row.status != "active":
        raise refuse("template_paused", "The template is paused.")
    _take_stock(conn, row, 1)
    ids_by_ext = _customer_ids(conn, p, [customer_external_id])
    _check_customer_limit(
        conn, template_id, row.per_customer_limit, Counter({ids_by_ext[customer_external_id]: 1})
    )
    window = window_for(template_of(row.id, row.rules).validity, now, p.tz)
    made: list[str] = []
    [view] = _insert_coupons(
        conn, p, row, [customer_external_id], ids_by_ext, channel, window, now, made
    )
    [coupon_id] = made
    customer_id = ids_by_ext[customer_external_id]
    return coupon_id, {**view, "template_id": row.id, "customer_id": customer_id}


def issue_coupons(
    engine: Engine,
    p: Principal,
    template_id: str,
    *,
    count: int | None,
    customer_external_ids: Sequence[str] | None,
    channel: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Issue ``count`` unassigned coupons, or one per entry of ``customer_external_ids``.

    All or nothing, in one transaction, with one ``coupon.issued`` event per coupon.
    Stock and per-customer limits are checked under the template's row lock.
    """
    p.require_admin()
    if (count is None) == (customer_external_ids is None):
        raise refuse(
            "invalid_request",
            "Give either count (unassigned coupons) or customers (one coupon each), not both.",
            errors=[{"field": "count", "message": "exactly one of count and customers"}],
        )
    # before building [None] * count: a count of 10**30 overflowed (500), 10**9 ate memory
    if count is not None and count > MAX_BATCH:
        raise refuse("batch_too_large", f"At most {MAX_BATCH} coupons per call.", max=MAX_BATCH)
    holders: list[str | None] = (
        list(customer_external_ids) if customer_external_ids is not None else [None] * (count or 0)
    )
    if not holders:
        raise refuse(
            "invalid_request",
            "The customers list is empty: nothing to issue.",
            errors=[{"field": "customers", "message": "empty list"}],
        )
    if len(holders) > MAX_BATCH:
        raise refuse("batch_too_large", f"At most {MAX_BATCH} coupons per call.", max=MAX_BATCH)
    if channel is not None and channel not in CHANNELS:
        raise refuse(
            "invalid_request",
            f"channel must be one of {list(CHANNELS)}",
            errors=[{"field": "channel", "message": "unknown channel"}],
        )
    n = len(holders)
    with write_conn(engine) as conn:
        row = _get_row(conn, p, template_id, lock=True)
        if row.status != "active":
            raise refuse("template_paused", "The template is paused.")
        _take_stock(conn, row, n)
        ids_by_ext: dict[str, str] = {}
        if customer_external_ids:
            ids_by_ext = _customer_ids(conn, p, customer_external_ids)
            wanted = Counter(ids_by_ext[x] for x in customer_external_ids)
            _check_customer_limit(conn, template_id, row.per_customer_limit, wanted)
        template = template_of(row.id, row.rules)
        window = window_for(template.validity, now, p.tz)
        issued = _insert_coupons(conn, p, row, holders, ids_by_ext, channel, window, now)
        audit.record(
            conn, p, "coupons.issued", "template", template_id, now,
            count=len(issued), to_customers=customer_external_ids is not None,
        )
    return {"template_id": template_id, "issued": len(issued), "coupons": issued}


def _insert_coupons(
    conn: Connection,
    p: Principal,
    row: Any,
    holders: Sequence[str | None],
    ids_by_ext: dict[str, str],
    channel: str | None,
    window: Any,
    now: datetime,
    coupon_ids: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The coupons' views; their ids are appended to ``coupon_ids`` when given."""
    for _attempt in range(3):
        coupon_rows = []
        views = []
        events = []
        for holder in holders:
            coupon_id = new_id("cpn")
            code = generate_code()
            coupon_rows.append(
                {
                    "id": coupon_id,
                    "merchant_id": p.merchant_id,
                    "template_id": row.id,
                    "code": code,
                    "status": "issued",
                    "customer_id": ids_by_ext[holder] if holder is not None else None,
                    "channel": channel,
                    "issued_at": now,
                    "valid_from": window.start,
                    "valid_until": window.end,
                }
            )
            view = {
                "code": code,
                "customer": holder,
                "channel": channel,
                "valid_from": iso(window.start),
                "valid_until": iso(window.end),
            }
            views.append(view)
            events.append(
                outbox.event_row(
                    type="coupon.issued",
                    merchant_id=p.merchant_id,
                    coupon_id=coupon_id,
                    occurred_at=now,
                    recorded_at=now,
                    data={**view, "template_id": row.id, "kind": row.kind},
                )
            )
        try:
            with conn.begin_nested():
                conn.execute(insert(coupons), coupon_rows)
                outbox.append(conn, events)
        except IntegrityError:  # a code collision (odds ~n²/2⁶⁶): draw new codes
            continue
        if coupon_ids is not None:
            coupon_ids.extend(r["id"] for r in coupon_rows)
        return views
    raise RuntimeError("could not draw unique coupon codes")  # pragma: no cover


_COUPON_FOR_CHANGE = select(
    coupons.c.id,
    coupons.c.template_id,
    coupons.c.customer_id,
    coupons.c.status,
    coupons.c.valid_from,
    coupons.c.valid_until,
    coupons.c.reservation_id,
    coupons.c.reserved_until,
).where(coupons.c.code == bindparam("b_code"), coupons.c.merchant_id == bindparam("b_merchant"))


def _coupon_for_change(
    conn: Connection, lookup: CodeLookup, code: str, now: datetime
) -> tuple[Any, CouponState]:
    """The merchant's coupon with this code and its effective state, or coupon_not_found
    (counted by the guard as the refusal leaves the caller's ``with lookup`` block)."""
    c = lookup.find(conn, _COUPON_FOR_CHANGE, code)
    return c, effective_state(CouponState(c.status), Window(c.valid_from, c.valid_until), now)


def claim_coupon(
    engine: Engine,
    p: Principal,
    raw_code: str,
    customer_external_id: str,
    now: datetime,
    *,
    guard: Guard | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """Give an unassigned coupon to a customer (respecting the per-customer limit)."""
    p.require_admin()
    with CodeLookup(engine, default_guard(guard), p, now, client) as lookup:
        code = lookup.parse(raw_code)
        return _claim(engine, p, lookup, code, customer_external_id, now)


def _claim(
    engine: Engine,
    p: Principal,
    lookup: CodeLookup,
    code: str,
    customer_external_id: str,
    now: datetime,
) -> dict[str, Any]:
    with write_conn(engine) as conn:
        c, state = _coupon_for_change(conn, lookup, code, now)
        if c.customer_id is not None:
            raise refuse("coupon_already_claimed", "The coupon already has a holder.")
        # A coupon that could not be redeemed (redeemed, voided, expired) is not handed out.
        transition(state, Action.REDEEM, window_open=now < c.valid_until)
        tpl = _get_row(conn, p, c.template_id, lock=True)
        customer_id = _customer_ids(conn, p, [customer_external_id])[customer_external_id]
        _check_customer_limit(
            conn, c.template_id, tpl.per_customer_limit, Counter({customer_id: 1})
        )
        done = conn.execute(
            update(coupons)
            .where(coupons.c.id == c.id, coupons.c.customer_id.is_(None))
            .values(customer_id=customer_id, version=coupons.c.version + 1)
            .returning(coupons.c.id)
        ).first()
        if done is None:
            raise refuse("coupon_already_claimed", "The coupon already has a holder.")
        outbox.append(
            conn,
            [
                outbox.event_row(
                    type="coupon.claimed",
                    merchant_id=p.merchant_id,
                    coupon_id=c.id,
                    occurred_at=now,
                    recorded_at=now,
                    data={
                        "code": code,
                        "customer": customer_external_id,
                        "template_id": c.template_id,
                    },
                )
            ],
        )
        audit.record(
            conn, p, "coupon.claimed", "coupon", code, now, customer=customer_external_id
        )
    return {"code": code, "customer": customer_external_id, "status": c.status}


def void_coupon(
    engine: Engine,
    p: Principal,
    raw_code: str,
    reason: str | None,
    now: datetime,
    *,
    guard: Guard | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """Void an issued coupon (e.g. issued by mistake); it can never be redeemed after."""
    p.require_admin()
    with CodeLookup(engine, default_guard(guard), p, now, client) as lookup:
        code = lookup.parse(raw_code)
        return _void(engine, p, lookup, code, reason, now)


def _void(
    engine: Engine, p: Principal, lookup: CodeLookup, code: str, reason: str | None, now: datetime
) -> dict[str, Any]:
    with write_conn(engine) as conn:
        c, state = _coupon_for_change(conn, lookup, code, now)
        new_state = transition(state, Action.VOID)
        # a coupon held for an online order is not voided under the paying customer:
        # release the reservation first (or let the hold end)
        holds.check_not_held(c.reservation_id, c.reserved_until, now)
        done = conn.execute(
            update(coupons)
            .where(
                coupons.c.id == c.id,
                coupons.c.status == state.value,
                or_(coupons.c.reservation_id.is_(None), coupons.c.reserved_until <= now),
            )
            .values(
                status=new_state.value,
                reservation_id=None,
                reserved_until=None,
                version=coupons.c.version + 1,
            )
            .returning(coupons.c.id)
        ).first()
        if done is None:  # changed under us (redeemed or held meanwhile): the fresh state
            current = conn.execute(
                select(coupons.c.status, coupons.c.reservation_id, coupons.c.reserved_until)
                .where(coupons.c.id == c.id)
            ).one()
            transition(CouponState(current.status), Action.VOID)
            holds.check_not_held(current.reservation_id, current.reserved_until, now)
            raise refuse("illegal_transition", "The coupon changed while it was being voided.")
        outbox.append(
            conn,
            [
                outbox.event_row(
                    type="coupon.voided",
                    merchant_id=p.merchant_id,
                    coupon_id=c.id,
                    occurred_at=now,
                    recorded_at=now,
                    data={"code": code, "template_id": c.template_id, "reason": reason},
                )
            ],
        )
        audit.record(conn, p, "coupon.voided", "coupon", code, now, reason=reason)
    return {"code": code, "status": new_state.value, "voided_at": iso(now), "reason": reason}

"""Bulk-load a :class:`hub.synthetic.history.History` into a merchant's database, fast.

What goes in, in one transaction: the customers the history adds (the known ones are
reused), its campaigns (closed or open, with their claim counts), its coupons (their
state as of ``now``: ``redeemed``, ``expired`` once their window has closed, else
``issued``), the campaign claims, the redemptions (``redeemed`` or ``reversed``, with
the ``detail`` document the redeem service writes: the order, the discount, the
eligible amount, what was payable, the discount per line, an exchange coupon's gift),
the sales (orders with no coupon) and each template's ``issued_count``. PostgreSQL
takes the rows with ``COPY … FROM STDIN`` (psycopg's ``cursor.copy``); SQLite with
``executemany`` in chunks.

**No outbox event is written for the history**: a receiver subscribed later must not
get weeks of old ``coupon.issued`` / ``coupon.redeemed`` events on the hub's first
start, and the expiry sweep finds nothing to announce (coupons whose window closed are
loaded as ``expired``). The analytics rollups are rebuilt from the tables instead
(``hub.services.rollup.rebuild_rollups``) once the rows are in.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, Table, func, select, update

from hub.db.engine import write_conn
from hub.db.schema import (
    api_keys,
    campaign_claims,
    campaigns,
    coupon_templates,
    coupons,
    customers,
    redemptions,
    sales,
    stores,
)
from hub.domain.ids import new_id
from hub.domain.templates import ExchangeBenefit, Template
from hub.services.redeem import order_view
from hub.services.views import discount_lines
from hub.synthetic.history import History, Redemption

CHUNK = 5000
REVERSAL_REASON = "refund"


@dataclass(frozen=True)
class Loaded:
    """What a load wrote (counts of rows) and whether the rollups were rebuilt."""

    customers: int
    campaigns: int
    coupons: int
    claims: int
    redemptions: int
    reversed: int
    sales: int
    rollups_rebuilt: bool


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def holdings(engine: Engine, merchant_id: str) -> dict[tuple[str, str], int]:
    """Coupons customers hold now, by (external id, template name): what
    :func:`hub.synthetic.history.generate` takes as ``held``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(customers.c.external_id, coupon_templates.c.name, func.count())
            .select_from(
                coupons.join(customers, customers.c.id == coupons.c.customer_id).join(
                    coupon_templates, coupon_templates.c.id == coupons.c.template_id
                )
            )
            .where(coupons.c.merchant_id == merchant_id)
            .group_by(customers.c.external_id, coupon_templates.c.name)
        ).all()
    return {(r[0], r[1]): int(r[2]) for r in rows}


def template_ids(engine: Engine, merchant_id: str) -> dict[str, str]:
    """The merchant's template ids by name (the history's template keys)."""
    with engine.connect() as conn:
        return {
            r.name: r.id
            for r in conn.execute(
                select(coupon_templates.c.name, coupon_templates.c.id).where(
                    coupon_templates.c.merchant_id == merchant_id
                )
            )
        }


def _key_ids(conn: Connection, merchant_id: str) -> tuple[dict[str, str], str]:
    """The key each redemption and sale is recorded under: the store's POS key for the
    till, the app key (else the admin key) online."""
    by_store: dict[str, str] = {}
    online = fallback = "history"
    for r in conn.execute(
        select(api_keys.c.id, api_keys.c.role, stores.c.code)
        .select_from(api_keys.outerjoin(stores, stores.c.id == api_keys.c.store_id))
        .where(api_keys.c.merchant_id == merchant_id, api_keys.c.revoked_at.is_(None))
        .order_by(api_keys.c.created_at)
    ):
        if r.role == "store" and r.code is not None:
            by_store.setdefault(r.code, r.id)
        elif r.role == "app" and online == "history":
            online = r.id
        elif r.role == "admin" and fallback == "history":
            fallback = r.id
    return by_store, online if online != "history" else fallback


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _sqlite_cell(value: Any) -> Any:
    """A value as SQLAlchemy would bind it on SQLite (hub.db.types: naive UTC text for
    times, JSON text for documents)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return value


def _pg_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return value


def bulk_insert(conn: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    """Insert ``rows`` (dicts with the same keys, values as the columns take them) on
    the connection's own DBAPI connection, in its transaction: ``COPY … FROM STDIN`` on
    PostgreSQL, ``executemany`` in chunks on SQLite. Returns how many."""
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return 0
    cols = list(first)
    raw: Any = conn.connection.driver_connection
    n = 0
    if conn.dialect.name == "postgresql":
        docs = [c for c in cols if isinstance(first[c], dict | list)]  # JSON documents
        sql = f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for r in chain((first,), it):
                if docs:
                    r = {**r, **{c: _pg_cell(r[c]) for c in docs}}
                copy.write_row(list(r.values()))
                n += 1
        return n
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    cur = raw.cursor()
    try:
        for batch in _chunks(chain((first,), it), CHUNK):
            cur.executemany(sql, [[_sqlite_cell(r[c]) for c in cols] for r in batch])
            n += len(batch)
    finally:
        cur.close()
    return n


def _detail(r: Redemption, t: Template) -> dict[str, Any]:
    d = r.detail
    detail: dict[str, Any] = {
        "order": order_view(r.order),
        "discount": d.total,
        "eligible_amount": d.eligible_amount,
        "payable": r.order.amount - d.total,
        "lines": discount_lines(d),
    }
    if isinstance(t.benefit, ExchangeBenefit):
        qty = t.benefit.qty if d.units_given is None else d.units_given
        detail["gift"] = {"sku": t.benefit.sku, "qty": qty}
    return detail


def load_history(
    engine: Engine,
    merchant_id: str,
    history: History,
    *,
    templates: Mapping[str, str],
    template_rules: Mapping[str, Template],
    now: datetime,
    rebuild: bool = True,
) -> Loaded:
    """Write ``history`` for ``merchant_id``; ``templates``: template id by the history's
    template key, ``template_rules``: the templates themselves (for the gift of an
    exchange coupon); ``now``: when the load happens (coupon states are as of it).
    ``rebuild``: rebuild the analytics rollups afterwards (when the rollup service is
    there)."""
    with write_conn(engine) as conn:
        counts = _load(conn, merchant_id, history, templates, template_rules, now)
    rebuilt = rebuild and rebuild_rollups_if_available(engine, merchant_id)
    return Loaded(**counts, rollups_rebuilt=rebuilt)


def rebuild_rollups_if_available(engine: Engine, merchant_id: str) -> bool:
    """Rebuild the merchant's analytics rollups from the tables; False when this build
    of the hub has no rollups."""
    try:
        from hub.services.rollup import rebuild_rollups  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    rebuild_rollups(engine, merchant_id)
    return True


def _load(
    conn: Connection,
    merchant_id: str,
    h: History,
    templates: Mapping[str, str],
    rules: Mapping[str, Template],
    now: datetime,
) -> dict[str, int]:
    # customers: the known ones reused, the others added
    cust_ids: dict[str, str] = dict(
        conn.execute(
            select(customers.c.external_id, customers.c.id).where(
                customers.c.merchant_id == merchant_id
            )
        ).all()
    )
    new_customers = []
    for person in h.customers:
        if person.external_id not in cust_ids:
            cid = new_id("cus", _ms(person.joined_at))
            cust_ids[person.external_id] = cid
            new_customers.append({
                "id": cid, "merchant_id": merchant_id, "external_id": person.external_id,
                "name": person.name, "phone": person.phone, "created_at": person.joined_at,
            })  # fmt: skip
    n_customers = bulk_insert(conn, customers, new_customers)
    store_ids = dict(
        conn.execute(
            select(stores.c.code, stores.c.id).where(stores.c.merchant_id == merchant_id)
        ).all()
    )
    key_by_store, online_key = _key_ids(conn, merchant_id)
    # campaigns, with what was claimed of them
    claimed = Counter(c.campaign for c in h.coupons if c.campaign is not None)
    camp_ids = {k.key: new_id("cmp", _ms(k.starts_at)) for k in h.campaigns}
    n_campaigns = bulk_insert(
        conn,
        campaigns,
        (
            {
                "id": camp_ids[k.key], "merchant_id": merchant_id,
                "template_id": templates[k.template_key], "name": k.name,
                "claim_token": secrets.token_urlsafe(24), "channels": sorted(k.channels),
                "starts_at": k.starts_at, "ends_at": k.ends_at,
                "total": claimed[k.key] + max(10, claimed[k.key] // 5),
                "per_customer": k.per_customer, "daily_start": None, "daily_end": None,
                "claimed": claimed[k.key], "created_at": k.starts_at,
            }
            for k in h.campaigns
        ),
    )
    # coupons, as of now
    redemption_ids = {r.code: new_id("rdm", _ms(r.occurred_at)) for r in h.redemptions}
    kept = {r.code for r in h.redemptions if r.reversed_at is None}
    coupon_ids = {c.code: new_id("cpn", _ms(c.issued_at)) for c in h.coupons}

    def state(code: str, valid_until: datetime) -> str:
        if code in kept:
            return "redeemed"
        return "expired" if valid_until <= now else "issued"

    n_coupons = bulk_insert(
        conn,
        coupons,
        (
            {
                "id": coupon_ids[c.code], "merchant_id": merchant_id,
                "template_id": templates[c.template_key], "code": c.code,
                "status": state(c.code, c.valid_until), "customer_id": cust_ids[c.customer],
                "channel": c.channel, "issued_at": c.issued_at, "valid_from": c.valid_from,
                "valid_until": c.valid_until,
                "redemption_id": redemption_ids[c.code] if c.code in kept else None,
                "version": 1 if c.code in redemption_ids else 0,
                "reservation_id": None, "reserved_until": None,
            }
            for c in h.coupons
        ),
    )
    seq: Counter[tuple[str, str]] = Counter()
    claim_rows = []
    for c in h.coupons:
        if c.campaign is None or c.claimed_at is None:
            continue
        seq[(c.campaign, c.customer)] += 1
        claim_rows.append({
            "id": new_id("clm", _ms(c.claimed_at)), "campaign_id": camp_ids[c.campaign],
            "customer_id": cust_ids[c.customer], "seq": seq[(c.campaign, c.customer)],
            "coupon_id": coupon_ids[c.code], "claimed_at": c.claimed_at,
        })  # fmt: skip
    n_claims = bulk_insert(conn, campaign_claims, claim_rows)
    n_redemptions = bulk_insert(
        conn,
        redemptions,
        (
            {
                "id": redemption_ids[r.code], "merchant_id": merchant_id,
                "coupon_id": coupon_ids[r.code], "template_id": templates[r.template_key],
                "store_id": store_ids[r.store_code], "store_code": r.store_code,
                "channel": r.channel, "order_id": r.order.id, "order_amount": r.order.amount,
                "discount": r.discount, "detail": _detail(r, rules[r.template_key]),
                "status": "redeemed" if r.reversed_at is None else "reversed",
                "occurred_at": r.occurred_at, "recorded_at": r.occurred_at,
                "reversed_at": r.reversed_at,
                "reversal_reason": None if r.reversed_at is None else REVERSAL_REASON,
                "api_key_id": key_by_store.get(r.store_code, online_key)
                if r.channel == "pos" else online_key,
                "order_redemption_id": None,
            }
            for r in h.redemptions
        ),
    )
    n_sales = bulk_insert(
        conn,
        sales,
        (
            {
                "id": new_id("sal", _ms(s.occurred_at)), "merchant_id": merchant_id,
                "order_id": s.order_id, "store_id": store_ids[s.store_code],
                "store_code": s.store_code, "channel": s.channel,
                "customer_id": cust_ids[s.customer], "amount": s.amount,
                "occurred_at": s.occurred_at, "recorded_at": s.occurred_at,
                "api_key_id": key_by_store.get(s.store_code, online_key)
                if s.channel == "pos" else online_key,
            }
            for s in h.sales
        ),
    )
    for key, n in Counter(c.template_key for c in h.coupons).items():
        conn.execute(
            update(coupon_templates)
            .where(coupon_templates.c.id == templates[key])
            .values(issued_count=coupon_templates.c.issued_count + n)
        )
    return {
        "customers": n_customers, "campaigns": n_campaigns, "coupons": n_coupons,
        "claims": n_claims, "redemptions": n_redemptions,
        "reversed": sum(r.reversed_at is not None for r in h.redemptions), "sales": n_sales,
    }  # fmt: skip


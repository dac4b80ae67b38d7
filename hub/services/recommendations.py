"""Recommendations: the templates to push to a customer next (``hub.domain.recommend``).

The model is fitted from the merchant's coupons held by customers (with the time they
got them: a claim's time when claimed, else the issue), their standing redemptions and
the orders reported with a customer (sales), and kept per merchant in this process for
:data:`REFRESH` (then fitted again on the next request). Fitting happens only here, on
a recommendations request: never on the redeem path. What the customer holds now (the
per-customer limit, an unused coupon already held) and the templates' status are read
fresh on every request.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine, select

from hub.db.engine import read_conn
from hub.db.schema import (
    campaign_claims,
    campaigns,
    coupon_templates,
    coupons,
    redemptions,
    sales,
)
from hub.domain import recommend
from hub.domain.recommend import CouponFact, Holding, Model, OrderFact, TemplateInfo
from hub.domain.templates import FixedWindow
from hub.services.jsonio import iso
from hub.services.principal import Principal
from hub.services.template_cache import template_of
from hub.services.wallet import customer_id

REFRESH: Final = timedelta(minutes=10)
HALF_LIFE_DAYS: Final = 56.0  # older exposures weigh less (seasons move)
MAX_LIMIT: Final = 50

_lock = threading.Lock()
_models: weakref.WeakKeyDictionary[Engine, dict[str, Model]] = weakref.WeakKeyDictionary()
_fitting: weakref.WeakKeyDictionary[Engine, dict[str, threading.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _templates(conn: Connection, merchant_id: str, now: datetime) -> list[TemplateInfo]:
    t = coupon_templates.c
    out = []
    for row in conn.execute(
        select(t.id, t.name, t.kind, t.status, t.rules, t.total_quantity, t.issued_count,
               t.per_customer_limit, t.created_at)
        .where(t.merchant_id == merchant_id)
        .order_by(t.created_at, t.id)
    ):
        validity = template_of(row.id, dict(row.rules)).validity
        closed = isinstance(validity, FixedWindow) and validity.end <= now
        stock = row.total_quantity is None or row.issued_count < row.total_quantity
        out.append(TemplateInfo(
            id=row.id, name=row.name, kind=row.kind, created_at=row.created_at,
            active=row.status == "active" and stock and not closed,
            per_customer_limit=row.per_customer_limit,
        ))  # fmt: skip
    return out


def _coupons(conn: Connection, merchant_id: str) -> list[CouponFact]:
    """Customers' coupons, each with when they got it and its standing redemption. Three
    plain scans joined here (the claims have no index by coupon: a join would probe the
    whole table once per coupon)."""
    c, r, cl, cp = coupons.c, redemptions.c, campaign_claims.c, campaigns.c
    claimed = dict(
        conn.execute(
            select(cl.coupon_id, cl.claimed_at)
            .select_from(campaign_claims.join(campaigns, cp.id == cl.campaign_id))
            .where(cp.merchant_id == merchant_id)
        ).all()
    )
    used = {
        row.coupon_id: row
        for row in conn.execute(
            select(r.coupon_id, r.occurred_at, r.store_code, r.channel, r.order_id,
                   r.order_amount)
            .where(r.merchant_id == merchant_id, r.status == "redeemed")
        )
    }  # fmt: skip
    out = []
    for row in conn.execute(
        select(c.id, c.customer_id, c.template_id, c.issued_at, c.valid_from, c.valid_until)
        .where(c.merchant_id == merchant_id, c.customer_id.isnot(None))
    ):
        red = used.get(row.id)
        out.append(CouponFact(
            customer=row.customer_id, template_id=row.template_id,
            got_at=claimed.get(row.id) or row.issued_at,
            valid_from=row.valid_from, valid_until=row.valid_until,
            redeemed_at=None if red is None else red.occurred_at,
            store=None if red is None else red.store_code,
            channel=None if red is None else red.channel,
            order_id=None if red is None else red.order_id,
            order_amount=None if red is None else red.order_amount,
        ))  # fmt: skip
    return out


def _orders(conn: Connection, merchant_id: str) -> list[OrderFact]:
    s = sales.c
    q = select(s.customer_id, s.store_code, s.channel, s.amount, s.occurred_at, s.order_id).where(
        s.merchant_id == merchant_id, s.customer_id.isnot(None)
    )
    return [
        OrderFact(row.customer_id, row.store_code, row.channel, row.amount, row.occurred_at,
                  row.order_id)
        for row in conn.execute(q)
    ]


def fit(engine: Engine, merchant_id: str, now: datetime) -> Model:
    """Fit the merchant's model from the database, as of ``now``."""
    with read_conn(engine) as conn:
        templates = _templates(conn, merchant_id, now)
        facts = _coupons(conn, merchant_id)
        orders = _orders(conn, merchant_id)
    return recommend.fit(templates, facts, orders, now, half_life_days=HALF_LIFE_DAYS)


def model_for(
    engine: Engine, merchant_id: str, now: datetime, refresh: timedelta = REFRESH
) -> Model:
    """The merchant's cached model, fitted again when older than ``refresh`` (or when the
    clock went back before it). One fit at a time per merchant; other merchants' requests
    do not wait for it."""
    with _lock:
        models = _models.setdefault(engine, {})
        fitting = _fitting.setdefault(engine, {}).setdefault(merchant_id, threading.Lock())
    with fitting:
        cached = models.get(merchant_id)
        if cached is not None and cached.fitted_at <= now < cached.fitted_at + refresh:
            return cached
        model = fit(engine, merchant_id, now)
        with _lock:
            models[merchant_id] = model
        return model


def forget(engine: Engine, merchant_id: str | None = None) -> None:
    """Drop the cached model(s) of ``engine`` (all merchants when None)."""
    with _lock:
        models = _models.get(engine)
        if models is not None:
            models.clear() if merchant_id is None else models.pop(merchant_id, None)


def _holdings(conn: Connection, merchant_id: str, holder: str, now: datetime) -> dict[str, Holding]:
    c = coupons.c
    counts: dict[str, int] = {}
    unused: set[str] = set()
    for row in conn.execute(
        select(c.template_id, c.status, c.valid_until).where(
            c.merchant_id == merchant_id, c.customer_id == holder
        )
    ):
        counts[row.template_id] = counts.get(row.template_id, 0) + 1
        if row.status == "issued" and row.valid_until > now:
            unused.add(row.template_id)
    return {t: Holding(count=n, unused=t in unused) for t, n in counts.items()}


def _profile_view(model: Model, holder: str) -> dict[str, Any]:
    p = model.profile(holder)
    return {
        "home_store": p.store,
        "preference": p.mode,
        "preferred_kind": p.kind,
        "spend_band": p.spend,
        "recency": p.recency,
    }


def recommendations(
    engine: Engine, p: Principal, customer: str, now: datetime, *, limit: int = 5
) -> dict[str, Any]:
    """The templates to push to ``customer`` (external id) next, best first."""
    p.require("admin", "analyst", "app")
    with read_conn(engine) as conn:
        holder = customer_id(conn, p, customer)
        holdings = _holdings(conn, p.merchant_id, holder, now)
        templates = _templates(conn, p.merchant_id, now)  # paused a moment ago: not pushed
    model = model_for(engine, p.merchant_id, now)
    ranked = recommend.recommend(
        model, holder, templates, holdings, min(max(limit, 1), MAX_LIMIT)
    )
    return {
        "customer": customer,
        "cold_start": not model.knows(holder),
        "profile": _profile_view(model, holder),
        "items": [
            {
                "rank": i,
                "template_id": r.template_id,
                "template_name": r.template_name,
                "kind": r.kind,
                "score": str(r.score),
                "reason_code": r.reason_code,
                "reason": r.reason,
            }
            for i, r in enumerate(ranked, start=1)
        ],
        "model": {
            "fitted_at": iso(model.fitted_at),
            "refresh_seconds": int(REFRESH.total_seconds()),
            "coupons": model.exposures,
        },
    }

"""Load the demo data in ``seeds/`` (YAML, readable) through the same services the API uses."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import Engine, func, select

from hub.db.schema import coupon_templates, coupons, merchants, stores
from hub.services import campaigns, catalog, issuing, keys
from hub.services.principal import Principal
from hub.settings import env
from hub.synthetic.history import Knobs, generate

# Package data (the repository's seeds/, linked in as hub/seeds): found the same way in a
# checkout, an editable install and an installed wheel.
SEEDS_DIR = Path(str(files("hub") / "seeds"))


def _load(seeds: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((seeds / name).read_text(encoding="utf-8"))
    return data


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(merchants)).scalar_one() == 0


def seed(engine: Engine, seeds: Path = SEEDS_DIR, now: datetime | None = None) -> dict[str, Any]:
    """Create the demo merchant with stores, products, customers, templates, coupons,
    campaigns and an app key (channels mini_program and h5).

    Returns the demo facts (merchant id, keys shown once, codes by template kind).
    """
    now = now or datetime.now(UTC)
    m = _load(seeds, "merchant.yaml")
    merchant_id = catalog.create_merchant(
        engine, m["merchant"]["name"], m["merchant"]["timezone"], now
    )
    admin = keys.create_key(engine, merchant_id, "admin", now, name="demo admin")
    p = Principal(
        key_id=admin.id,
        merchant_id=merchant_id,
        role="admin",
        tz=ZoneInfo(m["merchant"]["timezone"]),
    )
    for s in m["stores"]:
        catalog.create_store(engine, p, s["code"], s["name"], now)
    for prod in _load(seeds, "products.yaml")["products"]:
        catalog.create_product(
            engine, p, prod["sku"], prod["name"], prod["category"], int(prod["price"]), now
        )
    customer_ids: list[str] = []
    for c in _load(seeds, "customers.yaml")["customers"]:
        catalog.create_customer(
            engine, p, c["external_id"], c.get("name"), str(c.get("phone") or "") or None, now
        )
        customer_ids.append(c["external_id"])
    template_ids: dict[str, str] = {}
    for t in _load(seeds, "templates.yaml")["templates"]:
        spec = {
            k: t[k]
            for k in (
                "benefit", "validity", "usage", "total_quantity", "per_customer_limit",
                "transferable", "stacking", "offline",
            )
            if k in t
        }
        created = issuing.create_template(engine, p, t["name"], spec, now)
        template_ids[t["name"]] = created["id"]
        plan = t.get("issue") or {}
        if plan.get("customers"):
            issuing.issue_coupons(
                engine,
                p,
                created["id"],
                count=None,
                customer_external_ids=customer_ids[: plan["customers"]],
                channel=plan.get("channel"),
                now=now,
            )
        if plan.get("unassigned"):
            issuing.issue_coupons(
                engine,
                p,
                created["id"],
                count=plan["unassigned"],
                customer_external_ids=None,
                channel=plan.get("channel"),
                now=now,
            )
    store_keys = {
        s["code"]: keys.create_key(
            engine, merchant_id, "store", now, store_code=s["code"], name=f"demo {s['code']} POS"
        ).token
        for s in m["stores"]
    }
    campaign_ids = [
        campaigns.create_campaign(
            engine,
            p,
            campaigns.CampaignSpec(
                template_id=template_ids[c["template"]],
                name=c["name"],
                channels=list(c["channels"]),
                starts_at=now,
                ends_at=now + timedelta(days=int(c["days"])),
                total=int(c["total"]),
                per_customer=int(c.get("per_customer", 1)),
            ),
            now,
        )["id"]
        for c in _load(seeds, "campaigns.yaml")["campaigns"]
    ]
    app = keys.create_key(
        engine, merchant_id, "app", now, name="demo mini program", channels=["mini_program", "h5"]
    )
    return {
        "merchant_id": merchant_id,
        "admin_key": admin.token,
        "store_keys": store_keys,
        "app_key": app.token,
        "campaign_ids": campaign_ids,
    }


def demo_codes(
    engine: Engine, merchant_id: str, now: datetime, per_kind: int = 5
) -> dict[str, list[str]]:
    """Unused, currently valid codes of the merchant, by template kind."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for kind in ("threshold", "percentage", "exchange"):
            rows = (
                conn.execute(
                    select(coupons.c.code)
                    .join(coupon_templates, coupon_templates.c.id == coupons.c.template_id)
                    .where(
                        coupons.c.merchant_id == merchant_id,
                        coupon_templates.c.kind == kind,
                        coupons.c.status == "issued",
                        coupons.c.valid_from <= now,
                        coupons.c.valid_until > now,
                    )
                    .order_by(coupons.c.customer_id.is_(None).desc(), coupons.c.id)
                    .limit(per_kind)
                )
                .scalars()
                .all()
            )
            out[kind] = list(rows)
    return out


def first_merchant(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            select(merchants.c.id).order_by(merchants.c.created_at).limit(1)
        ).scalar()


def store_codes(engine: Engine, merchant_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(stores.c.code)
                .where(stores.c.merchant_id == merchant_id)
                .order_by(stores.c.code)
            ).scalars()
        )


# The demo's history (issue 14): a few weeks of realistic activity ending at the seeding,
# so the dashboard and the recommendations have something real at the first start.
HISTORY_DAYS = 42
HISTORY_CUSTOMERS = 1500
# a busier marketing calendar than the generator's default: a few thousand redemptions
HISTORY_KNOBS = Knobs(push_rate=0.25)


def history_days_from_env() -> int:
    """``HUB_DEMO_HISTORY_DAYS`` (0: no history), default :data:`HISTORY_DAYS`."""
    raw = (env("HUB_DEMO_HISTORY_DAYS") or "").strip()
    if not raw:
        return HISTORY_DAYS
    try:
        return max(0, min(int(raw), 3650))
    except ValueError:
        return HISTORY_DAYS


def seed_history(
    engine: Engine,
    merchant_id: str,
    now: datetime,
    *,
    days: int = HISTORY_DAYS,
    customers: int = HISTORY_CUSTOMERS,
    seed: int | None = None,
    seeds: Path = SEEDS_DIR,
) -> dict[str, Any]:
    """Load ``days`` days of synthetic history (hub.synthetic) ending at ``now`` for the
    seeded merchant: the seed's customers and more, coupons of the seed's templates
    (their own codes: the seeded coupons, whose codes the demo prints, stay unused),
    redemptions, reversals and sales; then rebuild the analytics rollups. No outbox
    event is written for it. ``seed``: the generator's seed (default: a random one, so
    no two demo databases share coupon codes). Returns the counts loaded."""
    from hub.synthetic.load import holdings, load_history, template_ids
    from hub.synthetic.seeds import seed_inputs

    if days <= 0:
        return {}
    inp = seed_inputs(seeds)
    # The seed's customers get no history coupon of a template with a per-customer
    # limit: what the README and the demo show them claiming (M0001 claims from a
    # campaign, M0042 a printed code…) stays within the limit on every demo database.
    held = holdings(engine, merchant_id)
    for external_id, _name, _phone in inp.known:
        for name, template in inp.templates.items():
            if template.per_customer_limit is not None:
                held[(external_id, name)] = template.per_customer_limit
    history = generate(
        secrets.randbits(63) if seed is None else seed,
        customers=max(customers, len(inp.known)),
        days=days,
        end=now,
        stores=inp.stores,
        templates=inp.templates,
        products=inp.products,
        tz=inp.tz,
        known=inp.known,
        held=held,
        knobs=HISTORY_KNOBS,
    )
    loaded = load_history(
        engine,
        merchant_id,
        history,
        templates=template_ids(engine, merchant_id),
        template_rules=inp.templates,
        now=now,
    )
    return {"days": days, "lagging_stores": list(history.lagging), **asdict(loaded)}

"""The demo data in seeds/*.yaml loads through hub.seeding.seed (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime

import yaml
from sqlalchemy import func, select

from hub.db.schema import (
    api_keys,
    coupon_templates,
    coupons,
    customers,
    merchants,
    outbox_events,
    products,
    stores,
)
from hub.domain.codes import is_well_formed
from hub.seeding import SEEDS_DIR, demo_codes, first_merchant, is_empty, seed, store_codes
from hub.services import campaigns
from hub.services.keys import authenticate

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _yaml(name: str):
    return yaml.safe_load((SEEDS_DIR / name).read_text(encoding="utf-8"))


def _count(conn, table, *where) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_seed_files_are_consistent():
    m = _yaml("merchant.yaml")
    prods = _yaml("products.yaml")["products"]
    custs = _yaml("customers.yaml")["customers"]
    tpls = _yaml("templates.yaml")["templates"]
    store_set = {s["code"] for s in m["stores"]}
    skus = {p["sku"] for p in prods}
    categories = {p["category"] for p in prods}
    assert len(store_set) == len(m["stores"]) == 3
    assert len(skus) == len(prods) and 18 <= len(prods) <= 22
    assert categories == {"drinks", "bakery", "merch"}
    assert all(isinstance(p["price"], int) and p["price"] > 0 for p in prods)
    ext = [c["external_id"] for c in custs]
    assert len(set(ext)) == len(ext) and 45 <= len(ext) <= 55
    assert sorted(t["benefit"]["kind"] for t in tpls) == ["exchange", "percentage", "threshold"]
    for t in tpls:
        usage = t.get("usage") or {}
        assert set(usage.get("stores", [])) <= store_set
        assert set(usage.get("categories", [])) <= categories
        assert set(usage.get("skus", [])) <= skus
        if t["benefit"]["kind"] == "exchange":
            assert t["benefit"]["sku"] in skus
        assert t["issue"]["customers"] <= len(ext)


def test_seed_loads_everything(db):
    assert is_empty(db)
    facts = seed(db, now=NOW)
    assert not is_empty(db)
    m = _yaml("merchant.yaml")
    prods = _yaml("products.yaml")["products"]
    custs = _yaml("customers.yaml")["customers"]
    tpls = {t["benefit"]["kind"]: t for t in _yaml("templates.yaml")["templates"]}
    with db.connect() as conn:
        assert _count(conn, merchants) == 1
        row = conn.execute(select(merchants)).one()
        assert row.id == facts["merchant_id"] == first_merchant(db)
        assert row.name == m["merchant"]["name"] and row.timezone == "Asia/Shanghai"
        assert _count(conn, stores) == 3
        assert _count(conn, products) == len(prods) == 20
        cats = conn.execute(
            select(products.c.category, func.count()).group_by(products.c.category)
        ).all()
        assert {c: int(n) for c, n in cats} == {"drinks": 8, "bakery": 7, "merch": 5}
        assert _count(conn, customers) == len(custs) == 50
        phone = conn.execute(
            select(customers.c.phone).where(customers.c.external_id == "M0001")
        ).scalar_one()
        assert phone == "13860181590"  # kept as text, leading digits intact
        kinds = dict(conn.execute(select(coupon_templates.c.kind, coupon_templates.c.id)).all())
        assert sorted(kinds) == ["exchange", "percentage", "threshold"]
        total = 0
        for kind, tpl_id in kinds.items():
            plan = tpls[kind]["issue"]
            n = _count(conn, coupons, coupons.c.template_id == tpl_id)
            assigned = _count(conn, coupons, coupons.c.template_id == tpl_id,
                              coupons.c.customer_id.is_not(None))
            assert n == plan["customers"] + plan["unassigned"]
            assert assigned == plan["customers"]
            channels = set(conn.execute(
                select(coupons.c.channel).where(coupons.c.template_id == tpl_id)
            ).scalars())
            assert channels == {plan["channel"]}
            issued = conn.execute(
                select(coupon_templates.c.issued_count).where(coupon_templates.c.id == tpl_id)
            ).scalar_one()
            assert issued == n
            total += n
        assert total == 110
        assert _count(conn, coupons, coupons.c.status != "issued") == 0
        assert _count(conn, outbox_events, outbox_events.c.type == "coupon.issued") == total
        codes = conn.execute(select(coupons.c.code)).scalars().all()
        assert all(is_well_formed(c) for c in codes) and len(set(codes)) == total
        # relative windows: 30 days (14 for the egg tart) counted in Shanghai local days
        ends = dict(conn.execute(
            select(coupon_templates.c.kind, func.max(coupons.c.valid_until))
            .join(coupons, coupons.c.template_id == coupon_templates.c.id)
            .group_by(coupon_templates.c.kind)
        ).all())
        assert ends["threshold"].astimezone(UTC) == datetime(2026, 12, 19, 16, 0, tzinfo=UTC)
        assert ends["exchange"].astimezone(UTC) == datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
        assert _count(conn, api_keys) == 5  # admin, three stores, the app
        # the 满减 and the 折扣 combine (the order quote's demo pair); the egg tart is alone
        stacking = {kind: rules["stacking"] for kind, rules in conn.execute(
            select(coupon_templates.c.kind, coupon_templates.c.rules)).all()}
        assert stacking == {
            "threshold": {"combines_with": ["percentage"], "max_per_order": 2},
            "percentage": {"combines_with": ["threshold"], "max_per_order": 2},
            "exchange": {"combines_with": [], "max_per_order": 1},
        }
        # the egg tart may be passed to a friend; its coupons are held by M0001…M0010
        transferable = {
            r.kind for r in conn.execute(select(coupon_templates.c.kind, coupon_templates.c.rules))
            if r.rules.get("transferable")
        }
        assert transferable == {"exchange"} and tpls["exchange"]["transferable"] is True
    assert store_codes(db, facts["merchant_id"]) == ["BJ-001", "SH-001", "SH-002"]


def test_seed_facts_keys_authenticate_and_demo_codes(db):
    facts = seed(db, now=NOW)
    admin = authenticate(db, facts["admin_key"])
    assert admin is not None and admin.role == "admin"
    assert admin.merchant_id == facts["merchant_id"]
    assert set(facts["store_keys"]) == {"SH-001", "SH-002", "BJ-001"}
    for code, token in facts["store_keys"].items():
        p = authenticate(db, token)
        assert p is not None and p.role == "store" and p.store_code == code
    app = authenticate(db, facts["app_key"])
    assert app is not None and app.role == "app" and app.channels == ("h5", "mini_program")
    [campaign_id] = facts["campaign_ids"]
    camp = campaigns.get_campaign(db, admin, campaign_id)
    assert camp["total"] == 100 and camp["remaining"] == 100 and camp["channels"] == [
        "h5", "mini_program"]
    codes = demo_codes(db, facts["merchant_id"], NOW)
    assert set(codes) == {"threshold", "percentage", "exchange"}
    with db.connect() as conn:
        for kind, listed in codes.items():
            assert len(listed) == 5
            rows = conn.execute(
                select(coupons.c.customer_id, coupon_templates.c.kind)
                .join(coupon_templates, coupon_templates.c.id == coupons.c.template_id)
                .where(coupons.c.code.in_(listed))
            ).all()
            assert len(rows) == 5
            # unassigned coupons (walk-in customers) come first
            assert all(r.customer_id is None and r.kind == kind for r in rows)
    # nothing is valid long after the windows closed
    later = datetime(2027, 6, 1, tzinfo=UTC)
    assert demo_codes(db, facts["merchant_id"], later) == {
        "threshold": [], "percentage": [], "exchange": []
    }

"""The bulk loader (hub.synthetic.load) on both databases: the seeded demo merchant gets
its history, with consistent coupon states, no outbox event, and the demo's printed
codes still redeemable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from hub.db.schema import (
    campaign_claims,
    campaigns,
    coupon_templates,
    coupons,
    customers,
    outbox_events,
    redemptions,
    sales,
)
from hub.domain.cart import Line, Order
from hub.seeding import demo_codes, seed, seed_history
from hub.services import redeem
from hub.services.commands import RedeemCommand
from hub.services.keys import authenticate
from hub.synthetic.load import holdings

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _count(conn, table, *where) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_history_loads_consistently(db):
    facts = seed(db, now=NOW)
    with db.connect() as conn:
        events_before = _count(conn, outbox_events)
        coupons_before = _count(conn, coupons)
    codes_before = demo_codes(db, facts["merchant_id"], NOW)
    loaded = seed_history(db, facts["merchant_id"], NOW, days=21, customers=300, seed=5)
    assert loaded["redemptions"] > 50 and loaded["sales"] > 300
    with db.connect() as conn:
        assert _count(conn, outbox_events) == events_before  # no event for the history
        assert _count(conn, coupons) == coupons_before + loaded["coupons"]
        assert _count(conn, redemptions) == loaded["redemptions"]
        assert _count(conn, redemptions, redemptions.c.status == "reversed") == loaded["reversed"]
        assert _count(conn, sales) == loaded["sales"]
        assert _count(conn, campaign_claims) == loaded["claims"] > 0
        assert _count(conn, campaigns) == 1 + loaded["campaigns"]
        assert _count(conn, customers) == 300
        # a coupon is redeemed by its live redemption, once
        live = conn.execute(
            select(coupons.c.redemption_id, redemptions.c.id, coupons.c.status)
            .join(redemptions, redemptions.c.coupon_id == coupons.c.id)
            .where(redemptions.c.status == "redeemed")
        ).all()
        assert all(r[0] == r[1] and r[2] == "redeemed" for r in live)
        # coupons whose window closed and that are not redeemed are expired, not issued
        assert _count(conn, coupons, coupons.c.status == "issued",
                      coupons.c.valid_until <= NOW) == 0  # fmt: skip
        assert _count(conn, coupons, coupons.c.status == "redeemed") == len(live)
        # the templates count what they issued
        issued = dict(conn.execute(
            select(coupon_templates.c.id, coupon_templates.c.issued_count)).all())  # fmt: skip
        per = dict(conn.execute(select(coupons.c.template_id, func.count())
                                .group_by(coupons.c.template_id)).all())  # fmt: skip
        assert issued == per
        # the detail is the redeem service's shape
        detail = conn.execute(select(redemptions.c.detail).limit(1)).scalar_one()
        assert {"order", "discount", "eligible_amount", "payable", "lines"} <= set(detail)
        # each claim's campaign counts it
        claimed = dict(conn.execute(
            select(campaign_claims.c.campaign_id, func.count())
            .group_by(campaign_claims.c.campaign_id)).all())  # fmt: skip
        counted = dict(conn.execute(select(campaigns.c.id, campaigns.c.claimed)
                                    .where(campaigns.c.claimed > 0)).all())  # fmt: skip
        assert claimed == counted
    # per-customer limits still hold for every customer and template
    limits = {r.name: r.per_customer_limit for r in db.connect().execute(
        select(coupon_templates.c.name, coupon_templates.c.per_customer_limit))}  # fmt: skip
    for (_cust, name), n in holdings(db, facts["merchant_id"]).items():
        assert limits[name] is None or n <= limits[name]
    # the demo prints the same codes, and they are valid
    assert demo_codes(db, facts["merchant_id"], NOW) == codes_before
    store = authenticate(db, facts["store_keys"]["SH-001"])
    assert store is not None
    tea = (Line("TEA-01", 6, 1800, "drinks"), Line("BAK-01", 1, 900, "bakery"))
    for kind in ("threshold", "percentage", "exchange"):
        for code in codes_before[kind]:
            cmd = RedeemCommand(code=code, store=None, channel="pos",
                                order=Order("after-history", 11700, tea))  # fmt: skip
            assert redeem.validate(db, store, cmd, NOW)["status"] == "valid"


def test_no_history_when_days_is_zero(db):
    facts = seed(db, now=NOW)
    assert seed_history(db, facts["merchant_id"], NOW, days=0) == {}
    with db.connect() as conn:
        assert _count(conn, redemptions) == 0


def test_the_rollups_count_the_history(db):
    """The loader rebuilds the analytics rollups: they hold every redemption, reversal,
    discount and coupon of the history."""
    from hub.db.schema import analytics_daily

    facts = seed(db, now=NOW)
    loaded = seed_history(db, facts["merchant_id"], NOW, days=14, customers=200, seed=9)
    assert loaded["rollups_rebuilt"] is True
    with db.connect() as conn:
        sums = conn.execute(select(
            func.sum(analytics_daily.c.redeemed), func.sum(analytics_daily.c.reversed),
            func.sum(analytics_daily.c.redeemed_discount), func.sum(analytics_daily.c.issued),
        ).where(analytics_daily.c.merchant_id == facts["merchant_id"])).one()  # fmt: skip
        discount = conn.execute(select(func.sum(redemptions.c.discount))).scalar_one()
        issued = _count(conn, coupons)
    assert [int(v) for v in sums] == [
        loaded["redemptions"], loaded["reversed"], int(discount), issued
    ]


@pytest.mark.parametrize("history_seed", [1, 2])
def test_the_seed_customers_keep_room_under_every_per_customer_limit(db, history_seed):
    """The README and the demo show seed customers (M0001, M0042…) claiming coupons of
    limited templates: the history gives them none of those, whatever its seed."""
    facts = seed(db, now=NOW)
    before = holdings(db, facts["merchant_id"])
    seed_history(db, facts["merchant_id"], NOW, days=21, customers=200, seed=history_seed)
    with db.connect() as conn:
        limited = {
            name
            for name, limit in conn.execute(
                select(coupon_templates.c.name, coupon_templates.c.per_customer_limit)
            )
            if limit is not None
        }
    assert limited
    after = holdings(db, facts["merchant_id"])
    for (customer, template), n in after.items():
        if customer.startswith("M") and template in limited:
            assert n == before.get((customer, template), 0), (customer, template)

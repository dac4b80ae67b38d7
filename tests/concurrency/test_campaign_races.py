"""200 concurrent claims for a campaign of 50 coupons, over a live server (both
backends): exactly 50 coupons issued, no customer above the per-customer limit, every
other answer a coded refusal. Half the claims come by the campaign's id and half by its
claim token (a shared link), racing each other for the one stock."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from hub.db.schema import campaign_claims, coupons, customers
from hub.services import campaigns, catalog
from tests.concurrency.support import Call, fire
from tests.conftest import make_template


def claim_call(url: str, auth: dict[str, str], customer: str, key: str) -> Call:
    headers = {**auth, "Idempotency-Key": key}
    return lambda c: c.post(url, json={"customer": customer}, headers=headers)


def test_two_hundred_claims_for_fifty_coupons(live_server, db, merchant, clock):
    p = merchant.principal
    for i in range(40):
        catalog.create_customer(db, p, f"R{i:03d}", f"Racer {i}", None, clock.now)
    tpl = make_template(db, merchant, clock.now)
    camp = campaigns.create_campaign(db, p, campaigns.CampaignSpec(
        template_id=tpl, name="race", channels=["h5"], starts_at=clock.now - timedelta(hours=1),
        ends_at=clock.now + timedelta(days=1), total=50, per_customer=2), clock.now)
    urls = (f"/v1/campaigns/{camp['id']}/claims",
            f"/v1/campaigns/by-token/{camp['claim_token']}/claims")
    calls = [claim_call(urls[i % 2], merchant.auth(), f"R{i % 40:03d}", f"race-{i}")
             for i in range(200)]

    responses = fire(live_server, calls, barrier_timeout=180)  # 200 threads on a busy box

    codes = Counter(r.status_code if r.status_code == 201 else r.json()["code"]
                    for r in responses)
    assert codes[201] == 50, codes
    assert set(codes) <= {201, "campaign_sold_out", "claim_limit_reached"}, codes
    with db.connect() as conn:
        per_customer = Counter(dict(conn.execute(
            select(customers.c.external_id, func.count())
            .select_from(coupons.join(customers, customers.c.id == coupons.c.customer_id))
            .where(coupons.c.template_id == tpl).group_by(customers.c.external_id)).all()))
        claims = conn.execute(select(func.count()).select_from(campaign_claims)).scalar_one()
    assert sum(per_customer.values()) == 50 and claims == 50
    assert max(per_customer.values()) <= 2
    got = campaigns.get_campaign(db, p, camp["id"])
    assert got["claimed"] == 50 and got["remaining"] == 0

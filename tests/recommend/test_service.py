"""What the service learns from, read from the database (both backends): customers'
coupons with the time they got them (a campaign claim's time), standing redemptions only
(a reversed one is not a success), reported sales with a customer."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import insert, select

from hub.db.engine import read_conn
from hub.db.schema import customers, sales, stores
from hub.services import campaigns
from hub.services import recommendations as svc
from tests.conftest import issue, make_template, order


def test_the_facts_come_from_coupons_claims_redemptions_and_sales(client, db, merchant, clock):
    m, t0 = merchant, clock.now
    tpl = make_template(db, m, t0)
    [kept, refunded] = issue(db, m, tpl, t0, customers=["M0001", "M0002"])
    issue(db, m, tpl, t0, count=2)  # unassigned: nobody's exposure
    camp = campaigns.create_campaign(db, m.principal, campaigns.CampaignSpec(
        template_id=tpl, name="领券", channels=["h5"], starts_at=t0,
        ends_at=t0 + timedelta(days=7), total=10), t0)["id"]  # fmt: skip
    clock.advance(hours=5)
    claimed = campaigns.claim(db, m.principal, camp, "M0003", "h5", uuid.uuid4().hex,
                              clock.now, operation="test")  # fmt: skip
    assert claimed.status == 201
    clock.advance(days=1)
    rids = {}
    for code in (kept, refunded):
        r = client.post("/v1/redemptions", json={
            "code": code, "store": "SH-002", "order": order(order_id=f"o-{code}")},
            headers={**m.auth(), "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert r.status_code == 201, r.text
        rids[code] = r.json()["redemption_id"]
    r = client.post(f"/v1/redemptions/{rids[refunded]}/reversal", json={"reason": "refund"},
                    headers={**m.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code in (200, 201), r.text
    with db.begin() as conn:  # an order reported without a coupon (POST /v1/sales)
        cust = conn.execute(select(customers.c.id).where(
            customers.c.merchant_id == m.id, customers.c.external_id == "M0004")).scalar()
        store = conn.execute(select(stores.c.id).where(
            stores.c.merchant_id == m.id, stores.c.code == "BJ-001")).scalar()
        conn.execute(insert(sales).values(
            id="sal-1", merchant_id=m.id, order_id="S-1", store_id=store, store_code="BJ-001",
            channel="h5", customer_id=cust, amount=3000, occurred_at=clock.now,
            recorded_at=clock.now, api_key_id="test"))  # fmt: skip
    with read_conn(db) as conn:
        facts = sorted(svc._coupons(conn, m.id), key=lambda f: f.got_at)
        orders = svc._orders(conn, m.id)
        ids = dict(conn.exec_driver_sql(
            "SELECT external_id, id FROM customers WHERE merchant_id = "
            f"'{m.id}'").all())  # fmt: skip
    by_customer = {f.customer: f for f in facts}
    assert set(by_customer) == {ids["M0001"], ids["M0002"], ids["M0003"]}
    assert by_customer[ids["M0003"]].got_at == t0 + timedelta(hours=5)  # the claim's time
    assert by_customer[ids["M0001"]].redeemed_at == t0 + timedelta(hours=5, days=1)
    assert by_customer[ids["M0001"]].store == "SH-002"
    assert by_customer[ids["M0002"]].redeemed_at is None  # reversed: not a success
    assert [(o.customer, o.store, o.channel, o.amount) for o in orders] == [
        (ids["M0004"], "BJ-001", "h5", 3000)]
    model = svc.model_for(db, m.id, clock.now)
    assert model.exposures == 3  # open windows count for their elapsed share (> 0)
    assert svc.model_for(db, m.id, clock.now + timedelta(minutes=9)) is model
    assert svc.model_for(db, m.id, clock.now + timedelta(minutes=10)) is not model
    svc.forget(db)

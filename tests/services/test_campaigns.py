"""hub.services.campaigns on both backends: the checks of a campaign, its daily window
in the merchant's time zone, per-customer limits and the channels of an app key."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from hub.domain.errors import DomainError
from hub.services import campaigns, keys
from tests.conftest import make_template


def claim_coupon(*args):  # the operation as the API route names it
    return campaigns.claim(*args, operation="POST /v1/campaigns/{id}/claims")

def spec(tpl: str, now: datetime, **over) -> campaigns.CampaignSpec:
    base = campaigns.CampaignSpec(
        template_id=tpl, name="t", channels=["h5"], starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1), total=10, per_customer=2)
    return replace(base, **over)


def refused(fn, *args) -> DomainError:
    with pytest.raises(DomainError) as caught:
        fn(*args)
    return caught.value


@pytest.mark.parametrize("over,field", [
    ({"channels": []}, "channels"),
    ({"channels": ["fax"]}, "channels"),
    ({"total": 0}, "total"),
    ({"per_customer": 101}, "per_customer"),
    ({"daily_start": "10:00"}, "daily_window"),
    ({"daily_start": "22:00", "daily_end": "10:00"}, "daily_window"),
    ({"daily_start": "25:00", "daily_end": "26:00"}, "start"),
])
def test_an_inconsistent_campaign_is_refused_naming_the_field(db, merchant, clock, over, field):
    tpl = make_template(db, merchant, clock.now)
    err = refused(campaigns.create_campaign, db, merchant.principal,
                  spec(tpl, clock.now, **over), clock.now)
    assert err.code == "invalid_request" and field in str(err.extra)


def test_ends_before_start_and_unknown_template(db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    bad = spec(tpl, clock.now, ends_at=clock.now - timedelta(days=1))
    assert refused(campaigns.create_campaign, db, merchant.principal, bad, clock.now).code == (
        "invalid_request")
    other = spec("tpl_01JD0000000000000000000000", clock.now)
    assert refused(campaigns.create_campaign, db, merchant.principal, other,
                   clock.now).code == "template_not_found"


def test_the_daily_window_is_the_merchants_local_time(db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    local = clock.now.astimezone(merchant.tz)
    opens = (local + timedelta(hours=1)).strftime("%H:%M")
    closes = (local + timedelta(hours=2)).strftime("%H:%M")
    if opens >= closes:  # near local midnight: a window that is open now instead
        opens, closes = "00:00", "23:59"
    camp = campaigns.create_campaign(db, merchant.principal, spec(
        tpl, clock.now, daily_start=opens, daily_end=closes), clock.now)
    claim = (db, merchant.principal, camp["id"], "M0001", None, "k-1", clock.now)
    if (opens, closes) == ("00:00", "23:59"):
        assert claim_coupon(*claim).status == 201
        return
    err = refused(claim_coupon, *claim)
    assert err.code == "campaign_not_started" and err.extra["daily_window"]["start"] == opens
    later = clock.now + timedelta(hours=1, minutes=1)
    answer = claim_coupon(db, merchant.principal, camp["id"], "M0001", None, "k-2", later)
    assert answer.status == 201


def test_a_customer_claims_up_to_the_limit(db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    camp = campaigns.create_campaign(db, merchant.principal, spec(tpl, clock.now), clock.now)
    for i in range(2):
        assert claim_coupon(db, merchant.principal, camp["id"], "M0002", "h5", f"n{i}",
                               clock.now).status == 201
    err = refused(claim_coupon, db, merchant.principal, camp["id"], "M0002", "h5", "n3",
                  clock.now)
    assert err.code == "claim_limit_reached" and err.extra["limit"] == 2
    assert claim_coupon(db, merchant.principal, camp["id"], "M0003", "h5", "n4",
                           clock.now).status == 201
    assert campaigns.get_campaign(db, merchant.principal, camp["id"])["claimed"] == 3
    err = refused(claim_coupon, db, merchant.principal, camp["id"], "NOBODY", "h5", "n5",
                  clock.now)
    assert err.code == "customer_not_found"


def test_an_app_key_without_a_campaign_channel_is_forbidden(db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    camp = campaigns.create_campaign(db, merchant.principal, spec(tpl, clock.now), clock.now)
    token = keys.create_key(db, merchant.id, "app", clock.now, channels=["web"]).token
    app = keys.authenticate(db, token, clock.now)
    assert app is not None and app.channels == ("web",)
    err = refused(claim_coupon, db, app, camp["id"], "M0001", None, "a-1", clock.now)
    assert err.code == "forbidden"
    store = keys.authenticate(db, merchant.store_keys["SH-001"], clock.now)
    assert refused(claim_coupon, db, store, camp["id"], "M0001", "h5", "s-1",
                   clock.now).code == "forbidden"

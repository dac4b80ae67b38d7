"""Campaigns over HTTP: create, read, claim with an Idempotency-Key, app keys' channels,
the ``coupon.claimed`` event."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from hub.db.schema import outbox_events
from hub.services import keys
from tests.conftest import make_template


def iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def new_campaign(client, merchant, db, clock, **over) -> dict:
    tpl = make_template(db, merchant, clock.now)
    body = {"template_id": tpl, "name": "Spring", "channels": ["mini_program", "h5"],
            "starts_at": iso(clock.now - timedelta(hours=1)),
            "ends_at": iso(clock.now + timedelta(days=7)), "total": 3, "per_customer": 1,
            **over}
    r = client.post("/v1/campaigns", headers=merchant.auth(), json=body)
    assert r.status_code == 201, r.text
    return r.json()


def app_auth(db, merchant, clock, channels=None) -> dict[str, str]:
    made = keys.create_key(db, merchant.id, "app", clock.now, channels=channels)
    return {"Authorization": f"Bearer {made.token}"}


def test_create_read_and_claim_through_an_app_key(client, db, merchant, clock):
    camp = new_campaign(client, merchant, db, clock)
    assert camp["id"].startswith("cmp_") and len(camp["claim_token"]) >= 24
    assert camp["remaining"] == 3 and camp["channels"] == ["h5", "mini_program"]
    app = app_auth(db, merchant, clock, ["mini_program"])
    r = client.post(f"/v1/campaigns/{camp['id']}/claims", json={"customer": "M0001"},
                    headers={**app, "Idempotency-Key": "c-1"})
    assert r.status_code == 201, r.text
    claimed = r.json()
    assert claimed["customer"] == "M0001" and claimed["channel"] == "mini_program"
    coupon = client.get(f"/v1/coupons/{claimed['code']}", headers=merchant.auth()).json()
    assert coupon["holder"] == "M0001"
    got = client.get(f"/v1/campaigns/{camp['id']}", headers=app).json()
    assert got["claimed"] == 1 and got["remaining"] == 2


def test_a_retry_replays_and_another_body_is_422(client, db, merchant, clock):
    camp = new_campaign(client, merchant, db, clock, per_customer=2)
    url = f"/v1/campaigns/{camp['id']}/claims"
    h = {**merchant.auth(), "Idempotency-Key": "k-1"}
    first = client.post(url, json={"customer": "M0002"}, headers=h)
    again = client.post(url, json={"customer": "M0002"}, headers=h)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = client.post(url, json={"customer": "M0003"}, headers=h)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    missing = client.post(url, json={"customer": "M0002"}, headers=merchant.auth())
    assert missing.json()["code"] == "idempotency_key_required"
    assert client.get(f"/v1/campaigns/{camp['id']}", headers=merchant.auth()).json()[
        "claimed"] == 1


def test_an_app_key_claims_only_through_its_channels(client, db, merchant, clock):
    camp = new_campaign(client, merchant, db, clock, channels=["web"])
    url = f"/v1/campaigns/{camp['id']}/claims"
    h5 = app_auth(db, merchant, clock, ["h5"])
    r = client.post(url, json={"customer": "M0001"}, headers={**h5, "Idempotency-Key": "a"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = client.post(url, json={"customer": "M0001", "channel": "web"},
                    headers={**h5, "Idempotency-Key": "b"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = client.post(url, json={"customer": "M0001", "channel": "h5"},
                    headers={**merchant.auth(), "Idempotency-Key": "c"})
    assert r.status_code == 422 and r.json()["code"] == "channel_not_allowed"


def test_a_claim_emits_coupon_claimed_naming_the_campaign(client, db, merchant, clock):
    camp = new_campaign(client, merchant, db, clock)
    r = client.post(f"/v1/campaigns/{camp['id']}/claims", json={"customer": "M0004"},
                    headers={**merchant.auth(), "Idempotency-Key": "e-1"})
    with db.connect() as conn:
        types = [(row.type, row.data) for row in conn.execute(
            select(outbox_events.c.type, outbox_events.c.data)
            .where(outbox_events.c.merchant_id == merchant.id))]
    [claimed] = [d for t, d in types if t == "coupon.claimed"]
    assert claimed["campaign_id"] == camp["id"] and claimed["code"] == r.json()["code"]
    assert claimed["channel"] == "h5"  # the first of its channels (sorted)
    assert ("coupon.issued" in [t for t, _ in types])
    schema = client.get("/v1/events/schemas/coupon.claimed", headers=merchant.auth()).json()
    assert "campaign_id" in str(schema)

"""Campaigns over HTTP: create, read, claim with an Idempotency-Key, app keys' channels,
the ``coupon.claimed`` event; the same by the claim token of a shared link (the
customer's view, the claim answering as by id, channel hiding, the guessing guard)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from litestar.testing import TestClient
from sqlalchemy import func, select

from hub.api.app import create_app
from hub.db.schema import failed_attempts, outbox_events
from hub.services import keys
from hub.services.guard import Guard, Limits
from hub.services.settings import Settings
from tests.conftest import THRESHOLD_SPEC, make_template


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


# --- by the claim token of a shared link -------------------------------------------------------


def by_token(client, token: str, auth: dict[str, str]) -> httpx.Response:
    return client.get(f"/v1/campaigns/by-token/{token}", headers=auth)


def claim_by_token(client, token: str, auth: dict[str, str], key: str | None = None,
                   **body: Any) -> httpx.Response:
    headers = dict(auth) if key is None else {**auth, "Idempotency-Key": key}
    return client.post(f"/v1/campaigns/by-token/{token}/claims",
                       json={"customer": "M0001", **body}, headers=headers)


def claim_by_id(client, campaign_id: str, auth: dict[str, str], key: str | None = None,
                **body: Any) -> httpx.Response:
    headers = dict(auth) if key is None else {**auth, "Idempotency-Key": key}
    return client.post(f"/v1/campaigns/{campaign_id}/claims",
                       json={"customer": "M0001", **body}, headers=headers)


def same_problem(a: httpx.Response, b: httpx.Response) -> dict[str, Any]:
    """Two refusals alike: status, headers' media type, and body but for ``instance``."""
    assert a.status_code == b.status_code >= 400, (a.text, b.text)
    assert a.headers["content-type"] == b.headers["content-type"]
    first, second = a.json(), b.json()
    first.pop("instance", None), second.pop("instance", None)
    assert first == second
    return first  # type: ignore[no-any-return]


def test_a_shared_link_shows_the_campaign_as_a_customer_sees_it(client, db, merchant, clock):
    camp = new_campaign(client, merchant, db, clock, total=2,
                        daily_window={"start": "00:00", "end": "23:59"})
    app = app_auth(db, merchant, clock, ["mini_program"])
    r = by_token(client, camp["claim_token"], app)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got == {
        "id": camp["id"], "name": "Spring",
        "template": {"id": camp["template_id"], "name": "满100减20", "kind": "threshold",
                     "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000}},
        "channels": ["mini_program"],  # those of the campaign's channels the key has
        "starts_at": camp["starts_at"], "ends_at": camp["ends_at"],
        "daily_window": {"start": "00:00", "end": "23:59"}, "timezone": "Asia/Shanghai",
        "per_customer": 1, "remaining": 2, "open_now": True, "reason": None,
    }
    assert "claim_token" not in got and "claimed" not in got
    admin = by_token(client, camp["claim_token"], merchant.auth()).json()
    assert admin["channels"] == ["h5", "mini_program"]
    analyst = {"Authorization": "Bearer "
               + keys.create_key(db, merchant.id, "analyst", clock.now).token}
    assert by_token(client, camp["claim_token"], analyst).json() == admin
    # sold out: the reason is the code the next claim gets
    for customer in ("M0001", "M0002"):
        r = claim_by_token(client, camp["claim_token"], app, uuid.uuid4().hex, customer=customer)
        assert r.status_code == 201, r.text
    got = by_token(client, camp["claim_token"], app).json()
    assert (got["open_now"], got["reason"], got["remaining"]) == (
        False, "campaign_sold_out", 0)
    r = claim_by_token(client, camp["claim_token"], app, uuid.uuid4().hex, customer="M0003")
    assert r.json()["code"] == "campaign_sold_out"


def test_why_claims_are_not_open_is_what_a_claim_answers(client, db, merchant, clock):
    def reason_and_claim(camp: dict[str, Any]) -> tuple[str | None, str]:
        got = by_token(client, camp["claim_token"], merchant.auth()).json()
        r = claim_by_token(client, camp["claim_token"], merchant.auth(), uuid.uuid4().hex)
        assert r.status_code >= 400, r.text
        assert got["open_now"] is False
        return got["reason"], r.json()["code"]

    later = new_campaign(client, merchant, db, clock,
                         starts_at=iso(clock.now + timedelta(hours=2)))
    assert reason_and_claim(later) == ("campaign_not_started", "campaign_not_started")
    local = clock.now.astimezone(merchant.tz)
    start = (local + timedelta(hours=1)).strftime("%H:%M")
    end = (local + timedelta(hours=2)).strftime("%H:%M")
    if start < end:  # not across midnight, where a daily window cannot be
        daily = new_campaign(client, merchant, db, clock,
                             daily_window={"start": start, "end": end})
        assert reason_and_claim(daily) == ("campaign_not_started", "campaign_not_started")
    paused = new_campaign(client, merchant, db, clock)
    r = client.post(f"/v1/templates/{paused['template_id']}/pause", headers=merchant.auth())
    assert r.status_code == 200, r.text
    assert reason_and_claim(paused) == ("template_paused", "template_paused")
    scarce = client.post("/v1/campaigns", headers=merchant.auth(), json={
        "template_id": make_template(db, merchant, clock.now,
                                     {**THRESHOLD_SPEC, "total_quantity": 1}),
        "channels": ["h5"], "starts_at": iso(clock.now - timedelta(hours=1)),
        "ends_at": iso(clock.now + timedelta(days=1)), "total": 5}).json()
    assert by_token(client, scarce["claim_token"], merchant.auth()).json()["remaining"] == 1
    r = claim_by_token(client, scarce["claim_token"], merchant.auth(), uuid.uuid4().hex)
    assert r.status_code == 201, r.text
    assert reason_and_claim(scarce) == ("template_out_of_stock", "template_out_of_stock")
    ended = new_campaign(client, merchant, db, clock, ends_at=iso(clock.now + timedelta(hours=1)))
    clock.advance(hours=1)
    assert reason_and_claim(ended) == ("campaign_ended", "campaign_ended")


def test_a_claim_by_token_is_a_claim_by_id(client, db, merchant, clock):
    camp = new_campaign(client, merchant, db, clock, total=5, per_customer=1)
    token, cid = camp["claim_token"], camp["id"]
    app = app_auth(db, merchant, clock, ["mini_program", "h5"])
    a = claim_by_token(client, token, app, "t-1", customer="M0001")
    b = claim_by_id(client, cid, app, "i-1", customer="M0002")
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    one, two = a.json(), b.json()
    assert one.keys() == two.keys() and one["campaign_id"] == two["campaign_id"] == cid
    assert one["channel"] == two["channel"] == "h5"
    assert (one["customer"], two["customer"]) == ("M0001", "M0002")
    for who, holder in ((one, "M0001"), (two, "M0002")):
        coupon = client.get(f"/v1/coupons/{who['code']}", headers=merchant.auth()).json()
        assert coupon["holder"] == holder
    # the same refusals, word for word: the customer's limit, a channel, the key header
    same_problem(claim_by_token(client, token, app, "t-2", customer="M0002"),
                 claim_by_id(client, cid, app, "i-2", customer="M0002"))
    same_problem(claim_by_token(client, token, merchant.auth(), "t-3", channel="web"),
                 claim_by_id(client, cid, merchant.auth(), "i-3", channel="web"))
    mini = app_auth(db, merchant, clock, ["mini_program"])
    same_problem(claim_by_token(client, token, mini, "t-4", channel="h5"),
                 claim_by_id(client, cid, mini, "i-4", channel="h5"))
    assert same_problem(claim_by_token(client, token, app),
                        claim_by_id(client, cid, app))["code"] == "idempotency_key_required"
    # both took from the one stock, and each wrote coupon.claimed naming the campaign
    assert client.get(f"/v1/campaigns/{cid}", headers=app).json()["remaining"] == 3
    with db.connect() as conn:
        claimed = [d for t, d in conn.execute(
            select(outbox_events.c.type, outbox_events.c.data)
            .where(outbox_events.c.merchant_id == merchant.id)) if t == "coupon.claimed"]
    assert sorted(d["customer"] for d in claimed) == ["M0001", "M0002"]
    assert {d["campaign_id"] for d in claimed} == {cid}


def test_a_claim_by_token_replays_under_its_idempotency_key(client, db, merchant, clock):
    camp = new_campaign(client, merchant, db, clock, per_customer=2)
    token = camp["claim_token"]
    first = claim_by_token(client, token, merchant.auth(), "k-1", customer="M0002")
    again = claim_by_token(client, token, merchant.auth(), "k-1", customer="M0002")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    other = claim_by_token(client, token, merchant.auth(), "k-1", customer="M0003")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    # the key names the operation: the claim by id is another one
    by_id = claim_by_id(client, camp["id"], merchant.auth(), "k-1", customer="M0002")
    assert by_id.status_code == 422 and by_id.json()["code"] == "idempotency_key_reused"
    assert client.get(f"/v1/campaigns/{camp['id']}", headers=merchant.auth()).json()[
        "claimed"] == 1


def test_an_app_key_cannot_learn_other_channels_campaigns(client, db, merchant, clock):
    camp = new_campaign(client, merchant, db, clock, channels=["web"])
    token = camp["claim_token"]
    h5 = app_auth(db, merchant, clock, ["h5"])
    unknown = "pQ7x1ZzKq2d3mVbN9tY0wR5sU8eH4cLf"
    body = same_problem(by_token(client, token, h5), by_token(client, unknown, h5))
    assert body["code"] == "campaign_not_found" and body["status"] == 404
    assert token not in body["detail"]
    same_problem(claim_by_token(client, token, h5, "h-1"),
                 claim_by_token(client, unknown, h5, "h-2"))
    same_problem(claim_by_token(client, token, h5, "h-3", channel="web"),
                 claim_by_token(client, unknown, h5, "h-4", channel="web"))
    assert client.get(f"/v1/campaigns/{camp['id']}", headers=merchant.auth()).json()[
        "claimed"] == 0
    web = app_auth(db, merchant, clock, ["web", "h5"])
    assert by_token(client, token, web).json()["channels"] == ["web"]
    r = claim_by_token(client, token, web, "w-1")
    assert r.status_code == 201 and r.json()["channel"] == "web"
    # what is not token-shaped is not looked up, and answers alike (or no route matches)
    for bad in ("short", "a/b", "x" * 65, unknown.replace("p", "!")):
        r = client.get(f"/v1/campaigns/by-token/{bad}", headers=merchant.auth())
        assert r.status_code == 404 and r.json()["code"] in ("campaign_not_found", "not_found")


def test_wrong_claim_tokens_count_for_the_guessing_guard(db, merchant, clock):
    limit = 3
    guard = Guard(Limits(max_per_key=limit, max_per_address=0))

    def failures() -> int:
        with db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(failed_attempts))
                       .scalar_one())

    with TestClient(create_app(db, Settings(guard=guard), clock=clock)) as client:
        camp = new_campaign(client, merchant, db, clock, total=10, per_customer=5)
        hidden = new_campaign(client, merchant, db, clock, channels=["web"])
        token = camp["claim_token"]
        app = app_auth(db, merchant, clock, ["mini_program"])
        assert by_token(client, token, app).status_code == 200  # never counted
        assert claim_by_token(client, token, app, "g-0").status_code == 201
        # a wrong campaign id is no guess at a secret: not counted
        r = client.get("/v1/campaigns/cmp_01JD0000000000000000000000", headers=app)
        assert r.json()["code"] == "campaign_not_found" and failures() == 0
        wrong = [uuid.uuid4().hex, "short", hidden["claim_token"]]  # hidden: as unknown
        for i, bad in enumerate(wrong):
            r = (by_token(client, bad, app) if i % 2
                 else claim_by_token(client, bad, app, f"g-{i + 1}"))
            assert r.status_code == 404 and r.json()["code"] == "campaign_not_found", r.text
        assert failures() == limit
        r = by_token(client, uuid.uuid4().hex, app)
        assert r.status_code == 429 and r.json()["code"] == "too_many_failed_attempts"
        assert int(r.headers["Retry-After"]) > 0
        # blocked: the real token too, reading and claiming
        assert by_token(client, token, app).status_code == 429
        assert claim_by_token(client, token, app, "g-9").status_code == 429
        # another key is not blocked
        assert claim_by_token(client, token, merchant.auth(), "g-10").status_code == 201
    assert failures() == limit


def test_log_lines_carry_secret_path_parameters_masked():
    from litestar import Request

    from hub.api.errors import log_path

    def logged(path: str, **params: str) -> str:
        scope = {"type": "http", "method": "POST", "scheme": "http", "server": ("hub", 80),
                 "root_path": "", "query_string": b"", "headers": [], "path": path,
                 "path_params": params}
        return log_path(Request(scope))  # type: ignore[arg-type]

    token = "pQ7x1ZzKq2d3mVbN9tY0wR5sU8eH4cLf"
    assert logged(f"/v1/campaigns/by-token/{token}/claims", claim_token=token) == (
        "/v1/campaigns/by-token/pQ7x…Lf/claims")
    assert logged("/v1/campaigns/cmp_1/claims", campaign_id="cmp_1") == (
        "/v1/campaigns/cmp_1/claims")

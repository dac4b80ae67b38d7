"""Staff on a phone, through the HTTP API (both databases): staff members, single-use
sign-in codes, shift sessions, and the staff member recorded on what they do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from hub.api.state import HubState
from hub.db.schema import (
    audit_log,
    failed_attempts,
    order_redemptions,
    outbox_events,
    redemptions,
    staff_sessions,
)
from hub.services.guard import Guard, Limits
from hub.services.settings import Settings
from tests.api.world import assert_problem
from tests.conftest import order
from tests.staff.conftest import Shop


def redeem(shop: Shop, code: str, auth: dict[str, str], **fields: Any) -> Any:
    body = {"code": code, "order": order(), **fields}
    headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
    return shop.client.post("/v1/redemptions", json=body, headers=headers)


def row_of(shop: Shop, redemption_id: str) -> Any:
    with shop.db.connect() as conn:
        return conn.execute(select(redemptions).where(redemptions.c.id == redemption_id)).one()


# --- staff members ------------------------------------------------------------------------


def test_an_admin_creates_staff_and_stores_see_only_their_own(shop: Shop) -> None:
    r = shop.client.post(
        "/v1/stores/SH-001/staff", json={"name": "Li Lei", "external_id": "HR-7"},
        headers=shop.admin(),
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["id"].startswith("stf_") and made["store"] == "SH-001"
    assert made["status"] == "active" and made["external_id"] == "HR-7"
    assert made["disabled_at"] is None
    again = shop.client.post(
        "/v1/stores/SH-002/staff", json={"name": "Other", "external_id": "HR-7"},
        headers=shop.admin(),
    )
    assert_problem(again, 409, "already_exists")
    shop.add_staff("Han Meimei")  # no external id: any number of them
    shop.add_staff("Wang Fang", "SH-002")

    names = [s["name"] for s in shop.client.get(
        "/v1/stores/SH-001/staff", headers=shop.store_key()).json()["items"]]
    assert names == ["Li Lei", "Han Meimei"]
    assert shop.client.get(f"/v1/staff/{made['id']}", headers=shop.store_key()).json() == made
    # another store's key: not its staff, not its list
    r = shop.client.get(f"/v1/staff/{made['id']}", headers=shop.store_key("SH-002"))
    assert_problem(r, 404, "staff_not_found")
    r = shop.client.get("/v1/stores/SH-001/staff", headers=shop.store_key("SH-002"))
    assert_problem(r, 403, "store_forbidden")
    r = shop.client.get("/v1/stores/NOPE/staff", headers=shop.admin())
    assert_problem(r, 422, "store_not_found")
    # only an admin creates, disables, enables
    r = shop.client.post("/v1/stores/SH-001/staff", json={"name": "X"}, headers=shop.store_key())
    assert_problem(r, 403, "forbidden")


# --- sign in, redeem, list ----------------------------------------------------------------


def test_a_code_becomes_a_session_that_redeems_at_its_store_as_the_staff_member(
    shop: Shop,
) -> None:
    sid = shop.add_staff("Li Lei")
    code = shop.code_for(sid, shop.store_key())  # the manager's till hands it out
    assert len(code) == 9 and code[4] == "-"
    r = shop.sign_in(code.replace("-", " ").lower())  # typed loosely
    assert r.status_code == 201, r.text
    session = r.json()
    assert session["token"].startswith("hs_") and len(session["token"]) >= 40
    assert session["staff"] == {"id": sid, "name": "Li Lei"}
    assert session["store"] == {"code": "SH-001", "name": "Store SH-001"}
    assert session["merchant"] == {"name": "Test Tea", "timezone": "Asia/Shanghai"}
    auth = {"Authorization": f"Bearer {session['token']}"}
    me = shop.client.get("/v1/staff/me", headers=auth).json()
    assert me == {k: v for k, v in session.items() if k != "token"}

    c1, c2 = shop.coupons(2)
    r = redeem(shop, c1, auth)
    assert r.status_code == 201, r.text
    assert r.json()["staff"] == {"id": sid, "name": "Li Lei"} and r.json()["store"] == "SH-001"
    rid = r.json()["redemption_id"]
    row = row_of(shop, rid)
    with shop.db.connect() as conn:
        session_id = conn.execute(select(staff_sessions.c.id)).scalar_one()
        event = conn.execute(
            select(outbox_events.c.data).where(outbox_events.c.type == "coupon.redeemed")
        ).scalar_one()
    assert (row.staff_id, row.api_key_id) == (sid, session_id)
    assert event["staff"] == {"id": sid, "name": "Li Lei"}

    # another store: refused, nothing redeemed
    assert_problem(redeem(shop, c2, auth, store="SH-002"), 403, "store_forbidden")
    # an API key's redemption names no staff member
    r = redeem(shop, c2, shop.store_key())
    assert r.status_code == 201 and r.json()["staff"] is None
    assert row_of(shop, r.json()["redemption_id"]).staff_id is None

    listed = shop.client.get(f"/v1/redemptions?staff={sid}", headers=auth).json()["items"]
    assert [i["redemption_id"] for i in listed] == [rid]
    assert listed[0]["staff"] == {"id": sid, "name": "Li Lei"}
    everyone = shop.client.get("/v1/redemptions", headers=shop.admin()).json()["items"]
    assert [i["staff"] for i in everyone] == [None, {"id": sid, "name": "Li Lei"}]
    assert shop.client.get("/v1/redemptions?staff=stf_nobody", headers=shop.admin()).json()[
        "items"] == []


def test_reversal_and_audit_record_the_staff_member(shop: Shop) -> None:
    sid = shop.add_staff("Li Lei")
    auth = shop.session(sid)
    [code] = shop.coupons()
    rid = redeem(shop, code, auth).json()["redemption_id"]
    r = shop.client.post(
        f"/v1/redemptions/{rid}/reversal", json={"reason": "refund"},
        headers={**auth, "Idempotency-Key": "rev-1"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["staff"] == {"id": sid, "name": "Li Lei"}
    row = row_of(shop, rid)
    assert (row.status, row.staff_id, row.reversed_staff_id) == ("reversed", sid, sid)
    with shop.db.connect() as conn:
        entries = conn.execute(
            select(audit_log.c.action, audit_log.c.staff_id).order_by(audit_log.c.seq)
        ).all()
        event = conn.execute(
            select(outbox_events.c.data).where(
                outbox_events.c.type == "coupon.redemption_reversed")
        ).scalar_one()
    assert ("redemption.reversed", sid) in entries and ("staff.signed_in", sid) in entries
    assert ("staff.created", None) in entries  # the admin's key made them
    assert event["staff"] == {"id": sid, "name": "Li Lei"}
    audit = shop.client.get("/v1/audit?action=redemption.reversed", headers=shop.admin())
    [entry] = audit.json()["items"]
    assert entry["actor"]["staff_id"] == sid and entry["actor"]["role"] == "store"


def test_an_order_redeem_and_the_pos_route_record_the_staff_member(shop: Shop) -> None:
    sid = shop.add_staff("Li Lei")
    auth = shop.session(sid)
    a, b = shop.coupons(2)
    r = shop.client.post(
        "/v1/orders/redeem",
        json={"codes": [a], "channel": "pos", "order": order(order_id="O-1")},
        headers={**auth, "Idempotency-Key": "order-1"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["staff"] == {"id": sid, "name": "Li Lei"}
    with shop.db.connect() as conn:
        assert conn.execute(select(order_redemptions.c.staff_id)).scalar_one() == sid
    assert row_of(shop, r.json()["coupons"][0]["redemption_id"]).staff_id == sid
    r = shop.client.post(
        "/v1/pos/pos.native/redeem",
        json={"code": b, "order": order(order_id="P-1")},
        headers={**auth, "Idempotency-Key": "pos-1"},
    )
    assert r.status_code == 201, r.text
    assert row_of(shop, r.json()["redemption_id"]).staff_id == sid


# --- ending sessions ------------------------------------------------------------------------


def test_disabling_stops_the_token_at_once_and_voids_unused_codes(shop: Shop) -> None:
    sid = shop.add_staff("Li Lei")
    auth = shop.session(sid)
    spare_code = shop.code_for(sid)
    for _ in range(2):  # the second one is answered from this process's cache
        assert shop.client.get("/v1/staff/me", headers=auth).status_code == 200
    r = shop.client.post(f"/v1/staff/{sid}/disable", headers=shop.admin())
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    assert r.json()["disabled_at"] is not None
    assert_problem(shop.client.get("/v1/staff/me", headers=auth), 401, "staff_disabled")
    [code] = shop.coupons()
    assert_problem(redeem(shop, code, auth), 401, "staff_disabled")
    assert_problem(shop.sign_in(spare_code), 401, "sign_in_code_invalid")
    assert_problem(shop.client.post(f"/v1/staff/{sid}/sign-in-codes", headers=shop.admin()),
                   409, "staff_inactive")
    # enabled again: the old session stays ended; a new code signs in
    r = shop.client.post(f"/v1/staff/{sid}/enable", headers=shop.admin())
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert_problem(shop.client.get("/v1/staff/me", headers=auth), 401, "unauthorized")
    fresh = shop.session(sid)
    assert redeem(shop, code, fresh).status_code == 201


def test_signing_out_ends_the_session(shop: Shop) -> None:
    auth = shop.session(shop.add_staff())
    assert shop.client.get("/v1/staff/me", headers=auth).status_code == 200
    assert shop.client.delete("/v1/staff/sessions/current", headers=auth).status_code == 204
    r = shop.client.get("/v1/staff/me", headers=auth)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    # an API key has no session to end or describe
    r = shop.client.delete("/v1/staff/sessions/current", headers=shop.store_key())
    assert_problem(r, 404, "not_found")


def test_a_code_works_once_and_for_ten_minutes(shop: Shop) -> None:
    sid = shop.add_staff()
    code = shop.code_for(sid)
    assert shop.sign_in(code).status_code == 201
    assert_problem(shop.sign_in(code), 401, "sign_in_code_invalid")  # used
    late = shop.code_for(sid)
    shop.clock.advance(minutes=10)
    assert_problem(shop.sign_in(late), 401, "sign_in_code_invalid")  # expired
    for wrong in ("ABCD-EFG", "ABCD-EFGH-J", "0000-1111", "ABCD-EFGH"):
        assert_problem(shop.sign_in(wrong), 401, "sign_in_code_invalid")


def test_the_session_ends_at_the_shift_end(shop: Shop) -> None:
    sid = shop.add_staff()
    # 18:00 in Shanghai: the shift ends at the next local 04:00 (10 h later)
    shop.clock.now = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    r = shop.sign_in(shop.code_for(sid))
    assert r.json()["expires_at"] == "2026-12-04T20:00:00.000Z"
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    shop.clock.now = datetime(2026, 12, 4, 19, 59, 59, tzinfo=UTC)
    assert shop.client.get("/v1/staff/me", headers=auth).status_code == 200  # now cached
    shop.clock.now = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    r = shop.client.get("/v1/staff/me", headers=auth)
    assert_problem(r, 401, "session_expired")
    assert r.json()["expired_at"] == "2026-12-04T20:00:00.000Z"
    # 08:30 in Shanghai: 12 hours
    shop.clock.now = datetime(2026, 12, 5, 0, 30, tzinfo=UTC)
    r = shop.sign_in(shop.code_for(sid))
    assert r.json()["expires_at"] == "2026-12-05T12:30:00.000Z"


def test_wrong_codes_are_counted_by_the_guessing_guard(shop: Shop) -> None:
    app = shop.client.app
    app.state.hub = HubState.for_engine(
        shop.db,
        settings=Settings(guard=Guard(Limits(max_per_address=3, trusted_proxies=("testclient",)))),
        clock=shop.clock,
    )
    sid = shop.add_staff()
    good = shop.code_for(sid)
    for _ in range(3):
        assert_problem(shop.sign_in("WXYZ-2345"), 401, "sign_in_code_invalid")
    r = shop.sign_in(good)  # a blocked address: even a good code is refused
    assert_problem(r, 429, "too_many_failed_attempts")
    assert int(r.headers["Retry-After"]) > 0
    # another address (behind the trusted proxy) is not blocked
    r = shop.client.post("/v1/staff/sessions", json={"code": good},
                         headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 201, r.text
    assert_problem(shop.sign_in(shop.code_for(sid)), 429, "too_many_failed_attempts")
    shop.clock.advance(seconds=601)  # the window passed
    assert shop.sign_in(shop.code_for(sid)).status_code == 201
    with shop.db.connect() as conn:  # counted in a scope of its own, no merchant's
        scopes = conn.execute(select(failed_attempts.c.scope, failed_attempts.c.merchant_id))
        assert set(scopes) == {("signin:testclient", None)}


def test_the_sign_in_needs_no_key_and_ignores_one(shop: Shop) -> None:
    sid = shop.add_staff()
    r = shop.client.post("/v1/staff/sessions", json={"code": shop.code_for(sid)},
                         headers={"Authorization": "Bearer not-a-key"})
    assert r.status_code == 201, r.text
    r = shop.client.post("/v1/staff/sessions", content=b"code=ABCD-EFGH",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(r, 415, "unsupported_media_type")  # no form posts: no CSRF by form
    r = shop.client.post("/v1/staff/sessions", json={"code": "ABCD-EFGH", "staff": "x"})
    assert_problem(r, 422, "invalid_request")


def test_a_staff_session_hands_out_no_codes(shop: Shop) -> None:
    sid = shop.add_staff()
    auth = shop.session(sid)
    r = shop.client.post(f"/v1/staff/{sid}/sign-in-codes", headers=auth)
    assert_problem(r, 403, "forbidden")
    assert shop.client.get(f"/v1/staff/{sid}", headers=auth).status_code == 200


def test_a_session_is_cached_no_longer_than_the_cache_time(shop: Shop) -> None:
    """Disabled in the database by another process: refused once the cache entry is
    older than CACHE_SECONDS (this process forgets nothing on its own)."""
    from hub.api import auth as auth_mod

    sid = shop.add_staff()
    auth = shop.session(sid)
    assert shop.client.get("/v1/staff/me", headers=auth).status_code == 200
    from sqlalchemy import update

    from hub.db.schema import staff

    with shop.db.begin() as conn:
        conn.execute(update(staff).where(staff.c.id == sid).values(status="disabled"))
    # still cached here: the token works until the entry ages out (or the cache is told)
    assert shop.client.get("/v1/staff/me", headers=auth).status_code == 200
    now = [0.0]
    cache = auth_mod.PrincipalCache(monotonic=lambda: now[0])
    old, auth_mod._cache = auth_mod._cache, cache
    try:
        assert_problem(shop.client.get("/v1/staff/me", headers=auth), 401, "staff_disabled")
        with shop.db.begin() as conn:
            conn.execute(update(staff).where(staff.c.id == sid).values(status="active"))
        assert shop.client.get("/v1/staff/me", headers=auth).status_code == 200  # cached
        with shop.db.begin() as conn:
            conn.execute(update(staff).where(staff.c.id == sid).values(status="disabled"))
        now[0] += auth_mod.CACHE_SECONDS - 0.001
        assert shop.client.get("/v1/staff/me", headers=auth).status_code == 200
        now[0] += 0.002
        assert_problem(shop.client.get("/v1/staff/me", headers=auth), 401, "staff_disabled")
    finally:
        auth_mod._cache = old
    assert timedelta(seconds=auth_mod.CACHE_SECONDS) <= timedelta(seconds=5)

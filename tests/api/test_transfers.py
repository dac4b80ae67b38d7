"""Transfers to a friend (转赠): offer, accept, cancel, every refusal, the chain of
holders in the coupon's history, the wallets and the events (both backends)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, select, update

from hub.api.app import create_app
from hub.db.schema import coupon_transfers, coupons, outbox_events
from hub.domain.codes import mask
from hub.services import keys
from hub.services.guard import Guard, Limits
from hub.services.settings import Settings
from tests.conftest import THRESHOLD_SPEC, Clock, Merchant, issue, make_template, order

TRANSFERABLE = {**THRESHOLD_SPEC, "transferable": True}


@dataclass
class T:
    client: Any
    db: Engine
    m: Merchant
    clock: Clock
    app: dict[str, str]

    def template(self, **changes: Any) -> str:
        return make_template(self.db, self.m, self.clock.now, {**TRANSFERABLE, **changes})

    def coupon(self, holder: str = "M0001", **changes: Any) -> str:
        [code] = issue(self.db, self.m, self.template(**changes), self.clock.now,
                       customers=[holder])
        return code

    def offer(self, code: str, customer: str = "M0001", key: str | None = None,
              **body: Any) -> httpx.Response:
        return self.client.post(
            f"/v1/coupons/{code}/transfers", json={"customer": customer, **body},
            headers={**self.app, "Idempotency-Key": key or uuid.uuid4().hex},
        )

    def token(self, code: str, customer: str = "M0001", **body: Any) -> str:
        r = self.offer(code, customer, **body)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def accept(self, token: str, customer: str) -> httpx.Response:
        return self.client.post(f"/v1/transfers/{token}/accept", json={"customer": customer},
                                headers=self.app)

    def cancel(self, token: str, customer: str = "M0001") -> httpx.Response:
        return self.client.post(f"/v1/transfers/{token}/cancel", json={"customer": customer},
                                headers=self.app)

    def read(self, token: str) -> httpx.Response:
        return self.client.get(f"/v1/transfers/{token}", headers=self.app)

    def wallet(self, customer: str) -> dict[str, dict[str, Any]]:
        r = self.client.get(f"/v1/customers/{customer}/coupons", headers=self.app)
        assert r.status_code == 200, r.text
        return {c["code"]: c for c in r.json()["items"]}

    def holder(self, code: str) -> str | None:
        r = self.client.get(f"/v1/coupons/{code}", headers=self.m.auth())
        return r.json()["holder"]  # type: ignore[no-any-return]

    def events(self, code: str) -> list[tuple[str, dict[str, Any]]]:
        with self.db.connect() as conn:
            cid = conn.execute(select(coupons.c.id).where(coupons.c.code == code)).scalar()
            rows = conn.execute(select(outbox_events.c.type, outbox_events.c.data)
                                .where(outbox_events.c.coupon_id == cid)
                                .order_by(outbox_events.c.seq)).all()
        return [(r.type, dict(r.data)) for r in rows]


@pytest.fixture
def t(client, db, merchant, clock) -> T:
    app = keys.create_key(db, merchant.id, "app", clock.now, channels=["mini_program"]).token
    return T(client, db, merchant, clock, merchant.auth(app))


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


def test_a_friend_accepts_and_becomes_the_holder(t: T) -> None:
    code = t.coupon()
    r = t.offer(code, ttl_seconds=3600)
    assert r.status_code == 201, r.text
    offered = r.json()
    assert offered["status"] == "offered" and offered["code"] == mask(code) != code
    assert offered["from_customer"] == "M0001" and len(offered["token"]) >= 32
    assert offered["expires_at"] == (t.clock.now + timedelta(hours=1)).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    token = offered["token"]
    # the giver's wallet shows the open offer; the friend reads it (code masked)
    assert t.wallet("M0001")[code]["transfer_offered_until"] == offered["expires_at"]
    seen = t.read(token).json()
    assert seen["status"] == "offered" and seen["code"] == mask(code)
    assert seen["from_customer"] == "M0001" and seen["to_customer"] is None

    t.clock.advance(minutes=5)
    r = t.accept(token, "M0002")
    assert r.status_code == 200, r.text
    accepted = r.json()
    assert accepted["status"] == "accepted" and accepted["code"] == code
    assert accepted["from_customer"] == "M0001" and accepted["to_customer"] == "M0002"
    # a retry by the same recipient answers the same; the coupon moved once
    again = t.accept(token, "M0002")
    assert again.status_code == 200 and again.json() == accepted
    assert t.holder(code) == "M0002"
    assert code not in t.wallet("M0001")
    assert t.wallet("M0002")[code]["transfer_offered_until"] is None
    assert t.read(token).json()["status"] == "accepted"

    # the friend passes it on: the history keeps the chain, each step with its time
    t.clock.advance(minutes=5)
    second = t.token(code, "M0002")
    assert t.accept(second, "M0003").status_code == 200
    history = t.client.get(f"/v1/coupons/{code}", headers=t.m.auth()).json()["history"]
    chain = [(h["from_customer"], h["to_customer"], h["at"]) for h in history
             if h["type"] == "coupon.transferred"]
    assert [c[:2] for c in chain] == [("M0001", "M0002"), ("M0002", "M0003")]
    assert chain[0][2] < chain[1][2]
    assert [h["type"] for h in history] == [
        "coupon.issued", "coupon.transfer_offered", "coupon.transferred",
        "coupon.transfer_offered", "coupon.transferred"]
    events = t.events(code)
    assert events[2] == ("coupon.transferred", {
        "code": code, "transfer_id": accepted["id"], "from_customer": "M0001",
        "to_customer": "M0002", "template_id": accepted["template"]["id"]})
    assert all(token not in str(data) for _, data in events)  # the secret never leaves

    # the last holder redeems it
    r = t.client.post("/v1/redemptions", json={"code": code, "store": "SH-001",
                                               "order": order()},
                      headers={**t.m.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201 and r.json()["customer"] == "M0003", r.text


def test_the_holder_cancels_an_open_offer(t: T) -> None:
    code = t.coupon()
    token = t.token(code)
    problem(t.cancel(token, "M0002"), 403, "not_coupon_holder")
    problem(t.cancel(token, "NOBODY"), 403, "not_coupon_holder")
    r = t.cancel(token)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    again = t.cancel(token)
    assert again.status_code == 200 and again.json() == r.json()
    assert problem(t.accept(token, "M0002"), 409, "transfer_closed")["offer_status"] == "cancelled"
    assert t.holder(code) == "M0001"
    assert t.wallet("M0001")[code]["transfer_offered_until"] is None
    assert [e for e, _ in t.events(code)] == [
        "coupon.issued", "coupon.transfer_offered", "coupon.transfer_cancelled"]
    # a new offer may follow a cancelled one; an accepted offer cannot be cancelled
    token2 = t.token(code)
    assert t.accept(token2, "M0002").status_code == 200
    assert problem(t.cancel(token2), 409, "transfer_closed")["offer_status"] == "accepted"


def test_offer_refusals(t: T) -> None:
    plain = make_template(t.db, t.m, t.clock.now)  # transferable defaults to false
    [fixed] = issue(t.db, t.m, plain, t.clock.now, customers=["M0001"])
    problem(t.offer(fixed), 422, "coupon_not_transferable")

    code = t.coupon()
    problem(t.offer(code, "M0002"), 403, "not_coupon_holder")
    problem(t.offer(code, "NOBODY"), 403, "not_coupon_holder")
    [loose] = issue(t.db, t.m, t.template(), t.clock.now)  # nobody holds it
    problem(t.offer(loose, "M0001"), 403, "not_coupon_holder")
    problem(t.offer("NOT-A-CODE"), 422, "code_malformed")

    token = t.token(code)
    body = problem(t.offer(code), 409, "coupon_not_transferable_now")
    assert body["reason"] == "offered" and body["offered_until"]
    assert t.cancel(token).status_code == 200

    redeemed = t.coupon()
    r = t.client.post("/v1/redemptions", json={"code": redeemed, "store": "SH-001",
                                               "order": order()},
                      headers={**t.m.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    assert problem(t.offer(redeemed), 409, "coupon_not_transferable_now")["reason"] == "redeemed"

    voided = t.coupon()
    assert t.client.post(f"/v1/coupons/{voided}/void", json={},
                         headers=t.m.auth()).status_code == 200
    assert problem(t.offer(voided), 409, "coupon_not_transferable_now")["reason"] == "voided"

    held = t.coupon()
    with t.db.begin() as conn:  # a reservation's hold, as checkout writes it
        conn.execute(update(coupons).where(coupons.c.code == held).values(
            reservation_id="rsv_x", reserved_until=t.clock.now + timedelta(minutes=10)))
    body = problem(t.offer(held), 409, "coupon_not_transferable_now")
    assert body["reason"] == "reserved" and body["reserved_until"]

    for ttl in (0, 59, 7 * 86400 + 1, "3600"):
        problem(t.offer(t.coupon(), ttl_seconds=ttl), 422, "invalid_request")
    r = t.client.post(f"/v1/coupons/{t.coupon()}/transfers", json={"customer": "M0001"},
                      headers=t.app)
    problem(r, 400, "idempotency_key_required")

    short = t.coupon(validity={"type": "relative", "days": 1})
    t.clock.advance(days=2)
    assert problem(t.offer(short), 409, "coupon_not_transferable_now")["reason"] == "expired"


def test_an_offer_never_outlives_the_coupon_and_lapses(t: T) -> None:
    code = t.coupon(validity={"type": "relative", "days": 1})
    r = t.offer(code, ttl_seconds=7 * 86400)
    offered = r.json()
    valid_until = t.wallet("M0001")[code]["valid_until"]
    assert offered["expires_at"] == valid_until

    code = t.coupon()
    token = t.token(code, ttl_seconds=600)
    t.clock.advance(seconds=600)
    assert t.read(token).json()["status"] == "expired"
    assert problem(t.accept(token, "M0002"), 409, "transfer_expired")["expires_at"]
    problem(t.cancel(token), 409, "transfer_expired")
    assert t.wallet("M0001")[code]["transfer_offered_until"] is None
    # the lapsed offer no longer blocks a new one, and is marked expired by it
    fresh = t.token(code)
    with t.db.connect() as conn:
        statuses = conn.execute(select(coupon_transfers.c.token, coupon_transfers.c.status)
                                .order_by(coupon_transfers.c.offered_at)).all()
    assert dict(statuses)[token] == "expired" and dict(statuses)[fresh] == "offered"
    assert t.accept(fresh, "M0002").status_code == 200


def test_accept_refusals(t: T) -> None:
    code = t.coupon()
    token = t.token(code)
    problem(t.accept(token, "M0001"), 422, "transfer_to_self")
    body = problem(t.accept(token, "NOBODY"), 422, "customer_not_found")
    assert body["customers"] == ["NOBODY"]
    problem(t.accept("x" * 32, "M0002"), 404, "transfer_not_found")
    problem(t.read("no-such-token-at-all"), 404, "transfer_not_found")
    problem(t.cancel("not.a.token", "M0001"), 404, "transfer_not_found")
    assert t.accept(token, "M0002").status_code == 200
    assert problem(t.accept(token, "M0003"), 409, "transfer_closed")["offer_status"] == "accepted"
    assert t.holder(code) == "M0002"

    # the recipient's per-customer limit of the template holds
    limited = t.template(per_customer_limit=1)
    [mine] = issue(t.db, t.m, limited, t.clock.now, customers=["M0001"])
    issue(t.db, t.m, limited, t.clock.now, customers=["M0004"])
    body = problem(t.accept(t.token(mine), "M0004"), 409, "per_customer_limit_reached")
    assert body["limit"] == 1 and t.holder(mine) == "M0001"

    # the coupon was used after it was offered: the offer stays, the accept is refused
    used = t.coupon()
    token = t.token(used)
    r = t.client.post("/v1/redemptions", json={"code": used, "store": "SH-001",
                                               "order": order()},
                      headers={**t.m.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    assert problem(t.accept(token, "M0002"), 409, "coupon_not_transferable_now")[
        "reason"] == "redeemed"
    assert t.holder(used) == "M0001" and t.read(token).json()["status"] == "offered"


def test_an_offer_replays_under_its_idempotency_key(t: T) -> None:
    code = t.coupon()
    first = t.offer(code, key="offer-1")
    again = t.offer(code, key="offer-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    problem(t.offer(code, key="offer-1", ttl_seconds=600), 422, "idempotency_key_reused")
    with t.db.connect() as conn:
        assert len(conn.execute(select(coupon_transfers.c.id)).all()) == 1


def test_only_admin_and_app_keys_transfer(t: T) -> None:
    code = t.coupon()
    token = t.token(code)
    for role in ("store", "analyst", "integrator"):
        kw: dict[str, Any] = {"store_code": "SH-001"} if role == "store" else {}
        other = t.m.auth(keys.create_key(t.db, t.m.id, role, t.clock.now, **kw).token)
        r = t.client.get(f"/v1/transfers/{token}", headers=other)
        problem(r, 403, "forbidden")
        r = t.client.post(f"/v1/transfers/{token}/accept", json={"customer": "M0002"},
                          headers=other)
        problem(r, 403, "forbidden")
    # an admin acts for a customer too
    r = t.client.post(f"/v1/transfers/{token}/accept", json={"customer": "M0002"},
                      headers=t.m.auth())
    assert r.status_code == 200, r.text


def test_wrong_tokens_count_for_the_guessing_guard(db: Engine, merchant: Merchant,
                                                   clock: Clock) -> None:
    limit = 3
    guard = Guard(Limits(max_per_key=limit, max_per_address=0))
    with TestClient(create_app(db, Settings(guard=guard), clock=clock)) as client:
        app = keys.create_key(db, merchant.id, "app", clock.now).token
        t = T(client, db, merchant, clock, merchant.auth(app))
        token = t.token(t.coupon())
        assert t.read(token).status_code == 200  # a real token is never counted
        for i in range(limit):
            wrong = uuid.uuid4().hex if i % 2 else "short"
            problem(t.accept(wrong, "M0002"), 404, "transfer_not_found")
        r = t.read(uuid.uuid4().hex)
        assert problem(r, 429, "too_many_failed_attempts")["retry_after"] > 0
        # blocked: the real token too, and code look-ups of the same key
        problem(t.accept(token, "M0002"), 429, "too_many_failed_attempts")
        problem(t.offer(t.coupon()), 429, "too_many_failed_attempts")
        # another key (the admin's) is not blocked
        other = T(client, db, merchant, clock, merchant.auth())
        assert other.accept(token, "M0002").status_code == 200

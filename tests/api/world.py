"""The "world" the API's scope tests and the security matrix run in: merchant A with a
template, coupons, a redemption, a subscription and its delivery, and how to call every
operation of the app as if entitled to it. The ``world`` fixture is registered in the
``conftest.py`` of the folders it serves (``tests/api/``, ``tests/security/``)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from hub.api.permissions import PUBLIC_ROUTES
from hub.db.schema import coupon_templates, coupons, redemptions, stores
from hub.services import keys, staff
from hub.services.problems import PROBLEM_MEDIA_TYPE
from tests.conftest import THRESHOLD_SPEC, Clock, Merchant, issue, make_template, order

OPEN_PATHS = ("/health", "/ready", "/metrics", "/schema", "/dashboard", "/staff")
IGNORED_METHODS = {"OPTIONS", "HEAD"}


def new_key() -> str:
    return uuid.uuid4().hex


def operations(app: Any) -> list[tuple[str, str]]:
    """(method, route path) of every operation that needs a key (not the public ones:
    a staff sign-in takes its code, hub.api.permissions.PUBLIC_ROUTES)."""
    ops = []
    for route in app.routes:
        if route.path.startswith(OPEN_PATHS):
            continue
        for method in sorted(set(route.methods) - IGNORED_METHODS):
            if (method, route.path) not in PUBLIC_ROUTES:
                ops.append((method, route.path))
    return sorted(ops)


def public_operations() -> set[tuple[str, str]]:
    """The operations that take no key, spelt as the OpenAPI document spells them."""
    return {(m, re.sub(r"\{(\w+):\w+\}", r"{\1}", p)) for m, p in PUBLIC_ROUTES}


def fill(path: str, params: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: params[m.group(1)], path)


def assert_problem(r: httpx.Response, status: int, code: str, what: str = "") -> None:
    assert r.status_code == status, f"{what}: {r.status_code} {r.text[:300]}"
    assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), what
    assert r.json()["code"] == code, f"{what}: {r.text[:300]}"


@dataclass
class World:
    """Merchant A with a template, two issued coupons and one redeemed at SH-001."""

    client: Any
    db: Engine
    m: Merchant
    clock: Clock
    tpl: str
    code: str  # issued, unassigned
    spare: str  # issued, unassigned
    redeemed: str
    rid: str
    sub: str  # a webhook subscription
    dlv: str  # its delivery of the redemption
    spare_key: str = ""  # an API key's id that calls may revoke
    campaign: str = ""  # a campaign open now (channels mini_program, h5)
    token: str = ""  # an open offer of M0001's transferable coupon to a friend
    reservation: str = ""  # a hold on one more coupon at SH-001 through mini_program
    releasable: str = ""  # another such hold (release it, confirm the first)
    free: str = ""  # an issued coupon to hold
    order_code: str = ""  # issued, unassigned: for the multi-coupon redeem
    order_rid: str = ""  # an order redemption (one coupon) at SH-001 on mini_program
    order_rdm: str = ""  # the redemption of its coupon (made after ``rid``)
    claim_token: str = ""  # the campaign's shareable claim token
    conflict: str = ""  # an open offline conflict at SH-001 (``redeemed`` synced again)
    staff_id: str = ""  # a staff member at SH-001 (issue 15)

    def params(self) -> dict[str, str]:
        return {
            "code": self.code,
            "template_id": self.tpl,
            "redemption_id": self.rid,
            "event_type": "coupon.redeemed",
            "subscription_id": self.sub,
            "delivery_id": self.dlv,
            # POS formats: the native one, on its harmless dry run
            "connector": "pos.native",
            "operation": "validate",
            "key_id": self.spare_key,
            "campaign_id": self.campaign,
            "customer": "A-WALLET",  # a customer of merchant A only
            "token": self.token,
            "reservation_id": self.reservation,
            "order_redemption_id": self.order_rid,
            "claim_token": self.claim_token,
            "conflict_id": self.conflict,
            "store": "SH-001",
            "staff_id": self.staff_id,
        }

    def call(
        self, method: str, route: str, auth: dict[str, str], params: dict[str, str] | None = None
    ) -> httpx.Response:
        """One operation with a valid body, as if the caller were entitled to it."""
        headers = {**auth, "Idempotency-Key": new_key()}
        body = BODIES.get((method, route))
        if method == "POST" and route in ("/v1/redemptions/validate", POS_ROUTE):
            body = {**BODIES[("POST", "/v1/redemptions")], "code": self.spare}
        elif method == "POST" and route == "/v1/redemptions":
            body = {**BODIES[("POST", "/v1/redemptions")], "code": self.code}
        elif method == "POST" and route == "/v1/reservations":
            body = {**BODIES[("POST", route)], "codes": [self.free]}  # held by the first
        elif method == "POST" and route == "/v1/orders/redeem":
            body = {**BODIES[("POST", route)], "codes": [self.order_code]}
        elif method == "POST" and route == "/v1/campaigns":
            body = campaign_body(self.tpl, self.clock)
        if method == "POST" and route == "/v1/scan":  # a photo of the spare coupon's code
            from tests.services.scan_images import encode, qr

            photo = encode(qr(self.spare), "image/png")
            headers["Content-Type"] = "image/png"
            query = {"validate": "true", "amount": "12800", "store": "SH-001"}
            return self.client.post(route, content=photo, headers=headers, params=query)
        values = params or self.params()
        if route.endswith("/release") and params is None:
            values = {**values, "reservation_id": self.releasable}
        path = fill(route, values)
        query = QUERIES.get((method, route))
        return self.client.request(method, path, json=body, headers=headers, params=query)

    def coupon_status(self, code: str) -> str:
        with self.db.connect() as conn:
            return str(
                conn.execute(select(coupons.c.status).where(coupons.c.code == code)).scalar()
            )

    def snapshot(self) -> tuple[Any, ...]:
        """All of merchant A that an unauthorised or out-of-scope call could change."""
        mine = self.m.id
        c, t, r = coupons.c, coupon_templates.c, redemptions.c
        with self.db.connect() as conn:
            return (
                conn.execute(
                    select(c.code, c.status, c.customer_id)
                    .where(c.merchant_id == mine)
                    .order_by(c.code)
                ).all(),
                conn.execute(
                    select(t.id, t.status, t.issued_count)
                    .where(t.merchant_id == mine)
                    .order_by(t.id)
                ).all(),
                conn.execute(
                    select(r.id, r.status).where(r.merchant_id == mine).order_by(r.id)
                ).all(),
                conn.execute(
                    select(func.count()).select_from(stores).where(stores.c.merchant_id == mine)
                ).scalar(),
            )


POS_ROUTE = "/v1/pos/{connector:str}/{operation:str}"
# the query parameters an operation requires (its valid call)
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/v1/analytics/breakdown"): {"by": "store"},
}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/keys"): {"role": "analyst", "name": "matrix", "stores": ["SH-001"]},
    ("POST", "/v1/sales"): {"orders": [{"order_id": "W-SALE-1", "store": "SH-001",
                                          "channel": "pos", "amount": 5600,
                                          "occurred_at": "2026-11-25T08:00:00Z"}]},
    ("POST", "/v1/redemptions"): {"store": "SH-001", "order": order()},
    ("POST", "/v1/redemptions/{redemption_id:str}/reversal"): {"reason": "refund"},
    ("POST", "/v1/coupons/{code:str}/claim"): {"customer": "M0001"},
    ("POST", "/v1/coupons/{code:str}/void"): {"reason": "mistake"},
    ("POST", "/v1/templates"): {
        "name": "new",
        "benefit": {"kind": "threshold", "threshold": 100, "discount": 10},
        "validity": {"type": "relative", "days": 3},
    },
    ("POST", "/v1/templates/{template_id:str}/coupons"): {"count": 2},
    ("POST", "/v1/stores"): {"code": "NEW-1", "name": "New"},
    ("POST", "/v1/products"): {"sku": "TEA-9", "name": "Tea", "category": "drinks", "price": 900},
    ("POST", "/v1/customers"): {"external_id": "C-NEW"},
    ("POST", "/v1/subscriptions"): {
        "connector": "webhook",
        "config": {"url": "https://receiver.example/new", "secret": "whsec_" + "QUJDRA" * 4},
        "events": ["*"],
    },
    ("PATCH", "/v1/subscriptions/{subscription_id:str}"): {"description": "changed"},
    ("POST", "/v1/campaigns/{campaign_id:str}/claims"): {"customer": "M0001"},
    # the wallet quote of merchant A's customer, on a channel the matrix's app key has
    ("POST", "/v1/orders/quote"): {
        "store": "SH-001", "channel": "mini_program", "customer": "A-WALLET", "order": order(),
    },
    ("POST", "/v1/campaigns/by-token/{claim_token:str}/claims"): {"customer": "M0002"},
    ("POST", "/v1/coupons/{code:str}/transfers"): {"customer": "M0001"},
    # the offer is M0001's: M0002 accepts it (again: the same answer), M0001 cancels it
    ("POST", "/v1/transfers/{token:str}/accept"): {"customer": "M0002"},
    ("POST", "/v1/transfers/{token:str}/cancel"): {"customer": "M0001"},
    ("POST", "/v1/reservations"): {"store": "SH-001", "channel": "mini_program",
                                   "order": order()},
    # an app key acts on its channels only (the matrix's: mini_program, h5)
    ("POST", "/v1/orders/redeem"): {"store": "SH-001", "channel": "mini_program", "order": order()},
    ("POST", "/v1/orders/{order_redemption_id:str}/reversal"): {"reason": "refund"},
    # an item of a code no merchant has: refused alone, nothing changes
    ("POST", "/v1/redemptions/sync"): {"terminal_id": "T-01", "items": [
        {"idempotency_key": "sync-1", "code": "ABCD-EFGH-JKLM-N", "order": order(),
         "occurred_at": "2026-01-01T00:00:00Z"}]},
    ("POST", "/v1/conflicts/{conflict_id:str}/settle"): {"settlement": "refunded"},
    ("POST", "/v1/stores/{store:str}/staff"): {"name": "Han Meimei"},
}


def campaign_body(tpl: str, clock: Clock) -> dict[str, Any]:
    def iso(dt: Any) -> str:
        return str(dt.isoformat()).replace("+00:00", "Z")

    return {"template_id": tpl, "channels": ["mini_program", "h5"],
            "starts_at": iso(clock.now - timedelta(hours=1)),
            "ends_at": iso(clock.now + timedelta(days=7)), "total": 100, "per_customer": 10}


def make_world(client: Any, db: Engine, merchant: Merchant, clock: Clock) -> World:
    """Merchant A with a template, three coupons (one redeemed at SH-001), a webhook
    subscription with its delivery, and a spare API key."""
    tpl = make_template(db, merchant, clock.now)
    code, spare, redeemed, order_code, in_order = issue(db, merchant, tpl, clock.now, count=5)
    sub = client.post(
        "/v1/subscriptions",
        json={
            "connector": "webhook",
            "config": {"url": "https://receiver.example/a", "secret": "whsec_" + "QUJDRA" * 4},
            "events": ["coupon.redeemed"],
        },
        headers=merchant.auth(),
    )
    assert sub.status_code == 201, sub.text
    r = client.post(
        "/v1/redemptions",
        json={"code": redeemed, "store": "SH-001", "order": order()},
        headers={**merchant.auth(), "Idempotency-Key": "setup"},
    )
    assert r.status_code == 201, r.text
    [dlv] = client.get("/v1/deliveries", headers=merchant.auth()).json()["items"]
    spare_key = keys.create_key(db, merchant.id, "analyst", clock.now, name="spare").id
    r_cust = client.post("/v1/customers", json={"external_id": "A-WALLET"},
                         headers=merchant.auth())
    assert r_cust.status_code == 201, r_cust.text
    camp = client.post("/v1/campaigns", json=campaign_body(tpl, clock), headers=merchant.auth())
    assert camp.status_code == 201, camp.text
    gift = make_template(db, merchant, clock.now, {**THRESHOLD_SPEC, "transferable": True},
                         name="gift")
    [given] = issue(db, merchant, gift, clock.now, customers=["M0001"])
    offer = client.post(f"/v1/coupons/{given}/transfers", json={"customer": "M0001"},
                        headers={**merchant.auth(), "Idempotency-Key": "setup-offer"})
    assert offer.status_code == 201, offer.text
    r_order = client.post(
        "/v1/orders/redeem",
        json={**BODIES[("POST", "/v1/orders/redeem")], "codes": [in_order]},
        headers={**merchant.auth(), "Idempotency-Key": "setup-order"},
    )
    assert r_order.status_code == 201, r_order.text
    *held, free = issue(db, merchant, tpl, clock.now, count=3)
    holds = [
        client.post(
            "/v1/reservations",
            json={**BODIES[("POST", "/v1/reservations")], "codes": [c]},
            headers={**merchant.auth(), "Idempotency-Key": f"setup-hold-{c}"},
        )
        for c in held
    ]
    assert all(h.status_code == 201 for h in holds), [h.text for h in holds]
    synced = client.post(
        "/v1/redemptions/sync",
        json={"items": [{"idempotency_key": "setup-sync", "code": redeemed, "order": order(),
                         "occurred_at": (clock.now - timedelta(minutes=1)).isoformat()}]},
        headers=merchant.auth(merchant.store_keys["SH-001"]),
    )
    assert synced.status_code == 200, synced.text
    conflict = synced.json()["items"][0]["conflict_id"]
    assert conflict, synced.text
    clerk = staff.create_staff(db, merchant.principal, "SH-001", "Li Lei", clock.now)
    return World(
        client, db, merchant, clock, tpl, code, spare, redeemed, r.json()["redemption_id"],
        sub.json()["id"], dlv["id"], spare_key, camp.json()["id"], offer.json()["token"],
        holds[0].json()["id"], holds[1].json()["id"], free, order_code,
        r_order.json()["order_redemption_id"], r_order.json()["coupons"][0]["redemption_id"],
        camp.json()["claim_token"], conflict, clerk["id"],
    )

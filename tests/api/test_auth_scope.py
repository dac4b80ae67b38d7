"""Authentication and scoping, through the HTTP API (both backends).

* every operation of the app (read from its routes) answers 401 ``unauthorized``
  without a valid key, and changes nothing;
* store keys act only at their own store and never reach admin endpoints;
* one merchant's keys never see or touch another merchant's data.
"""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from hub.db.schema import api_keys
from hub.services import keys
from tests.api.world import (
    IGNORED_METHODS,
    OPEN_PATHS,
    POS_ROUTE,
    World,
    assert_problem,
    new_key,
    operations,
    public_operations,
)
from tests.conftest import issue, make_merchant, make_template, order

# --- every operation needs a key --------------------------------------------------------------


def test_operations_are_the_published_api(client) -> None:
    """The routes iterated below are exactly the operations of the OpenAPI document."""
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    documented = {
        (method.upper(), path)
        for path, item in r.json()["paths"].items()
        for method in item
        if method.upper() not in IGNORED_METHODS and not path.startswith(OPEN_PATHS)
    }
    routed = {(m, re.sub(r"\{(\w+):\w+\}", r"{\1}", p)) for m, p in operations(client.app)}
    assert routed == documented - public_operations()
    assert public_operations() <= documented  # a staff sign-in: the code is the credential
    assert ("POST", "/v1/redemptions") in routed and len(routed) >= 15


def test_open_paths_need_no_key(client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/schema/openapi.json").status_code == 200


CREDENTIALS = [
    "none",
    "empty",
    "scheme only",
    "blank token",
    "basic",
    "right key, wrong scheme",
    "key without scheme",
    "not a key",
    "too long",
    "unknown key id",
    "wrong secret",
    "extra part",
    "revoked key",
    "expired key",
    "key in another header",
]


def bad_credentials(world: World, name: str) -> dict[str, str]:
    admin = world.m.admin_key
    prefix, key_id, secret = admin.split(".")
    wrong_secret = secret[:-1] + ("x" if secret[-1] != "x" else "y")
    if name == "revoked key":
        revoked = keys.create_key(world.db, world.m.id, "admin", world.clock.now)
        with world.db.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == revoked.id)
                .values(revoked_at=world.clock.now)
            )
        return {"Authorization": f"Bearer {revoked.token}"}
    if name == "expired key":
        expiring = keys.create_key(
            world.db, world.m.id, "admin", world.clock.now,
            expires_at=world.clock.now + timedelta(minutes=5),
        )
        world.clock.advance(minutes=5)  # expired exactly now
        return {"Authorization": f"Bearer {expiring.token}"}
    return {
        "none": {},
        "empty": {"Authorization": ""},
        "scheme only": {"Authorization": "Bearer"},
        "blank token": {"Authorization": "Bearer    "},
        "basic": {"Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()},
        "right key, wrong scheme": {"Authorization": f"Token {admin}"},
        "key without scheme": {"Authorization": admin},
        "not a key": {"Authorization": "Bearer not-a-key"},
        "too long": {"Authorization": "Bearer " + "k" * 500},
        "unknown key id": {"Authorization": f"Bearer {prefix}.key_{'0' * 26}.{secret}"},
        "wrong secret": {"Authorization": f"Bearer {prefix}.{key_id}.{wrong_secret}"},
        "extra part": {"Authorization": f"Bearer {admin}.x"},
        "key in another header": {"X-API-Key": admin},
    }[name]


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_every_operation_refuses_a_bad_or_missing_key(world: World, credential: str) -> None:
    before = world.snapshot()
    auth = bad_credentials(world, credential)
    ops = operations(world.client.app)
    failures = []
    for method, route in ops:
        r = world.call(method, route, auth)
        try:
            assert_problem(r, 401, "unauthorized", f"{method} {route}")
            assert r.headers["www-authenticate"].lower().startswith("bearer")
        except (AssertionError, KeyError) as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)
    assert world.snapshot() == before


def test_the_right_key_opens_every_operation(world: World) -> None:
    """Control for the test above: the admin key (scheme in any case) is never refused."""
    for method, route in operations(world.client.app):
        r = world.call(method, route, {"Authorization": f"bearer {world.m.admin_key}"})
        assert r.status_code not in (401, 403), f"{method} {route}: {r.text[:200]}"
        assert r.status_code < 500, f"{method} {route}: {r.text[:200]}"


# --- store keys -------------------------------------------------------------------------------

STORE_OPERATIONS = {
    ("GET", "/v1/merchant"),
    ("GET", "/v1/stores"),
    ("GET", "/v1/products"),
    ("GET", "/v1/templates"),
    ("GET", "/v1/templates/{template_id:str}"),
    ("GET", "/v1/coupons/{code:str}"),
    ("POST", "/v1/redemptions"),
    ("POST", "/v1/redemptions/validate"),
    ("POST", "/v1/redemptions/{redemption_id:str}/reversal"),
    ("GET", "/v1/redemptions"),
    ("POST", "/v1/orders/quote"),
    ("GET", "/v1/events/schemas"),
    ("GET", "/v1/events/schemas/{event_type:str}"),
    ("POST", POS_ROUTE),
    ("POST", "/v1/scan"),
    ("POST", "/v1/reservations"),
    ("GET", "/v1/reservations/{reservation_id:str}"),
    ("POST", "/v1/reservations/{reservation_id:str}/confirm"),
    ("POST", "/v1/reservations/{reservation_id:str}/release"),
    ("POST", "/v1/orders/redeem"),
    ("GET", "/v1/orders/{order_redemption_id:str}"),
    ("POST", "/v1/orders/{order_redemption_id:str}/reversal"),
    # offline redemption: the till's keys document, a coupon's token and QR code
    ("GET", "/v1/offline/keys"),
    ("GET", "/v1/coupons/{code:str}/token"),
    ("GET", "/v1/coupons/{code:str}/qr.svg"),
    ("GET", "/v1/coupons/{code:str}/qr.png"),
    ("POST", "/v1/redemptions/sync"),
    ("GET", "/v1/conflicts"),
    ("GET", "/v1/conflicts/{conflict_id:str}"),
    # the dashboard: which of its panels the key may read
    ("GET", "/v1/dashboard/access"),
    # staff on a phone: the store's staff, and sign-in codes for them (the manager's till)
    ("GET", "/v1/stores/{store:str}/staff"),
    ("GET", "/v1/staff/{staff_id:str}"),
    ("POST", "/v1/staff/{staff_id:str}/sign-in-codes"),
    ("GET", "/v1/staff/me"),
    ("DELETE", "/v1/staff/sessions/current"),
}
# A staff session's own routes: a store key has no session there (404 not_found).
SESSION_ONLY = {("GET", "/v1/staff/me"), ("DELETE", "/v1/staff/sessions/current")}
# Paths whose parameter names public information (an event type), not a merchant's record.
# A store code is the caller's own name for a store (B has an SH-001 of its own too).
PUBLIC_PARAM_ROUTES = {"/v1/events/schemas/{event_type:str}", "/v1/stores/{store:str}/staff"}


def test_store_keys_cannot_call_admin_endpoints(world: World) -> None:
    ops = set(operations(world.client.app))
    assert ops >= STORE_OPERATIONS
    admin_only = ops - STORE_OPERATIONS
    assert ("POST", "/v1/templates") in admin_only and ("GET", "/v1/customers") in admin_only
    key = world.m.auth(world.m.store_keys["SH-001"])
    before = world.snapshot()
    failures = []
    for method, route in sorted(admin_only):
        r = world.call(method, route, key)
        try:
            assert_problem(r, 403, "forbidden", f"{method} {route}")
        except (AssertionError, KeyError) as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)
    assert world.snapshot() == before
    for method, route in sorted(STORE_OPERATIONS):
        r = world.call(method, route, key)
        if (method, route) in SESSION_ONLY:
            assert_problem(r, 404, "not_found", f"{method} {route}")
            continue
        assert r.status_code < 400, f"{method} {route}: {r.text[:200]}"


def test_store_key_redeems_only_at_its_store(world: World) -> None:
    key = world.m.auth(world.m.store_keys["SH-001"])

    def redeem(code: str, store: str | None, path: str = "/v1/redemptions") -> httpx.Response:
        body = {"code": code, "store": store, "order": order()}
        return world.client.post(path, json=body, headers={**key, "Idempotency-Key": new_key()})

    r = redeem(world.code, "SH-002")
    assert_problem(r, 403, "store_forbidden")
    assert "SH-001" in r.json()["detail"] and "SH-002" in r.json()["detail"]
    assert_problem(redeem(world.code, "BJ-001", "/v1/redemptions/validate"), 403, "store_forbidden")
    assert_problem(redeem(world.code, "XX-999"), 403, "store_forbidden")
    assert world.coupon_status(world.code) == "issued"
    r = redeem(world.code, None)
    assert r.status_code == 201 and r.json()["store"] == "SH-001"
    r = redeem(world.spare, "SH-001")
    assert r.status_code == 201 and r.json()["store"] == "SH-001"


def test_store_key_sees_only_its_stores_redemptions(world: World) -> None:
    m = world.m
    [c2, c3] = issue(world.db, m, world.tpl, world.clock.now, count=2)
    rid_sh001 = world.rid  # redeemed by the admin key at SH-001
    ids = {}
    for code, store in ((c2, "SH-002"), (c3, "BJ-001")):
        r = world.client.post(
            "/v1/redemptions",
            json={"code": code, "order": order()},
            headers={**m.auth(m.store_keys[store]), "Idempotency-Key": new_key()},
        )
        assert r.status_code == 201, r.text
        ids[store] = r.json()["redemption_id"]

    def listed(key: str | None, query: str = "") -> list[str]:
        r = world.client.get(f"/v1/redemptions{query}", headers=m.auth(key))
        assert r.status_code == 200, r.text
        return [i["redemption_id"] for i in r.json()["items"]]

    sh001 = m.store_keys["SH-001"]
    assert sorted(listed(sh001)) == sorted([world.order_rdm, rid_sh001])
    assert listed(sh001, "?store=SH-002") == []
    assert listed(sh001, "?store=BJ-001&limit=200") == []
    assert sorted(listed(sh001, "?store=SH-001")) == sorted([world.order_rdm, rid_sh001])
    assert listed(m.store_keys["SH-002"]) == [ids["SH-002"]]
    assert listed(m.store_keys["BJ-001"], "?store=SH-001") == []
    assert sorted(listed(None)) == sorted(
        [world.order_rdm, rid_sh001, ids["SH-002"], ids["BJ-001"]]
    )
    assert listed(None, "?store=SH-002") == [ids["SH-002"]]
    # paging through with a store key still shows only its own store
    r = world.client.get("/v1/redemptions?limit=1", headers=m.auth(m.store_keys["SH-002"]))
    assert [i["store"] for i in r.json()["items"]] == ["SH-002"]
    assert r.json()["next_cursor"] is None


def test_store_key_cannot_reverse_another_stores_redemption(world: World) -> None:
    m = world.m

    def reverse(store: str) -> httpx.Response:
        return world.client.post(
            f"/v1/redemptions/{world.rid}/reversal",
            headers={**m.auth(m.store_keys[store]), "Idempotency-Key": new_key()},
        )

    assert_problem(reverse("SH-002"), 404, "redemption_not_found")
    assert_problem(reverse("BJ-001"), 404, "redemption_not_found")
    assert world.coupon_status(world.redeemed) == "redeemed"
    items = world.client.get("/v1/redemptions", headers=m.auth()).json()["items"]
    assert sorted((i["redemption_id"], i["status"]) for i in items) == sorted(
        [(world.order_rdm, "redeemed"), (world.rid, "redeemed")]
    )
    r = reverse("SH-001")
    assert r.status_code == 201 and r.json()["status"] == "reversed"
    assert world.coupon_status(world.redeemed) == "issued"


def test_store_key_lists_only_its_own_store(world: World) -> None:
    m = world.m
    r = world.client.get("/v1/stores", headers=m.auth(m.store_keys["SH-002"]))
    assert [s["code"] for s in r.json()["items"]] == ["SH-002"]
    r = world.client.get("/v1/stores", headers=m.auth())
    assert [s["code"] for s in r.json()["items"]] == ["BJ-001", "SH-001", "SH-002"]


# --- merchants never see each other ----------------------------------------------------------


def test_no_endpoint_leaks_another_merchants_data(world: World) -> None:
    a, client = world.m, world.client
    for path, body in (
        ("/v1/stores", {"code": "A-ONLY", "name": "A's own"}),
        ("/v1/products", {"sku": "A-SKU", "name": "A's tea", "category": "a-cat", "price": 1}),
        ("/v1/customers", {"external_id": "A-CUST", "name": "A's customer"}),
    ):
        assert client.post(path, json=body, headers=a.auth()).status_code == 201
    r = client.post(
        "/v1/redemptions",
        json={"code": world.spare, "store": "SH-001", "order": order()},
        headers={**a.auth(), "Idempotency-Key": "shared-key"},
    )
    assert r.status_code == 201
    rid_spare = r.json()["redemption_id"]
    secrets = {
        a.id,
        world.tpl,
        world.code,
        world.spare,
        world.redeemed,
        world.rid,
        rid_spare,
        world.sub,
        world.dlv,
        "A-ONLY",
        "A-SKU",
        "a-cat",
        "A-CUST",
        "A's",
    }
    before = world.snapshot()

    b = make_merchant(world.db, world.clock.now, name="Other")
    b_tpl = make_template(world.db, b, world.clock.now)

    def b_post(path: str, body: Any = None, key: str | None = None) -> httpx.Response:
        headers = {**b.auth(), "Idempotency-Key": key or new_key()}
        return client.post(path, json=body, headers=headers)

    # 1. A's coupons, templates and redemptions do not exist for B
    for code in (world.code, world.redeemed):
        assert_problem(client.get(f"/v1/coupons/{code}", headers=b.auth()), 404, "coupon_not_found")
        body = {"code": code, "store": "SH-001", "order": order()}
        assert_problem(b_post("/v1/redemptions", body), 404, "coupon_not_found")
        assert_problem(b_post("/v1/redemptions/validate", body), 404, "coupon_not_found")
        r = b_post(f"/v1/coupons/{code}/claim", {"customer": "M0001"})
        assert_problem(r, 404, "coupon_not_found")
        assert_problem(b_post(f"/v1/coupons/{code}/void"), 404, "coupon_not_found")
    r = client.get(f"/v1/templates/{world.tpl}", headers=b.auth())
    assert_problem(r, 404, "template_not_found")
    r = b_post(f"/v1/templates/{world.tpl}/coupons", {"count": 1})
    assert_problem(r, 404, "template_not_found")
    assert_problem(b_post(f"/v1/templates/{world.tpl}/pause"), 404, "template_not_found")
    assert_problem(b_post(f"/v1/templates/{world.tpl}/resume"), 404, "template_not_found")
    for rid in (world.rid, rid_spare):
        assert_problem(b_post(f"/v1/redemptions/{rid}/reversal"), 404, "redemption_not_found")
    # A's customers and stores do not exist for B either
    r = b_post(f"/v1/templates/{b_tpl}/coupons", {"customers": ["A-CUST"]})
    assert_problem(r, 422, "customer_not_found")
    r = b_post("/v1/redemptions", {"code": world.code, "store": "A-ONLY", "order": order()})
    assert_problem(r, 422, "store_not_found")
    # the same Idempotency-Key as A's request is B's own: no replay of A's response
    body = {"code": world.spare, "store": "SH-001", "order": order()}
    r = b_post("/v1/redemptions", body, key="shared-key")
    assert_problem(r, 404, "coupon_not_found")
    assert "Idempotent-Replayed" not in r.headers

    # 2. B's lists hold only B's own rows, whatever the filters
    def items(path: str, auth: dict[str, str] | None = None) -> list[dict[str, Any]]:
        r = client.get(path, headers=auth or b.auth())
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    assert items("/v1/redemptions") == []
    assert items(f"/v1/redemptions?template={world.tpl}") == []
    assert items("/v1/redemptions?store=SH-001") == []
    assert items("/v1/redemptions", b.auth(b.store_keys["SH-001"])) == []
    assert [t["id"] for t in items("/v1/templates")] == [b_tpl]
    assert [s["code"] for s in items("/v1/stores")] == ["BJ-001", "SH-001", "SH-002"]
    assert items("/v1/products") == []
    assert [c["external_id"] for c in items("/v1/customers")] == [f"M{i:04d}" for i in range(1, 6)]
    assert client.get("/v1/merchant", headers=b.auth()).json()["id"] == b.id

    # 3. every operation (read from the app), by B's admin and store keys with A's
    #    identifiers in the path: nothing of A ever comes back
    leaks = []
    for auth in (b.auth(), b.auth(b.store_keys["SH-001"])):
        for method, route in operations(client.app):
            r = world.call(method, route, auth)
            sent = r.request.url.path + r.request.content.decode(errors="replace")
            if route == "/v1/scan":  # the photo B sent shows the code: reading it is no leak
                sent += world.spare
            if any(s in r.text for s in secrets if s not in sent):  # echoing B's input is fine
                leaks.append(f"{method} {route}: {r.status_code} {r.text[:200]}")
            # 429: by now B's admin key has looked up more unknown codes and transfer
            # tokens than the guessing guard allows; refused before anything is read
            blocked = r.status_code == 429 and r.json()["code"] == "too_many_failed_attempts"
            if (
                "{" in route
                and route not in PUBLIC_PARAM_ROUTES
                and r.status_code
                not in (
                    403,
                    404,
                )
                and not blocked
            ):
                leaks.append(f"{method} {route} answered {r.status_code}: {r.text[:200]}")
    assert not leaks, "\n".join(leaks)

    # 4. and nothing of A changed
    assert world.snapshot() == before


def test_a_merchant_may_reuse_another_merchants_codes_and_ids(world: World) -> None:
    """Uniqueness is per merchant: B creating A's store code or SKU is no conflict (and no leak)."""
    b = make_merchant(world.db, world.clock.now, name="Other", stores=("BJ-001",))
    a_auth, b_auth = world.m.auth(), b.auth()
    product = {"sku": "TEA-01", "name": "Tea", "category": "drinks", "price": 1200}
    assert world.client.post("/v1/products", json=product, headers=a_auth).status_code == 201
    assert world.client.post("/v1/products", json=product, headers=b_auth).status_code == 201
    r = world.client.post("/v1/stores", json={"code": "SH-001", "name": "B"}, headers=b_auth)
    assert r.status_code == 201
    r = world.client.post("/v1/stores", json={"code": "SH-001", "name": "again"}, headers=b_auth)
    assert_problem(r, 409, "already_exists")
    r = world.client.get("/v1/stores", headers=a_auth)
    assert [s["name"] for s in r.json()["items"] if s["code"] == "SH-001"] == ["Store SH-001"]

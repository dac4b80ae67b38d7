"""Offline redemption over HTTP (both backends): the keys document, the signing keys'
first use (raced), rotation, the offline rules, a coupon's token and QR code, and a
token presented wherever a code is (redeem, validate, look-up, POS, orders), its
refusals counted by the guessing guard."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import zxingcpp
from litestar.testing import TestClient
from PIL import Image
from sqlalchemy import Engine, func, select

from hub.api.app import create_app
from hub.db.schema import audit_log, failed_attempts, offline_signing_keys
from hub.domain.offline import parse
from hub.secrets import is_encrypted
from hub.services import keys, offline_keys
from hub.services.guard import Guard, Limits
from hub.services.settings import Settings
from hub.signing import verify
from tests.conftest import (
    THRESHOLD_SPEC,
    Clock,
    Merchant,
    issue,
    make_merchant,
    make_template,
    order,
)


def coupon(db: Engine, m: Merchant, now: Any, holder: str | None = "M0001", **spec: Any) -> str:
    tpl = make_template(db, m, now, {**THRESHOLD_SPEC, **spec})
    if holder is None:
        return issue(db, m, tpl, now)[0]
    return issue(db, m, tpl, now, customers=[holder])[0]


def token_of(client: TestClient[Any], code: str, auth: dict[str, str]) -> str:
    r = client.get(f"/v1/coupons/{code}/token", headers=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


def active_keys(db: Engine, merchant_id: str) -> list[str]:
    with db.connect() as conn:
        return list(
            conn.execute(
                select(offline_signing_keys.c.id).where(
                    offline_signing_keys.c.merchant_id == merchant_id,
                    offline_signing_keys.c.status == "active",
                )
            ).scalars()
        )


def failures(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(failed_attempts)).scalar_one())


# --- the keys document ----------------------------------------------------------------------


def test_the_keys_document_creates_the_first_key_and_lists_offline_templates(
    client, db, merchant, clock
):
    assert active_keys(db, merchant.id) == []
    online_only = make_template(db, merchant, clock.now, {**THRESHOLD_SPEC, "offline": False},
                                name="online only")
    offline_ok = make_template(db, merchant, clock.now, name="满100减20")
    store = merchant.auth(merchant.store_keys["SH-001"])  # a till fetches with its store key
    r = client.get("/v1/offline/keys", headers=store)
    assert r.status_code == 200, r.text
    doc = r.json()
    [kid] = active_keys(db, merchant.id)
    assert doc["merchant"] == merchant.id and doc["refresh_after"] == 3600
    assert doc["timezone"] == "Asia/Shanghai"  # the zone of weekday and hour rules
    [key] = doc["keys"]
    assert key == {
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
        "x": key["x"], "status": "active", "created_at": key["created_at"], "retired_at": None,
    }
    assert len(parse_b64(key["x"])) == 32
    assert doc["rules"] == {"max_count": 200, "max_discount": 200000,
                            "max_offline_seconds": 86400}
    [template] = doc["templates"]
    assert template["id"] == offline_ok != online_only and template["offline"] is True
    shown = client.get(f"/v1/templates/{offline_ok}", headers=merchant.auth()).json()
    assert template["rules"] == {k: shown[k] for k in template["rules"]}  # as the API shows
    assert set(template["rules"]) >= {"benefit", "validity", "usage", "stacking"}
    # the private key is stored encrypted, never in the clear
    with db.connect() as conn:
        stored = conn.execute(select(offline_signing_keys.c.private_key)).scalar()
    assert is_encrypted(stored)
    # a second fetch: the same key
    again = client.get("/v1/offline/keys", headers=merchant.auth()).json()
    assert again["keys"] == doc["keys"]


def parse_b64(text: str) -> bytes:
    from hub.domain.offline import unb64url

    return unb64url(text)


def test_first_use_raced_by_many_threads_makes_one_active_key(db, merchant, clock):
    """The partial unique index decides: every racer ends up with the one active key."""
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def racer() -> None:
        try:
            barrier.wait()
            offline_keys.ensure_key(db, merchant.id, clock.now)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(active_keys(db, merchant.id)) == 1


def test_tokens_raced_at_first_use_all_verify_with_the_one_key(db, merchant, clock):
    code = coupon(db, merchant, clock.now)
    barrier = threading.Barrier(4)
    made: list[str] = []

    def racer() -> None:
        barrier.wait()
        token, _kid = offline_keys.sign_token(
            db, merchant.id, code=code, template_id="tpl_X", holder=None,
            valid_from=clock.now, valid_until=clock.now + timedelta(days=1),
            offline_allowed=True, now=clock.now,
        )  # fmt: skip
        made.append(token)

    threads = [threading.Thread(target=racer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [kid] = active_keys(db, merchant.id)
    public = offline_keys.public_keys(db, merchant.id)
    assert len(made) == 4 and all(verify(t, public).kid == kid for t in made)


# --- rotation ---------------------------------------------------------------------------------


def test_rotation_keeps_old_tokens_redeemable_and_publishes_the_old_key_until_its_coupons_expire(
    client, db, merchant, clock
):
    code = coupon(db, merchant, clock.now)  # valid 30 days
    old_token = token_of(client, code, merchant.auth())
    old_kid = parse(old_token).claims.kid
    rotated = offline_keys.rotate(db, merchant.principal, clock.now)
    assert rotated["retired"] == old_kid != rotated["kid"]
    doc = client.get("/v1/offline/keys", headers=merchant.auth()).json()
    assert [(k["kid"], k["status"]) for k in doc["keys"]] == [
        (rotated["kid"], "active"), (old_kid, "retired")]
    assert doc["keys"][1]["retired_at"] is not None
    # a new token is signed with the new key; the old token still redeems
    assert parse(token_of(client, code, merchant.auth())).claims.kid == rotated["kid"]
    r = client.post("/v1/redemptions", json={"code": old_token, "store": "SH-001",
                                              "order": order()},
                    headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    assert r.json()["code"] == code
    # every coupon issued before the retirement has expired: the old key is dropped
    clock.advance(days=31)
    doc = client.get("/v1/offline/keys", headers=merchant.auth()).json()
    assert [k["kid"] for k in doc["keys"]] == [rotated["kid"]]
    # the command line lists every key, published or not
    assert [k["kid"] for k in offline_keys.list_keys(db, merchant.principal)] == [
        rotated["kid"], old_kid]
    with db.connect() as conn:
        actions = list(conn.execute(select(audit_log.c.action)).scalars())
    assert "offline_key.rotated" in actions


def test_rotations_raced_leave_one_active_key(db, merchant, clock):
    offline_keys.ensure_key(db, merchant.id, clock.now)
    barrier = threading.Barrier(3)
    done: list[dict[str, Any]] = []

    def racer() -> None:
        barrier.wait()
        done.append(offline_keys.rotate(db, merchant.principal, clock.now))

    threads = [threading.Thread(target=racer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 3
    [active] = active_keys(db, merchant.id)
    assert active in {d["kid"] for d in done}
    assert len(offline_keys.list_keys(db, merchant.principal)) == 4


def test_a_key_rotated_in_another_process_is_found_by_its_kid(client, db, merchant, clock):
    """The public-key cache re-reads the merchant's keys for a kid it does not know."""
    code = coupon(db, merchant, clock.now)
    token_of(client, code, merchant.auth())  # caches the first key
    offline_keys.rotate(db, merchant.principal, clock.now)
    offline_keys._public[merchant.id] = {"ok_STALE": "x"}  # as another process still has it
    new = token_of(client, code, merchant.auth())
    r = client.get(f"/v1/coupons/{new}", headers=merchant.auth())
    assert r.status_code == 200 and r.json()["code"] == code


# --- the offline rules ---------------------------------------------------------------------------


def test_offline_rules_put_is_idempotent_audited_and_served(client, db, merchant):
    headers = {**merchant.auth(), "Idempotency-Key": "rules-1"}
    r = client.put("/v1/offline/rules", json={"max_count": 50, "max_discount": 10000},
                   headers=headers)
    assert r.status_code == 200, r.text
    expected = {"max_count": 50, "max_discount": 10000, "max_offline_seconds": 86400}
    assert r.json() == {"rules": expected}
    again = client.put("/v1/offline/rules", json={"max_count": 50, "max_discount": 10000},
                       headers=headers)
    assert again.content == r.content and again.headers["Idempotent-Replayed"] == "true"
    problem(client.put("/v1/offline/rules", json={"max_count": 51}, headers=headers),
            422, "idempotency_key_reused")
    assert client.get("/v1/offline/keys", headers=merchant.auth()).json()["rules"] == expected
    with db.connect() as conn:
        rows = conn.execute(select(audit_log.c.action, audit_log.c.details)).all()
    [entry] = [r for r in rows if r.action == "offline_rules.updated"]
    assert entry.details["max_count"] == 50
    # refusals
    problem(client.put("/v1/offline/rules", json={"max_count": -1},
                       headers={**merchant.auth(), "Idempotency-Key": "rules-2"}),
            422, "invalid_request")
    problem(client.put("/v1/offline/rules", json={"max_hours": 3},
                       headers={**merchant.auth(), "Idempotency-Key": "rules-3"}),
            422, "invalid_request")
    problem(client.put("/v1/offline/rules", json={"max_count": 3}, headers=merchant.auth()),
            400, "idempotency_key_required")
    store = merchant.auth(merchant.store_keys["SH-001"])
    problem(client.put("/v1/offline/rules", json={"max_count": 3},
                       headers={**store, "Idempotency-Key": "rules-4"}), 403, "forbidden")


# --- a coupon's token ----------------------------------------------------------------------------


def test_the_token_carries_the_coupons_claims(client, db, merchant, clock):
    code = coupon(db, merchant, clock.now)
    r = client.get(f"/v1/coupons/{code}/token", headers=merchant.auth())
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    claims = verify(body["token"], offline_keys.public_keys(db, merchant.id))
    detail = client.get(f"/v1/coupons/{code}", headers=merchant.auth()).json()
    assert claims.code == body["code"] == code and claims.kid == body["kid"]
    assert claims.merchant_id == merchant.id and claims.holder == "M0001"
    assert claims.template_id == detail["template"]["id"]
    assert claims.issued_at == clock.now.replace(microsecond=0)
    assert claims.valid_until.isoformat().startswith(detail["valid_until"][:19])
    assert body["expires_at"] == detail["valid_until"]
    assert claims.offline_allowed is True and len(body["token"]) <= 1024


def test_a_template_offline_false_gives_x_0_and_still_redeems_online(client, db, merchant, clock):
    code = coupon(db, merchant, clock.now, offline=False)
    token = token_of(client, code, merchant.auth())
    assert parse(token).claims.offline_allowed is False
    assert '"x":0' in __import__("base64").urlsafe_b64decode(
        token.split(".")[1] + "==").decode()
    r = client.post("/v1/redemptions", json={"code": token, "store": "SH-001", "order": order()},
                    headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text


def test_no_token_for_a_coupon_that_cannot_be_redeemed(client, db, merchant, clock):
    code = coupon(db, merchant, clock.now)
    r = client.post("/v1/redemptions", json={"code": code, "store": "SH-001", "order": order()},
                    headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201
    problem(client.get(f"/v1/coupons/{code}/token", headers=merchant.auth()),
            409, "coupon_already_redeemed")


def test_token_roles(client, db, merchant, clock):
    code = coupon(db, merchant, clock.now, holder="M0001")
    app = merchant.auth(keys.create_key(db, merchant.id, "app", clock.now).token)
    analyst = merchant.auth(keys.create_key(db, merchant.id, "analyst", clock.now).token)
    integrator = merchant.auth(keys.create_key(db, merchant.id, "integrator", clock.now).token)
    store = merchant.auth(merchant.store_keys["BJ-001"])
    for auth in (merchant.auth(), store, analyst):
        assert client.get(f"/v1/coupons/{code}/token", headers=auth).status_code == 200
    problem(client.get(f"/v1/coupons/{code}/token", headers=integrator), 403, "forbidden")
    # an app key names the customer, and gets that customer's coupons only
    problem(client.get(f"/v1/coupons/{code}/token", headers=app), 422, "invalid_request")
    assert client.get(f"/v1/coupons/{code}/token?customer=M0001", headers=app).status_code == 200
    problem(client.get(f"/v1/coupons/{code}/token?customer=M0002", headers=app),
            404, "coupon_not_found")
    unassigned = coupon(db, merchant, clock.now, holder=None)
    problem(client.get(f"/v1/coupons/{unassigned}/token?customer=M0001", headers=app),
            404, "coupon_not_found")
    # never another merchant's coupon, whatever the role
    other = make_merchant(db, clock.now, name="Other Tea")
    theirs = coupon(db, other, clock.now, holder="M0001")
    for auth in (merchant.auth(), store):
        problem(client.get(f"/v1/coupons/{theirs}/token", headers=auth), 404, "coupon_not_found")
    problem(client.get(f"/v1/coupons/{theirs}/token?customer=M0001", headers=app),
            404, "coupon_not_found")
    problem(client.get(f"/v1/coupons/{theirs}/qr.png?customer=M0001", headers=app),
            404, "coupon_not_found")


# --- QR codes -------------------------------------------------------------------------------------


def test_qr_codes_decode_to_the_token(client, db, merchant, clock):
    code = coupon(db, merchant, clock.now)
    token = token_of(client, code, merchant.auth())
    png = client.get(f"/v1/coupons/{code}/qr.png", headers=merchant.auth())
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["cache-control"] == "no-store"
    [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert found.text == token and found.format == zxingcpp.BarcodeFormat.QRCode
    svg = client.get(f"/v1/coupons/{code}/qr.svg?scale=10&error=h&border=2",
                     headers=merchant.auth())
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.headers["cache-control"] == "no-store" and b"<svg" in svg.content
    # the SVG's matrix is the token's QR code at level H (segno makes the same matrix)
    import segno

    expected = segno.make_qr(token, error="h", boost_error=False, mode="byte")
    out = io.BytesIO()
    expected.save(out, kind="svg", scale=10, border=2, xmldecl=True)
    assert svg.content == out.getvalue()
    # a token as the code in the path: the same coupon's QR
    again = client.get(f"/v1/coupons/{token}/qr.png", headers=merchant.auth())
    [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(again.content)))
    assert found.text == token


@pytest.mark.parametrize(
    "query",
    ["scale=0", "scale=41", "scale=x", "scale=1e3", "error=Z", "border=11", "border=-1",
     "scale=%EF%BC%95"],
)
def test_qr_parameters_are_checked(client, db, merchant, clock, query):
    code = coupon(db, merchant, clock.now)
    body = problem(client.get(f"/v1/coupons/{code}/qr.png?{query}", headers=merchant.auth()),
                   422, "invalid_request")
    assert body["field"] == query.split("=")[0]


def test_wallet_items_link_their_qr_codes(client, db, merchant, clock):
    code = coupon(db, merchant, clock.now, holder="M0001")
    app = merchant.auth(keys.create_key(db, merchant.id, "app", clock.now).token)
    [item] = client.get("/v1/customers/M0001/coupons", headers=app).json()["items"]
    assert item["qr_svg"] == f"/v1/coupons/{code}/qr.svg?customer=M0001"
    assert item["qr_png"] == f"/v1/coupons/{code}/qr.png?customer=M0001"
    r = client.get(item["qr_png"], headers=app)  # the app follows the link as it is
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


# --- a token wherever a code is ---------------------------------------------------------------


def test_a_token_redeems_validates_looks_up_and_quotes_as_its_code(client, db, merchant, clock):
    store = merchant.auth(merchant.store_keys["SH-001"])
    code = coupon(db, merchant, clock.now)
    token = token_of(client, code, merchant.auth())
    assert client.get(f"/v1/coupons/{token}", headers=store).json()["code"] == code
    v = client.post("/v1/redemptions/validate",
                    json={"code": token, "store": "SH-001", "order": order()}, headers=store)
    assert v.status_code == 200 and v.json()["code"] == code
    q = client.post("/v1/orders/quote", json={"codes": [token], "order": order()}, headers=store)
    assert q.status_code == 200, q.text
    assert [c["code"] for c in q.json()["candidates"]] == [code]
    r = client.post("/v1/pos/pos.native/redeem", json={"code": token, "order": order()},
                    headers={**store, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201 and r.json()["code"] == code
    # the same coupon again, by its code: redeemed already
    problem(client.post("/v1/redemptions", json={"code": code, "order": order()},
                        headers={**store, "Idempotency-Key": uuid.uuid4().hex}),
            409, "coupon_already_redeemed")
    assert failures(db) == 0  # nothing was a guess


def test_orders_redeem_takes_tokens(client, db, merchant, clock):
    store = merchant.auth(merchant.store_keys["SH-001"])
    code = coupon(db, merchant, clock.now)
    token = token_of(client, code, merchant.auth())
    r = client.post("/v1/orders/redeem",
                    json={"codes": [token], "channel": "pos", "order": order()},
                    headers={**store, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    # the token and its code on one order are one coupon twice
    other = coupon(db, merchant, clock.now)
    both = [token_of(client, other, merchant.auth()), other]
    r = client.post("/v1/orders/redeem", json={"codes": both, "channel": "pos", "order": order()},
                    headers={**store, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 422 and r.json()["code"] == "duplicate_coupon"


def test_a_token_is_judged_at_the_sales_time(client, db, merchant, clock):
    """An offline sale inside the window, sent after the window closed: accepted. (A
    one-day window ends at the merchant's local midnight: run near it, the window is
    short, so the sale is put halfway through it, not at a fixed time before its end.)"""
    issued = clock.now
    code = coupon(db, merchant, issued, validity={"type": "relative", "days": 1})
    token = token_of(client, code, merchant.auth())
    until = parse(token).claims.valid_until
    sold = (issued + (until - issued) / 2).replace(microsecond=0)
    clock.now = until + timedelta(minutes=30)
    late = client.post(
        "/v1/redemptions",
        json={"code": token, "store": "SH-001", "order": order(),
              "occurred_at": sold.isoformat()},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert late.status_code == 201, late.text
    assert late.json()["redeemed_at"].startswith(sold.isoformat()[:19])


@pytest.fixture
def guarded(db: Engine, clock: Clock) -> Any:
    guard = Guard(Limits(max_per_key=6, max_per_address=0))
    with TestClient(create_app(db, Settings(guard=guard), clock=clock)) as c:
        yield c


def tampered(token: str) -> str:
    """``token`` with one claim changed (the code), its signature kept."""
    import base64
    import json

    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["c"] = claims["c"][::-1]
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return f"{head}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{sig}"


def test_every_token_refusal_on_every_route_is_counted_and_throttled(guarded, db, merchant, clock):
    store = merchant.auth(merchant.store_keys["SH-001"])
    code = coupon(db, merchant, clock.now)
    token = token_of(guarded, code, merchant.auth())
    other = make_merchant(db, clock.now, name="Other Tea")
    foreign = token_of(guarded, coupon(db, other, clock.now), other.auth())
    bad = [
        ("token_malformed", "HT1.bm90LWpzb24.AAAA"),
        ("token_signature_invalid", tampered(token)),
        ("token_unknown_key", _unknown_key_token(merchant.id, code, clock)),
        ("token_wrong_merchant", foreign),
    ]

    def redeem(t: str) -> httpx.Response:
        return guarded.post("/v1/redemptions", json={"code": t, "order": order()},
                            headers={**store, "Idempotency-Key": uuid.uuid4().hex})

    def validate(t: str) -> httpx.Response:
        return guarded.post("/v1/redemptions/validate", json={"code": t, "order": order()},
                            headers=store)

    def look_up(t: str) -> httpx.Response:
        return guarded.get(f"/v1/coupons/{t}", headers=store)

    def pos(t: str) -> httpx.Response:
        return guarded.post("/v1/pos/pos.native/redeem", json={"code": t, "order": order()},
                            headers={**store, "Idempotency-Key": uuid.uuid4().hex})

    routes = (redeem, validate, look_up, pos)
    for seen in range(1, 7):  # the key's limit is 6
        expected, t = bad[seen % len(bad)]
        route = routes[seen % len(routes)]
        r = route(t)
        assert r.status_code == 422 and r.json()["code"] == expected, (route, r.text)
        assert failures(db) == seen
    # one over the key's limit: even the genuine token is refused
    r = redeem(token)
    assert r.status_code == 429 and r.json()["code"] == "too_many_failed_attempts"
    assert client_status(db, code) == "issued"  # the tampered and genuine tokens never redeemed


def _unknown_key_token(merchant_id: str, code: str, clock: Clock) -> str:
    from hub.domain.offline import TokenClaims
    from hub.signing import generate_keypair, sign

    private, _ = generate_keypair()
    claims = TokenClaims("ok_NOSUCHKEY", merchant_id, code, "tpl_X", None,
                         clock.now - timedelta(days=1), clock.now + timedelta(days=1), clock.now)
    return sign(private, claims)


def client_status(db: Engine, code: str) -> str:
    from hub.db.schema import coupons

    with db.connect() as conn:
        return str(conn.execute(select(coupons.c.status).where(coupons.c.code == code)).scalar())


@pytest.mark.parametrize("route", ["redeem", "validate", "look_up", "pos", "orders"])
def test_each_refusal_code_on_each_route(client, db, merchant, clock, route):
    """token_malformed, _signature_invalid, _unknown_key, _wrong_merchant and _expired on
    redeem, validate, the look-up, the POS route and the multi-coupon order."""
    store = merchant.auth(merchant.store_keys["SH-001"])
    code = coupon(db, merchant, clock.now)
    token = token_of(client, code, merchant.auth())
    other = make_merchant(db, clock.now, name="Other Tea")
    foreign = token_of(client, coupon(db, other, clock.now), other.auth())
    short = coupon(db, merchant, clock.now, validity={"type": "relative", "days": 1})
    expiring = token_of(client, short, merchant.auth())
    cases = {
        "token_malformed": "HT1.bm90LWpzb24.AAAA",
        "token_signature_invalid": tampered(token),
        "token_unknown_key": _unknown_key_token(merchant.id, code, clock),
        "token_wrong_merchant": foreign,
    }

    def send(t: str) -> httpx.Response:
        key = {"Idempotency-Key": uuid.uuid4().hex}
        if route == "redeem":
            return client.post("/v1/redemptions", json={"code": t, "order": order()},
                               headers={**store, **key})
        if route == "validate":
            return client.post("/v1/redemptions/validate", json={"code": t, "order": order()},
                               headers=store)
        if route == "look_up":
            return client.get(f"/v1/coupons/{t}", headers=store)
        if route == "pos":
            return client.post("/v1/pos/pos.native/validate",
                               json={"code": t, "order": order()}, headers=store)
        return client.post("/v1/orders/redeem",
                           json={"codes": [t], "channel": "pos", "order": order()},
                           headers={**store, **key})

    for expected, t in cases.items():
        before = failures(db)
        r = send(t)
        assert r.status_code == 422 and r.json()["code"] == expected, r.text
        assert failures(db) > before  # counted as a wrong code is
    clock.advance(days=2)
    r = send(expiring)
    assert r.status_code == 422 and r.json()["code"] == "token_expired", r.text
    with db.connect() as conn:  # (older failures left the window and were pruned)
        assert conn.execute(
            select(func.count()).where(failed_attempts.c.at == clock.now)
        ).scalar_one() >= 1
    assert client_status(db, code) == "issued"

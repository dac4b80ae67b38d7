"""Idempotency-Key semantics (README "Present → verify → done"; docs/architecture.md,
"The redeem, step by step"), on both backends.

Same key + same request → the first response byte for byte with
``Idempotent-Replayed: true``; same key + other request → 422; keys are scoped to the
API key, kept at least 24 h, and written in the same transaction as the redeem so a
crash leaves nothing behind.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select, text

from hub.db.schema import coupons, idempotency_keys, outbox_events, redemptions
from hub.services import outbox
from hub.services.housekeeping import purge_idempotency
from hub.services.idempotency import _lock_id
from tests.conftest import issue, make_template, order

REPLAYED = "Idempotent-Replayed"


def post_redeem(client, merchant, body: dict[str, Any], key: str | None, token: str | None = None):
    headers = merchant.auth(token)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/v1/redemptions", json=body, headers=headers)


def post_reversal(client, merchant, rid: str, key: str | None, reason: str | None = "refund"):
    headers = merchant.auth()
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {} if reason is None else {"reason": reason}
    return client.post(f"/v1/redemptions/{rid}/reversal", json=body, headers=headers)


def redeem_body(code: str, amount: int = 12800, **extra: Any) -> dict[str, Any]:
    return {"code": code, "store": "SH-001", "order": order(amount), **extra}


def count(db, table, *where) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def coupon_status(db, code: str) -> str:
    with db.connect() as conn:
        return conn.execute(select(coupons.c.status).where(coupons.c.code == code)).scalar_one()


@pytest.fixture
def codes(db, merchant, clock) -> list[str]:
    tpl = make_template(db, merchant, clock.now)
    return issue(db, merchant, tpl, clock.now, count=3)


# --- replay ---------------------------------------------------------------------------


def test_replay_is_byte_identical_and_marked(client, db, merchant, codes):
    body = redeem_body(codes[0])
    first = post_redeem(client, merchant, body, "k-replay")
    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    assert first.json()["status"] == "redeemed"
    for _ in range(2):
        again = post_redeem(client, merchant, body, "k-replay")
        assert again.status_code == 201
        assert again.headers[REPLAYED] == "true"
        assert again.content == first.content
        assert again.headers["content-type"] == first.headers["content-type"]
    # The replay did not redeem anything a second time.
    assert count(db, redemptions) == 1
    assert count(db, outbox_events, outbox_events.c.type == "coupon.redeemed") == 1


def test_error_outcomes_replay_too(client, db, merchant, codes):
    cheap = redeem_body(codes[0], amount=5000)  # below the 100 yuan threshold
    first = post_redeem(client, merchant, cheap, "k-threshold")
    assert first.status_code == 422, first.text
    assert first.headers["content-type"].startswith("application/problem+json")
    assert first.json()["code"] == "threshold_not_met"
    assert REPLAYED not in first.headers
    again = post_redeem(client, merchant, cheap, "k-threshold")
    assert (again.status_code, again.headers[REPLAYED]) == (422, "true")
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert coupon_status(db, codes[0]) == "issued"
    # The stored refusal belongs to that key only; a new key with a big order redeems.
    ok = post_redeem(client, merchant, redeem_body(codes[0]), "k-threshold-2")
    assert ok.status_code == 201, ok.text


def test_replay_of_already_redeemed_keeps_first_answer(client, db, merchant, codes):
    body = redeem_body(codes[0])
    assert post_redeem(client, merchant, body, "k-a").status_code == 201
    refused = post_redeem(client, merchant, body, "k-b")
    assert (refused.status_code, refused.json()["code"]) == (409, "coupon_already_redeemed")
    again = post_redeem(client, merchant, body, "k-b")
    assert (again.status_code, again.headers[REPLAYED]) == (409, "true")
    assert again.content == refused.content


# --- misuse ---------------------------------------------------------------------------


def test_same_key_different_body_is_422(client, db, merchant, codes):
    first = post_redeem(client, merchant, redeem_body(codes[0]), "k-reuse")
    assert first.status_code == 201
    for other in (
        redeem_body(codes[1]),  # another coupon
        redeem_body(codes[0], amount=12900),  # same coupon, another amount
        redeem_body(codes[0], channel="mini_program"),
    ):
        r = post_redeem(client, merchant, other, "k-reuse")
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "idempotency_key_reused"
        assert REPLAYED not in r.headers
    assert coupon_status(db, codes[1]) == "issued"
    assert count(db, redemptions) == 1
    # The stored response is untouched: the original request still replays.
    again = post_redeem(client, merchant, redeem_body(codes[0]), "k-reuse")
    assert again.content == first.content and again.headers[REPLAYED] == "true"


def test_same_key_on_another_endpoint_is_422(client, db, merchant, codes):
    r = post_redeem(client, merchant, redeem_body(codes[0]), "k-cross")
    assert r.status_code == 201
    rid = r.json()["redemption_id"]
    rev = post_reversal(client, merchant, rid, "k-cross")
    assert (rev.status_code, rev.json()["code"]) == (422, "idempotency_key_reused")
    assert count(db, redemptions, redemptions.c.status == "reversed") == 0
    assert coupon_status(db, codes[0]) == "redeemed"
    # ...and the other way round: a reversal key cannot be reused for a redeem.
    rev = post_reversal(client, merchant, rid, "k-cross-rev")
    assert rev.status_code == 201, rev.text
    r = post_redeem(client, merchant, redeem_body(codes[1]), "k-cross-rev")
    assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused")
    assert coupon_status(db, codes[1]) == "issued"


def test_missing_or_invalid_key_is_400(client, db, merchant, codes):
    r = post_redeem(client, merchant, redeem_body(codes[0]), None)
    assert (r.status_code, r.json()["code"]) == (400, "idempotency_key_required")
    r = post_redeem(client, merchant, redeem_body(codes[0]), "x" * 256)
    assert (r.status_code, r.json()["code"]) == (400, "idempotency_key_invalid")
    r = post_redeem(client, merchant, redeem_body(codes[0]), "x" * 255)
    assert r.status_code == 201, r.text


# --- scope and canonical form ---------------------------------------------------------


def test_keys_are_scoped_per_api_key(client, db, merchant, codes):
    sh1, sh2 = merchant.store_keys["SH-001"], merchant.store_keys["SH-002"]
    a = post_redeem(client, merchant, {"code": codes[0], "order": order()}, "k1", sh1)
    b = post_redeem(client, merchant, {"code": codes[1], "order": order()}, "k1", sh2)
    assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
    assert REPLAYED not in a.headers and REPLAYED not in b.headers
    assert (a.json()["store"], b.json()["store"]) == ("SH-001", "SH-002")
    assert a.json()["redemption_id"] != b.json()["redemption_id"]
    assert coupon_status(db, codes[0]) == coupon_status(db, codes[1]) == "redeemed"
    assert count(db, idempotency_keys, idempotency_keys.c.key == "k1") == 2
    # "k1" under a third API key (the admin's) is a new request there, not a replay of
    # the store's: it executes and finds the coupon already used.
    c = post_redeem(client, merchant, redeem_body(codes[0]), "k1")
    assert REPLAYED not in c.headers
    assert (c.status_code, c.json()["code"]) == (409, "coupon_already_redeemed")
    assert count(db, idempotency_keys, idempotency_keys.c.key == "k1") == 3


def test_key_order_and_whitespace_do_not_matter(client, db, merchant, codes):
    compact = json.dumps(
        {"code": codes[0], "store": "SH-001", "order": {"id": "A-1", "amount": 12800}},
        separators=(",", ":"),
    )
    shuffled = json.dumps(
        {"order": {"amount": 12800, "id": "A-1"}, "store": "SH-001", "code": codes[0]},
        indent=4,
    )
    with_default = json.dumps(  # "pos" is the default channel: the same request
        {"channel": "pos", "order": {"amount": 12800, "id": "A-1"}, "code": codes[0],
         "store": "SH-001"}
    )
    headers = {**merchant.auth(), "Idempotency-Key": "k-canon",
               "Content-Type": "application/json"}
    first = client.post("/v1/redemptions", content=compact, headers=headers)
    assert first.status_code == 201, first.text
    for raw in (shuffled, with_default):
        again = client.post("/v1/redemptions", content=raw, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers[REPLAYED] == "true"
        assert again.content == first.content
    assert count(db, redemptions) == 1


# --- retention ------------------------------------------------------------------------


def test_keys_are_kept_24h_then_purged(client, db, merchant, codes, clock):
    body = redeem_body(codes[0])
    first = post_redeem(client, merchant, body, "k-ttl")
    assert first.status_code == 201
    clock.advance(hours=23)
    again = post_redeem(client, merchant, body, "k-ttl")
    assert (again.status_code, again.headers[REPLAYED]) == (201, "true")
    assert again.content == first.content
    assert purge_idempotency(db, clock.now) == 0  # nothing is due yet
    assert count(db, idempotency_keys, idempotency_keys.c.key == "k-ttl") == 1

    clock.advance(hours=2)  # 25 h after the first request
    assert purge_idempotency(db, clock.now) >= 1
    assert count(db, idempotency_keys, idempotency_keys.c.key == "k-ttl") == 0
    fresh = post_redeem(client, merchant, body, "k-ttl")
    assert REPLAYED not in fresh.headers
    assert (fresh.status_code, fresh.json()["code"]) == (409, "coupon_already_redeemed")
    assert fresh.json()["redeemed_at"] == first.json()["redeemed_at"]
    assert count(db, redemptions) == 1


def test_expired_record_is_replaced_by_a_new_request(client, db, merchant, codes, clock):
    first = post_redeem(client, merchant, redeem_body(codes[0]), "k-old")
    assert first.status_code == 201
    clock.advance(hours=25)
    # Within 24 h this would be 422 (other body); the expired record no longer counts.
    other = post_redeem(client, merchant, redeem_body(codes[1]), "k-old")
    assert other.status_code == 201, other.text
    assert REPLAYED not in other.headers
    assert other.json()["code"] == codes[1]
    again = post_redeem(client, merchant, redeem_body(codes[1]), "k-old")
    assert (again.headers[REPLAYED], again.content) == ("true", other.content)
    with db.connect() as conn:
        rows = conn.execute(
            select(idempotency_keys.c.created_at, idempotency_keys.c.expires_at).where(
                idempotency_keys.c.key == "k-old"
            )
        ).all()
    assert len(rows) == 1
    assert rows[0].created_at == clock.now  # the new record, not the old one
    assert rows[0].expires_at > clock.now


# --- reversal -------------------------------------------------------------------------


def test_reversal_has_the_same_semantics(client, db, merchant, codes):
    r = post_redeem(client, merchant, redeem_body(codes[0]), "k-red")
    rid = r.json()["redemption_id"]
    missing = post_reversal(client, merchant, rid, None)
    assert (missing.status_code, missing.json()["code"]) == (400, "idempotency_key_required")
    assert coupon_status(db, codes[0]) == "redeemed"

    first = post_reversal(client, merchant, rid, "k-rev")
    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    assert (first.json()["status"], first.json()["coupon_status"]) == ("reversed", "issued")
    again = post_reversal(client, merchant, rid, "k-rev")
    assert (again.status_code, again.headers[REPLAYED]) == (201, "true")
    assert again.content == first.content

    other = post_reversal(client, merchant, rid, "k-rev", reason="another reason")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    no_body = post_reversal(client, merchant, rid, "k-rev", reason=None)
    assert (no_body.status_code, no_body.json()["code"]) == (422, "idempotency_key_reused")

    second = post_reversal(client, merchant, rid, "k-rev-2")
    assert (second.status_code, second.json()["code"]) == (409, "redemption_already_reversed")
    replayed = post_reversal(client, merchant, rid, "k-rev-2")
    assert (replayed.headers[REPLAYED], replayed.content) == ("true", second.content)
    assert count(db, outbox_events, outbox_events.c.type == "coupon.redemption_reversed") == 1


# --- crash safety ---------------------------------------------------------------------


def test_crash_mid_transaction_leaves_nothing(client, db, merchant, codes, monkeypatch):
    real_append = outbox.append
    calls = {"n": 0}

    def flaky_append(conn, rows):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk on fire: secret-internal-detail")
        return real_append(conn, rows)

    monkeypatch.setattr(outbox, "append", flaky_append)
    body = redeem_body(codes[0])
    crashed = post_redeem(client, merchant, body, "k-crash")
    assert crashed.status_code == 500
    assert crashed.headers["content-type"].startswith("application/problem+json")
    doc = crashed.json()
    assert (doc["code"], doc["status"]) == ("internal_error", 500)
    for leak in ("Traceback", "RuntimeError", "secret-internal-detail", "File \""):
        assert leak not in crashed.text
    assert calls["n"] == 1

    assert count(db, redemptions) == 0
    assert coupon_status(db, codes[0]) == "issued"
    assert count(db, idempotency_keys) == 0
    assert count(db, outbox_events, outbox_events.c.type == "coupon.redeemed") == 0

    retry = post_redeem(client, merchant, body, "k-crash")
    assert retry.status_code == 201, retry.text
    assert REPLAYED not in retry.headers
    assert calls["n"] == 2
    assert coupon_status(db, codes[0]) == "redeemed"
    assert count(db, redemptions) == 1
    assert count(db, outbox_events, outbox_events.c.type == "coupon.redeemed") == 1


# --- in flight (PostgreSQL) -----------------------------------------------------------


def test_in_flight_key_is_409_on_postgresql(client, db, merchant, codes):
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: a duplicate waits and replays, never 409")
    key_id = merchant.admin_key.split(".")[1]
    body = redeem_body(codes[0])
    with db.connect() as holder:
        tx = holder.begin()
        got = holder.execute(
            text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _lock_id(key_id, "k-busy")}
        ).scalar_one()
        assert got is True
        busy = post_redeem(client, merchant, body, "k-busy")
        assert (busy.status_code, busy.json()["code"]) == (409, "idempotency_key_in_flight")
        assert REPLAYED not in busy.headers
        # Another key of the same API key is not blocked by it.
        free = post_redeem(client, merchant, redeem_body(codes[1]), "k-free")
        assert free.status_code == 201, free.text
        tx.rollback()  # ends the transaction, releasing the lock
    assert coupon_status(db, codes[0]) == "issued"
    assert count(db, idempotency_keys, idempotency_keys.c.key == "k-busy") == 0
    done = post_redeem(client, merchant, body, "k-busy")
    assert done.status_code == 201, done.text
    assert REPLAYED not in done.headers
    assert coupon_status(db, codes[0]) == "redeemed"

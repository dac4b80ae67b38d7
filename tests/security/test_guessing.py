"""The guessing defence (hub/services/guard.py), through the HTTP API on both backends.

Failed look-ups (``coupon_not_found``, ``code_malformed``) are counted per API key and
per client address in a sliding window; over the limit every look-up, validate and
redeem of that key or address answers 429 ``too_many_failed_attempts`` with
``Retry-After``, one ``code_enumeration_suspected`` alert is raised per block, other
keys carry on, and the state is shared by every API process through the database.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, func, select

from hub.api.app import create_app
from hub.db.schema import failed_attempts, outbox_events, throttle_blocks
from hub.domain.cart import Order
from hub.domain.codes import ALPHABET, generate_code
from hub.domain.errors import DomainError
from hub.events import validate_event
from hub.services import outbox
from hub.services import redeem as svc
from hub.services.commands import RedeemCommand
from hub.services.guard import Guard, Limits
from hub.services.problems import PROBLEM_MEDIA_TYPE, status_for
from hub.services.settings import Settings
from tests.conftest import Clock, Merchant, issue, make_template, order

WINDOW = 600


@contextmanager
def app_client(db: Engine, clock: Clock, **limits: Any) -> Iterator[TestClient[Any]]:
    """An API instance with its own guard (and so its own block cache)."""
    app = create_app(db, Settings(guard=Guard(Limits(**limits))), clock=clock)
    with TestClient(app) as c:
        yield c


def wrong_check(code: str) -> str:
    return code[:-1] + next(c for c in ALPHABET if c != code[-1])


def look_up(c: TestClient[Any], code: str, auth: dict[str, str], **headers: str) -> httpx.Response:
    return c.get(f"/v1/coupons/{code}", headers={**auth, **headers})


def validate(c: TestClient[Any], code: str, auth: dict[str, str], **headers: str) -> httpx.Response:
    body = {"code": code, "order": order()}
    return c.post("/v1/redemptions/validate", json=body, headers={**auth, **headers})


def redeem(
    c: TestClient[Any], code: str, auth: dict[str, str], key: str | None = None, **headers: str
) -> httpx.Response:
    body = {"code": code, "order": order()}
    h = {**auth, "Idempotency-Key": key or uuid.uuid4().hex, **headers}
    return c.post("/v1/redemptions", json=body, headers=h)


def assert_blocked(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body: dict[str, Any] = r.json()
    assert body["code"] == "too_many_failed_attempts"
    assert int(r.headers["Retry-After"]) == body["retry_after"] > 0
    return body


def enumeration_alerts(db: Engine) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(outbox_events).where(outbox_events.c.type == "alert.raised")
        ).all()
    out = []
    for row in rows:
        if row.data["alert"] == "code_enumeration_suspected":
            envelope = outbox.envelope(
                id=row.id,
                type=row.type,
                merchant_id=row.merchant_id,
                occurred_at=row.occurred_at,
                recorded_at=row.recorded_at,
                data=row.data,
            )
            validate_event(envelope)  # alerts are published events: they match the schema
            out.append(row.data)
    return out


def count_rows(db: Engine, table: Any) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_thousand_wrong_codes_are_throttled_and_alerted(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    valid = issue(db, merchant, tpl, clock.now, count=4)
    guesser = merchant.auth(merchant.store_keys["SH-001"])
    honest = merchant.auth(merchant.store_keys["SH-002"])
    with app_client(db, clock, window=timedelta(seconds=WINDOW)) as c:
        statuses: Counter[int] = Counter()
        retry_afters = set()
        for i in range(1000):
            code = generate_code()  # well formed, almost surely nobody's
            r = (redeem, validate, look_up)[i % 3](c, code, guesser)
            statuses[r.status_code] += 1
            if i < 20:
                assert r.status_code == 404, r.text
                assert r.json()["code"] == "coupon_not_found"
            else:
                retry_afters.add(assert_blocked(r)["retry_after"])
            if i == 500:  # meanwhile another key of the merchant redeems as usual
                assert redeem(c, valid[0], honest).status_code == 201
                assert look_up(c, generate_code(), honest).status_code == 404
        assert statuses == {404: 20, 429: 980}
        assert retry_afters == {WINDOW}  # the fake clock stands still

        # a valid code from the blocked key is refused too (a guesser learns nothing)
        assert_blocked(redeem(c, valid[1], guesser))
        assert_blocked(validate(c, valid[1], guesser))
        assert c.get(f"/v1/coupons/{valid[1]}", headers=merchant.auth()).json()["status"] == (
            "issued"
        )

        # exactly one alert, for the key, listed by GET /v1/alerts
        [alert] = enumeration_alerts(db)
        assert alert["severity"] == "warning"
        details = alert["details"]
        assert details["scope"] == "key" and details["store"] == "SH-001"
        assert details["failures"] == 20 and details["window_seconds"] == WINDOW
        assert details["address"] == "testclient"
        listed = c.get("/v1/alerts?alert=code_enumeration_suspected", headers=merchant.auth())
        assert listed.status_code == 200, listed.text
        [item] = listed.json()["items"]
        assert item["alert"] == "code_enumeration_suspected"
        assert item["details"]["key_id"] == details["key_id"]
        assert item["message"] == alert["message"] and "20" in item["message"]

        # blocked requests are not stored: the counting tables stay small
        # (20 of the key's and 20 of the address's, plus the honest key's one miss, counted
        # for that key and for the same test-client address)
        assert count_rows(db, failed_attempts) == 20 + 20 + 2
        assert count_rows(db, throttle_blocks) == 1

        # the window passes: the key works again
        clock.advance(seconds=WINDOW)
        assert redeem(c, valid[2], guesser).status_code == 201
        assert look_up(c, generate_code(), guesser).status_code == 404
    assert len(enumeration_alerts(db)) == 1


def test_the_window_slides_and_a_new_block_raises_a_new_alert(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    auth = merchant.auth(merchant.store_keys["SH-001"])
    with app_client(db, clock, max_per_key=3, window=timedelta(seconds=100)) as c:
        for _ in range(2):
            assert look_up(c, generate_code(), auth).status_code == 404
        clock.advance(seconds=60)
        assert look_up(c, generate_code(), auth).status_code == 404  # 3 in 100 s: blocked
        body = assert_blocked(look_up(c, generate_code(), auth))
        assert body["retry_after"] == 40  # until the first two leave the window
        clock.advance(seconds=40)
        # two of the three failures left the window: two more are answered, then blocked
        # until the one at +60 s leaves it
        assert look_up(c, generate_code(), auth).status_code == 404
        assert look_up(c, generate_code(), auth).status_code == 404
        assert assert_blocked(look_up(c, generate_code(), auth))["retry_after"] == 60
    assert len(enumeration_alerts(db)) == 2


def test_failures_are_counted_per_address_across_keys(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    """Issue 9 item 5: an address block stops the keys that failed from it, not the
    clean keys (or the admin's reads) behind the same address."""
    tpl = make_template(db, merchant, clock.now)
    valid = issue(db, merchant, tpl, clock.now, count=3)
    a, b, c3 = (merchant.auth(merchant.store_keys[s]) for s in ("SH-001", "SH-002", "BJ-001"))
    admin = merchant.auth()
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    shop = {"X-Forwarded-For": "198.51.100.9, 10.0.0.2"}  # the client, then our inner proxy
    limits: dict[str, Any] = {
        "max_per_key": 5,
        "max_per_address": 8,
        "trusted_proxies": ("testclient", "10.0.0.0/8"),
    }
    with app_client(db, clock, **limits) as c:
        for auth in (a, b):
            for _ in range(4):  # below each key's limit of 5
                assert validate(c, generate_code(), auth, **attacker).status_code == 404
        # 8 failures from 203.0.113.7: the address is blocked for the keys that failed there
        assert_blocked(look_up(c, valid[0], a, **attacker))
        assert_blocked(redeem(c, valid[0], b, **attacker))
        # a key with a clean record behind the same address carries on
        assert look_up(c, valid[0], c3, **attacker).status_code == 200
        assert validate(c, valid[0], c3, **attacker).status_code == 200
        assert redeem(c, valid[0], c3, **attacker).status_code == 201
        # and the admin: reads, and its own work
        assert look_up(c, valid[1], admin, **attacker).status_code == 200
        assert look_up(c, generate_code(), admin, **attacker).status_code == 404  # a typo
        assert look_up(c, valid[1], admin, **attacker).status_code == 200  # reads: never
        # the same failed keys from another address are not blocked (their counts 4 < 5)
        assert look_up(c, valid[1], a, **shop).status_code == 200
        assert validate(c, valid[1], b, **shop).status_code == 200
        # a clean key that starts guessing at the blocked address: its first wrong code
        # is answered 429 (not 404), and from then on it is blocked there like the others
        assert_blocked(look_up(c, generate_code(), c3, **attacker))
        assert_blocked(look_up(c, valid[2], c3, **attacker))
        assert look_up(c, valid[2], c3, **shop).status_code == 200
    [alert] = enumeration_alerts(db)
    assert alert["details"]["scope"] == "address"
    assert alert["details"]["address"] == "203.0.113.7"
    assert alert["details"]["failures"] == 8


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    auth = merchant.auth(merchant.store_keys["SH-001"])
    with app_client(db, clock, max_per_key=0, max_per_address=3) as c:
        for i in range(3):  # a client cannot escape the count by inventing addresses
            r = look_up(c, generate_code(), auth, **{"X-Forwarded-For": f"192.0.2.{i}"})
            assert r.status_code == 404
        assert_blocked(look_up(c, generate_code(), auth, **{"X-Forwarded-For": "192.0.2.99"}))
    [alert] = enumeration_alerts(db)
    assert alert["details"]["address"] == "testclient"


def test_malformed_codes_count(db: Engine, merchant: Merchant, clock: Clock) -> None:
    auth = merchant.auth(merchant.store_keys["SH-001"])
    with app_client(db, clock, max_per_key=3) as c:
        tries = [
            redeem(c, wrong_check(generate_code()), auth),
            validate(c, "NOT-A-CODE", auth),
            look_up(c, wrong_check(generate_code()), auth),
        ]
        for r in tries:
            assert r.status_code == 422 and r.json()["code"] == "code_malformed", r.text
        assert_blocked(validate(c, generate_code(), auth))
    assert len(enumeration_alerts(db)) == 1


def test_other_refusals_do_not_count(db: Engine, merchant: Merchant, clock: Clock) -> None:
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    auth = merchant.auth(merchant.store_keys["SH-001"])
    with app_client(db, clock, max_per_key=2) as c:
        for _ in range(5):  # threshold_not_met: the code exists; this is no guessing
            body = {"code": code, "order": order(amount=100)}
            r = c.post("/v1/redemptions/validate", json=body, headers=auth)
            assert r.json()["code"] == "threshold_not_met"
        assert validate(c, code, auth).status_code == 200
    assert count_rows(db, failed_attempts) == 0


def test_a_replayed_stored_refusal_is_not_a_new_failure(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    [valid] = issue(db, merchant, tpl, clock.now)
    auth = merchant.auth(merchant.store_keys["SH-001"])
    unknown = generate_code()
    with app_client(db, clock, max_per_key=3) as c:
        first = redeem(c, unknown, auth, key="till-7-retry")
        assert first.status_code == 404
        for _ in range(10):  # the till retries the same request: the answer is replayed
            again = redeem(c, unknown, auth, key="till-7-retry")
            assert again.status_code == 404
            assert again.headers["Idempotent-Replayed"] == "true"
            assert again.content == first.content
        assert redeem(c, valid, auth).status_code == 201
    with db.connect() as conn:
        scopes = conn.execute(select(failed_attempts.c.scope)).scalars().all()
    assert len(scopes) == 2  # one failure: the key's row and the address's row
    assert enumeration_alerts(db) == []


def test_a_block_is_never_stored_under_the_idempotency_key(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    tpl = make_template(db, merchant, clock.now)
    [valid] = issue(db, merchant, tpl, clock.now)
    auth = merchant.auth(merchant.store_keys["SH-001"])
    with app_client(db, clock, max_per_key=1, window=timedelta(seconds=60)) as c:
        assert look_up(c, generate_code(), auth).status_code == 404
        assert_blocked(redeem(c, valid, auth, key="sale-42"))
        clock.advance(seconds=60)
        r = redeem(c, valid, auth, key="sale-42")  # the retry after the block runs afresh
        assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers


def test_two_api_instances_share_the_state(db: Engine, merchant: Merchant, clock: Clock) -> None:
    tpl = make_template(db, merchant, clock.now)
    [valid] = issue(db, merchant, tpl, clock.now)
    auth = merchant.auth(merchant.store_keys["SH-001"])
    limits: dict[str, Any] = {"max_per_key": 4, "cache_seconds": 0.2}
    with app_client(db, clock, **limits) as one, app_client(db, clock, **limits) as two:
        assert validate(two, valid, auth).status_code == 200  # two caches "not blocked"
        for i in range(4):  # failures through both instances add up; the last one's is one
            assert look_up((two, one)[i % 2], generate_code(), auth).status_code == 404
        assert_blocked(look_up(one, valid, auth))  # the instance that blocked: at once
        time.sleep(0.25)  # the other: once its cache entry is older than cache_seconds
        assert_blocked(validate(two, valid, auth))
        assert_blocked(redeem(two, valid, auth))
        clock.advance(seconds=600)
        assert validate(one, valid, auth).status_code == 200
        assert redeem(two, valid, auth).status_code == 201
    assert len(enumeration_alerts(db)) == 1


def test_service_callers_without_an_address_are_counted_per_key(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    settings = Settings(guard=Guard(Limits(max_per_key=2)))
    cmd = RedeemCommand(code=generate_code(), store="SH-001", channel="pos", order=Order("A", 1))
    for _ in range(2):
        with pytest.raises(DomainError) as refused:
            svc.validate(db, merchant.principal, cmd, clock.now, settings)
        assert refused.value.code == "coupon_not_found"
    with pytest.raises(DomainError) as blocked:
        svc.validate(db, merchant.principal, cmd, clock.now, settings)
    assert blocked.value.code == "too_many_failed_attempts"
    assert status_for(blocked.value.code) == 429


# --- configuration and the client address (no database) ---------------------------------


def test_limits_from_the_environment() -> None:
    limits = Limits.from_env(
        {
            "HUB_GUESS_WINDOW_SECONDS": "120",
            "HUB_GUESS_MAX_FAILURES": "5",
            "HUB_GUESS_MAX_FAILURES_PER_ADDRESS": "0",
            "HUB_REPEAT_WINDOW_SECONDS": "300",
            "HUB_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
        }
    )
    assert limits.window == timedelta(seconds=120) and limits.max_per_key == 5
    assert limits.max_per_address == 0 and limits.repeat_window == timedelta(seconds=300)
    assert limits.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert Limits.from_env({}) == Limits()
    for bad in (
        {"HUB_GUESS_WINDOW_SECONDS": "0"},
        {"HUB_GUESS_MAX_FAILURES": "-1"},
        {"HUB_GUESS_MAX_FAILURES": "many"},
        {"HUB_TRUSTED_PROXIES": "proxy.internal"},
    ):
        with pytest.raises(ValueError):
            Limits.from_env(bad)


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7", "1.2.3.4", "203.0.113.7"),  # untrusted peer: header ignored
        ("10.0.0.2", "198.51.100.9", "198.51.100.9"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.9, 10.0.0.5", "198.51.100.9"),  # spoofed left part
        ("10.0.0.2", "10.0.0.9, 10.0.0.5", "10.0.0.9"),  # only proxies: the leftmost
        ("10.0.0.2", "garbage, 10.0.0.5", "10.0.0.5"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("::ffff:10.0.0.2", None, "::ffff:a00:2"),
        (None, "1.2.3.4", None),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None, expected: str | None) -> None:
    guard = Guard(Limits(trusted_proxies=("10.0.0.0/8",)))
    assert guard.client_address(peer, forwarded) == expected

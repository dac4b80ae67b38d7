"""Offline sync (``POST /v1/redemptions/sync``) and offline conflicts, both backends.

Coupons are issued an hour before the test's now, so sales "made offline" half an hour
ago fall inside their windows."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy import exc as sa_exc

from hub.api.dto import RedeemIn
from hub.api.redemptions import REDEMPTION_OPERATIONS, to_command
from hub.api.sync import _item
from hub.db.schema import audit_log, coupons, offline_conflicts, outbox_events, redemptions
from hub.events.schemas import validate_event
from hub.services import keys, outbox
from hub.services import sync as sync_svc
from tests.conftest import Clock, Merchant, issue, make_template, order


def key() -> str:
    return uuid.uuid4().hex


def item(
    code: str, clock: Clock, *, k: str | None = None, minutes_ago: float = 30, **fields: Any
) -> dict[str, Any]:
    return {
        "idempotency_key": key() if k is None else k,
        "code": code,
        "store": "SH-001",
        "order": order(),
        "occurred_at": (clock.now - timedelta(minutes=minutes_ago)).isoformat(),
        **fields,
    }


def post_sync(
    c: TestClient[Any], auth: dict[str, str], items: list[Any], terminal: str | None = "T-01"
) -> Any:
    body: dict[str, Any] = {"items": items}
    if terminal is not None:
        body["terminal_id"] = terminal
    return c.post("/v1/redemptions/sync", json=body, headers=auth)


def sync(
    c: TestClient[Any], auth: dict[str, str], items: list[Any], terminal: str | None = "T-01"
) -> dict[str, Any]:
    r = post_sync(c, auth, items, terminal)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    assert len(out["items"]) == len(items)
    return out


def outcomes(out: dict[str, Any]) -> list[str]:
    return [i["outcome"] for i in out["items"]]


def counts(db: Engine) -> dict[str, int]:
    with db.connect() as conn:

        def n(t: Any, *where: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(t).where(*where)).scalar())

        return {
            "redemptions": n(redemptions),
            "redeemed_coupons": n(coupons, coupons.c.status == "redeemed"),
            "conflicts": n(offline_conflicts),
            "events": n(outbox_events),
            "alerts": n(outbox_events, outbox_events.c.type == "alert.raised"),
            "conflict_events": n(
                outbox_events, outbox_events.c.type == "redemption.offline_conflict"
            ),
        }


@pytest.fixture
def codes(db: Engine, merchant: Merchant, clock: Clock) -> list[str]:
    tpl = make_template(db, merchant, clock.now - timedelta(hours=1))
    return issue(db, merchant, tpl, clock.now - timedelta(hours=1), count=6)


def store(m: Merchant, code: str = "SH-001") -> dict[str, str]:
    return m.auth(m.store_keys[code])


def redeem_online(
    c: TestClient[Any], auth: dict[str, str], body: dict[str, Any], k: str | None = None
) -> Any:
    return c.post("/v1/redemptions", json=body, headers={**auth, "Idempotency-Key": k or key()})


def conflict_of(
    c: TestClient[Any],
    m: Merchant,
    clock: Clock,
    code: str,
    auth: dict[str, str] | None = None,
    at: str = "SH-001",
) -> dict[str, Any]:
    """``code`` redeemed online at SH-002, then synced from ``at``: the conflict item."""
    won = redeem_online(c, store(m, "SH-002"), {"code": code, "order": order()})
    assert won.status_code == 201, won.text
    out = sync(c, auth or store(m, at), [item(code, clock, store=at)])
    [one] = out["items"]
    assert one["outcome"] == "conflict", one
    return {**one, "won": won.json()["redemption_id"]}


# --- the sync ------------------------------------------------------------------------------


def test_items_are_redeemed_at_their_time_in_order(client, db, merchant, clock, codes):
    items = [item(c, clock, minutes_ago=40 - i) for i, c in enumerate(codes[:3])]
    items[1]["offline_discount"] = 2000
    out = sync(client, store(merchant), items)
    assert out["counts"] == {"redeemed": 3, "replayed": 0, "refused": 0, "conflict": 0}
    for sent, got in zip(items, out["items"], strict=True):
        assert got["idempotency_key"] == sent["idempotency_key"]
        assert got["status"] == 201 and got["problem"] is None and got["conflict_id"] is None
        red = got["redemption"]
        assert red["code"] == sent["code"] and red["store"] == "SH-001"
        assert red["discount"] == 2000 and red["status"] == "redeemed"
    with db.connect() as conn:
        rows = conn.execute(
            select(redemptions.c.occurred_at, redemptions.c.recorded_at).order_by(
                redemptions.c.occurred_at
            )
        ).all()
    assert [r.occurred_at for r in rows] == [
        clock.now - timedelta(minutes=40 - i) for i in range(3)
    ]
    assert all(r.recorded_at == clock.now for r in rows)


def test_a_second_sync_of_the_batch_replays_and_changes_nothing(client, db, merchant, clock, codes):
    conflicted = codes[5]
    assert (
        redeem_online(
            client, store(merchant, "SH-002"), {"code": conflicted, "order": order()}
        ).status_code
        == 201
    )
    items = [item(c, clock) for c in codes[:3]]
    items.append(item(codes[0], clock))  # the same coupon under another key: a conflict
    items.append(item(codes[4], clock, order=order(5000)))  # refused (stored: replays)
    items.append(item(conflicted, clock))  # a conflict
    items.append(item("NOTACODE", clock))  # refused before the key is claimed: judged again
    first = sync(client, store(merchant), items)
    assert outcomes(first) == ["redeemed"] * 3 + ["conflict", "refused", "conflict", "refused"]
    before = counts(db)
    assert before["conflicts"] == 2 and before["conflict_events"] == 2
    for _ in range(2):
        again = sync(client, store(merchant), items)
        assert outcomes(again) == ["replayed"] * 6 + ["refused"]
        assert again["counts"] == {"redeemed": 0, "replayed": 6, "refused": 1, "conflict": 0}
        for a, b in zip(first["items"], again["items"], strict=True):
            assert (a["status"], a["redemption"], a["problem"], a["conflict_id"]) == (
                b["status"],
                b["redemption"],
                b["problem"],
                b["conflict_id"],
            )
        assert counts(db) == before


def test_an_item_first_sent_online_replays_its_answer_and_vice_versa(
    client, db, merchant, clock, codes
):
    # online first (timed out at the till), then queued and synced with the same key
    it = item(codes[0], clock)
    online = {k: v for k, v in it.items() if k != "idempotency_key"}
    first = redeem_online(client, store(merchant), online, it["idempotency_key"])
    assert first.status_code == 201
    out = sync(client, store(merchant), [it])
    assert outcomes(out) == ["replayed"]
    assert out["items"][0]["redemption"] == first.json()
    # synced first, then the till retries online with the same key
    it2 = item(codes[1], clock)
    out = sync(client, store(merchant), [it2])
    assert outcomes(out) == ["redeemed"]
    online2 = {k: v for k, v in it2.items() if k != "idempotency_key"}
    again = redeem_online(client, store(merchant), online2, it2["idempotency_key"])
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == out["items"][0]["redemption"]
    # an offline discount is what the receipt granted: not part of the request's identity
    assert outcomes(sync(client, store(merchant), [{**it2, "offline_discount": 1}])) == ["replayed"]
    assert counts(db)["redemptions"] == 2


def test_a_conflict_is_recorded_alerted_and_emitted_once(client, db, merchant, clock, codes):
    before = counts(db)
    one = conflict_of(client, merchant, clock, codes[0])
    problem = one["problem"]
    assert one["status"] == 409 and problem["code"] == "offline_conflict"
    assert problem["status"] == 409 and problem["instance"] == "/v1/redemptions"
    assert problem["conflict_id"] == one["conflict_id"]
    assert problem["redeemed_store"] == "SH-002" and problem["redeemed_at"]
    # a key of another store does not learn the other store's redemption id
    assert "redemption_id" not in problem and one["won"] not in str(problem)
    after = counts(db)
    assert after["conflicts"] == 1
    assert after["alerts"] == before["alerts"] + 1
    assert after["conflict_events"] == 1
    assert after["redemptions"] == before["redemptions"] + 1  # the online one only
    with db.connect() as conn:
        row = conn.execute(select(offline_conflicts)).one()
        events = conn.execute(
            select(outbox_events).where(
                outbox_events.c.type.in_(["alert.raised", "redemption.offline_conflict"])
            )
        ).all()
    assert row.id == one["conflict_id"] and row.status == "open"
    assert row.store_code == "SH-001" and row.terminal_id == "T-01"
    assert row.existing_redemption_id == one["won"]
    assert row.occurred_at == clock.now - timedelta(minutes=30)
    for e in events:
        validate_event(
            outbox.envelope(
                id=e.id,
                type=e.type,
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                merchant_id=e.merchant_id,
                data=e.data,
            )
        )
    [alert] = [e for e in events if e.type == "alert.raised"]
    assert alert.data["alert"] == "offline_conflict"
    assert alert.data["details"]["conflict_id"] == one["conflict_id"]
    assert alert.store_code == "SH-001"
    [event] = [e for e in events if e.type == "redemption.offline_conflict"]
    assert event.data["redemption_id"] == one["won"] and event.data["code"] == codes[0]


def test_an_admin_key_sees_the_redemption_that_won(client, db, merchant, clock, codes):
    one = conflict_of(client, merchant, clock, codes[0], auth=merchant.auth())
    assert one["problem"]["redemption_id"] == one["won"]


def test_the_same_coupon_under_the_same_key_is_a_replay_not_a_conflict(
    client, db, merchant, clock, codes
):
    it = item(codes[0], clock)
    assert outcomes(sync(client, store(merchant), [it, it])) == ["redeemed", "replayed"]
    assert counts(db)["conflicts"] == 0


def test_too_many_items(client, db, merchant, clock, codes):
    r = post_sync(client, store(merchant), [item(codes[0], clock)] * 101)
    assert r.status_code == 422 and r.json()["code"] == "too_many_items"
    assert counts(db)["redemptions"] == 0
    assert outcomes(sync(client, store(merchant), [item("X", clock)] * 100)) == ["refused"] * 100


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"items": "x"},
        {"items": [], "extra": 1},
        {"items": None},
        {"items": [], "terminal_id": ""},
        "items",
    ],
)
def test_a_body_that_is_not_the_sync_shape_is_refused_whole(client, merchant, body):
    r = client.post("/v1/redemptions/sync", json=body, headers=store(merchant))
    assert r.status_code in (400, 422), r.text
    assert r.json()["code"] in ("invalid_request", "malformed_json")


def test_malformed_items_are_refused_alone(client, db, merchant, clock, codes):
    good = item(codes[0], clock)
    no_order = {k: v for k, v in item(codes[1], clock).items() if k != "order"}
    bad_key = item(codes[2], clock, k="")
    long_key = item(codes[3], clock, k="k" * 256)
    no_time = {k: v for k, v in item(codes[4], clock).items() if k != "occurred_at"}
    unknown = {**item(codes[5], clock), "tip": 1}
    out = sync(
        client, store(merchant), [no_order, good, bad_key, long_key, no_time, unknown, 7, "x", None]
    )
    assert outcomes(out) == ["refused", "redeemed"] + ["refused"] * 7
    got = {i: o["problem"]["code"] for i, o in enumerate(out["items"]) if o["problem"]}
    assert got == {
        0: "invalid_request",
        2: "idempotency_key_invalid",
        3: "idempotency_key_invalid",
        4: "invalid_request",
        5: "invalid_request",
        6: "invalid_request",
        7: "invalid_request",
        8: "invalid_request",
    }
    assert out["items"][0]["problem"]["errors"][0]["field"] == "items[0].order"
    assert out["items"][4]["problem"]["errors"][0]["field"] == "items[4].occurred_at"
    assert out["items"][0]["idempotency_key"] == no_order["idempotency_key"]
    assert out["items"][6]["idempotency_key"] is None
    assert counts(db)["redemptions"] == 1


def test_occurred_at_too_old_or_in_the_future(client, db, merchant, clock, codes):
    old = item(codes[0], clock, minutes_ago=8 * 24 * 60)
    future = item(codes[1], clock, minutes_ago=-60)
    out = sync(client, store(merchant), [old, future, item(codes[2], clock)])
    assert [o["problem"]["code"] for o in out["items"][:2]] == [
        "occurred_at_too_old",
        "occurred_at_in_future",
    ]
    assert outcomes(out)[2] == "redeemed"


def test_a_store_key_cannot_sync_for_another_store(client, db, merchant, clock, codes):
    out = sync(
        client, store(merchant), [item(codes[0], clock, store="SH-002"), item(codes[1], clock)]
    )
    assert outcomes(out) == ["refused", "redeemed"]
    assert out["items"][0]["problem"]["code"] == "store_forbidden"
    assert counts(db)["redemptions"] == 1


def test_other_roles_cannot_sync(client, db, merchant, clock, codes):
    analyst = keys.create_key(db, merchant.id, "analyst", clock.now).token
    r = post_sync(client, merchant.auth(analyst), [item(codes[0], clock)])
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_a_code_or_token_of_up_to_1024_characters_is_read(client, db, merchant, clock):
    out = sync(client, store(merchant), [item("A" * 1024, clock), item("A" * 1025, clock)])
    first, second = out["items"]
    assert first["outcome"] == "refused" and first["problem"]["code"] != "invalid_request"
    assert second["problem"]["code"] == "invalid_request"
    assert second["problem"]["errors"][0]["field"] == "items[1].code"


def test_a_database_failure_mid_batch_answers_what_was_done(
    client, db, merchant, clock, codes, monkeypatch
):
    real = sync_svc.svc.redeem
    calls = {"n": 0}

    def flaky(*a: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise sa_exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
        return real(*a, **kw)

    monkeypatch.setattr(sync_svc.svc, "redeem", flaky)
    items = [item(c, clock) for c in codes[:3]]
    out = sync(client, store(merchant), items)
    assert outcomes(out) == ["redeemed", "refused", "refused"]
    assert {o["status"] for o in out["items"][1:]} == {503}
    assert {o["problem"]["code"] for o in out["items"][1:]} == {"database_unavailable"}
    # the till sends the batch again: the done item replays, the rest are redeemed
    out = sync(client, store(merchant), items)
    assert outcomes(out) == ["replayed", "redeemed", "redeemed"]
    # failing on the first item: nothing done, a clean 503 for the call
    calls["n"] = 1
    r = post_sync(client, store(merchant), [item(codes[3], clock)])
    assert r.status_code == 503 and r.json()["code"] == "database_unavailable"
    assert counts(db)["redemptions"] == 3


def test_item_outcomes_are_counted_in_metrics(client, db, merchant, clock, codes):
    def seen() -> str:
        return str(client.get("/metrics").text)

    sync(client, store(merchant), [item(codes[0], clock), item("NOPE", clock)])
    text = seen()
    assert 'hub_sync_items_total{code="redeemed",outcome="redeemed"}' in text
    assert 'outcome="refused"' in text


def test_two_syncs_of_the_same_items_race_safely(db, merchant, clock, codes):
    """Two threads sync the same batch at once (PostgreSQL: truly concurrent; SQLite:
    writers take turns): each coupon is redeemed once, each conflict recorded once; a
    third sync replays every item."""
    tpl = make_template(db, merchant, clock.now - timedelta(hours=1))
    others = issue(db, merchant, tpl, clock.now - timedelta(hours=1), count=3)
    won = sync_svc.svc.redeem  # the online winner of the conflicting coupons
    p = merchant.principal
    for code in others:
        body = {"code": code, "store": "SH-002", "order": order()}
        raw = msgspec.json.encode(body)
        data = msgspec.json.decode(raw, type=RedeemIn)
        r = won(
            db,
            p,
            to_command(data),
            idempotency_key=key(),
            canonical_body=raw,
            now=clock.now,
            operation=REDEMPTION_OPERATIONS.redeem,
        )
        assert r.status == 201
    raw_items = [item(c, clock) for c in codes] + [item(c, clock) for c in others]
    parsed = [_item(i, msgspec.json.encode(x)) for i, x in enumerate(raw_items)]
    before = counts(db)
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(
            sync_svc.sync(
                db, p, "T-01", parsed, now=clock.now, operation=REDEMPTION_OPERATIONS.redeem
            )
        )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    for i in range(len(parsed)):
        pair = Counter(r["items"][i]["outcome"] for r in results)
        first = "redeemed" if i < len(codes) else "conflict"
        # one did it; the other waited while it was in flight and replayed its answer
        assert pair == {first: 1, "replayed": 1}, (i, pair)
        a, b = (r["items"][i] for r in results)
        assert (a["status"], a["problem"], a["redemption"]) == (
            b["status"],
            b["problem"],
            b["redemption"],
        )
    after = counts(db)
    assert after["redemptions"] == before["redemptions"] + len(codes)
    assert after["conflicts"] == len(others) and after["conflict_events"] == len(others)
    assert after["alerts"] == before["alerts"] + len(others)
    third = sync_svc.sync(
        db, p, "T-01", parsed, now=clock.now, operation=REDEMPTION_OPERATIONS.redeem
    )
    assert outcomes(third) == ["replayed"] * len(parsed)
    assert counts(db) == after


# --- conflicts -----------------------------------------------------------------------------


def test_list_and_get_conflicts_with_filters_privacy_and_pages(client, db, merchant, clock, codes):
    a = conflict_of(client, merchant, clock, codes[0], at="SH-001")
    clock.advance(seconds=1)
    b = conflict_of(client, merchant, clock, codes[1], at="BJ-001")
    clock.advance(seconds=1)
    c = conflict_of(client, merchant, clock, codes[2], at="SH-001")
    admin = merchant.auth()

    def ids(auth: dict[str, str], query: str = "") -> list[str]:
        r = client.get(f"/v1/conflicts{query}", headers=auth)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    assert ids(admin) == [c["conflict_id"], b["conflict_id"], a["conflict_id"]]
    assert ids(admin, "?store=BJ-001") == [b["conflict_id"]]
    assert ids(admin, "?status=settled") == []
    assert ids(admin, "?status=open&store=SH-001") == [c["conflict_id"], a["conflict_id"]]
    since = (clock.now - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert ids(admin, f"?from={since}") == [c["conflict_id"], b["conflict_id"]]
    assert ids(admin, f"?to={since}") == [a["conflict_id"]]
    # pages
    r = client.get("/v1/conflicts?limit=2", headers=admin).json()
    assert len(r["items"]) == 2 and r["next_cursor"]
    r2 = client.get(f"/v1/conflicts?limit=2&cursor={r['next_cursor']}", headers=admin).json()
    assert [x["id"] for x in r2["items"]] == [a["conflict_id"]] and r2["next_cursor"] is None
    # store keys: their own store's conflicts; the winning redemption id stays hidden
    sh = store(merchant, "SH-001")
    assert ids(sh) == [c["conflict_id"], a["conflict_id"]]
    assert ids(store(merchant, "SH-002")) == []
    got = client.get(f"/v1/conflicts/{a['conflict_id']}", headers=sh).json()
    assert got["redemption_id"] is None and got["redeemed_store"] == "SH-002"
    assert got["code"] == codes[0] and got["status"] == "open" and got["terminal_id"] == "T-01"
    full = client.get(f"/v1/conflicts/{a['conflict_id']}", headers=admin).json()
    assert full["redemption_id"] == a["won"]
    assert full["order"] == {"id": "A-1001", "amount": 12800}
    # the store where the winning redemption happened sees it
    analyst = keys.create_key(
        db, merchant.id, "analyst", clock.now, store_codes=["SH-001", "SH-002"]
    ).token
    seen = client.get(f"/v1/conflicts/{a['conflict_id']}", headers=merchant.auth(analyst))
    assert seen.json()["redemption_id"] == a["won"]
    analyst1 = keys.create_key(db, merchant.id, "analyst", clock.now, store_codes=["SH-001"]).token
    assert ids(merchant.auth(analyst1)) == [c["conflict_id"], a["conflict_id"]]
    for auth, cid in (
        (store(merchant, "SH-002"), a["conflict_id"]),
        (admin, "cfl_NOPE"),
        (admin, "x" * 300),
    ):
        r = client.get(f"/v1/conflicts/{cid}", headers=auth)
        assert r.status_code == 404 and r.json()["code"] == "conflict_not_found"
    r = client.get("/v1/conflicts?status=closed", headers=admin)
    assert r.status_code in (400, 422)


def test_settle_a_conflict(client, db, merchant, clock, codes):
    one = conflict_of(client, merchant, clock, codes[0])
    cid = one["conflict_id"]
    path = f"/v1/conflicts/{cid}/settle"
    k = key()
    body = {"settlement": "Refunded 20 yuan to the customer at SH-001."}
    r = client.post(path, json=body, headers={**merchant.auth(), "Idempotency-Key": k})
    assert r.status_code == 200, r.text
    settled = r.json()
    assert settled["status"] == "settled" and settled["settlement"] == body["settlement"]
    assert settled["settled_at"]
    again = client.post(path, json=body, headers={**merchant.auth(), "Idempotency-Key": k})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == settled
    other = client.post(path, json=body, headers={**merchant.auth(), "Idempotency-Key": key()})
    assert other.status_code == 409 and other.json()["code"] == "conflict_settled"
    for bad in ({"settlement": ""}, {"settlement": "x" * 501}, {"settlement": "   "}, {}):
        r = client.post(path, json=bad, headers={**merchant.auth(), "Idempotency-Key": key()})
        assert r.status_code == 422, (bad, r.text)
    r = client.post(path, json=body, headers=merchant.auth())
    assert r.json()["code"] == "idempotency_key_required"
    r = client.post(path, json=body, headers={**store(merchant), "Idempotency-Key": key()})
    assert r.status_code == 403
    listed = client.get("/v1/conflicts?status=settled", headers=merchant.auth()).json()
    assert [x["id"] for x in listed["items"]] == [cid]
    with db.connect() as conn:
        [event] = conn.execute(
            select(outbox_events).where(
                outbox_events.c.type == "redemption.offline_conflict_settled"
            )
        ).all()
        audited = (
            conn.execute(select(audit_log.c.action).where(audit_log.c.target_id == cid))
            .scalars()
            .all()
        )
    validate_event(
        outbox.envelope(
            id=event.id,
            type=event.type,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
            merchant_id=event.merchant_id,
            data=event.data,
        )
    )
    assert event.data["settlement"] == body["settlement"]
    assert audited == ["conflict.settled"]
    # the replay of the sync item still answers the conflict (its answer is stored)
    assert counts(db)["conflicts"] == 1

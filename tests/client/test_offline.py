"""Offline redemption on the terminal: a token is verified with the cached keys, judged
with the hub's own rules and limits, queued durably, and answered with a receipt; every
reason to refuse says so with its code. (Keys document from tests/client/conftest.py's
FakeHub until the hub serves GET /v1/offline/keys.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.client import HubClient, HubUnreachable, OfflineReceipt, OfflineRefused
from hub.client.queue import OfflineQueue
from tests.client.conftest import FAST, FakeHub, OfflineKit, order


def refused(till: HubClient, code: str, **kw: object) -> OfflineRefused:
    with pytest.raises(OfflineRefused) as info:
        till.redeem(code, kw.pop("order", order()), **kw)  # type: ignore[arg-type]
    return info.value


def test_a_token_is_redeemed_offline_and_queued(till: HubClient, kit: OfflineKit) -> None:
    r = till.redeem(kit.token("TQZB32SGKUNHV5"), order(12800))
    assert isinstance(r, OfflineReceipt) and r.offline
    assert (r.code, r.discount, r.payable, r.store, r.terminal_id) == (
        "TQZB32SGKUNHV5", 2000, 10800, "SH-001", "T-01")
    [item] = till.queued(status="pending")
    assert item.idempotency_key == r.idempotency_key
    assert item.body["occurred_at"] == r.occurred_at.isoformat().replace("+00:00", "Z")
    assert item.body["offline_discount"] == 2000 and item.body["code"].startswith("HT1.")
    tally = till.queue.tally()  # type: ignore[union-attr]
    assert (tally.count, tally.discount) == (1, 2000) and tally.since is not None


def test_every_attempt_and_the_queue_item_share_one_key(till: HubClient, kit: OfflineKit,
                                                       fake: FakeHub) -> None:
    r = till.redeem(kit.token("TQZB32SGKUNHV5"), order(), idempotency_key="intent-1")
    sent = [q for q in fake.requests if q.url.path == "/v1/redemptions"]
    assert len(sent) == FAST.attempts
    assert {q.headers["Idempotency-Key"] for q in sent} == {"intent-1"}
    assert r.idempotency_key == "intent-1"


def test_a_plain_code_cannot_be_checked_offline(till: HubClient) -> None:
    err = refused(till, "TQZB32SGKUNHV5")
    assert err.code == "offline_token_required" and isinstance(err.cause, HubUnreachable)
    assert till.queued() == []


def test_tampered_tokens_are_refused(till: HubClient, kit: OfflineKit) -> None:
    token = kit.token("TQZB32SGKUNHV5")
    head, payload, sig = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    assert refused(till, f"{head}.{flipped}.{sig}").code in (
        "token_signature_invalid", "token_malformed")
    assert refused(till, token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")).code in (
        "token_signature_invalid", "token_malformed")
    other = OfflineKit()  # another key pair under the same kid: a forgery
    assert refused(till, other.token("TQZB32SGKUNHV5")).code == "token_signature_invalid"
    assert refused(till, kit.token("TQZB32SGKUNHV5", kid="ok_unknown")).code == \
        "token_unknown_key"
    assert refused(till, "HT1.garbage").code == "token_malformed"
    assert till.queued() == []


def test_the_claims_are_judged_at_the_sale(till: HubClient, kit: OfflineKit) -> None:
    now = datetime.now(UTC)
    assert refused(till, kit.token("C1", merchant="m_other")).code == "token_wrong_merchant"
    assert refused(till, kit.token("C2", valid_until=now - timedelta(hours=1),
                                   valid_from=now - timedelta(days=2))).code == "token_expired"
    assert refused(till, kit.token("C3", valid_from=now + timedelta(hours=1))).code == \
        "coupon_not_yet_valid"


def test_templates_may_forbid_offline(till: HubClient, kit: OfflineKit, fake: FakeHub) -> None:
    assert refused(till, kit.token("C1", offline=False)).code == "offline_not_allowed"
    assert refused(till, kit.token("C2", template="tpl_absent")).code == "offline_not_allowed"


def test_the_hubs_redeem_rules_apply_offline(fake: FakeHub, kit: OfflineKit, tmp_path) -> None:
    kit.template("tpl_bj", {"benefit": {"kind": "threshold", "threshold": 5000,
                                        "discount": 500},
                            "validity": {"type": "relative", "days": 30},
                            "usage": {"stores": ["BJ-001"]}})
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport()) as till:
        till.offline_keys()
        fake.up = False
        assert refused(till, kit.token("C1"), order=order(5000)).code == "threshold_not_met"
        assert refused(till, kit.token("C2", template="tpl_bj")).code == "store_not_allowed"


def test_the_same_coupon_twice_offline_is_refused(till: HubClient, kit: OfflineKit) -> None:
    till.redeem(kit.token("TQZB32SGKUNHV5"), order(order_id="A-1"))
    err = refused(till, kit.token("TQZB32SGKUNHV5"), order=order(order_id="A-2"))
    assert err.code == "coupon_already_redeemed" and err.facts["order_id"] == "A-1"
    assert len(till.queued()) == 1


def test_the_count_limit(fake: FakeHub, kit: OfflineKit, tmp_path) -> None:
    kit.rules = {"max_count": 2, "max_discount": 200_000, "max_offline_seconds": 86_400}
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport()) as till:
        till.offline_keys()
        fake.up = False
        till.redeem(kit.token("C1"), order())
        till.redeem(kit.token("C2"), order())
        err = refused(till, kit.token("C3"))
        assert err.code == "offline_count_limit" and err.facts["max_count"] == 2
        assert "as many coupons offline as allowed" in err.message


def test_the_discount_limit(fake: FakeHub, kit: OfflineKit, tmp_path) -> None:
    kit.rules = {"max_count": 200, "max_discount": 3000, "max_offline_seconds": 86_400}
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport()) as till:
        till.offline_keys()
        fake.up = False
        till.redeem(kit.token("C1"), order())
        assert refused(till, kit.token("C2")).code == "offline_discount_limit"


def test_the_offline_duration_limit(fake: FakeHub, kit: OfflineKit, tmp_path) -> None:
    kit.rules = {"max_count": 200, "max_discount": 200_000, "max_offline_seconds": 3600}
    now = [datetime.now(UTC)]
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport(),
                   clock=lambda: now[0]) as till:
        till.offline_keys()
        fake.up = False
        till.redeem(kit.token("C1"), order())
        now[0] += timedelta(minutes=59)
        till.redeem(kit.token("C2"), order())
        now[0] += timedelta(minutes=2)
        err = refused(till, kit.token("C3"))
        assert err.code == "offline_too_long" and "connect first" in err.message


def test_limits_survive_a_restart(fake: FakeHub, kit: OfflineKit, tmp_path) -> None:
    kit.rules = {"max_count": 1, "max_discount": 200_000, "max_offline_seconds": 86_400}
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport()) as till:
        till.offline_keys()
        fake.up = False
        till.redeem(kit.token("C1"), order())
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport()) as till:
        assert refused(till, kit.token("C2")).code == "offline_count_limit"


def test_without_keys_or_queue_nothing_is_redeemed_offline(fake: FakeHub, kit: OfflineKit,
                                                           tmp_path) -> None:
    fake.up = False
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport()) as till:
        assert refused(till, kit.token("C1")).code == "offline_keys_missing"
    with HubClient("http://hub.test", "k", terminal_id="T-01", retry=FAST,
                   transport=fake.transport()) as plain, pytest.raises(HubUnreachable):
        plain.redeem(kit.token("C1"), order())


def test_an_offline_queue_needs_the_store(tmp_path) -> None:
    with pytest.raises(ValueError, match="store"):
        HubClient("http://hub.test", "k", terminal_id="T-01", offline_queue=tmp_path / "q.db")


def test_the_queue_file_is_wal_with_full_sync(tmp_path) -> None:
    q = OfflineQueue(tmp_path / "q.db")
    assert q._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert q._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    q.close()


def test_the_async_client_redeems_offline_and_syncs(fake: FakeHub, kit: OfflineKit,
                                                    tmp_path) -> None:
    import asyncio

    from hub.client import AsyncHubClient

    async def run() -> None:
        async with AsyncHubClient("http://hub.test", "k", terminal_id="T-02", store="SH-001",
                                  retry=FAST, offline_queue=tmp_path / "q.db",
                                  transport=fake.transport()) as till:
            await till.offline_keys()
            fake.up = False
            r = await till.redeem(kit.token("C1"), order())
            assert isinstance(r, OfflineReceipt) and r.terminal_id == "T-02"
            with pytest.raises(OfflineRefused) as info:
                await till.redeem("TQZB32SGKUNHV5", order())
            assert info.value.code == "offline_token_required"
            assert (await till.sync()).error is not None  # still down: stays queued
            fake.up = True
            report = await till.sync()
            assert report.complete and report.counts["redeemed"] == 1
            assert fake.redeemed == {"C1": r.idempotency_key}

    asyncio.run(run())


def test_the_keys_are_refreshed_after_an_online_call_once_stale(fake: FakeHub, kit: OfflineKit,
                                                                tmp_path) -> None:
    import httpx

    answer = {
        "redemption_id": "rd_1", "status": "redeemed", "code": "C", "store": "SH-001",
        "channel": "pos", "order_id": "A-1",
        "template": {"id": "tpl_kit", "name": "t", "kind": "threshold"}, "customer": None,
        "discount": 2000, "eligible_amount": 12800, "payable": 10800, "lines": [],
        "redeemed_at": "2026-12-04T06:00:00Z", "recorded_at": "2026-12-04T06:00:00Z"}
    fake.extra[("POST", "/v1/redemptions")] = lambda r: httpx.Response(201, json=answer)
    now = [datetime.now(UTC)]
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport(),
                   clock=lambda: now[0]) as till:
        till.offline_keys()

        def fetches() -> int:
            return sum(q.url.path == "/v1/offline/keys" for q in fake.requests)

        till.redeem("C", order())
        assert fetches() == 1  # fresh: not fetched again
        now[0] += timedelta(hours=2)  # past refresh_after (3600 s)
        till.redeem("C", order())
        assert fetches() == 2
        till.redeem("C", order())
        assert fetches() == 2  # fresh again by the till's clock
        now[0] += timedelta(hours=2)
        fake.extra[("GET", "/v1/offline/keys")] = lambda r: httpx.Response(
            404, json={"code": "not_found", "status": 404, "detail": "no such route"})
        till.redeem("C", order())
        till.redeem("C", order())
        assert fetches() == 3  # a failed refresh is not repeated on every sale
        now[0] += timedelta(seconds=61)
        till.redeem("C", order())
        assert fetches() == 4
        assert till.queue.keys_document() is not None  # type: ignore[union-attr]  # kept


def test_the_same_intent_sent_again_offline_gets_its_first_receipt(
        fake: FakeHub, kit: OfflineKit, tmp_path) -> None:
    token = kit.token("C1")
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport()) as till:
        till.offline_keys()
        fake.up = False
        first = till.redeem(token, order(), idempotency_key="sale-1")
    # the till restarts and sends the same sale again, as a till that keeps its keys does
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "q.db", transport=fake.transport()) as till:
        again = till.redeem(token, order(), idempotency_key="sale-1")
        assert again == first
        assert len(till.queued()) == 1 and till.queue.tally().count == 1  # type: ignore[union-attr]
        err = refused(till, kit.token("C2"), idempotency_key="sale-1")
        assert err.code == "idempotency_key_reused"


def test_threads_sharing_a_till_queue_a_coupon_once(till: HubClient, kit: OfflineKit) -> None:
    from concurrent.futures import ThreadPoolExecutor

    token = kit.token("C1")

    def sell(i: int) -> str:
        try:
            till.redeem(token, order(order_id=f"A-{i}"))
            return "queued"
        except OfflineRefused as err:
            return err.code

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(sell, range(8)))
    assert sorted(results) == ["coupon_already_redeemed"] * 7 + ["queued"]
    assert len(till.queued()) == 1 and till.queue.tally().count == 1  # type: ignore[union-attr]

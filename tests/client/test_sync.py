"""Syncing the offline queue (to the contract of POST /v1/redemptions/sync, served by
tests/client/conftest.py's FakeHub until the hub has the route): in order, in batches of
at most 100, with the original keys and times; verdicts kept locally; stopped by a lost
connection with the rest still queued; an answer lost after the hub processed it is
resent and replayed; the offline limits start afresh once the queue is empty."""

from __future__ import annotations

import contextlib
import json

from hub.client import HubClient
from tests.client.conftest import FakeHub, OfflineKit, order


def fill(till: HubClient, kit: OfflineKit, n: int, prefix: str = "C") -> list[str]:
    return [till.redeem(kit.token(f"{prefix}{i:04d}"), order(order_id=f"A-{i}")
                        ).idempotency_key for i in range(n)]


def loosen(till: HubClient, kit: OfflineKit, fake: FakeHub) -> None:
    """Limits wide enough for the batches (the keys document is fetched again)."""
    kit.rules = {"max_count": 1000, "max_discount": 10**9, "max_offline_seconds": 86_400}
    fake.up = True
    till.offline_keys()
    fake.up = False


def sync_bodies(fake: FakeHub) -> list[dict]:
    return fake.synced


def test_sync_sends_in_order_in_batches_and_keeps_the_verdicts(till: HubClient, kit: OfflineKit,
                                                              fake: FakeHub) -> None:
    loosen(till, kit, fake)
    keys = fill(till, kit, 230)
    fake.redeemed["C0007"] = "someone-else"  # redeemed online elsewhere meanwhile
    fake.up = True
    report = till.sync()
    assert report.complete and report.sent == 230
    assert report.counts == {"redeemed": 229, "replayed": 0, "refused": 0, "conflict": 1}
    bodies = sync_bodies(fake)
    assert [len(b["items"]) for b in bodies] == [100, 100, 30]
    assert [i["idempotency_key"] for b in bodies for i in b["items"]] == keys
    assert {b["terminal_id"] for b in bodies} == {"T-01"}
    [conflict] = till.queued(outcome="conflict")
    assert conflict.code == "C0007" and conflict.conflict_id and conflict.http_status == 409
    assert conflict.problem and conflict.problem["code"] == "offline_conflict"
    assert till.queued(status="pending") == []
    tally = till.queue.tally()  # type: ignore[union-attr]
    assert (tally.count, tally.discount, tally.since) == (0, 0, None)


def test_a_lost_connection_stops_the_sync_and_the_rest_waits(till: HubClient, kit: OfflineKit,
                                                            fake: FakeHub) -> None:
    loosen(till, kit, fake)
    fill(till, kit, 150)
    fake.up = True
    fake.down_after_batches = 1
    report = till.sync()
    assert report.sent == 100 and report.remaining == 50 and report.error is not None
    assert not report.complete
    assert till.queue.tally().count == 150  # type: ignore[union-attr]  # not reset
    fake.down_after_batches = None
    again = till.sync()
    assert again.complete and again.counts["redeemed"] == 50
    assert len(fake.redeemed) == 150


def test_an_answer_lost_after_the_hub_processed_it_is_replayed(till: HubClient, kit: OfflineKit,
                                                               fake: FakeHub) -> None:
    fill(till, kit, 3)
    fake.up = True
    fake.drop_after_sync = True  # the hub redeems, the answer never arrives; retried
    report = till.sync()
    assert report.complete
    assert report.counts == {"redeemed": 0, "replayed": 3, "refused": 0, "conflict": 0}
    assert len(fake.redeemed) == 3  # nothing redeemed twice
    assert {i.outcome for i in till.queued()} == {"replayed"}


def test_a_crash_before_the_answer_is_committed_resends_safely(fake: FakeHub, kit: OfflineKit,
                                                               tmp_path) -> None:
    """The till dies after the hub answered and before it stored the answer: the items
    are still pending and the next sync resends them with the same keys."""
    path = tmp_path / "q.db"
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001",
                   offline_queue=path, transport=fake.transport()) as till:
        till.offline_keys()
        fake.up = False
        keys = fill(till, kit, 5)
        fake.up = True
        till.queue.record_answers = lambda *a, **k: (_ for _ in ()).throw(  # type: ignore
            KeyboardInterrupt("killed"))
        with contextlib.suppress(KeyboardInterrupt):
            till.sync()
    assert len(fake.redeemed) == 5
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001",
                   offline_queue=path, transport=fake.transport()) as till:
        assert len(till.queued(status="pending")) == 5
        report = till.sync()
        assert report.counts["replayed"] == 5 and report.complete
    assert [i["idempotency_key"] for i in sync_bodies(fake)[1]["items"]] == keys
    assert len(fake.redeemed) == 5


def test_refused_items_are_final_and_kept(till: HubClient, kit: OfflineKit,
                                          fake: FakeHub) -> None:
    fill(till, kit, 2)
    fake.up = True

    def refuse_all(request):
        body = json.loads(request.content)
        import httpx
        return httpx.Response(200, json={"items": [
            {"idempotency_key": i["idempotency_key"], "outcome": "refused", "status": 422,
             "redemption": None, "conflict_id": None,
             "problem": {"code": "coupon_voided", "status": 422}} for i in body["items"]],
            "counts": {"redeemed": 0, "replayed": 0, "refused": 2, "conflict": 0}})

    fake.extra[("POST", "/v1/redemptions/sync")] = refuse_all
    report = till.sync()
    assert report.counts["refused"] == 2 and report.complete
    assert {i.problem["code"] for i in till.queued(outcome="refused")} == {"coupon_voided"}
    # a coupon the hub refused may be presented again offline (it was not redeemed)
    fake.up = False
    till.redeem(kit.token("C0000"), order(order_id="A-9"))


def test_an_empty_queue_syncs_to_nothing(till: HubClient, fake: FakeHub) -> None:
    fake.up = True
    report = till.sync()
    assert report.complete and report.sent == 0 and sync_bodies(fake) == []


def test_a_redeem_syncs_the_waiting_offline_sales_first(till: HubClient, kit: OfflineKit,
                                                        fake: FakeHub) -> None:
    import httpx

    fill(till, kit, 2)
    answer = {
        "redemption_id": "rd_9", "status": "redeemed", "code": "C", "store": "SH-001",
        "channel": "pos", "order_id": "A-9",
        "template": {"id": "tpl_kit", "name": "t", "kind": "threshold"}, "customer": None,
        "discount": 2000, "eligible_amount": 12800, "payable": 10800, "lines": [],
        "redeemed_at": "2026-12-04T06:00:00Z", "recorded_at": "2026-12-04T06:00:00Z"}
    fake.extra[("POST", "/v1/redemptions")] = lambda r: httpx.Response(201, json=answer)
    fake.up = True
    start = len(fake.requests)
    r = till.redeem("C", order(order_id="A-9"))
    assert r.redemption_id == "rd_9"  # type: ignore[union-attr]
    paths = [q.url.path for q in fake.requests[start:]]
    assert paths[0] == "/v1/redemptions/sync" and paths[-1] == "/v1/redemptions"
    assert till.queued(status="pending") == [] and len(fake.redeemed) == 2

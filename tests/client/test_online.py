"""The client against the real hub (uvicorn on loopback, both backends): every call, the
typed answers and errors, one Idempotency-Key per intent, and retries that never redeem
twice — a first answer lost on the way back is replayed, not redone."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from hub.client import (
    AsyncHubClient,
    AuthenticationError,
    ConflictError,
    HubClient,
    HubUnreachable,
    NotFoundError,
    Order,
    Redemption,
    RefusedError,
    RetryPolicy,
)
from hub.db.schema import coupons, redemptions
from tests.client.conftest import FAST
from tests.conftest import Clock, Merchant, free_port, issue, make_template


class DropFirstAnswer(httpx.BaseTransport):
    """Sends each request to the hub, but loses the answer of the first ``drops``
    redeems on the way back (a read timeout, after the hub committed)."""

    def __init__(self, drops: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.drops = drops
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/v1/redemptions" and request.method == "POST":
            self.keys.append(request.headers["Idempotency-Key"])
            if self.drops:
                self.drops -= 1
                response.read()
                response.close()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncDropFirstAnswer(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.dropped = False
        self.keys: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/v1/redemptions" and request.method == "POST":
            self.keys.append(request.headers["Idempotency-Key"])
            if not self.dropped:
                self.dropped = True
                await response.aread()
                await response.aclose()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def count_redemptions(db: Engine, code: str) -> int:
    with db.connect() as conn:
        return int(conn.execute(
            select(func.count()).select_from(redemptions.join(coupons))
            .where(coupons.c.code == code)).scalar_one())


def coupon(db: Engine, m: Merchant, clock: Clock, n: int = 1) -> list[str]:
    return issue(db, m, make_template(db, m, clock.now), clock.now, count=n)


def client(url: str, m: Merchant, **kw: Any) -> HubClient:
    return HubClient(url, m.store_keys["SH-001"], terminal_id="T-01", **kw)


def test_every_call_of_a_till(live_server: str, db: Engine, merchant: Merchant,
                              clock: Clock) -> None:
    code, second, third = coupon(db, merchant, clock, 3)
    with client(live_server, merchant) as c:
        assert c.lookup(code).status == "issued"
        v = c.validate(code, {"id": "A-1", "amount": 12800})
        assert (v.discount, v.payable, v.store) == (2000, 10800, "SH-001")
        q = c.quote(Order(id="A-2", amount=30000), codes=[second, third])
        assert q.best_codes and q.best_discount >= 2000
        assert {cand.code for cand in q.candidates} == {second, third}
        r = c.redeem(code, Order(id="A-1", amount=12800))
        assert isinstance(r, Redemption) and not r.replayed
        assert (r.discount, r.payable, r.store, r.template.kind) == (2000, 10800, "SH-001",
                                                                    "threshold")
        again = c.redeem(code, {"id": "A-1", "amount": 12800}, idempotency_key=r.idempotency_key)
        assert again.replayed and again.redemption_id == r.redemption_id  # type: ignore[union-attr]
        rev = c.reverse(r.redemption_id, reason="customer returned it")
        assert rev.coupon_status == "issued" and rev.discount == 2000
        assert c.lookup(code).status == "issued"
        o = c.redeem_order([code], {"id": "A-3", "amount": 12800})
        assert o.discount == 2000 and [x.code for x in o.coupons] == [code]


def test_refusals_are_typed_and_never_retried(live_server: str, db: Engine,
                                              merchant: Merchant, clock: Clock) -> None:
    code, fresh = coupon(db, merchant, clock, 2)
    transport = DropFirstAnswer(drops=0)
    with client(live_server, merchant, transport=transport) as c:
        c.redeem(code, {"id": "A-1", "amount": 12800})
        with pytest.raises(ConflictError) as info:
            c.redeem(code, {"id": "A-2", "amount": 12800})
        err = info.value
        assert (err.code, err.status, err.retryable) == ("coupon_already_redeemed", 409, False)
        assert err.problem["code"] == "coupon_already_redeemed"
        assert len(transport.keys) == 2  # one send each: a refusal is final
        with pytest.raises(RefusedError) as info:
            c.validate(fresh, {"id": "A-3", "amount": 500})
        assert (info.value.code, info.value.status) == ("threshold_not_met", 422)
        with pytest.raises(NotFoundError):
            c.reverse("rd_nope")
    with HubClient(live_server, "wrong-key", terminal_id="T-01") as bad, \
            pytest.raises(AuthenticationError) as auth:
        bad.lookup(code)
    assert auth.value.code == "unauthorized" and auth.value.status == 401


def test_a_lost_answer_is_retried_with_the_same_key_and_redeems_once(
        live_server: str, db: Engine, merchant: Merchant, clock: Clock) -> None:
    [code] = coupon(db, merchant, clock)
    transport = DropFirstAnswer(drops=1)
    with client(live_server, merchant, transport=transport, retry=FAST) as c:
        r = c.redeem(code, {"id": "A-1", "amount": 12800})
    assert isinstance(r, Redemption) and r.replayed
    assert len(transport.keys) == 2 and len(set(transport.keys)) == 1
    assert r.idempotency_key == transport.keys[0]
    assert count_redemptions(db, code) == 1


def test_the_async_client_does_the_same(live_server: str, db: Engine, merchant: Merchant,
                                        clock: Clock) -> None:
    code, other = coupon(db, merchant, clock, 2)

    async def run() -> None:
        transport = AsyncDropFirstAnswer()
        async with AsyncHubClient(live_server, merchant.store_keys["SH-001"],
                                  terminal_id="T-01", transport=transport, retry=FAST) as c:
            assert (await c.lookup(code)).status == "issued"
            assert (await c.validate(code, {"id": "A-1", "amount": 12800})).discount == 2000
            r = await c.redeem(code, {"id": "A-1", "amount": 12800})
            assert isinstance(r, Redemption) and r.replayed
            assert len(set(transport.keys)) == 1 and len(transport.keys) == 2
            with pytest.raises(ConflictError):
                await c.redeem(code, {"id": "A-2", "amount": 12800})
            q = await c.quote({"id": "A-3", "amount": 12800}, codes=[other])
            assert q.best_codes == (other,)
            o = await c.redeem_order([other], {"id": "A-3", "amount": 12800})
            rev = await c.reverse(r.redemption_id)
            assert o.discount == 2000 and rev.coupon_status == "issued"

    asyncio.run(run())
    assert count_redemptions(db, code) == 1


def test_503_is_retried_after_retry_after_with_the_same_key() -> None:
    seen: list[str] = []

    def hub(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Idempotency-Key"])
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"},
                                  json={"code": "database_busy", "status": 503,
                                        "detail": "busy"})
        if len(seen) == 2:
            return httpx.Response(409, json={"code": "idempotency_key_in_flight",
                                             "status": 409, "detail": "running"})
        return httpx.Response(201, json={
            "redemption_id": "rd_1", "status": "redeemed", "code": "C", "store": "SH-001",
            "channel": "pos", "order_id": "A-1",
            "template": {"id": "tpl_1", "name": "t", "kind": "threshold"}, "customer": None,
            "discount": 2000, "eligible_amount": 12800, "payable": 10800, "lines": [],
            "redeemed_at": "2026-12-04T06:00:00Z", "recorded_at": "2026-12-04T06:00:00Z"})

    retry = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01)
    with HubClient("http://hub.test", "k", terminal_id="T-01", retry=retry,
                   transport=httpx.MockTransport(hub)) as c:
        r = c.redeem("C", {"id": "A-1", "amount": 12800})
    assert r.discount == 2000 and len(seen) == 3 and len(set(seen)) == 1


def test_an_unreachable_hub_without_a_queue_raises_after_the_retries() -> None:
    port = free_port()  # nothing listens there
    with HubClient(f"http://127.0.0.1:{port}", "k", terminal_id="T-01", retry=FAST) as c, \
            pytest.raises(HubUnreachable) as info:
        c.redeem("TQZB32SGKUNHV5", {"id": "A-1", "amount": 12800})
    assert info.value.code == "hub_unreachable" and info.value.retryable

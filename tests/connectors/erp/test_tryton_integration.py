"""The proof against a REAL Tryton ERP: exchange-coupon redemptions move its stock.

A ``trytond`` 8.2 server with ``stock`` runs on loopback (``tryton_server``). The hub,
driven only through its HTTP API and its delivery runtime, subscribes ``erp.tryton`` to
redemption events; three exchange redemptions at store SH-001 take three gifts out of the
store's storage location, a reversal puts one back, a replayed delivery changes nothing,
and a threshold coupon moves no stock.

Runs on both hub backends (the ``engine`` fixture): the Tryton start costs ~11 s once per
process (the template database), then ~1 s per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connectors.erp.tryton import TrytonConnector, reference_of
from hub.connectors import Delivered, Failed, OutboundRequest, OutboundResponse, Outcome
from hub.db.schema import outbox_events
from hub.delivery import queue
from hub.delivery.exchange import SessionCache, check_connection, run_exchange
from hub.delivery.runtime import Runtime
from hub.testing import NOW, sample_event
from tests.conftest import issue, make_template
from tests.connectors.erp.tryton_server import (
    TrytonServer,
    add_initial_stock,
    b64json,
    create_product,
    quantity_on_hand,
    warehouse_locations,
)

SKU = "SKU-GIFT-1"
EVENTS = ["coupon.redeemed", "coupon.redemption_reversed"]
GIFT_SPEC: dict[str, Any] = {
    "benefit": {"kind": "exchange", "sku": SKU, "qty": 1},
    "validity": {"type": "relative", "days": 30},
}
LINES = [
    {"sku": "SKU-TEA-1", "category": "tea", "qty": 2, "unit_price": 4400},
    {"sku": SKU, "category": "gift", "qty": 1, "unit_price": 4000},
]


@pytest.fixture(autouse=True)
def _no_broker() -> Iterator[None]:
    queue.reset()
    yield
    queue.reset()


@contextmanager
def real_transport() -> Iterator[Callable[[OutboundRequest], OutboundResponse]]:
    """The hub's transport, over httpx, ignoring proxy variables (Tryton is on loopback)."""
    with httpx.Client(trust_env=False, timeout=30, follow_redirects=False) as http:

        def transport(req: OutboundRequest) -> OutboundResponse:
            resp = http.request(req.method, req.url, headers=dict(req.headers), content=req.body)
            return OutboundResponse(resp.status_code, dict(resp.headers), resp.content)

        yield transport


def config_of(server: TrytonServer, **extra: Any) -> dict[str, Any]:
    """The subscription config for this server: store SH-001 is the WH storage zone."""
    loc = warehouse_locations(server)
    return {
        "base_url": server.url,
        "database": server.database,
        "app_key": server.app_key,
        "company": server.company_id,
        "locations": {"SH-001": loc.storage},
        "lost_found_location": loc.lost_found,
        **extra,
    }


def deliver_to(server: TrytonServer, event: dict[str, Any], config: dict[str, Any]) -> Outcome:
    """One delivery by the connector alone, through the hub's exchange runner."""
    with real_transport() as transport:
        outcome, _trace = run_exchange(
            TrytonConnector(),
            event,
            config,
            now=NOW,
            transport=transport,
            sessions=SessionCache(),
            session_owner="test",
        )
    return outcome


def drain(db: Any, clock: Any) -> int:
    """The hub's delivery runtime, once through everything due; its HTTP client ignores
    proxy variables (the Tryton server is on loopback)."""
    client = httpx.Client(follow_redirects=False, trust_env=False)
    runtime = Runtime(db, clock=clock, client=client)
    try:
        return runtime.drain()
    finally:
        runtime.stop()


def redeem(client: Any, merchant: Any, code: str, n: int) -> dict[str, Any]:
    r = client.post(
        "/v1/redemptions",
        json={
            "code": code,
            "store": "SH-001",
            "order": {"id": f"T-{n:04d}", "amount": 12800, "lines": LINES},
        },
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def deliveries(client: Any, merchant: Any) -> list[dict[str, Any]]:
    r = client.get("/v1/deliveries", headers=merchant.auth(), params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def shipments(server: TrytonServer) -> list[dict[str, Any]]:
    r = server.client().get(
        "/model/stock.shipment.internal",
        params={"d": b64json([]), "f": ["reference", "state", "moves"]},
    )
    assert r.status_code == 200, r.text
    return sorted(r.json(), key=lambda s: s["id"])


def reverse_moves(server: TrytonServer) -> list[dict[str, Any]]:
    r = server.client().get(
        "/model/stock.move",
        params={"d": b64json([["origin", "like", "stock.move,%"]]), "f": ["origin", "state"]},
    )
    assert r.status_code == 200, r.text
    return list(r.json())


@pytest.mark.slow
def test_exchange_redemptions_move_real_tryton_stock(
    client: Any, db: Any, merchant: Any, clock: Any, tryton_server: TrytonServer
) -> None:
    server = tryton_server
    loc = warehouse_locations(server)
    create_product(server, SKU)
    add_initial_stock(server, SKU, loc.storage, 100)

    def on_hand() -> Decimal:
        return quantity_on_hand(server, SKU, loc.storage)

    assert on_hand() == 100
    config = config_of(server)

    # what `hub connectors check` does: prove URL, database and key against the server
    with real_transport() as transport:
        outcome, trace = check_connection(TrytonConnector(), config, transport=transport)
        assert outcome == Delivered(), trace.steps
        bad_key = {**config, "app_key": "not-the-key-at-all"}
        refused, _ = check_connection(TrytonConnector(), bad_key, transport=transport)
        assert isinstance(refused, Failed) and "app key" in refused.reason

    r = client.post(
        "/v1/subscriptions",
        headers=merchant.auth(),
        json={"connector": "erp.tryton", "config": config, "events": EVENTS},
    )
    assert r.status_code == 201, r.text
    assert r.json()["config"]["app_key"] == "***"

    gift = make_template(db, merchant, clock.now, spec=GIFT_SPEC, name="Free gift")
    codes = issue(db, merchant, gift, clock.now, count=3)
    redemptions = [redeem(client, merchant, code, n) for n, code in enumerate(codes)]
    assert all(red["template"]["kind"] == "exchange" for red in redemptions)

    assert drain(db, clock) == 3
    done = deliveries(client, merchant)
    assert [d["status"] for d in done] == ["succeeded"] * 3, done
    assert on_hand() == 97
    booked = shipments(server)
    rid_of = redemption_of_events(db)
    assert sorted(s["reference"] for s in booked) == sorted(
        reference_of(rid_of[d["event_id"]], d["event_id"]) for d in done
    )
    assert {s["state"] for s in booked} == {"done"}

    # a reversal puts one gift back
    rid = redemptions[0]["redemption_id"]
    r = client.post(
        f"/v1/redemptions/{rid}/reversal",
        json={},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    assert drain(db, clock) == 1
    assert on_hand() == 98
    back = reverse_moves(server)
    (undone,) = [s for s in booked if s["reference"].startswith(f"hub:{rid}:")]
    assert [(m["origin"], m["state"]) for m in back] == [
        (f"stock.move,{undone['moves'][0]}", "done")
    ]

    # replaying delivered events (same event ids) changes nothing in Tryton
    for d in deliveries(client, merchant):
        r = client.post(f"/v1/deliveries/{d['id']}/replay", headers=merchant.auth())
        assert r.status_code == 200, r.text
    assert drain(db, clock) == 4
    after = deliveries(client, merchant)
    assert [d["status"] for d in after] == ["succeeded"] * 4, after
    for d in after:
        r = client.get(f"/v1/deliveries/{d['id']}", headers=merchant.auth())
        assert [a["outcome"] for a in r.json()["attempt_log"]] == ["delivered"] * 2
    assert on_hand() == 98
    assert len(shipments(server)) == 3 and len(reverse_moves(server)) == 1

    # a threshold coupon (no gift) moves no stock and sends nothing
    cash = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, cash, clock.now)
    redeem(client, merchant, code, 99)
    assert drain(db, clock) == 1
    newest = deliveries(client, merchant)
    assert {d["status"] for d in newest} == {"succeeded"}
    assert on_hand() == 98
    assert len(shipments(server)) == 3


def redemption_of_events(db: Any) -> dict[str, str]:
    """event id -> redemption id, from the hub's outbox."""
    with db.connect() as conn:
        rows = conn.execute(select(outbox_events.c.id, outbox_events.c.data)).all()
    return {r.id: r.data["redemption_id"] for r in rows if "redemption_id" in (r.data or {})}


# --------------------------------------------------------------------------- the connector
# alone against the real server (no hub database): short stock, resuming, nothing to undo


@pytest.mark.slow
def test_short_stock_against_real_tryton_fails_or_is_forced(tryton_server: TrytonServer) -> None:
    server = tryton_server
    storage = warehouse_locations(server).storage
    create_product(server, SKU)  # no stock at all
    gift = sample_event("coupon.redeemed", kind="exchange")
    key = reference_of(gift["data"]["redemption_id"], gift["id"])

    outcome = deliver_to(server, gift, config_of(server))
    assert isinstance(outcome, Failed) and "insufficient stock" in outcome.reason
    assert [(s["reference"], s["state"]) for s in shipments(server)] == [(key, "cancelled")]
    assert quantity_on_hand(server, SKU, storage) == 0

    # the same event, forced: the gift did leave, so Tryton records it (stock goes negative)
    assert deliver_to(server, gift, config_of(server, on_insufficient_stock="force")) == (
        Delivered()
    )
    assert [s["state"] for s in shipments(server)] == ["cancelled", "done"]
    assert quantity_on_hand(server, SKU, storage) == -1

    # the reversal undoes the done decrement and leaves the cancelled one alone
    reversed_ = sample_event("coupon.redemption_reversed", kind="exchange")
    assert deliver_to(server, reversed_, config_of(server)) == Delivered()
    assert deliver_to(server, reversed_, config_of(server)) == Delivered()
    assert quantity_on_hand(server, SKU, storage) == 0
    assert len(reverse_moves(server)) == 1


@pytest.mark.slow
def test_a_half_way_decrement_is_resumed_on_the_real_server(tryton_server: TrytonServer) -> None:
    server = tryton_server
    loc = warehouse_locations(server)
    product = create_product(server, SKU)
    add_initial_stock(server, SKU, loc.storage, 5)
    gift = sample_event("coupon.redeemed", kind="exchange")
    key = reference_of(gift["data"]["redemption_id"], gift["id"])
    rest = server.client()
    # an earlier attempt died after creating and "waiting" the shipment
    move = {
        "product": product,
        "unit": 1,
        "quantity": 1.0,
        "from_location": loc.storage,
        "to_location": loc.lost_found,
        "company": server.company_id,
    }
    created = rest.post(
        "/model/stock.shipment.internal",
        json={
            "company": server.company_id,
            "from_location": loc.storage,
            "to_location": loc.lost_found,
            "reference": key,
            "moves": [["create", [move]]],
        },
    )
    assert created.status_code == 200, created.text
    waited = rest.post(f"/model/stock.shipment.internal/{created.json()['id']}/wait")
    assert waited.status_code == 200, waited.text

    assert deliver_to(server, gift, config_of(server)) == Delivered()
    assert [(s["reference"], s["state"]) for s in shipments(server)] == [(key, "done")]
    assert quantity_on_hand(server, SKU, loc.storage) == 4


@pytest.mark.slow
def test_real_tryton_errors_are_classified(tryton_server: TrytonServer) -> None:
    server = tryton_server
    create_product(server, SKU)
    gift = sample_event("coupon.redeemed", kind="exchange")
    reversed_ = sample_event("coupon.redemption_reversed", kind="exchange")

    nothing = deliver_to(server, reversed_, config_of(server))
    assert isinstance(nothing, Failed) and nothing.reason.startswith("no decrement to reverse")

    unknown = deliver_to(server, gift, config_of(server, sku_map={SKU: "NOPE"}))
    assert isinstance(unknown, Failed) and "'NOPE'" in unknown.reason

    refused = deliver_to(server, gift, config_of(server, app_key="not-the-key-at-all"))
    assert isinstance(refused, Failed) and "app key" in refused.reason

    no_db = deliver_to(server, gift, config_of(server, database="nope"))
    assert isinstance(no_db, Failed) and "HTTP 404" in no_db.reason

    bad_location = deliver_to(server, gift, config_of(server, locations={"SH-001": 99999}))
    assert isinstance(bad_location, Failed)
    assert bad_location.reason.startswith("HTTP 400: Tryton: The value")
    assert shipments(server) == []

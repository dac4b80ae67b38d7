"""``hub subscriptions …`` and ``hub deliveries …`` on a SQLite file made by ``hub seed``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import Engine

from hub.api.app import create_app
from hub.cli import main
from hub.db.engine import make_engine
from hub.delivery.runtime import Runtime
from hub.seeding import demo_codes
from tests.delivery.support import SECRET, URL, sent_events, stored_secret

URL2 = "https://receiver-two.example/hook"
SECRET_TEXT = SECRET.removeprefix("whsec_")


@dataclass
class Hub:
    path: Path
    engine: Engine
    facts: dict[str, Any]
    outputs: list[str]

    def run(self, *args: str) -> Any:
        result = CliRunner().invoke(main, [*args, "--db", str(self.path)], catch_exceptions=False)
        self.outputs.append(result.output)
        return result

    def ok(self, *args: str) -> Any:
        result = self.run(*args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)  # stderr carries the logs (a key-file warning)

    def fails(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code != 0, result.output
        return str(result.output)

    def redeem(self, code: str) -> None:
        with TestClient(create_app(self.engine)) as client:
            r = client.post(
                "/v1/redemptions",
                json={"code": code, "store": "SH-001", "order": {"id": code, "amount": 12800}},
                headers={"Authorization": f"Bearer {self.facts['admin_key']}",
                         "Idempotency-Key": uuid.uuid4().hex},
            )
            assert r.status_code == 201, r.text

    def drain(self, response: httpx.Response) -> list[dict[str, Any]]:
        rt = Runtime(self.engine, clock=lambda: datetime.now(UTC))
        try:
            with respx.mock() as mock:
                route = mock.post(URL).mock(return_value=response)
                rt.drain()
        finally:
            rt.stop()
        return sent_events(route)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    path = tmp_path / "hub.db"
    result = CliRunner().invoke(main, ["seed", "--db", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    engine = make_engine(str(path))
    h = Hub(path, engine, json.loads(result.stdout), [])
    yield h
    engine.dispose()
    for out in h.outputs:  # whatever the command, the secret is never printed
        assert SECRET_TEXT not in out


def _create(hub: Hub, *extra: str) -> dict[str, Any]:
    config = json.dumps({"url": URL, "secret": SECRET})
    return hub.ok("subscriptions", "create", "--connector", "webhook", "--config", config,
                  "--events", "coupon.redeemed,coupon.redemption_reversed", *extra)


def test_subscription_lifecycle(hub: Hub) -> None:
    sub = _create(hub, "--stores", "SH-001,SH-002", "--retry-schedule", "5,30")
    assert sub["id"].startswith("sub_") and sub["status"] == "active"
    assert sub["config"] == {"url": URL, "secret": "***"}
    assert sub["events"] == ["coupon.redeemed", "coupon.redemption_reversed"]
    assert sub["filter"] == {"stores": ["SH-001", "SH-002"], "templates": []}
    assert sub["retry_schedule"] == [5, 30]
    assert stored_secret(hub.engine, sub["id"]) == SECRET

    listed = hub.ok("subscriptions", "list", "--json")
    assert [s["id"] for s in listed] == [sub["id"]]
    assert listed[0]["config"]["secret"] == "***"
    # an explicit --merchant works the same
    mine = hub.ok("subscriptions", "list", "--json", "--merchant", hub.facts["merchant_id"])
    assert mine == listed

    updated = hub.ok("subscriptions", "update", sub["id"], "--config", json.dumps({"url": URL2}))
    assert updated["config"] == {"url": URL2, "secret": "***"}
    assert stored_secret(hub.engine, sub["id"]) == SECRET  # left out, so kept
    updated = hub.ok("subscriptions", "update", sub["id"], "--events", "coupon.redeemed")
    assert updated["events"] == ["coupon.redeemed"] and updated["config"]["url"] == URL2

    assert hub.ok("subscriptions", "pause", sub["id"])["status"] == "paused"
    assert hub.ok("subscriptions", "list", "--json")[0]["status"] == "paused"
    assert hub.ok("subscriptions", "resume", sub["id"])["status"] == "active"
    assert hub.ok("subscriptions", "delete", sub["id"]) == {"id": sub["id"], "status": "deleted"}
    assert hub.ok("subscriptions", "list", "--json") == []
    assert "subscription_not_found" in hub.fails("subscriptions", "pause", sub["id"])
    assert "subscription_not_found" in hub.fails("subscriptions", "delete", sub["id"])


def test_subscription_commands_refuse_bad_input(hub: Hub) -> None:
    bad = json.dumps({"url": URL, "secret": SECRET + "%"})
    out = hub.fails("subscriptions", "create", "--connector", "webhook", "--config", bad,
                    "--events", "coupon.redeemed")
    assert "invalid_config" in out
    out = hub.fails("subscriptions", "create", "--connector", "webhook", "--config",
                    json.dumps({"secret": SECRET}), "--events", "coupon.redeemed")
    assert "invalid_config" in out and "config.url" in out
    out = hub.fails("subscriptions", "create", "--connector", "crm.nonesuch", "--config", "{}",
                    "--events", "coupon.redeemed")
    assert "unknown_connector" in out
    out = hub.fails("subscriptions", "create", "--connector", "webhook", "--config", "{url",
                    "--events", "coupon.redeemed")
    assert "not JSON" in out
    config = json.dumps({"url": URL, "secret": SECRET})
    out = hub.fails("subscriptions", "create", "--connector", "webhook", "--config", config,
                    "--events", "coupon.sneezed")
    assert "unknown_event_type" in out
    out = hub.fails("subscriptions", "create", "--connector", "webhook", "--config", config,
                    "--events", "coupon.redeemed", "--stores", "XX-404")
    assert "store_not_found" in out
    assert "subscription_not_found" in hub.fails("subscriptions", "update", "sub_nonesuch",
                                                 "--events", "coupon.redeemed")
    assert "no merchant" in hub.fails("subscriptions", "list", "--merchant", "mch_nonesuch")
    assert hub.ok("subscriptions", "list", "--json") == []


def test_deliveries_list_and_replay(hub: Hub) -> None:
    sub = _create(hub)["id"]
    a, b, c = demo_codes(hub.engine, hub.facts["merchant_id"], datetime.now(UTC))["threshold"][:3]
    hub.redeem(a)
    hub.redeem(b)

    pending = hub.ok("deliveries", "list", "--json", "--status", "pending")["items"]
    assert len(pending) == 2
    out = hub.fails("deliveries", "replay", pending[0]["id"])
    assert "delivery_in_progress" in out

    first = hub.drain(httpx.Response(400))
    assert len(first) == 2
    dead = hub.ok("deliveries", "list", "--json", "--status", "dead", "--subscription", sub)
    assert dead["next_cursor"] is None
    assert {d["status"] for d in dead["items"]} == {"dead"} and len(dead["items"]) == 2
    assert {d["last_status"] for d in dead["items"]} == {400}
    assert len(hub.ok("deliveries", "list", "--json", "--limit", "1")["items"]) == 1
    reversed_only = hub.ok("deliveries", "list", "--json", "--event-type",
                           "coupon.redemption_reversed")
    assert reversed_only["items"] == []

    one = dead["items"][0]
    replayed = hub.ok("deliveries", "replay", one["id"])
    assert replayed["id"] == one["id"] and replayed["status"] == "pending"
    assert replayed["attempt_log"][0]["http_status"] == 400
    assert hub.ok("deliveries", "replay", "--subscription", sub) == {
        "subscription_id": sub, "replayed": 1}
    assert hub.ok("deliveries", "list", "--json", "--status", "dead")["items"] == []

    again = hub.drain(httpx.Response(200))
    assert sorted(e["id"] for e in again) == sorted(e["id"] for e in first)  # same event ids
    done = hub.ok("deliveries", "list", "--json", "--subscription", sub)["items"]
    assert {d["status"] for d in done} == {"succeeded"}

    hub.redeem(c)  # a new event after the replays: delivered normally
    assert [e["data"]["code"] for e in hub.drain(httpx.Response(200))] == [c]

    assert "give a DELIVERY_ID or --subscription" in hub.fails("deliveries", "replay")
    assert "give a DELIVERY_ID" in hub.fails("deliveries", "replay", one["id"],
                                             "--subscription", sub)
    assert "delivery_not_found" in hub.fails("deliveries", "replay", "dlv_nonesuch")
    assert "subscription_not_found" in hub.fails("deliveries", "replay", "--subscription",
                                                 "sub_nonesuch")
    assert "invalid_request" in hub.fails("deliveries", "list", "--status", "lost")

"""docs/pos-client.md's examples run as written against the real hub, and the example
till (examples/pos-till/till.py) sells online, offline and syncs.

Until the hub serves ``GET /v1/offline/keys`` (the keys part), the transport below
answers that one route with a locally signed keys document when the hub says 404; once
the route exists, the hub's own answer is used."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

import hub.client
from hub.client import HubClient
from tests.client.conftest import FAST, FakeHub, OfflineKit
from tests.conftest import Clock, Merchant, issue, make_template

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "pos-client.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text("utf-8"), re.S)


class KeysFallback(httpx.BaseTransport):
    def __init__(self, kit: OfflineKit) -> None:
        self.inner = httpx.HTTPTransport()
        self.kit = kit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/v1/offline/keys" and response.status_code == 404:
            response.close()
            return httpx.Response(200, json=self.kit.document())
        return response


def test_the_docs_examples_run(live_server: str, db: Engine, merchant: Merchant, clock: Clock,
                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quick, asyncio_example, sync_example = blocks()
    code, other = issue(db, merchant, make_template(db, merchant, clock.now), clock.now, count=2)
    kit = OfflineKit(merchant=merchant.id)

    class Client(HubClient):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, transport=KeysFallback(kit), **kw)

    monkeypatch.setattr(hub.client, "HubClient", Client)
    printed: list[str] = []
    names: dict[str, Any] = {
        "HUB_URL": live_server, "STORE_KEY": merchant.store_keys["SH-001"],
        "QUEUE_FILE": str(tmp_path / "till.db"), "CODE": code,
        "print": lambda *a: printed.append(" ".join(map(str, a))),
    }
    exec(compile(quick, "pos-client.md#quick-start", "exec"), names)
    assert printed[0] == "takes off 2000 fen"
    assert printed[1].startswith("redeemed rdm_") and printed[1].endswith("pay 10800")

    exec(compile(asyncio_example, "pos-client.md#asyncio", "exec"), names)
    assert asyncio.run(names["sell"](other)) == 2000

    before = len(printed)
    with Client(live_server, merchant.store_keys["SH-001"], terminal_id="T-01",
                store="SH-001", offline_queue=tmp_path / "till.db") as client:
        exec(compile(sync_example, "pos-client.md#sync", "exec"), {**names, "hub": client})
    assert printed[before:] == []  # an empty queue: complete, nothing to report


def load_till() -> Any:
    spec = importlib.util.spec_from_file_location("till", ROOT / "examples/pos-till/till.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_till_online(live_server: str, db: Engine, merchant: Merchant,
                                 clock: Clock) -> None:
    till = load_till()
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    out = io.StringIO()
    with HubClient(live_server, merchant.store_keys["SH-001"], terminal_id="T-01") as client:
        till.run(client, io.StringIO(
            f"look {code}\ncheck A-1 12800 {code}\nsale A-1 12800 {code}\n"
            f"sale A-2 12800 {code}\nlook NOPE\nfly\nquit\nlook {code}\n"), out)
        lines = out.getvalue().splitlines()
        assert lines[0].startswith(f"OK {code} issued until ")
        assert lines[1] == "OK valid -¥20.00 pay ¥108.00"
        assert re.fullmatch(r"OK rdm_\w+ -¥20\.00 pay ¥108\.00", lines[2])
        assert lines[3].startswith("NO coupon_already_redeemed ")
        assert lines[4].startswith("NO ")  # an unknown code
        assert lines[5] == "NO unknown_command fly"
        assert len(lines) == 6  # nothing after quit
        rid = lines[2].split()[1]
        out = io.StringIO()
        till.run(client, io.StringIO(f"refund {rid} returned\n"), out)
        assert out.getvalue().strip() == f"OK reversed {rid} coupon issued"


def test_the_example_till_offline_then_sync(fake: FakeHub, kit: OfflineKit,
                                            tmp_path: Path) -> None:
    till = load_till()
    out = io.StringIO()
    with HubClient("http://hub.test", "k", terminal_id="T-01", store="SH-001", retry=FAST,
                   offline_queue=tmp_path / "till.db", transport=fake.transport()) as client:
        client.offline_keys()
        fake.up = False
        token = kit.token("TQZB32SGKUNHV5")
        till.run(client, io.StringIO(
            f"sale A-1 12800 {token}\nsale A-2 12800 TQZB32SGKUNHV5\nsale A-3 12800 {token}\n"
            "sync\n"), out)
        fake.up = True
        till.run(client, io.StringIO("sync\nconflicts\n"), out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("OFFLINE TQZB32SGKUNHV5 -¥20.00 pay ¥108.00 (queued ")
    assert lines[1].startswith("NO offline_token_required ")
    assert lines[2].startswith("NO coupon_already_redeemed ")
    assert lines[3].startswith("OK synced 0 ") and "left 1 (stopped: " in lines[3]
    assert lines[4].startswith("OK synced 1 {'redeemed': 1,") and lines[4].endswith(
        "left 0 (done)")
    assert lines[5] == "OK"

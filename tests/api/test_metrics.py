"""Issue 11 item 3: /metrics counts every request by route template and outcome code and
times it, at the response edge (hub.api.metrics), with bounded labels; in multiprocess
mode (PROMETHEUS_MULTIPROC_DIR) the figures of every API process are summed."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from hub.api.app import create_app
from hub.api.metrics import LATENCY_BUCKETS, OUTCOMES
from hub.connectors import InboundConnector, get_connector
from hub.domain.codes import generate_code
from hub.services.guard import Guard, Limits
from hub.services.settings import Settings
from tests.conftest import Clock, Merchant, issue, make_template, order

Key = tuple[str, tuple[tuple[str, str], ...]]
REQUESTS = "hub_http_requests_total"
POS = "hub_pos_requests_total"


def samples(client: Any) -> dict[Key, float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    out: dict[Key, float] = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def delta(before: dict[Key, float], after: dict[Key, float], name: str) -> dict[Key, float]:
    """What moved in the counter ``name``, leaving out the /metrics scrapes themselves."""
    moved = {}
    for key, value in after.items():
        if key[0] != name or dict(key[1]).get("route") == "/metrics":
            continue
        if value != before.get(key, 0.0):
            moved[key] = value - before.get(key, 0.0)
    return moved


def req(method: str, route: str, status: int, outcome: str) -> Key:
    labels = {"method": method, "route": route, "status": str(status), "outcome": outcome}
    return (REQUESTS, tuple(sorted(labels.items())))


def pos(connector: str, operation: str, outcome: str) -> Key:
    labels = {"connector": connector, "operation": operation, "outcome": outcome}
    return (POS, tuple(sorted(labels.items())))


class Counted:
    """Run one request and say exactly what it moved."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, method: str, url: str, **kw: Any) -> tuple[Any, dict[Key, float]]:
        before = samples(self.client)
        r = self.client.request(method, url, **kw)
        after = samples(self.client)
        moved = delta(before, after, REQUESTS) | delta(before, after, POS)
        return r, moved


def test_each_outcome_of_the_hot_routes_counts_once(client, db, merchant, clock):
    tpl = make_template(db, merchant, clock.now)
    code, other = issue(db, merchant, tpl, clock.now, count=2)
    run = Counted(client)
    body = {"code": code, "store": "SH-001", "order": order()}
    key = {**merchant.auth(), "Idempotency-Key": "k-1"}

    r, moved = run("GET", f"/v1/coupons/{code}", headers=merchant.auth())
    assert r.status_code == 200
    assert moved == {req("GET", "/v1/coupons/{code}", 200, "found"): 1}

    r, moved = run("POST", "/v1/redemptions/validate", json=body, headers=merchant.auth())
    assert r.status_code == 200
    assert moved == {req("POST", "/v1/redemptions/validate", 200, "validated"): 1}

    r, moved = run("POST", "/v1/redemptions", json=body, headers=key)
    assert r.status_code == 201
    assert moved == {req("POST", "/v1/redemptions", 201, "redeemed"): 1}
    rid = r.json()["redemption_id"]

    r, moved = run("POST", "/v1/redemptions", json=body, headers=key)
    assert r.headers["Idempotent-Replayed"] == "true"
    assert moved == {req("POST", "/v1/redemptions", 201, "replayed"): 1}

    # a refusal the service stores for replay (not raised): its code, read at the edge
    again = {**merchant.auth(), "Idempotency-Key": "k-2"}
    r, moved = run("POST", "/v1/redemptions", json=body, headers=again)
    assert r.json()["code"] == "coupon_already_redeemed"
    assert moved == {req("POST", "/v1/redemptions", 409, "coupon_already_redeemed"): 1}
    r, moved = run("POST", "/v1/redemptions", json=body, headers=again)  # its replay
    assert moved == {req("POST", "/v1/redemptions", 409, "replayed"): 1}

    # a refusal raised (exception handler): the same edge
    r, moved = run("POST", "/v1/redemptions/validate", json=body, headers=merchant.auth())
    assert r.json()["code"] == "coupon_already_redeemed"
    assert moved == {req("POST", "/v1/redemptions/validate", 409, "coupon_already_redeemed"): 1}

    r, moved = run("POST", "/v1/redemptions", json={**body, "code": other})  # no key at all
    assert moved == {req("POST", "/v1/redemptions", 401, "unauthorized"): 1}

    reversal = "/v1/redemptions/{redemption_id}/reversal"
    undo = {**merchant.auth(), "Idempotency-Key": "undo-1"}
    r, moved = run("POST", f"/v1/redemptions/{rid}/reversal", json={}, headers=undo)
    assert r.status_code == 201
    assert moved == {req("POST", reversal, 201, "reversed"): 1}
    r, moved = run("POST", "/v1/redemptions/nope/reversal", json={},
                   headers={**merchant.auth(), "Idempotency-Key": "undo-2"})
    assert moved == {req("POST", reversal, 404, "redemption_not_found"): 1}


def test_too_many_failed_attempts_is_counted_as_such(db: Engine, merchant: Merchant,
                                                     clock: Clock):
    guard = Guard(Limits(max_per_key=2, max_per_address=0))
    with TestClient(create_app(db, Settings(guard=guard), clock=clock)) as client:
        run = Counted(client)
        route = "/v1/coupons/{code}"
        for _ in range(2):
            r, moved = run("GET", f"/v1/coupons/{generate_code()}", headers=merchant.auth())
            assert moved == {req("GET", route, 404, "coupon_not_found"): 1}
        r, moved = run("GET", f"/v1/coupons/{generate_code()}", headers=merchant.auth())
        assert r.status_code == 429
        assert moved == {req("GET", route, 429, "too_many_failed_attempts"): 1}


def test_pos_vendor_replies_count_the_hub_outcome_per_connector(client, db, merchant, clock):
    """The acme vendor answers in its own JSON ({"ret": …}); the counter still knows the
    hub's outcome code, per connector and operation."""
    tpl = make_template(db, merchant, clock.now)
    [code] = issue(db, merchant, tpl, clock.now)
    run = Counted(client)
    url = "/v1/pos/pos.mapped.acme/redeem"
    route = "/v1/pos/{connector}/{operation}"

    def body(req_id: str) -> dict[str, str]:
        return {"req_id": req_id, "shop_no": "SH-001", "coupon_no": code,
                "order_no": "A-1004", "total_amt": "128.00"}

    r, moved = run("POST", url, json=body("T-1"), headers=merchant.auth())
    assert r.json()["ret"] == 0, r.text
    assert moved == {req("POST", route, r.status_code, "redeemed"): 1,
                     pos("pos.mapped.acme", "redeem", "redeemed"): 1}
    r, moved = run("POST", url, json=body("T-1"), headers=merchant.auth())
    assert moved == {req("POST", route, r.status_code, "replayed"): 1,
                     pos("pos.mapped.acme", "redeem", "replayed"): 1}
    r, moved = run("POST", url, json=body("T-2"), headers=merchant.auth())
    assert r.json()["ret"] != 0 and "code" not in r.json()  # the vendor's shape only
    assert moved == {req("POST", route, r.status_code, "coupon_already_redeemed"): 1,
                     pos("pos.mapped.acme", "redeem", "coupon_already_redeemed"): 1}
    native = {"code": code, "store": "SH-001", "order": order()}
    r, moved = run("POST", "/v1/pos/pos.native/validate", json=native, headers=merchant.auth())
    assert moved == {req("POST", route, 409, "coupon_already_redeemed"): 1,
                     pos("pos.native", "validate", "coupon_already_redeemed"): 1}
    # an unknown connector is no label: the route counts it, the POS counter does not
    r, moved = run("POST", "/v1/pos/pos.nope/redeem", json=native, headers=merchant.auth())
    assert moved == {req("POST", route, 404, "not_found"): 1}


def test_latency_histograms_have_their_buckets(client, merchant):
    before = samples(client)
    client.get("/health")
    after = samples(client)
    labels = (("method", "GET"), ("route", "/health"))
    name = "hub_http_request_duration_seconds"
    bounds = {dict(k[1])["le"] for k in after
              if k[0] == f"{name}_bucket" and dict(k[1]).get("route") == "/health"}
    assert bounds == {str(float(b)) for b in LATENCY_BUCKETS} | {"+Inf"}
    count = (f"{name}_count", labels)
    assert after[count] - before.get(count, 0.0) == 1
    inf = (f"{name}_bucket", tuple(sorted((*labels, ("le", "+Inf")))))
    assert after[inf] == after[count]
    assert after[(f"{name}_sum", labels)] > before.get((f"{name}_sum", labels), 0.0)


def test_labels_stay_bounded_under_a_flood_of_random_paths(client, merchant):
    rng = random.Random(11)
    app_routes = {getattr(r, "path_format", r.path) for r in client.app.routes}
    series_before = set(samples(client))
    for i in range(300):
        parts = (uuid.uuid4().hex[: rng.randint(1, 12)] for _ in range(rng.randint(1, 4)))
        path = "/" + "/".join(parts)
        method = rng.choice(["GET", "POST", "DELETE", "PURGE", f"X{i}"])
        client.request(method, rng.choice([path, f"/v1/coupons/{path}", f"/v1/pos{path}"]),
                       headers=merchant.auth())
    text = client.get("/metrics").text
    routes, methods, outcomes, connectors = set(), set(), set(), set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if fam.name.startswith("hub_http_request"):
                routes.add(s.labels["route"])
                methods.add(s.labels["method"])
                outcomes.add(s.labels.get("outcome", "ok"))
            if fam.name.startswith("hub_pos_request"):
                connectors.add(s.labels["connector"])
    assert routes <= app_routes | {"unmatched"}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert outcomes <= OUTCOMES
    for name in connectors:  # only connectors the registry resolved
        assert isinstance(get_connector(name), InboundConnector)
    # 300 distinct paths and ~65 distinct methods: a handful of new series, not hundreds
    new = {key for key in samples(client) if key not in series_before}
    new_routes = {dict(labels).get("route") for _, labels in new} - {None, "/metrics"}
    assert new_routes <= {"unmatched", "/v1/coupons/{code}", "/v1/pos/{connector}/{operation}"}
    histogram_series = len(LATENCY_BUCKETS) + 3  # buckets, +Inf, _count, _sum
    assert len(new) <= 12 * (2 + histogram_series), sorted(new)  # counter: _total, _created


_CHILD = """
import sys
from litestar.testing import TestClient
from sqlalchemy import create_engine
from prometheus_client import generate_latest
from hub.api import metrics
from hub.api.app import create_app
assert metrics.multiprocess()
if sys.argv[1] == "scrape":
    sys.stdout.write(b"".join(generate_latest(c) for c in metrics.request_collectors()).decode())
else:
    with TestClient(create_app(create_engine("sqlite://"))) as c:
        for _ in range(int(sys.argv[1])):
            assert c.get("/health").status_code == 200
"""


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Iterator[dict[str, str]]:
    d = tmp_path / "prom"
    d.mkdir()
    yield {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(d)}


def _child(env: dict[str, str], arg: str) -> str:
    done = subprocess.run([sys.executable, "-c", _CHILD, arg], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_multiprocess_mode_sums_every_api_process(multiproc_dir):
    _child(multiproc_dir, "3")
    _child(multiproc_dir, "2")  # another process, another pid: its own file
    text = _child(multiproc_dir, "scrape")
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in text_string_to_metric_families(text) for s in fam.samples}
    health = req("GET", "/health", 200, "ok")
    assert got[health] == 5
    count = ("hub_http_request_duration_seconds_count",
             (("method", "GET"), ("route", "/health")))
    assert got[count] == 5


def test_multiprocess_mode_refuses_a_missing_directory(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "absent")}
    done = subprocess.run([sys.executable, "-c", _CHILD, "1"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "PROMETHEUS_MULTIPROC_DIR" in done.stderr

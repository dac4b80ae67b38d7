"""Schemathesis against the served OpenAPI document: no 5xx, every response as documented.

The app runs under uvicorn on loopback (``live_server``); the schema is read from
``/schema/openapi.json`` as a client would; every operation gets a bounded number of
generated requests (``EXAMPLES`` each: schema-valid ones, schema-invalid ones, and for
operations with path parameters schema-valid ones aimed at resources that exist), all
with the merchant's admin key, derandomized so a run is repeatable. Checks:

* ``not_a_server_error`` — no 5xx, ever;
* ``status_code_conformance`` — every status is documented for its operation;
* ``content_type_conformance`` and ``response_schema_conformance`` — the body is of a
  documented media type and matches the documented schema;
* ``negative_data_rejection`` — a schema-invalid request is refused with a 4xx.

It runs on both backends: PostgreSQL refuses values SQLite stores (NUL characters,
over-long strings), which is where 5xx bugs hide. Each backend takes about 25 s.

Schemathesis' own pytest integration (``schemathesis.pytest.from_fixture``) does not run
under pytest 9.2 (it sets ``Node._nodeid``, which pytest 9.2 no longer has), so the
operations are driven here through the documented ``APIOperation.as_strategy`` API with
Hypothesis; failures are collected (not shrunk) and reported together.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from tests.conftest import Clock, Merchant, issue, make_template, order

EXAMPLES = 25  # per operation and kind of input
SEED = 20261125
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# A schema-invalid request must get one of these (not 409: a shape error is reported
# before any state check; 414/431 only for huge requests, listed for completeness).
REJECTIONS = ["400", "401", "403", "404", "413", "414", "415", "422", "431"]


@pytest.fixture(autouse=True)
def _guard_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guessing guard off (set before ``live_server`` builds the app): random codes
    are failures, and after 20 of them every redeem, validate and look-up of the key
    would answer 429, leaving those operations unexplored. The guard has its own tests."""
    monkeypatch.setenv("HUB_GUESS_MAX_FAILURES", "0")
    monkeypatch.setenv("HUB_GUESS_MAX_FAILURES_PER_ADDRESS", "0")


def _known_resources(base: str, db: Engine, m: Merchant, clock: Clock) -> dict[str, str]:
    """Create one of each resource; the path parameters that name them."""
    tpl = make_template(db, m, clock.now)
    code, redeemed = issue(db, m, tpl, clock.now, count=2)
    auth = m.auth()
    params = {
        "code": code,
        "template_id": tpl,
        "event_type": "coupon.redeemed",
        "connector": "pos.native",
        "operation": "validate",
    }
    with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
        sub = http.post(
            "/v1/subscriptions",
            json={
                "connector": "webhook",
                "config": {"url": "https://receiver.example/h", "secret": "whsec_" + "QUJDRA" * 4},
                "events": ["*"],
            },
        )
        assert sub.status_code == 201, sub.text
        params["subscription_id"] = sub.json()["id"]
        r = http.post(
            "/v1/redemptions",
            json={"code": redeemed, "store": "SH-001", "order": order()},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text
        params["redemption_id"] = r.json()["redemption_id"]
        deliveries = http.get("/v1/deliveries").json()["items"]
        assert deliveries, "the redemption should have made a delivery"
        params["delivery_id"] = deliveries[0]["id"]
        key = http.post("/v1/keys", json={"role": "analyst", "name": "schemathesis"})
        if key.status_code == 201:
            params["key_id"] = key.json()["id"]
    return params


def _path_parameters(operation: Any) -> list[str]:
    return [p.name for p in operation.path_parameters]


def _run(
    kind: str,
    strategy: Any,
    label: str,
    runs: Counter[str],
    statuses: Counter[str],
    failures: dict[tuple[str, str], str],
) -> None:
    """``EXAMPLES`` requests from ``strategy``; failures are recorded, not raised."""

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        runs[label] += 1
        try:
            response = case.call(timeout=30)
            statuses[f"{response.status_code // 100}xx"] += 1
            case.validate_response(response, checks=CHECKS)
        except (Exception, FailureGroup) as exc:  # collected, reported by the test
            what = "\n".join(str(exc).strip().splitlines()[:12])
            failures.setdefault((label, what), case.as_curl_command())

    try:
        run()
    except Unsatisfiable:
        # nothing to make invalid: GET /health and friends take no parameter and no key
        if kind != "negative":
            raise


def test_schemathesis_finds_nothing(
    live_server: str, db: Engine, merchant: Merchant, clock: Clock, record_property: Any
) -> None:
    known = _known_resources(live_server, db, merchant, clock)
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"database": "none"},
            # the key goes on through the spec's security scheme, so that schemathesis
            # can still leave it out on purpose (and then expect a 401)
            "auth": {"openapi": {"apiKey": {"bearer": merchant.admin_key}}},
            "checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}},
            # a mapped POS vendor's protocol answers refusals with 200 and its own error
            # code (acme: {"ret": 2002, ...}); see schemathesis.toml
            "operations": [
                {
                    "include-path": "/v1/pos/{connector}/{operation}",
                    "checks": {
                        "negative_data_rejection": {"expected-statuses": [*REJECTIONS, "200"]}
                    },
                }
            ],
        }
    )
    schema = schemathesis.openapi.from_url(f"{live_server}/schema/openapi.json", config=config)
    runs: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    failures: dict[tuple[str, str], str] = {}
    started = time.perf_counter()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        names = _path_parameters(operation)
        strategies = [
            ("positive", operation.as_strategy(GenerationMode.POSITIVE)),
            ("negative", operation.as_strategy(GenerationMode.NEGATIVE)),
        ]
        if names and all(n in known for n in names):
            fixed = {n: known[n] for n in names}
            strategies.append(
                ("existing", operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed))
            )
        for kind, strategy in strategies:
            _run(kind, strategy, operation.label, runs, statuses, failures)
    elapsed = time.perf_counter() - started
    total = sum(runs.values())
    answers = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    summary = f"{operations} operations, {total} requests ({answers}), {elapsed:.1f} s"
    record_property("schemathesis", summary)
    print(f"schemathesis: {summary}")
    assert operations >= 40 and all(runs.values())
    report = "\n\n".join(
        f"{label}: {what}\n  {curl[:600]}" for (label, what), curl in failures.items()
    )
    assert not failures, f"{len(failures)} findings ({summary}):\n\n{report}"


# --- the schemathesis engine itself: every check, stateful links ----------------------------

ST_MAX_EXAMPLES = 8  # per operation and phase: about 2,000 requests, 15-30 s a backend


def test_schemathesis_all_checks_and_stateful_links(
    live_server: str, merchant: Merchant, tmp_path: Any, record_property: Any
) -> None:
    """Issue 9 item 14: ``st run --checks all`` over the served document, with the
    coverage, fuzzing and stateful phases (the stateful phase follows the ``links`` of
    the create responses: POST /v1/templates → GET/pause/resume/issue, POST
    /v1/subscriptions → GET/PATCH/DELETE/…, POST /v1/redemptions → reversal), finds
    nothing. The repository's ``schemathesis.toml`` is the configuration."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cmd = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(root / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{live_server}/schema/openapi.json",
        "--checks",
        "all",
        "--phases",
        "coverage,fuzzing,stateful",
        "--max-examples",
        str(ST_MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "-H",
        f"Authorization: Bearer {merchant.admin_key}",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    started = time.perf_counter()
    run = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env, check=False
    )
    elapsed = time.perf_counter() - started
    out = run.stdout + run.stderr
    tail = "\n".join(out.strip().splitlines()[-25:])
    record_property("schemathesis_cli", f"{elapsed:.1f} s; {tail.splitlines()[-1]}")
    print(out[-3000:])
    assert "Stateful" in out and "Coverage" in out and "Fuzzing" in out, tail
    assert run.returncode == 0, out[-12000:]
    assert "failures" not in tail.splitlines()[-1], tail

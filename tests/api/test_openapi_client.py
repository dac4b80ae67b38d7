"""A client generated from ``/schema/openapi.json`` by a standard generator runs the
README walkthrough against a real ``hub serve`` (issue 9 item 14).

``openapi-python-client`` (a dev extra) generates a typed client from the document the
hub serves; the test imports it and, with the demo facts ``hub serve`` writes, looks a
code up, validates the order, redeems with an Idempotency-Key, replays the redeem (same
answer, ``Idempotent-Replayed: true``) and sees a second redeem refused with
``coupon_already_redeemed`` — each answer parsed into the generated models.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow

PACKAGE = "hubclient"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``hub serve`` on a free loopback port with a temporary SQLite database."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    hub = Path(sys.executable).with_name("hub")
    proc = subprocess.Popen(
        [str(hub), "serve", "--db", str(tmp_path / "hub.db"), "--port", str(port),
         "--demo-file", str(tmp_path / "hub-demo.json")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"hub serve exited with {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("hub serve did not answer within 60 s")
            time.sleep(0.2)
        facts = json.loads((tmp_path / "hub-demo.json").read_text())
        yield base, facts
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _generate(base: str, out: Path) -> None:
    generator = Path(sys.executable).with_name("openapi-python-client")
    run = subprocess.run(
        [str(generator), "generate", "--url", f"{base}/schema/openapi.json",
         "--meta", "none", "--output-path", str(out / PACKAGE)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert (out / PACKAGE / "client.py").exists(), run.stdout[-4000:]


def test_generated_client_runs_the_readme_walkthrough(
    served: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    base, facts = served
    gen = tmp_path / "generated"
    gen.mkdir()
    _generate(base, gen)
    sys.path.insert(0, str(gen))
    try:
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        client_mod = importlib.import_module(f"{PACKAGE}.client")
        models = importlib.import_module(f"{PACKAGE}.models")
        get_coupon = importlib.import_module(f"{PACKAGE}.api.coupons.v1_coupons_code_get_coupon")
        validate = importlib.import_module(
            f"{PACKAGE}.api.redemptions.v1_redemptions_validate_validate"
        )
        redeem = importlib.import_module(f"{PACKAGE}.api.redemptions.v1_redemptions_redeem")
        _walkthrough(base, facts, client_mod, models, get_coupon, validate, redeem)
    finally:
        sys.path.remove(str(gen))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _walkthrough(
    base: str,
    facts: dict[str, Any],
    client_mod: Any,
    models: Any,
    get_coupon: Any,
    validate: Any,
    redeem: Any,
) -> None:
    key = facts["store_keys"]["SH-001"]  # the POS of store SH-001
    code = facts["codes"]["threshold"][0]  # a 满100减20 coupon
    with client_mod.AuthenticatedClient(base_url=base, token=key) as client:
        # 1. Present: look the code up
        coupon = get_coupon.sync(code=code, client=client)
        assert isinstance(coupon, models.CouponOut), coupon
        assert coupon.code == code and str(coupon.status.value) == "issued"
        assert coupon.template.kind == "threshold"

        # 2. Verify: a dry run with the order
        body = models.RedeemIn(code=code, order=models.OrderIn(id="A-1001", amount=12800))
        checked = validate.sync(client=client, body=body)
        assert isinstance(checked, models.ValidationOut), checked
        assert checked.discount == 2000 and checked.payable == 10800

        # 3. Done: redeem, exactly once per Idempotency-Key
        first = redeem.sync_detailed(client=client, body=body, idempotency_key="A-1001-coupon-1")
        assert first.status_code == 201, first.content
        done = first.parsed
        assert isinstance(done, models.RedemptionOut), done
        assert done.code == code and done.discount == 2000 and done.store == "SH-001"

        # The answer was lost? Retry with the same key: the same answer, replayed
        again = redeem.sync_detailed(client=client, body=body, idempotency_key="A-1001-coupon-1")
        assert again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.content == first.content
        assert again.parsed.redemption_id == done.redemption_id

        # Another till presents the same code: refused, as a typed problem
        other = models.RedeemIn(code=code, order=models.OrderIn(id="A-1002", amount=12800))
        refused = redeem.sync_detailed(client=client, body=other, idempotency_key="A-1002-c-1")
        assert refused.status_code == 409, refused.content
        assert isinstance(refused.parsed, models.Problem), refused.parsed
        assert refused.parsed.code == "coupon_already_redeemed"

        # and the coupon now reads as redeemed, its history typed too
        after = get_coupon.sync(code=code, client=client)
        assert str(after.status.value) == "redeemed" and after.redemption_id == done.redemption_id
        assert [h.type_ for h in after.history][-1] == "coupon.redeemed"

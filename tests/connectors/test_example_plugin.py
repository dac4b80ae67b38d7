"""Plugins work outside the tree: the example package ``examples/hub-csv-crm`` is
pip-installed (into a folder of its own, put on PYTHONPATH), a real ``hub serve`` finds
it through its entry point, and a redemption is delivered to it over loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.delivery.receiver import receiver_fixture

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hub-csv-crm"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` of a copy of the example (no network: no build isolation, no deps)."""
    work = tmp_path_factory.mktemp("plugin")
    source = work / "hub-csv-crm"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    site = work / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert list(site.glob("hub_csv_crm-*.dist-info/entry_points.txt"))
    return site


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_DATABASE_URL", "HUB_BROKER_URL")}
    env["PYTHONPATH"] = str(site)
    return env


def test_the_installed_plugin_is_discovered(plugin_site: Path):
    listed = subprocess.run(
        [str(BIN / "hub"), "connectors", "list"],
        env=_env(plugin_site),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "crm.csv" in listed.stdout and "UNAVAILABLE" not in listed.stdout
    about = subprocess.run(
        [str(BIN / "hub"), "connectors", "about", "crm.csv"],
        env=_env(plugin_site),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert about.returncode == 0, about.stderr
    facts = json.loads(about.stdout)
    assert facts["kind"] == "crm" and facts["secret_fields"] == ["token"]
    assert facts["config_schema"]["required"] == ["url", "token"]
    # without the plugin on the path, the same hub knows nothing of it
    bare = subprocess.run(
        [str(BIN / "hub"), "connectors", "list"],
        env=_env(Path("/nonexistent")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "crm.csv" not in bare.stdout


def test_the_plugin_passes_the_contract_kit_from_its_own_tests(plugin_site: Path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=_env(plugin_site),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=plugin_site,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.fixture
def served(plugin_site: Path, tmp_path: Path) -> Iterator[tuple[str, dict]]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "hub"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_env(plugin_site),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"hub serve did not start:\n{out}")
            time.sleep(0.1)
        yield base, json.loads((tmp_path / "hub-demo.json").read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_redemption_is_delivered_to_the_installed_plugin(served):
    base, demo = served
    admin = {"Authorization": f"Bearer {demo['admin_key']}"}
    for receiver in receiver_fixture():
        r = httpx.post(
            f"{base}/v1/subscriptions",
            headers=admin,
            json={
                "connector": "crm.csv",
                "config": {"url": receiver.url, "token": "s3cret-token"},
                "events": ["*"],
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["config"]["token"] == "***"
        assert r.json()["events"] == ["coupon.redeemed", "coupon.redemption_reversed"]
        code = demo["codes"]["threshold"][0]
        claimed = httpx.post(
            f"{base}/v1/coupons/{code}/claim", headers=admin, json={"customer": "M0042"}
        )
        assert claimed.status_code == 200, claimed.text
        redeemed = httpx.post(
            f"{base}/v1/redemptions",
            headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
            json={
                "code": code,
                "store": "SH-001",
                "channel": "pos",
                "order": {"id": "EX-1", "amount": 12800},
            },
        )
        assert redeemed.status_code == 201, redeemed.text
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(receiver.requests) == 1
        got = receiver.requests[0]
        assert got.headers["content-type"].startswith("text/csv")
        assert got.headers["authorization"] == "Token s3cret-token"
        header, row = got.body.decode().splitlines()
        assert header == "event_id,member,points,reason,occurred_at"
        event_id, member, points, reason, _at = row.split(",")
        assert (member, points, reason) == ("M0042", "108", "coupon.redeemed")
        assert got.headers["idempotency-key"] == event_id and event_id.startswith("evt_")

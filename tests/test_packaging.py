"""`pip install .` (not editable) works: a wheel built from the repository, installed in a
fresh virtual environment and run outside the repository, finds its seeds, its mapping
files and the mapping schema as package data, serves the demo and the acme/nimbus
mappings.

Offline and honest: the wheel is built with the dev environment's setuptools
(``--no-build-isolation --no-index``) from a copy of the repository; the fresh venv gets
the wheel (``--no-deps``) and sees the dev environment's site-packages only as a plain
path for the third-party dependencies (a ``.pth`` line: no ``.pth`` files of the dev
environment run there, so its editable install of this project is not active) — and the
test checks that ``hub``, ``connectors`` and the data come from the fresh venv.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    ".mypy_cache", ".ruff_cache", "hub.db*", "hub-demo.json", "hub-secret.key",
)


def _run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300):
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUB_", "PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env["HOME"] = str(home)
    env["PIP_NO_INDEX"] = "1"  # never the network
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project installed from a wheel; returns its bin/ folder."""
    base = tmp_path_factory.mktemp("wheel")
    env = _clean_env(base)
    src = base / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=COPY_IGNORE)
    dist = base / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", dist, src, cwd=base, env=env)
    wheels = list(dist.glob("redemption_hub-*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base, env=env)
    py = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index",
         wheels[0], cwd=base, env=env)
    site = Path(_run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=base, env=env).stdout.strip())
    # the dependencies (litestar, sqlalchemy, ...) from the dev environment, as a plain path
    (site / "zz_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    shutil.rmtree(src)  # nothing of the source tree is left to lean on
    return venv / "bin"


def test_the_installed_package_carries_its_data(installed: Path, tmp_path: Path):
    env = _clean_env(tmp_path)
    venv = installed.parent
    where = json.loads(_run(installed / "python", "-c", (
        "import json, hub, connectors, importlib.metadata as md;"
        "from hub.seeding import SEEDS_DIR;"
        "from connectors.pos.mapped import DEFAULT_MAPPINGS_DIR, SCHEMA_FILE;"
        "print(json.dumps({'hub': hub.__file__, 'connectors': connectors.__file__,"
        " 'seeds': str(SEEDS_DIR), 'mappings': str(DEFAULT_MAPPINGS_DIR),"
        " 'schema': str(SCHEMA_FILE),"
        " 'dist': str(md.distribution('redemption-hub').locate_file(''))}))"
    ), cwd=tmp_path, env=env).stdout)
    for name, path in where.items():
        assert Path(path).resolve().is_relative_to(venv.resolve()), (name, path)
        assert not Path(path).resolve().is_relative_to(ROOT), (name, path)
    assert sorted(p.name for p in Path(where["seeds"]).iterdir()) == sorted(
        p.name for p in (ROOT / "seeds").glob("*.yaml"))  # every seed file of the repository
    assert Path(where["schema"]).is_file()
    version = _run(installed / "hub", "--version", cwd=tmp_path, env=env).stdout
    assert version.strip() == "hub 0.1.0"
    listed = json.loads(_run(installed / "hub", "connectors", "list", "--json",
                             cwd=tmp_path, env=env).stdout)
    names = {c["name"] for c in listed["connectors"]}
    assert {"pos.mapped.acme", "pos.mapped.nimbus", "webhook"} <= names
    assert listed["problems"] == []


def test_the_installed_hub_serves_the_demo_and_the_mappings(installed: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = _clean_env(tmp_path)
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(installed / "hub"), "serve", "--port", str(port)],
                            cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        (tmp_path / "serve.log").read_text(errors="replace")) from None
                time.sleep(0.2)
        facts = json.loads((run_dir / "hub-demo.json").read_text(encoding="utf-8"))
        key = facts["store_keys"]["SH-001"]
        codes = facts["codes"]["threshold"]
        assert len(codes) >= 2 and (run_dir / "hub.db").exists()
        with httpx.Client(base_url=facts["base_url"], timeout=15,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            acme = http.post("/v1/pos/pos.mapped.acme/redeem", json={
                "req_id": "PKG-1", "shop_no": "SH-001", "coupon_no": codes[0],
                "order_no": "PKG-A1", "total_amt": "128.00"})
            assert acme.status_code == 200, acme.text
            assert acme.json()["ret"] == 0 and acme.json()["data"]["discount_amt"] == "20.00"
            now_ms = int(datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).timestamp()
                         * 1000)
            nimbus = http.post("/v1/pos/pos.mapped.nimbus/validate", json={
                "header": {"requestId": "pkg-nimbus-1", "timestamp": now_ms,
                           "storeCode": "SH-001", "deviceId": "POS-07"},
                "body": {"voucher": {"code": codes[1]},
                         "order": {"orderNo": "PKG-N1", "channelType": 2,
                                   "payableAmount": 12850}}})
            assert nimbus.status_code == 200, nimbus.text
            assert nimbus.json()["success"] is True, nimbus.text
            assert http.get(f"/v1/coupons/{codes[0]}").json()["status"] == "redeemed"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()

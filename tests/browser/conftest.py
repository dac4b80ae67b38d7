"""Browser tests: a real ``hub serve`` process and a real headless Chromium.

Reusable by every page the hub serves (the dashboard; the staff page later):

* ``live_hub`` (session): ``hub serve`` as its own process on a loopback port, on a fresh
  SQLite database (one backend: these tests judge the page, and the figures behind it are
  tested on both databases by the API's own tests), with a known merchant
  (:func:`tests.conftest.make_merchant`: stores SH-001, SH-002, BJ-001, an admin key and a
  key per store), two templates (threshold, percentage) and a little history made through
  the API (redemptions at two stores on two channels, one reversed) — see
  :data:`HISTORY`. Stopped (SIGTERM, drained) at the end; its log is shown when it fails.
  :func:`running_hub` starts another (a test module's own, e.g. without the history).
* ``chrome`` (session): Debian's ``chromium`` driven by ``chromedriver`` through Selenium,
  headless, 1280×900, browser logs collected (``goog:loggingPrefs``). Missing binaries
  fail with the command that installs them (``.ci/run`` does): never skipped silently.
* ``browser`` (per test): the same driver on a blank page with empty storage and the
  console's buffer drained; :func:`console_errors` reads what the page logged since.
* :func:`wait_ready`, :func:`api_get`: wait for the page's ``data-state``, read the API
  as the page does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from hub.db.engine import make_engine
from hub.db.migrate import upgrade
from tests.conftest import THRESHOLD_SPEC, free_port, issue, make_merchant, make_template

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = (
    os.environ.get("HUB_TEST_CHROMEDRIVER")
    or shutil.which("chromedriver")
    or "/usr/bin/chromedriver"
)
WINDOW = (1280, 900)
WAIT_SECONDS = 60  # a ceiling for slow machines, never a timing assertion

PERCENT_SPEC: dict[str, Any] = {
    "benefit": {"kind": "percentage", "percent_off": 10},
    "validity": {"type": "relative", "days": 30},
}

# (template, store, channel, order amount, reversed): redeemed through the API at start
HISTORY: tuple[tuple[str, str, str, int, bool], ...] = (
    ("threshold", "SH-001", "pos", 12800, False),
    ("threshold", "SH-001", "pos", 15000, False),
    ("threshold", "SH-001", "mini_program", 20000, False),
    ("percentage", "SH-001", "pos", 8800, False),
    ("percentage", "SH-001", "h5", 5000, True),
    ("threshold", "SH-002", "pos", 11000, False),
    ("percentage", "SH-002", "pos", 6600, False),
)
ISSUED_PER_TEMPLATE = 12


@dataclass
class LiveHub:
    """A running ``hub serve``: its base URL, keys and merchant."""

    url: str
    admin_key: str
    store_keys: dict[str, str]
    merchant_id: str
    templates: dict[str, str]
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}


def api_get(hub: LiveHub, path: str, key: str | None = None, **params: Any) -> Any:
    """``GET path`` as the page asks it (empty parameters left out)."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    r = httpx.get(f"{hub.url}{path}", params=query, headers=hub.auth(key), timeout=30)
    assert r.status_code == 200, f"{path} {query}: {r.status_code} {r.text[:300]}"
    return r.json()


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "hub serve did not start: " + log.read_text()[-2000:]
        time.sleep(0.1)


def _redeem_history(hub: LiveHub, coupons: dict[str, list[str]]) -> None:
    left = {kind: list(codes) for kind, codes in coupons.items()}
    with httpx.Client(base_url=hub.url, timeout=30) as http:
        for n, (kind, store, channel, amount, reverse) in enumerate(HISTORY):
            body = {
                "code": left[kind].pop(0),
                "store": store,
                "channel": channel,
                "order": {"id": f"B-{n:04d}", "amount": amount},
            }
            r = http.post(
                "/v1/redemptions",
                json=body,
                headers={**hub.auth(), "Idempotency-Key": uuid.uuid4().hex},
            )
            assert r.status_code == 201, r.text
            if reverse:
                rid = r.json()["redemption_id"]
                rev = http.post(
                    f"/v1/redemptions/{rid}/reversal",
                    json={"reason": "refund"},
                    headers={**hub.auth(), "Idempotency-Key": uuid.uuid4().hex},
                )
                assert rev.status_code in (200, 201), rev.text


def _analytics_served(hub: LiveHub) -> bool:
    r = httpx.get(f"{hub.url}/v1/dashboard/access", headers=hub.auth(), timeout=30)
    return bool(r.status_code == 200 and r.json()["panels"]["analytics"])


def _wait_for_rollups(hub: LiveHub) -> None:
    """The analytics figures lag the redemptions by a bound (the rollup consumer runs in
    ``hub serve``'s delivery runtime): wait until they count the whole history."""
    if not _analytics_served(hub):
        return
    redeemed = len(HISTORY)
    reversed_ = sum(1 for h in HISTORY if h[4])
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        figures = api_get(hub, "/v1/analytics/summary")["figures"]
        if figures["redeemed"] == redeemed and figures["reversed"] == reversed_:
            return
        assert time.monotonic() < deadline, f"the rollups never counted the history: {figures}"
        time.sleep(0.2)


@contextmanager
def running_hub(home: Path, *, history: bool = True) -> Iterator[LiveHub]:
    """``hub serve`` on a fresh SQLite database in ``home`` with a known merchant and keys;
    with ``history``, the redemptions of :data:`HISTORY` made through the API first."""
    path = home / "hub.db"
    log = home / "serve.log"
    engine = make_engine(str(path), pool_size=2, max_overflow=0)
    try:
        upgrade(engine)
        now = datetime.now(UTC).replace(microsecond=0)
        m = make_merchant(engine, now, name="Browser Tea")
        templates = {
            "threshold": make_template(engine, m, now, THRESHOLD_SPEC, name="满100减20"),
            "percentage": make_template(engine, m, now, PERCENT_SPEC, name="九折券"),
        }
        coupons = {
            kind: issue(engine, m, tid, now, count=ISSUED_PER_TEMPLATE)
            for kind, tid in templates.items()
        }
    finally:
        engine.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HUB_LOG_LEVEL": "WARNING", "HUB_DB_POOL_SIZE": "3",
           "HUB_DB_MAX_OVERFLOW": "2"}
    env.pop("HUB_DATABASE_URL", None)
    env.pop("HUB_BROKER_URL", None)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--no-demo", "--db", str(path),
             "--host", "127.0.0.1", "--port", str(port), "--demo-file", str(home / "demo.json")],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(proc, url, log)
        hub = LiveHub(url=url, admin_key=m.admin_key, store_keys=m.store_keys,
                      merchant_id=m.id, templates=templates, log=log,
                      extra={"coupons": coupons})
        if history:
            _redeem_history(hub, coupons)
            _wait_for_rollups(hub)
        yield hub
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """``hub serve`` on a fresh SQLite database with a known merchant, keys and history."""
    with running_hub(tmp_path_factory.mktemp("live-hub")) as hub:
        yield hub


def _chrome_options(
    language: str = "en-US", window: tuple[int, int] = WINDOW, extra_args: Sequence[str] = ()
) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={window[0]},{window[1]}",
        f"--lang={language}",
        *extra_args,
    ):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def start_chrome(
    language: str = "en-US", window: tuple[int, int] = WINDOW, extra_args: Sequence[str] = ()
) -> WebDriver:
    """A headless Chromium through Debian's chromedriver (no driver download); ``window``
    its size, ``extra_args`` more switches (a fake camera: the staff page's tests)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver "
            "(`apt-get install -y chromium chromium-driver`, as .ci/run does)"
        )
    return webdriver.Chrome(
        options=_chrome_options(language, window, extra_args), service=Service(CHROMEDRIVER)
    )


@pytest.fixture(scope="session")
def chrome() -> Iterator[WebDriver]:
    driver = start_chrome()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chrome: WebDriver, live_hub: LiveHub) -> Iterator[WebDriver]:
    """The session's Chromium on a blank page of the hub's origin, storage emptied and
    the console's buffer drained (so each test reads only its own messages)."""
    chrome.get(f"{live_hub.url}/health")
    chrome.execute_script("window.sessionStorage.clear(); window.localStorage.clear();")
    chrome.get("about:blank")
    chrome.get_log("browser")
    yield chrome


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """The SEVERE messages of the browser's console since the last read (script errors,
    CSP violations, failed loads)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Poll ``condition`` until it is truthy. An element the page re-rendered between
    finding it and reading it (stale) or not there yet counts as "not yet", never as a
    failure: the pages redraw their lists after each answer."""
    return WebDriverWait(
        driver, WAIT_SECONDS, poll_frequency=0.05,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(condition, message=f"waited for {what}")


def page_state(driver: WebDriver) -> tuple[str | None, int]:
    state, gen = driver.execute_script(
        "return [document.body.getAttribute('data-state'),"
        " Number(document.body.getAttribute('data-generation') || 0)];"
    )
    return state, int(gen)


def wait_ready(driver: WebDriver, after_generation: int = 0) -> int:
    """Wait until the page has loaded its panels (a load newer than ``after_generation``);
    returns that load's number."""

    def ready(d: WebDriver) -> int | bool:
        state, gen = page_state(d)
        return gen if state == "ready" and gen > after_generation else False

    return int(wait_for(driver, ready, f"the dashboard's load after #{after_generation}"))

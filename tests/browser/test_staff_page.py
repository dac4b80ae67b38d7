"""The staff page (``/staff``) in a real headless Chromium, phone-sized, with a fake camera.

A real ``hub serve`` of this module's own (fresh, no history: the dashboard's figures stay
its own), staff made through the staff API with sign-in codes, and Chromium started with
``--use-fake-device-for-media-stream --use-fake-ui-for-media-stream
--use-file-for-fake-video-capture=<a .y4m video>``: the video is made here from the hub's
own QR image of a real coupon (``GET /v1/coupons/{code}/qr.png``, its signed ``HT1.`` token),
centred on white. What is proven:

1. sign in with a code → the camera reads the QR (``BarcodeDetector`` or, in Chromium on
   Linux, the vendored zxing WebAssembly) → amount → check → confirm → the discount is
   shown; the API lists that redemption under the staff member (``?staff=``);
2. a code typed by hand, lower-case and grouped, is redeemed;
3. an already redeemed coupon is refused in the page's plain sentence, in English and in
   Chinese;
4. nothing reaches the console's error log (no script error, no CSP violation, no failed
   load) and the token is neither in the URL nor in localStorage, only in sessionStorage;
   the day's list shows the redemption and reverses it after a confirmation;
5. with the network cut (Chromium's offline emulation) the confirm is said to have failed,
   nothing moves on, and the retry sends the same Idempotency-Key: one redemption.

The screenshots of the README (``docs/img/staff-scan.png``, ``docs/img/staff-result.png``)
are written by tests 2 and 1 when ``HUB_SCREENSHOTS=1`` (to a temporary folder otherwise).
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.conftest import (
    ROOT,
    LiveHub,
    console_errors,
    running_hub,
    start_chrome,
    wait_for,
)

pytestmark = pytest.mark.browser

PHONE = (390, 844)
SESSION_SLOT = "hub.staff.session"
VIDEO_SIZE = (640, 480)
# the README's screenshots are rewritten only when asked (HUB_SCREENSHOTS=1): a test run
# leaves the checkout as it found it
SCREENSHOTS = ROOT / "docs" / "img"
THRESHOLD_DISCOUNT = 2000  # tests/conftest.py THRESHOLD_SPEC: 20 yuan off 100 yuan or more


# --- the hub, staff and coupons ------------------------------------------------------------


@pytest.fixture(scope="module")
def staff_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    with running_hub(tmp_path_factory.mktemp("staff-hub"), history=False) as hub:
        hub.extra["left"] = {k: list(v) for k, v in hub.extra["coupons"].items()}
        yield hub


def coupon(hub: LiveHub, kind: str = "threshold") -> str:
    """An unused coupon's code (issued at start)."""
    return str(hub.extra["left"][kind].pop(0))


def call(hub: LiveHub, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
    r = httpx.request(method, f"{hub.url}{path}", headers=hub.auth(key), timeout=30, **kw)
    assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text[:400]}"
    return r.json() if r.content else None


def new_staff(hub: LiveHub, name: str, store: str = "SH-001") -> dict[str, Any]:
    body = {"name": name, "external_id": f"E-{uuid.uuid4().hex[:8]}"}
    return dict(call(hub, "POST", f"/v1/stores/{store}/staff", json=body))


def sign_in_code(hub: LiveHub, staff_id: str) -> str:
    return str(call(hub, "POST", f"/v1/staff/{staff_id}/sign-in-codes")["code"])


def redeem_over_api(hub: LiveHub, code: str, store: str = "SH-002") -> dict[str, Any]:
    body = {"code": code, "store": store, "order": {"id": f"API-{code[:6]}", "amount": 15000}}
    headers = {**hub.auth(), "Idempotency-Key": uuid.uuid4().hex}
    r = httpx.post(f"{hub.url}/v1/redemptions", json=body, headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    return dict(r.json())


# --- the fake camera -------------------------------------------------------------------


def qr_video(hub: LiveHub, code: str, path: Path, frames: int = 6) -> Path:
    """A YUV4MPEG2 video (what Chromium's fake capture device plays, looped; written with
    Pillow) of the hub's own QR image of ``code`` centred on white, 640×480, grey (U and V
    at 128)."""
    r = httpx.get(f"{hub.url}/v1/coupons/{code}/qr.png", headers=hub.auth(), timeout=30)
    assert r.status_code == 200, r.text
    qr = Image.open(io.BytesIO(r.content)).convert("L")
    side = int(VIDEO_SIZE[1] * 0.8)
    qr = qr.resize((side, side), Image.Resampling.NEAREST)
    frame = Image.new("L", VIDEO_SIZE, 255)
    frame.paste(qr, ((VIDEO_SIZE[0] - side) // 2, (VIDEO_SIZE[1] - side) // 2))
    y = frame.tobytes()  # mode L: one byte a pixel, row by row (the Y plane)
    chroma = bytes([128]) * ((VIDEO_SIZE[0] // 2) * (VIDEO_SIZE[1] // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{VIDEO_SIZE[0]} H{VIDEO_SIZE[1]} F5:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + y + chroma + chroma)
    return path


def blank_video(path: Path) -> Path:
    """A white video: the camera sees no code (the screens where typing is tested)."""
    frame = bytes([255]) * (VIDEO_SIZE[0] * VIDEO_SIZE[1])
    chroma = bytes([128]) * ((VIDEO_SIZE[0] // 2) * (VIDEO_SIZE[1] // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{VIDEO_SIZE[0]} H{VIDEO_SIZE[1]} F5:1 Ip A1:1 C420jpeg\n".encode())
        out.write(b"FRAME\n" + frame + chroma + chroma)
    return path


def phone(video: Path, language: str = "en-US") -> WebDriver:
    """A phone-sized headless Chromium (390×844 CSS pixels at twice the density, as a
    mobile browser: headless windows are never narrower than 500) whose camera plays
    ``video``."""
    driver = start_chrome(
        language,
        window=PHONE,
        extra_args=(
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ),
    )
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True},
    )
    return driver


# --- the page ------------------------------------------------------------------------------


def screen(driver: WebDriver) -> str | None:
    return driver.execute_script("return document.body.getAttribute('data-screen');")


def wait_screen(driver: WebDriver, name: str) -> None:
    wait_for(driver, lambda d: screen(d) == name, f"the {name} screen")


def visible_text(driver: WebDriver, element_id: str) -> str:
    def shown(d: WebDriver) -> str | bool:
        el = d.find_element(By.ID, element_id)
        return el.text if el.is_displayed() and el.text.strip() else False

    return str(wait_for(driver, shown, f"#{element_id} shown"))


def sign_in(driver: WebDriver, hub: LiveHub, code: str) -> None:
    driver.get(f"{hub.url}/staff")
    wait_screen(driver, "signin")
    field = driver.find_element(By.ID, "signin-code")
    field.send_keys(code)
    driver.find_element(By.ID, "signin-submit").click()
    wait_screen(driver, "scan")


def type_code(driver: WebDriver, text: str) -> None:
    field = driver.find_element(By.ID, "manual-code")
    field.clear()
    field.send_keys(text)
    driver.find_element(By.ID, "manual-submit").click()
    wait_screen(driver, "coupon")


def check_amount(driver: WebDriver, yuan: str) -> None:
    amount = driver.find_element(By.ID, "amount")
    amount.clear()
    amount.send_keys(yuan)
    driver.find_element(By.ID, "validate").click()


def screenshot(driver: WebDriver, name: str, tmp_path: Path) -> None:
    folder = SCREENSHOTS if os.environ.get("HUB_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(folder / name))


def grouped(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def words(driver: WebDriver, lang: str, name: str) -> str:
    return str(driver.execute_script(f"return window.HubStaffI18n.{lang}.{name};"))


# --- the tests -----------------------------------------------------------------------------


def test_scan_a_qr_with_the_camera_and_redeem_it(staff_hub: LiveHub, tmp_path: Path):
    hub = staff_hub
    staff = new_staff(hub, "Li Na")
    code = coupon(hub)
    driver = phone(qr_video(hub, code, tmp_path / "qr.y4m"))
    try:
        driver.get(f"{hub.url}/staff")
        wait_screen(driver, "signin")
        driver.find_element(By.ID, "signin-code").send_keys(sign_in_code(hub, staff["id"]))
        driver.find_element(By.ID, "signin-submit").click()
        # the camera reads the QR code by itself: the coupon screen opens, found by a scan
        wait_screen(driver, "coupon")
        assert driver.execute_script("return document.body.dataset.foundBy;") == "scan"
        assert driver.find_element(By.ID, "c-code").text == grouped(code)
        assert driver.find_element(By.ID, "c-name").text == "满100减20"
        assert "20.00" in driver.find_element(By.ID, "c-benefit").text
        check_amount(driver, "128")
        assert "20.00" in visible_text(driver, "verdict-discount")
        driver.find_element(By.ID, "confirm").click()
        wait_screen(driver, "result")
        assert driver.find_element(By.ID, "r-discount").text == "¥20.00"
        assert driver.find_element(By.ID, "r-payable").text == "¥108.00"
        redemption_id = driver.execute_script("return document.body.dataset.redemption;")
        screenshot(driver, "staff-result.png", tmp_path)
        # the API lists it under this staff member, at the staff member's store
        items = call(hub, "GET", "/v1/redemptions", params={"staff": staff["id"]})["items"]
        assert [i["redemption_id"] for i in items] == [redemption_id]
        assert items[0]["store"] == "SH-001" and items[0]["discount"] == THRESHOLD_DISCOUNT
        assert items[0]["order_amount"] == 12800
        detail = items[0].get("staff")
        assert detail is None or detail["id"] == staff["id"]
        # back to scanning: the camera reads the same QR code again, now refused as used
        driver.find_element(By.ID, "next").click()
        wait_for(
            driver,
            lambda d: d.find_element(By.ID, "coupon-error").get_attribute("data-code")
            == "coupon_already_redeemed",
            "the used coupon scanned again",
        )
        assert screen(driver) == "coupon"
        assert console_errors(driver) == []
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def typing_phone(
    staff_hub: LiveHub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebDriver]:
    """A phone whose camera sees nothing (codes are typed), reused by the tests below."""
    driver = phone(blank_video(tmp_path_factory.mktemp("camera") / "blank.y4m"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def signed_in(
    staff_hub: LiveHub, typing_phone: WebDriver
) -> Iterator[tuple[WebDriver, dict[str, Any]]]:
    driver = typing_phone
    driver.get(f"{staff_hub.url}/health")
    driver.execute_script("window.sessionStorage.clear(); window.localStorage.clear();")
    driver.get_log("browser")
    staff = new_staff(staff_hub, f"Wang {uuid.uuid4().hex[:4]}")
    sign_in(driver, staff_hub, sign_in_code(staff_hub, staff["id"]))
    yield driver, staff


def test_a_code_typed_by_hand_lower_case_and_grouped_is_redeemed(
    staff_hub: LiveHub, signed_in, tmp_path: Path
):
    driver, staff = signed_in
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.camera;") == "on",
             "the camera on")
    screenshot(driver, "staff-scan.png", tmp_path)
    code = coupon(staff_hub, "percentage")
    type_code(driver, " " + grouped(code).lower() + " ")
    assert driver.execute_script("return document.body.dataset.foundBy;") == "typed"
    assert driver.find_element(By.ID, "c-code").text == grouped(code)
    assert driver.find_element(By.ID, "c-name").text == "九折券"
    check_amount(driver, "88.50")
    assert "8.85" in visible_text(driver, "verdict-discount")
    driver.find_element(By.ID, "confirm").click()
    wait_screen(driver, "result")
    assert driver.find_element(By.ID, "r-discount").text == "¥8.85"
    items = call(staff_hub, "GET", "/v1/redemptions", params={"staff": staff["id"]})["items"]
    assert len(items) == 1 and items[0]["code"] == code and items[0]["discount"] == 885
    assert console_errors(driver) == []


def test_an_already_redeemed_coupon_is_refused_in_plain_words_in_both_languages(
    staff_hub: LiveHub, signed_in
):
    driver, _ = signed_in
    code = coupon(staff_hub)
    redeem_over_api(staff_hub, code)
    type_code(driver, grouped(code))
    check_amount(driver, "150")
    error = driver.find_element(By.ID, "coupon-error")
    wait_for(
        driver,
        lambda d: error.get_attribute("data-code") == "coupon_already_redeemed"
        and d.execute_script("return document.body.dataset.busy;") is None,
        "the refusal",
    )
    english = words(driver, "en", "ERR_coupon_already_redeemed")
    assert english == "This coupon has already been used."
    assert error.text.startswith(english)
    assert "SH-002" in error.text  # where it was used
    assert not driver.find_element(By.ID, "confirm").is_displayed()
    driver.find_element(By.ID, "lang-toggle").click()
    chinese = words(driver, "zh", "ERR_coupon_already_redeemed")
    assert chinese == "这张券已经使用过了。"
    wait_for(driver, lambda d: error.text.startswith(chinese), "the refusal in Chinese")
    assert driver.find_element(By.ID, "validate").text == "检查"
    driver.find_element(By.ID, "lang-toggle").click()  # back to English for the next test
    wait_for(driver, lambda d: error.text.startswith(english), "the refusal in English again")
    # the only message: the browser's own note of the hub's refusal (409), no script error
    assert [
        e for e in console_errors(driver)
        if not (e["source"] == "network" and "/v1/redemptions/validate - " in e["message"]
                and "status of 409" in e["message"])
    ] == []


def test_no_console_error_and_the_token_only_in_session_storage(staff_hub: LiveHub, signed_in):
    driver, staff = signed_in
    session = driver.execute_script(f"return window.sessionStorage.getItem('{SESSION_SLOT}');")
    assert session and '"token":"hs_' in session
    token = driver.execute_script(
        f"return JSON.parse(window.sessionStorage.getItem('{SESSION_SLOT}')).token;"
    )
    assert token not in driver.current_url
    local = driver.execute_script(
        "var o = {}; for (var i = 0; i < localStorage.length; i++) {"
        " var k = localStorage.key(i); o[k] = localStorage.getItem(k); } return JSON.stringify(o);"
    )
    assert token not in local and local == "{}"
    cookies = driver.get_cookies()
    assert cookies == []  # no cookie at all: nothing a cross-site request could ride on
    # the day's list, and a reversal after a confirmation
    code = coupon(staff_hub)
    type_code(driver, code)
    check_amount(driver, "100")
    visible_text(driver, "verdict-discount")
    driver.find_element(By.ID, "confirm").click()
    wait_screen(driver, "result")
    rid = driver.execute_script("return document.body.dataset.redemption;")
    driver.find_element(By.ID, "next").click()
    wait_screen(driver, "scan")
    driver.find_element(By.ID, "open-today").click()
    wait_screen(driver, "today")
    wait_for(  # found and clicked in one step: a redraw in between is only "not yet"
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, f"li[data-redemption='{rid}'] button").click()
        or True,
        "today's list",
    )
    assert grouped(code) in visible_text(driver, "reverse-text")
    driver.find_element(By.ID, "reverse-yes").click()
    wait_for(
        driver,
        lambda d: "reversed" in d.find_element(By.CSS_SELECTOR, f"li[data-redemption='{rid}']")
        .get_attribute("class"),
        "the reversal shown",
    )
    items = call(staff_hub, "GET", "/v1/redemptions", params={"staff": staff["id"]})["items"]
    assert [(i["redemption_id"], i["status"]) for i in items] == [(rid, "reversed")]
    # the whole visit: still nothing in the URL, no console error
    assert token not in driver.current_url
    assert console_errors(driver) == []
    # signing out forgets the token
    driver.find_element(By.ID, "sign-out").click()
    wait_screen(driver, "signin")
    assert driver.execute_script(f"return window.sessionStorage.getItem('{SESSION_SLOT}');") is None


def test_a_network_failure_is_said_and_the_retry_reuses_the_idempotency_key(
    staff_hub: LiveHub, signed_in
):
    driver, staff = signed_in
    code = coupon(staff_hub)
    type_code(driver, code)
    check_amount(driver, "120")
    visible_text(driver, "verdict-discount")
    # every Idempotency-Key the page sends, recorded (the page itself is not changed)
    driver.execute_script(
        "window.__keys = []; var f = window.fetch;"
        "window.fetch = function (u, o) { if (o && o.headers && o.headers['Idempotency-Key'])"
        " { window.__keys.push(o.headers['Idempotency-Key']); } return f.apply(this, arguments); };"
    )
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    try:
        driver.find_element(By.ID, "confirm").click()
        wait_for(
            driver,
            lambda d: d.find_element(By.ID, "coupon-error").get_attribute("data-code") == "network",
            "the network failure said",
        )
        assert driver.find_element(By.ID, "offline").is_displayed()
        assert driver.find_element(By.ID, "retry").is_displayed()
        assert screen(driver) == "coupon"  # nothing half-done: still the same intent
    finally:
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
    driver.find_element(By.ID, "retry").click()
    wait_screen(driver, "result")
    keys = driver.execute_script("return window.__keys;")
    assert len(keys) == 2 and keys[0] == keys[1]
    assert not driver.find_element(By.ID, "offline").is_displayed()
    items = call(staff_hub, "GET", "/v1/redemptions", params={"staff": staff["id"]})["items"]
    assert [i["code"] for i in items] == [code]

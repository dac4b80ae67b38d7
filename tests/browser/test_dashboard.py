"""The dashboard in a real headless Chromium against a real ``hub serve``.

What the page shows is what the API answers the same key for the same filters: the
headline numbers (DOM text), the charts' data (ECharts' own option, read with
``echarts.getInstanceByDom(el).getOption()``) and the league table; a filter changes
them to the API's answer for it; a store key sees its store only; the key stays in the
tab's sessionStorage (never in the URL, never in localStorage); nothing reaches the
console's error log (no script error, no CSP violation, no failed load).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import (
    HISTORY,
    LiveHub,
    api_get,
    console_errors,
    start_chrome,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.browser

KEY_SLOT = "hub.dashboard.key"


# --- the page's number formats, written again here ---------------------------------------


def count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def money(fen: int | None) -> str:
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def rate(r: str | None) -> str:
    return "—" if r is None else f"{Decimal(r) * 100:.2f}%"


def plain(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def expected_figures(summary: dict[str, Any]) -> dict[str, str]:
    f = summary["figures"]
    return {
        "issued": count(f["issued"]),
        "claimed": count(f["claimed"]),
        "redeemed": count(f["redeemed"]),
        "reversed": count(f["reversed"]),
        "net_redeemed": count(f["net_redeemed"]),
        "redemption_rate": rate(f["redemption_rate"]),
        "redemption_rate_within": rate(f["redemption_rate_within"]["rate"]),
        "discount": money(f["discount"]),
        "order_amount": money(f["order_amount"]),
        "average_order_with_coupon": money(f["average_order_with_coupon"]),
        "average_order_without_coupon": money(f["average_order_without_coupon"]),
        "repeat_purchase_rate": rate(f["repeat_purchase_rate"]),
        "time_to_redeem_median": plain(f["time_to_redeem_days"]["median"]),
        "time_to_redeem_p90": plain(f["time_to_redeem_days"]["p90"]),
    }


# --- driving the page ---------------------------------------------------------------------


def sign_in(driver: WebDriver, hub: LiveHub, key: str) -> int:
    driver.get(f"{hub.url}/dashboard")
    wait_for(driver, lambda d: d.find_element(By.ID, "api-key").is_displayed(), "the sign-in form")
    driver.find_element(By.ID, "api-key").send_keys(key)
    driver.find_element(By.ID, "signin-submit").click()
    return wait_ready(driver)


def shown_figures(driver: WebDriver) -> dict[str, str]:
    return dict(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('#figures [data-figure]'))"
            ".map(e => [e.dataset.figure, e.querySelector('.value').textContent]);"
        )
    )


def chart_series(driver: WebDriver, element_id: str) -> dict[str, Any]:
    """ECharts' own option of the chart in ``#element_id``: its category axis and the
    data of each series by id."""
    return driver.execute_script(
        """const o = echarts.getInstanceByDom(document.getElementById(arguments[0])).getOption();
        return {x: o.xAxis && o.xAxis.length ? o.xAxis[0].data : null,
                series: Object.fromEntries(o.series.map(s => [s.id, s.data]))};""",
        element_id,
    )


def filters_of(driver: WebDriver) -> dict[str, str]:
    return {
        "from": driver.find_element(By.ID, "f-from").get_attribute("value") or "",
        "to": driver.find_element(By.ID, "f-to").get_attribute("value") or "",
    }


def change(driver: WebDriver, select_id: str, value: str) -> int:
    _, before = driver.execute_script(
        "return [0, Number(document.body.getAttribute('data-generation') || 0)];"
    )
    Select(driver.find_element(By.ID, select_id)).select_by_value(value)
    return wait_ready(driver, after_generation=int(before))


def assert_page_matches_api(driver: WebDriver, hub: LiveHub, key: str, **params: str) -> None:
    """Every figure and chart of the page equals the API's answer for ``params``."""
    summary = api_get(hub, "/v1/analytics/summary", key, **params)
    assert shown_figures(driver) == expected_figures(summary)

    series = api_get(hub, "/v1/analytics/series", key, group="day", **params)
    shown = chart_series(driver, "chart-series")
    assert shown["x"] == [p["period"] for p in series["points"]]
    for name in ("issued", "claimed", "redeemed", "reversed", "net_redeemed"):
        assert shown["series"][name] == [p[name] for p in series["points"]], name

    for by in ("store", "channel", "kind"):
        rows = api_get(hub, "/v1/analytics/breakdown", key, by=by, **params)["rows"]
        chart = chart_series(driver, f"chart-by-{by}")
        assert chart["series"]["net_redeemed"] == [r["net_redeemed"] for r in rows], by
        assert len(chart["x"]) == len(rows), by
    online = api_get(hub, "/v1/analytics/breakdown", key, by="online", **params)["rows"]
    pie = chart_series(driver, "chart-by-online")["series"]["net_redeemed"]
    assert [p["value"] for p in pie] == [r["net_redeemed"] for r in online]

    funnel = api_get(hub, "/v1/analytics/funnel", key, **params)["steps"]
    shown_funnel = chart_series(driver, "chart-funnel")["series"]["funnel"]
    assert [s["value"] for s in shown_funnel] == [s["count"] for s in funnel]

    league = api_get(hub, "/v1/analytics/stores/league", key, **params)["rows"]
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#league tbody tr[data-store]'))"
        ".map(r => [r.dataset.store, r.classList.contains('lagging'),"
        " r.cells[3].textContent]);"
    )
    assert rows == [[r["store"], r["lagging"], count(r["net_redeemed"])] for r in league]


# --- tests ----------------------------------------------------------------------------------


def test_the_page_loads_with_its_security_headers_and_no_console_error(
    browser: WebDriver, live_hub: LiveHub
):
    # hub serve names the page when it starts
    assert f"dashboard: {live_hub.url}/dashboard;" in live_hub.log.read_text()
    assert f"staff page: {live_hub.url}/staff;" in live_hub.log.read_text()
    r = httpx.get(f"{live_hub.url}/dashboard", timeout=30)
    csp = r.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'",
                      "img-src 'self' data:", "connect-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"

    browser.get(f"{live_hub.url}/dashboard")
    wait_for(browser, lambda d: d.execute_script(
        "return document.body.getAttribute('data-state') === 'signed-out'"
        " && typeof echarts === 'object';"), "the signed-out page")
    assert browser.find_element(By.ID, "signin").is_displayed()
    assert not browser.find_element(By.ID, "board").is_displayed()
    assert console_errors(browser) == []


def test_signed_in_as_admin_the_page_shows_the_api_figures(browser: WebDriver, live_hub: LiveHub):
    sign_in(browser, live_hub, live_hub.admin_key)
    # the first load asks for the API's default range, which then fills the filter
    summary = api_get(live_hub, "/v1/analytics/summary")
    assert filters_of(browser) == {"from": summary["from"], "to": summary["to"]}
    assert summary["figures"]["redeemed"] == len(HISTORY)  # the history is all there
    assert_page_matches_api(browser, live_hub, live_hub.admin_key)
    # an admin sees every panel: the lists of alerts, conflicts and dead deliveries too
    for panel in ("panel-alerts", "panel-conflicts", "panel-dead", "panel-expiring"):
        assert browser.find_element(By.ID, panel).is_displayed(), panel
    assert browser.find_element(By.ID, "f-store").is_displayed()
    assert console_errors(browser) == []


def test_a_filter_changes_every_figure_to_the_apis(browser: WebDriver, live_hub: LiveHub):
    sign_in(browser, live_hub, live_hub.admin_key)
    f = filters_of(browser)
    everywhere = shown_figures(browser)

    change(browser, "f-store", "SH-002")
    assert_page_matches_api(browser, live_hub, live_hub.admin_key, store="SH-002", **f)
    at_sh002 = shown_figures(browser)
    assert at_sh002 != everywhere
    assert at_sh002["redeemed"] == count(sum(1 for h in HISTORY if h[1] == "SH-002"))

    change(browser, "f-kind", "percentage")
    assert_page_matches_api(
        browser, live_hub, live_hub.admin_key, store="SH-002", kind="percentage", **f
    )
    change(browser, "f-store", "")
    change(browser, "f-channel", "offline")
    assert_page_matches_api(
        browser, live_hub, live_hub.admin_key, kind="percentage", channel="offline", **f
    )
    assert console_errors(browser) == []


def test_a_store_key_sees_its_own_store_only(browser: WebDriver, live_hub: LiveHub):
    key = live_hub.store_keys["SH-001"]
    sign_in(browser, live_hub, key)
    assert not browser.find_element(By.ID, "f-store").is_displayed(), "no store filter"
    assert_page_matches_api(browser, live_hub, key)
    assert shown_figures(browser)["redeemed"] == count(
        sum(1 for h in HISTORY if h[1] == "SH-001")
    )
    stores = chart_series(browser, "chart-by-store")["x"]
    assert stores == ["SH-001"]
    league = browser.execute_script(
        "return Array.from(document.querySelectorAll('#league tbody tr[data-store]'))"
        ".map(r => r.dataset.store);"
    )
    assert league == ["SH-001"]
    # the lists a store key may not read are hidden, without a refused call
    for panel in ("panel-alerts", "panel-dead"):
        assert not browser.find_element(By.ID, panel).is_displayed(), panel
    assert console_errors(browser) == []


def test_the_key_stays_in_the_tab_never_in_the_url_or_local_storage(
    browser: WebDriver, live_hub: LiveHub
):
    key = live_hub.admin_key
    sign_in(browser, live_hub, key)
    change(browser, "f-channel", "pos")
    assert key not in browser.current_url
    assert browser.current_url == f"{live_hub.url}/dashboard"
    assert browser.execute_script("return window.localStorage.length;") == 0
    assert browser.execute_script(f"return sessionStorage.getItem('{KEY_SLOT}');") == key
    assert browser.execute_script("return document.cookie;") == ""
    assert key not in browser.page_source  # not echoed into the page either
    history = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat(performance.getEntriesByType('navigation').map(e => e.name));"
    )
    assert not [u for u in history if key in u], "no request carried the key in its URL"

    browser.refresh()  # same tab: still signed in, from sessionStorage
    wait_ready(browser)
    assert browser.find_element(By.ID, "board").is_displayed()

    browser.find_element(By.ID, "sign-out").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "signin").is_displayed(), "signed out")
    assert browser.execute_script(f"return sessionStorage.getItem('{KEY_SLOT}');") is None
    assert console_errors(browser) == []


def test_a_refused_key_is_told_so_and_not_kept(browser: WebDriver, live_hub: LiveHub):
    browser.get(f"{live_hub.url}/dashboard")
    browser.find_element(By.ID, "api-key").send_keys("hk.nosuchkey.secret")
    browser.find_element(By.ID, "signin-submit").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "signin-error").is_displayed(), "the error")
    assert "refused" in browser.find_element(By.ID, "signin-error").text
    assert browser.execute_script(f"return sessionStorage.getItem('{KEY_SLOT}');") is None
    # the browser logs the refused call (401) itself; nothing else may be there
    errors = console_errors(browser)
    assert all("401" in e["message"] for e in errors), errors


def test_chinese_and_english(live_hub: LiveHub):
    """The browser's language chooses the page's; the toggle switches it."""
    driver = start_chrome("zh-CN")
    try:
        driver.get(f"{live_hub.url}/dashboard")
        wait_for(driver, lambda d: d.find_element(By.ID, "signin").is_displayed(), "sign-in")
        assert driver.find_element(By.CSS_SELECTOR, "h1").text == "核销中心 · 数据看板"
        driver.find_element(By.ID, "api-key").send_keys(live_hub.admin_key)
        driver.find_element(By.ID, "signin-submit").click()
        wait_ready(driver)
        heading = "return document.querySelector('#panel-conflicts h2').textContent;"
        assert driver.execute_script(heading) == "未处理的离线冲突"
        assert driver.execute_script("return document.documentElement.lang;") == "zh-CN"
        driver.find_element(By.ID, "lang-toggle").click()
        assert driver.find_element(By.CSS_SELECTOR, "h1").text == "Redemption Hub — Dashboard"
        assert driver.execute_script(heading) == "Open offline conflicts"
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()

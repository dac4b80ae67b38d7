"""``/dashboard``: the operators' dashboard in the browser, served from the package.

* ``GET /dashboard``: one HTML page with no data in it and no inline script or style. Its
  script (``/dashboard/assets/dashboard.js``) asks for an API key in a sign-in form,
  keeps it in the tab's ``sessionStorage`` (gone when the tab closes; never in the URL,
  never in ``localStorage``) and calls the API with ``Authorization: Bearer <key>``: the
  page shows exactly what that key may read (a store key: its store).
* ``GET /v1/dashboard/access`` (any key): what the page may show for the key — its role,
  its store (a store key) and, from the permission table (:mod:`hub.api.permissions`),
  which panels' endpoints it may read — so the page never calls an endpoint that would
  refuse it (and the browser's console stays clean).
* ``/dashboard/assets/…``: the page's script, styles and translations, and Apache
  ECharts (:data:`ECHARTS_VERSION`, vendored unchanged: see ``VENDORED.md`` there).

The page and its assets are public (:data:`hub.api.permissions.PUBLIC_PREFIXES`): they
hold nothing of any merchant. The page's own Content-Security-Policy
(:data:`DASHBOARD_CSP`) lets it load scripts, styles and data only from the hub itself,
run no inline script and apply no inline style, and be framed by nobody; the hub's other
security headers (``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``, ``nosniff``)
come from :func:`hub.api.hardening.security_headers` as on every response.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import msgspec
from litestar import Controller, MediaType, Request, Response, get
from litestar.params import FromPath
from litestar.response import File

from hub.api.openapi import ok
from hub.api.pages import ShippedAssets, page_html
from hub.api.permissions import allowed
from hub.api.state import principal

DASHBOARD_PATH: Final = "/dashboard"
ASSETS_PATH: Final = f"{DASHBOARD_PATH}/assets"
STATIC_DIR: Final = Path(__file__).parent / "static" / "dashboard"
ECHARTS_VERSION: Final = "5.6.0"  # hub/api/static/dashboard/echarts/VERSION

DASHBOARD_CSP: Final = (
    "default-src 'self'; "
    "script-src 'self'; "
    "style-src 'self'; "
    "img-src 'self' data:; "
    "connect-src 'self'; "
    "object-src 'none'; "
    "base-uri 'none'; "
    "form-action 'none'; "  # the sign-in form is never submitted: the key stays out of URLs
    "frame-ancestors 'none'"
)

_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Redemption Hub — Dashboard</title>
<link rel="icon" type="image/svg+xml" href="{assets}/favicon.svg">
<link rel="stylesheet" href="{assets}/dashboard.css">
</head>
<body>
<header class="top">
  <h1 data-i18n="title">Redemption Hub — Dashboard</h1>
  <span id="merchant" class="muted"></span>
  <span class="spacer"></span>
  <button type="button" id="lang-toggle" class="link" data-i18n="lang_other">中文</button>
  <button type="button" id="sign-out" class="link" hidden data-i18n="sign_out">Sign out</button>
</header>

<main>
<section id="signin" class="panel signin">
  <h2 data-i18n="signin_title">Sign in</h2>
  <p class="muted" data-i18n="signin_hint">Paste an API key. It is kept in this tab only.</p>
  <form id="signin-form" autocomplete="off" novalidate>
    <label for="api-key" data-i18n="api_key">API key</label>
    <input id="api-key" name="api-key" type="password" autocomplete="off"
           spellcheck="false" maxlength="200" required>
    <button type="submit" id="signin-submit" data-i18n="signin_button">Sign in</button>
    <p id="signin-error" class="error" role="alert" hidden></p>
  </form>
</section>

<div id="board" hidden>
  <form id="filters" class="filters" autocomplete="off">
    <label><span data-i18n="from">From</span> <input type="date" id="f-from"></label>
    <label><span data-i18n="to">To</span> <input type="date" id="f-to"></label>
    <label id="f-store-label"><span data-i18n="store">Store</span>
      <select id="f-store"><option value="" data-i18n="all_stores">All stores</option></select>
    </label>
    <label><span data-i18n="channel">Channel</span>
      <select id="f-channel">
        <option value="" data-i18n="all_channels">All channels</option>
        <option value="online" data-i18n="online">Online</option>
        <option value="offline" data-i18n="offline">Offline (in store)</option>
        <option value="pos" data-i18n="ch_pos">POS</option>
        <option value="mini_program" data-i18n="ch_mini_program">Mini program</option>
        <option value="h5" data-i18n="ch_h5">H5</option>
        <option value="app" data-i18n="ch_app">App</option>
        <option value="web" data-i18n="ch_web">Web</option>
      </select>
    </label>
    <label><span data-i18n="kind">Coupon kind</span>
      <select id="f-kind">
        <option value="" data-i18n="all_kinds">All kinds</option>
        <option value="threshold" data-i18n="kind_threshold">Threshold</option>
        <option value="percentage" data-i18n="kind_percentage">Percentage</option>
        <option value="exchange" data-i18n="kind_exchange">Exchange</option>
      </select>
    </label>
    <label><span data-i18n="group">Group by</span>
      <select id="f-group">
        <option value="day" data-i18n="day">Day</option>
        <option value="week" data-i18n="week">Week</option>
        <option value="month" data-i18n="month">Month</option>
      </select>
    </label>
    <span id="status" class="muted" aria-live="polite"></span>
  </form>
  <p id="load-error" class="error" role="alert" hidden></p>

  <section class="panel" id="panel-summary">
    <h2 data-i18n="headline">Headline</h2>
    <div id="figures" class="figures"></div>
  </section>

  <section class="panel wide" id="panel-series">
    <h2 data-i18n="over_time">Redemptions over time</h2>
    <div id="chart-series" class="chart"></div>
  </section>

  <div class="grid">
    <section class="panel" id="panel-by-store">
      <h2 data-i18n="by_store">By store</h2><div id="chart-by-store" class="chart"></div>
    </section>
    <section class="panel" id="panel-by-channel">
      <h2 data-i18n="by_channel">By channel</h2><div id="chart-by-channel" class="chart"></div>
    </section>
    <section class="panel" id="panel-by-online">
      <h2 data-i18n="by_online">Online / offline</h2><div id="chart-by-online" class="chart"></div>
    </section>
    <section class="panel" id="panel-by-kind">
      <h2 data-i18n="by_kind">By coupon kind</h2><div id="chart-by-kind" class="chart"></div>
    </section>
  </div>

  <div class="grid">
    <section class="panel" id="panel-league">
      <h2 data-i18n="league">Store league</h2>
      <p id="league-note" class="muted"></p>
      <table id="league" class="table"><thead></thead><tbody></tbody></table>
    </section>
    <section class="panel" id="panel-funnel">
      <h2 data-i18n="funnel">Funnel</h2><div id="chart-funnel" class="chart"></div>
    </section>
  </div>

  <div class="grid">
    <section class="panel" id="panel-expiring">
      <h2 data-i18n="expiring">Coupons expiring in the next 7 days</h2>
      <p id="expiring-total" class="muted"></p>
      <table id="expiring" class="table"><thead></thead><tbody></tbody></table>
    </section>
    <section class="panel" id="panel-alerts">
      <h2 data-i18n="alerts">Recent alerts</h2>
      <table id="alerts" class="table"><thead></thead><tbody></tbody></table>
    </section>
    <section class="panel" id="panel-conflicts">
      <h2 data-i18n="conflicts">Open offline conflicts</h2>
      <table id="conflicts" class="table"><thead></thead><tbody></tbody></table>
    </section>
    <section class="panel" id="panel-dead">
      <h2 data-i18n="dead">Dead deliveries</h2>
      <table id="dead" class="table"><thead></thead><tbody></tbody></table>
    </section>
  </div>
</div>
</main>
<script src="{assets}/echarts/echarts.min.js"></script>
<script src="{assets}/i18n.js"></script>
<script src="{assets}/dashboard.js"></script>
</body>
</html>
"""


def page(root_path: str = "") -> str:
    """The dashboard's HTML (its asset URLs under the app's ``root_path``)."""
    return page_html(_PAGE, root_path, ASSETS_PATH)


@get(DASHBOARD_PATH, include_in_schema=False, sync_to_thread=False, name="dashboard")
def dashboard(request: Request[Any, Any, Any]) -> Response[str]:
    """The page; the data comes from the API, read with the key the user signs in with."""
    return Response(
        content=page(str(request.scope.get("root_path", ""))),
        media_type=MediaType.HTML,
        headers={"Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-store"},
    )


# The files the page may load: every file shipped in its folder (hub.api.pages).
ASSETS: Final = ShippedAssets(STATIC_DIR, "dashboard")


@get(f"{ASSETS_PATH}/{{name:path}}", include_in_schema=False, name="dashboard-assets")
async def dashboard_asset(name: FromPath[str]) -> File:
    """One of the page's files (its script, styles, translations, icon, ECharts and the
    licenses), from the package."""
    return ASSETS.response(name)



# --- what the signed-in key may see ---------------------------------------------------------

# panel → the endpoint it reads (GET); the page shows a panel only when its key may read it
PANEL_ENDPOINTS: Final[dict[str, str]] = {
    "analytics": "/v1/analytics/summary",
    "expiring": "/v1/analytics/expiring",
    "alerts": "/v1/alerts",
    "conflicts": "/v1/conflicts",
    "deliveries": "/v1/deliveries",
}


class DashboardAccess(msgspec.Struct):
    role: str
    store: str | None = msgspec.field(default=None)
    stores: list[str] | None = msgspec.field(default=None)
    panels: dict[str, bool] = msgspec.field(default_factory=dict)


def access_of(role: str, store: str | None, stores: tuple[str, ...] | None) -> DashboardAccess:
    """The panels a key of ``role`` may see (by the permission table), its store (a store
    key) and the stores it is limited to (an analyst limited to some; ``None``: all)."""
    return DashboardAccess(
        role=role,
        store=store,
        stores=list(stores) if stores is not None else None,
        panels={name: allowed("GET", path, role) for name, path in PANEL_ENDPOINTS.items()},
    )


class DashboardAccessController(Controller):
    path = "/v1/dashboard"
    tags = ["dashboard"]

    @get(
        "/access",
        summary="What the dashboard may show for this key: role, store, readable panels",
        description="`panels` names the dashboard's panels (`analytics`, `expiring`, "
        "`alerts`, `conflicts`, `deliveries`) and whether this key's role may read the "
        "endpoint behind each (the role table). `store` is a store key's store; `stores` "
        "the stores an analyst key is limited to (null: every store).",
        responses={200: ok(DashboardAccess)},
    )
    async def access(self, request: Request[Any, Any, Any]) -> DashboardAccess:
        p = principal(request)
        return access_of(p.role, p.store_code, p.stores)

"""``/staff``: the store staff's redemption page for a phone, served from the package.

A store with no POS redeems from an employee's phone: the page signs the employee in
with the personal 8-character sign-in code an admin (or the store's till) handed out
(``POST /v1/staff/sessions``), scans the customer's QR code with the rear camera (the
browser's ``BarcodeDetector`` where it has one, otherwise zxing-cpp compiled to
WebAssembly, vendored: :data:`ZXING_VERSION`, ``VENDORED.md``) or takes a typed code,
shows the coupon, validates the order and redeems it with an ``Idempotency-Key`` per
intent (the same key again when a retry follows a network failure), lists the
employee's redemptions of the day and reverses one.

* ``GET /staff``: one HTML page with no data in it, no inline script, no inline style.
* ``/staff/assets/…``: its script, styles, translations, icon, and the zxing reader
  (its script and ``.wasm``, loaded from here: never from a CDN).

The page and its assets are public (:data:`hub.api.permissions.PUBLIC_PREFIXES`): they
hold nothing of any merchant. The session token lives in the tab's ``sessionStorage``
only and travels as ``Authorization: Bearer`` — never in a URL, never in
``localStorage``, never in a cookie (the hub sets no cookie, so there is no ambient
credential for a cross-site request to ride on: no CSRF surface). The page's headers
(:data:`STAFF_HEADERS`): a Content-Security-Policy allowing only the hub's own files
(``'wasm-unsafe-eval'`` so the zxing WebAssembly can be compiled; no ``'unsafe-eval'``,
no inline code), framing by nobody, no referrer, the camera for this origin only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from litestar import MediaType, Request, Response, get
from litestar.params import FromPath
from litestar.response import File

from hub.api.pages import ShippedAssets, page_html

STAFF_PATH: Final = "/staff"
ASSETS_PATH: Final = f"{STAFF_PATH}/assets"
STATIC_DIR: Final = Path(__file__).parent / "static" / "staff"
ZXING_VERSION: Final = "3.1.8"  # npm zxing-wasm, reader build: static/staff/zxing/VERSION

STAFF_CSP: Final = (
    "default-src 'self'; "
    "script-src 'self' 'wasm-unsafe-eval'; "  # compiling the vendored zxing .wasm
    "style-src 'self'; "
    "img-src 'self' data: blob:; "
    "media-src 'self' blob:; "
    "connect-src 'self'; "
    "object-src 'none'; "
    "frame-ancestors 'none'; "
    "base-uri 'none'; "
    "form-action 'self'"
)
STAFF_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": STAFF_CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}

_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="referrer" content="no-referrer">
<meta name="theme-color" content="#17324d">
<title>Redemption Hub — Staff</title>
<link rel="icon" type="image/svg+xml" href="{assets}/favicon.svg">
<link rel="stylesheet" href="{assets}/staff.css">
</head>
<body data-screen="loading">
<header class="top">
  <h1 data-i18n="title">Redeem</h1>
  <span id="who" class="who"></span>
  <button type="button" id="lang-toggle" class="link" data-i18n="lang_other">中文</button>
  <button type="button" id="sign-out" class="link" hidden data-i18n="sign_out">Sign out</button>
</header>
<p id="offline" class="banner" role="alert" hidden data-i18n="offline_banner">No network.</p>

<main>
<section id="screen-signin" class="screen" hidden>
  <h2 data-i18n="signin_title">Sign in</h2>
  <p class="muted" data-i18n="signin_hint">Enter the 8-character code.</p>
  <form id="signin-form" autocomplete="off" novalidate>
    <label for="signin-code" data-i18n="signin_code">Sign-in code</label>
    <input id="signin-code" name="signin-code" class="code-input" autocomplete="one-time-code"
           autocapitalize="characters" spellcheck="false" maxlength="40" placeholder="ABCD-EFGH">
    <button type="submit" id="signin-submit" class="primary"
            data-i18n="signin_button">Sign in</button>
    <p id="signin-error" class="error" role="alert" hidden></p>
  </form>
</section>

<section id="screen-scan" class="screen" hidden>
  <div class="camera">
    <video id="camera" muted playsinline autoplay></video>
    <div class="aim" aria-hidden="true"></div>
    <p id="camera-status" class="camera-status" aria-live="polite"></p>
  </div>
  <form id="manual-form" class="manual" autocomplete="off" novalidate>
    <label for="manual-code" data-i18n="manual_label">Or type the code</label>
    <div class="row">
      <input id="manual-code" name="manual-code" class="code-input" autocapitalize="characters"
             spellcheck="false" maxlength="1100" placeholder="ABCD-EFGH-JKLM-NP">
      <button type="submit" id="manual-submit" class="primary" data-i18n="look_up">Look up</button>
    </div>
  </form>
  <p id="scan-error" class="error" role="alert" hidden></p>
  <button type="button" id="open-today" class="secondary wide"
          data-i18n="today_button">Today</button>
</section>

<section id="screen-coupon" class="screen" hidden>
  <div class="card">
    <p id="c-state" class="state"></p>
    <h2 id="c-name"></h2>
    <p id="c-benefit" class="benefit"></p>
    <dl class="facts">
      <dt data-i18n="code">Code</dt><dd id="c-code" class="mono"></dd>
      <dt data-i18n="validity">Valid</dt><dd id="c-validity"></dd>
      <dt data-i18n="holder">Holder</dt><dd id="c-holder"></dd>
    </dl>
  </div>
  <form id="order-form" autocomplete="off" novalidate>
    <label for="amount" data-i18n="amount_label">Order amount (yuan)</label>
    <input id="amount" name="amount" inputmode="decimal" placeholder="0.00" maxlength="16">
    <div id="lines-box" hidden>
      <p class="muted" data-i18n="lines_hint">This coupon needs the order's items.</p>
      <div id="lines"></div>
      <button type="button" id="add-line" class="secondary"
              data-i18n="add_line">Add an item</button>
    </div>
    <button type="submit" id="validate" class="primary wide"
            data-i18n="validate_button">Check</button>
  </form>
  <div id="verdict" class="verdict" hidden>
    <p id="verdict-text"></p>
    <p id="verdict-discount" class="preview"></p>
  </div>
  <p id="coupon-error" class="error" role="alert" hidden></p>
  <div class="actions">
    <button type="button" id="confirm" class="primary wide" hidden
            data-i18n="confirm_button">Confirm</button>
    <button type="button" id="retry" class="primary wide" hidden
            data-i18n="retry_button">Try again</button>
    <button type="button" id="cancel" class="secondary wide"
            data-i18n="cancel_button">Cancel</button>
  </div>
</section>

<section id="screen-result" class="screen" hidden>
  <p class="done" data-i18n="done_title">Redeemed</p>
  <p class="muted" data-i18n="discount_label">Discount</p>
  <p id="r-discount" class="discount"></p>
  <dl class="facts">
    <dt data-i18n="payable">To pay</dt><dd id="r-payable"></dd>
    <dt data-i18n="coupon">Coupon</dt><dd id="r-name"></dd>
    <dt data-i18n="code">Code</dt><dd id="r-code" class="mono"></dd>
    <dt data-i18n="order">Order</dt><dd id="r-order" class="mono"></dd>
  </dl>
  <button type="button" id="next" class="primary wide"
          data-i18n="next_button">Scan the next</button>
</section>

<section id="screen-today" class="screen" hidden>
  <h2 data-i18n="today_title">My redemptions today</h2>
  <p id="today-summary" class="muted"></p>
  <ul id="today-list" class="list"></ul>
  <p id="today-error" class="error" role="alert" hidden></p>
  <div id="reverse-box" class="confirm-box" hidden>
    <p id="reverse-text"></p>
    <button type="button" id="reverse-yes" class="danger wide"
            data-i18n="reverse_yes">Reverse</button>
    <button type="button" id="reverse-no" class="secondary wide"
            data-i18n="reverse_no">Keep</button>
  </div>
  <button type="button" id="back-to-scan" class="secondary wide"
          data-i18n="back_button">Back to scanning</button>
</section>
</main>
<script src="{assets}/zxing/zxing-reader.js"></script>
<script src="{assets}/i18n.js"></script>
<script src="{assets}/staff.js" data-assets="{assets}" id="staff-script"></script>
</body>
</html>
"""


def page(root_path: str = "") -> str:
    """The staff page's HTML (its asset URLs under the app's ``root_path``)."""
    return page_html(_PAGE, root_path, ASSETS_PATH)


@get(STAFF_PATH, include_in_schema=False, sync_to_thread=False, name="staff-page")
def staff_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The page; everything it shows comes from the API with the staff session's token."""
    return Response(
        content=page(str(request.scope.get("root_path", ""))),
        media_type=MediaType.HTML,
        headers=STAFF_HEADERS,
    )


# The files the page may load: every file shipped in its folder (hub.api.pages).
ASSETS: Final = ShippedAssets(STATIC_DIR, "staff page")


@get(f"{ASSETS_PATH}/{{name:path}}", include_in_schema=False, name="staff-assets")
async def staff_asset(name: FromPath[str]) -> File:
    """One of the page's files (script, styles, words, icon, the zxing reader and the
    licenses), from the package."""
    return ASSETS.response(name)

"""The staff page and its assets over HTTP (no browser): public, no data, its own strict
headers (CSP, no framing, no referrer, the camera for this origin only), every file from the
package, the zxing reader pinned with its licenses and its ``.wasm`` served as WebAssembly."""

from __future__ import annotations

import pytest

from hub.api.staff_page import STAFF_CSP, STATIC_DIR, ZXING_VERSION
from tests.browser.pages import assert_self_contained, files_not_in_package_data


def directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def test_the_page_is_public_carries_no_data_and_sends_the_security_headers(client):
    r = client.get("/staff")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = directives(r.headers["content-security-policy"])
    assert r.headers["content-security-policy"] == STAFF_CSP
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'", "'wasm-unsafe-eval'"]  # no 'unsafe-eval', no inline
    assert csp["style-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:", "blob:"]
    assert csp["media-src"] == ["'self'", "blob:"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "camera=(self)" in r.headers["permissions-policy"].replace(" ", "").split(",")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "set-cookie" not in r.headers  # no cookie: no ambient credential, no CSRF surface
    # each header once (the app-wide hook does not add a second)
    for name in ("content-security-policy", "x-frame-options", "referrer-policy"):
        assert len(r.headers.get_list(name)) == 1, name
    page = r.text
    assert_self_contained(page, "/staff/assets", scripts=3)


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/staff/assets/staff.js", "text/javascript"),
        ("/staff/assets/i18n.js", "text/javascript"),
        ("/staff/assets/staff.css", "text/css"),
        ("/staff/assets/favicon.svg", "image/svg+xml"),
        ("/staff/assets/zxing/zxing-reader.js", "text/javascript"),
        ("/staff/assets/zxing/zxing_reader.wasm", "application/wasm"),
    ],
)
def test_the_assets_come_from_the_package(client, path, media_type):
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == media_type
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize(
    "name", ["nope.js", "../staff_page.py", "%2e%2e/app.py", "zxing", "R" * 300]
)
def test_only_the_shipped_files_are_served(client, name):
    r = client.get(f"/staff/assets/{name}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_zxing_is_the_pinned_version_with_its_licenses_and_no_cdn_is_used():
    zxing = STATIC_DIR / "zxing"
    assert (zxing / "VERSION").read_text().strip() == ZXING_VERSION
    assert (zxing / "zxing_reader.wasm").read_bytes()[:4] == b"\0asm"
    assert f"zxing-wasm@{ZXING_VERSION}" in (zxing / "zxing-reader.js").read_text()
    assert "MIT License" in (zxing / "LICENSE").read_text()
    assert "Apache License" in (zxing / "LICENSE-zxing-cpp").read_text()
    assert ZXING_VERSION in (STATIC_DIR / "VENDORED.md").read_text()
    script = (STATIC_DIR / "staff.js").read_text()
    # the page points the library at the vendored .wasm (its default is a CDN)
    assert "locateFile" in script and 'ASSETS + "/zxing/"' in script
    assert "localStorage." not in script and "document.cookie" not in script
    assert ".innerHTML" not in script  # text goes in as textContent only


def test_every_staff_page_file_is_package_data():
    count, missing = files_not_in_package_data(STATIC_DIR)
    assert count >= 10
    assert missing == []

"""The dashboard's page, assets and access answer, over HTTP (no browser; both databases).

The page carries no data and its own strict Content-Security-Policy; its assets come
from the package (every file of ``hub/api/static/dashboard`` is package data); the
access answer names, for each role, the panels the permission table lets it read.
"""

from __future__ import annotations

import pytest

from hub.api.dashboard import DASHBOARD_CSP, ECHARTS_VERSION, PANEL_ENDPOINTS, STATIC_DIR
from hub.api.permissions import allowed
from hub.services import keys
from tests.browser.pages import assert_self_contained, files_not_in_package_data
from tests.conftest import Merchant


def test_the_page_is_public_carries_no_data_and_has_a_strict_policy(client):
    r = client.get("/dashboard")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == DASHBOARD_CSP
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    page = r.text
    assert_self_contained(page, "/dashboard/assets", scripts=3)


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/dashboard/assets/dashboard.js", "text/javascript"),
        ("/dashboard/assets/i18n.js", "text/javascript"),
        ("/dashboard/assets/dashboard.css", "text/css"),
        ("/dashboard/assets/favicon.svg", "image/svg+xml"),
        ("/dashboard/assets/echarts/echarts.min.js", "text/javascript"),
    ],
)
def test_the_assets_come_from_the_package(client, path, media_type):
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == media_type
    assert r.headers["content-type"].count("charset") <= 1
    assert r.headers["cache-control"] == "no-cache" and r.headers["etag"]
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "name", ["nope.js", "../dashboard.py", "%2e%2e/dashboard.py", "echarts", "R" * 300, "a/" * 200]
)
def test_only_the_shipped_files_are_served(client, name):
    r = client.get(f"/dashboard/assets/{name}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_echarts_is_the_pinned_version_with_its_license():
    echarts = STATIC_DIR / "echarts"
    assert (echarts / "VERSION").read_text().strip() == ECHARTS_VERSION
    assert f't.version="{ECHARTS_VERSION}"' in (echarts / "echarts.min.js").read_text()
    assert "Apache License" in (echarts / "LICENSE").read_text()
    assert "Apache ECharts" in (echarts / "NOTICE").read_text()
    assert ECHARTS_VERSION in (STATIC_DIR / "VENDORED.md").read_text()


def test_every_dashboard_file_is_package_data():
    """A wheel carries every file the page loads (pyproject's package-data globs)."""
    count, missing = files_not_in_package_data(STATIC_DIR)
    assert count >= 10
    assert missing == []


def test_the_access_answer_follows_the_role_table(client, merchant: Merchant, db, clock):
    def key(role: str, **kw) -> dict[str, str]:
        made = keys.create_key(db, merchant.id, role, clock.now, **kw)
        return {"Authorization": f"Bearer {made.token}"}

    who = {
        "admin": merchant.auth(),
        "store": merchant.auth(merchant.store_keys["SH-002"]),
        "analyst": key("analyst", store_codes=["SH-001"]),
        "integrator": key("integrator"),
        "app": key("app", channels=["h5"]),
    }
    for role, auth in who.items():
        r = client.get("/v1/dashboard/access", headers=auth)
        assert r.status_code == 200, (role, r.text)
        body = r.json()
        assert body["role"] == role
        assert body["panels"] == {
            name: allowed("GET", path, role) for name, path in PANEL_ENDPOINTS.items()
        }
    assert client.get("/v1/dashboard/access", headers=who["store"]).json()["store"] == "SH-002"
    assert client.get("/v1/dashboard/access", headers=who["analyst"]).json()["stores"] == [
        "SH-001"
    ]
    assert client.get("/v1/dashboard/access", headers=who["admin"]).json()["panels"][
        "deliveries"
    ] is True
    assert client.get("/v1/dashboard/access", headers=who["store"]).json()["panels"][
        "alerts"
    ] is False
    r = client.get("/v1/dashboard/access")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"

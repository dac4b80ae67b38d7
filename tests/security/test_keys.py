"""API keys over the API and the CLI: roles, store lists, expiry, revocation, last use."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from hub.api import auth
from hub.cli import main
from tests.conftest import make_merchant


@pytest.fixture(autouse=True)
def _no_principal_cache(monkeypatch):
    monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)  # see every change at once


def iso(dt) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_create_use_list_and_revoke(client, merchant, clock):
    r = client.post("/v1/keys", headers=merchant.auth(), json={
        "role": "analyst", "name": "BI", "stores": ["SH-002", "SH-001"],
        "expires_at": iso(clock.now + timedelta(days=30))})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["token"].startswith("hk.") and made["stores"] == ["SH-001", "SH-002"]
    assert made["status"] == "active" and made["last_used_at"] is None
    assert client.get("/v1/redemptions", headers=bearer(made["token"])).status_code == 200
    listed = {k["id"]: k for k in client.get("/v1/keys", headers=merchant.auth()).json()["items"]}
    assert listed[made["id"]]["last_used_at"] == iso(clock.now)
    assert all("token" not in k and "secret_hash" not in k for k in listed.values())
    r = client.post(f"/v1/keys/{made['id']}/revoke", headers=merchant.auth())
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    again = client.post(f"/v1/keys/{made['id']}/revoke", headers=merchant.auth())
    assert again.json()["revoked_at"] == r.json()["revoked_at"]  # idempotent
    refused = client.get("/v1/redemptions", headers=bearer(made["token"]))
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"


def test_last_use_is_written_at_most_once_a_minute(client, merchant, clock):
    token = client.post("/v1/keys", headers=merchant.auth(), json={"role": "integrator"}).json()
    for _ in range(3):
        client.get("/v1/subscriptions", headers=bearer(token["token"]))
        clock.advance(seconds=20)
    [k] = [k for k in client.get("/v1/keys", headers=merchant.auth()).json()["items"]
           if k["id"] == token["id"]]
    assert k["last_used_at"] == iso(clock.now - timedelta(seconds=60))  # the first use only


def test_an_expired_key_stops_working(client, merchant, clock):
    made = client.post("/v1/keys", headers=merchant.auth(), json={
        "role": "store", "store": "SH-001", "expires_at": iso(clock.now + timedelta(hours=1))})
    token = made.json()["token"]
    assert client.get("/v1/stores", headers=bearer(token)).status_code == 200
    clock.advance(hours=1)
    assert client.get("/v1/stores", headers=bearer(token)).status_code == 401
    [k] = [k for k in client.get("/v1/keys", headers=merchant.auth()).json()["items"]
           if k["id"] == made.json()["id"]]
    assert k["status"] == "expired"


@pytest.mark.parametrize("body,field", [
    ({"role": "store"}, "store"),
    ({"role": "admin", "store": "SH-001"}, "store"),
    ({"role": "store", "store": "SH-001", "stores": ["SH-001"]}, "stores"),
    ({"role": "admin", "stores": ["SH-001"]}, "stores"),
    ({"role": "analyst", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ({"role": "root"}, "role"),
    ({"role": "analyst", "channels": ["h5"]}, "channels"),
    ({"role": "app", "channels": []}, "channels"),
    ({"role": "app", "channels": ["telegram"]}, "channels"),
])
def test_inconsistent_keys_are_refused_naming_the_field(client, merchant, body, field):
    r = client.post("/v1/keys", headers=merchant.auth(), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_request" and field in r.text


def test_unknown_store_and_other_merchants_keys(client, db, merchant, clock):
    r = client.post("/v1/keys", headers=merchant.auth(), json={"role": "analyst",
                                                                "stores": ["XX-404"]})
    assert r.status_code == 422 and r.json()["code"] == "store_not_found"
    other = make_merchant(db, clock.now, name="Other", stores=("BJ-001",))
    mine = client.post("/v1/keys", headers=merchant.auth(), json={"role": "analyst"}).json()
    r = client.post(f"/v1/keys/{mine['id']}/revoke", headers=other.auth())
    assert r.status_code == 404
    assert mine["id"] not in {k["id"] for k in
                              client.get("/v1/keys", headers=other.auth()).json()["items"]}
    assert client.get("/v1/stores", headers=bearer(mine["token"])).status_code == 200


def test_cli_keys_create_list_revoke(db, merchant):
    url = db.url.render_as_string(hide_password=False)
    runner = CliRunner()
    made = runner.invoke(main, ["keys", "create", "--db", url, "--merchant", merchant.id,
                                "--role", "analyst", "--stores", "SH-001,SH-002",
                                "--expires-in-days", "7"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)
    assert key["stores"] == ["SH-001", "SH-002"] and key["expires_at"]
    listed = runner.invoke(main, ["keys", "list", "--db", url, "--merchant", merchant.id])
    assert key["id"] in listed.output and key["key"] not in listed.output
    revoked = runner.invoke(main, ["keys", "revoke", "--db", url, "--merchant", merchant.id,
                                   key["id"]])
    assert revoked.exit_code == 0 and '"status": "revoked"' in revoked.output


def test_an_app_key_names_its_channels_and_cannot_issue_or_list(client, merchant):
    r = client.post("/v1/keys", headers=merchant.auth(), json={
        "role": "app", "name": "mini program", "channels": ["mini_program", "h5"]})
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["role"] == "app" and app["channels"] == ["h5", "mini_program"]
    auth = bearer(app["token"])
    assert client.get("/v1/merchant", headers=auth).status_code == 200
    for method, path in [("POST", "/v1/templates/tpl_x/coupons"), ("POST", "/v1/coupons/X/void"),
                         ("GET", "/v1/customers"), ("GET", "/v1/redemptions"),
                         ("POST", "/v1/templates")]:
        refused = client.request(method, path, headers=auth, json={})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", path
    every = client.post("/v1/keys", headers=merchant.auth(), json={"role": "app"}).json()
    assert every["channels"] is None


def test_cli_creates_an_app_key_with_channels(db, merchant):
    url = db.url.render_as_string(hide_password=False)
    made = CliRunner().invoke(main, ["keys", "create", "--db", url, "--merchant", merchant.id,
                                     "--role", "app", "--channels", "web,h5"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["channels"] == ["h5", "web"]

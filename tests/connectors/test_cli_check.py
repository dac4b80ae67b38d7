"""`hub connectors check NAME --config FILE`: the schema first, then the connector's own
connectivity check through the hub's transport (mocked with respx: no network)."""

from __future__ import annotations

import json

import httpx
import respx
from click.testing import CliRunner

from hub.cli import main

HUBSPOT = {"access_token": "pat-na1-SECRET", "id_property": "hub_customer_id"}
CONTACTS = "https://api.hubapi.com/crm/v3/objects/contacts"


def check(tmp_path, name: str, config: dict) -> tuple[int, str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["connectors", "check", name, "--config", str(path)])
    return result.exit_code, result.output


def test_good_credentials_pass(tmp_path):
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(CONTACTS).mock(return_value=httpx.Response(200, json={"results": []}))
        code, out = check(tmp_path, "crm.hubspot", HUBSPOT)
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    assert route.calls.last.request.headers["authorization"] == "Bearer pat-na1-SECRET"
    assert "SECRET" not in out


def test_refused_credentials_fail_with_the_reason(tmp_path):
    with respx.mock() as mock:
        mock.get(CONTACTS).mock(return_value=httpx.Response(401, json={"message": "bad"}))
        code, out = check(tmp_path, "crm.hubspot", HUBSPOT)
    assert code == 1
    facts = json.loads(out)
    assert facts["ok"] is False and facts["outcome"] == "failed" and "401" in facts["requests"][0]


def test_a_bad_config_is_refused_before_any_request(tmp_path):
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route()
        code, out = check(tmp_path, "crm.hubspot", {"access_token": "x"})
    assert code != 0 and "invalid_config" in out and "config.id_property" in out
    assert not route.called

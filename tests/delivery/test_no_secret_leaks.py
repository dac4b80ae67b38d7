"""A subscription's secret never shows up in a log line or an API response, whatever
happens to its deliveries (failures, retries, dead letters, replays, config changes)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
import structlog
from standardwebhooks.webhooks import Webhook

from connectors.webhook import secret_key
from hub.logs import configure_logging
from tests.conftest import issue, make_template
from tests.delivery.support import code_of, iso_z, redeem, reverse, runtime

CANARY_KEY = b"canary-7f3a9c-do-not-log-me-please"
SECRET = "whsec_" + base64.b64encode(CANARY_KEY).decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"second-canary-5e1d-never-shown").decode()
URL = "https://leaky.example/hook"


def _forms(secret: str) -> list[str]:
    """Every way the secret could appear: whole, without prefix, the key bytes, their hex."""
    key = secret_key(secret)
    return [secret, secret.removeprefix("whsec_"), key.decode("latin-1"), key.hex()]


class Recorder:
    """Every API response text of the flow."""

    def __init__(self, client: Any, auth: dict[str, str]) -> None:
        self.client, self.auth, self.texts = client, auth, []

    def __call__(self, method: str, path: str, expect: int | None = None,
                 **kw: Any) -> httpx.Response:
        r = self.client.request(method, path, headers=self.auth, **kw)
        self.texts.append(f"{method} {path} -> {r.status_code} {dict(r.headers)} {r.text}")
        if expect is not None:
            assert r.status_code == expect, r.text
        return r


def test_the_secret_never_leaks(client, db, merchant, clock, caplog, capsys, verbose_logs):
    api = Recorder(client, merchant.auth())
    _flow(api, db, merchant, clock)
    out, err = capsys.readouterr()
    # the capture did see the hub's delivery logs and SQLAlchemy's statements
    assert "delivery.attempted" in out + err + caplog.text
    assert "INSERT INTO subscriptions" in caplog.text
    assert _leaks(caplog, out, err) == []
    for secret in (SECRET, NEW_SECRET):
        for form in _forms(secret):
            for text in api.texts:
                assert form not in text, f"secret in a response: ...{_around(text, form)}..."


@pytest.fixture
def verbose_logs(caplog: Any, monkeypatch: Any) -> Iterator[None]:
    """The hub's own log setup (``hub serve``/``hub worker``) at DEBUG, and every
    library logger at DEBUG, SQLAlchemy's statement log included (INFO: each statement
    with its parameters, as a root logger at INFO would give). SQLAlchemy's DEBUG level
    adds a dump of every result row read, which shows whatever the database holds: a
    data-dumping tool by design, left out here."""
    saved = structlog.get_config()
    caplog.set_level(logging.DEBUG)  # caplog puts every level back afterwards
    for name in ("hub", "httpx", "httpcore", "dramatiq", "litestar", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.INFO, logger="sqlalchemy")
    monkeypatch.setenv("HUB_LOG_LEVEL", "DEBUG")
    configure_logging()
    logging.getLogger("httpx").setLevel(logging.DEBUG)  # configure_logging quietens it
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)


def _leaks(caplog: Any, *captured: str) -> list[str]:
    logged = [caplog.text, *captured]
    for record in caplog.records:
        logged.append(record.getMessage())
        if record.exc_info:
            logged.append(logging.Formatter().formatException(record.exc_info))
    return [
        f"...{_around(text, form)}..."
        for secret in (SECRET, NEW_SECRET)
        for form in _forms(secret)
        for text in logged
        if form in text
    ]


def test_a_database_error_does_not_log_the_config(client, db, merchant, caplog, capsys,
                                                  monkeypatch, verbose_logs):
    """An unexpected database failure while storing a subscription is logged with its
    traceback; the statement's parameters (the config, with its secret) are not."""
    body = {"connector": "webhook", "config": {"url": URL, "secret": SECRET},
            "events": ["coupon.redeemed"]}
    r = client.post("/v1/subscriptions", json=body, headers=merchant.auth())
    assert r.status_code == 201
    taken = r.json()["id"]
    monkeypatch.setattr("hub.services.subscriptions.new_id", lambda prefix: taken)
    r = client.post("/v1/subscriptions", json=body, headers=merchant.auth())
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    assert SECRET not in r.text
    out, err = capsys.readouterr()
    assert "unhandled_error" in out + err and "IntegrityError" in out + err  # it is logged
    assert _leaks(caplog, out, err) == []


def _around(text: str, needle: str) -> str:
    i = text.find(needle)
    return text[max(0, i - 200): i + len(needle) + 50]


def _flow(api: Recorder, db: Any, merchant: Any, clock: Any) -> None:
    # create (and a few refused attempts that carry secrets)
    body = {"connector": "webhook", "config": {"url": URL, "secret": SECRET},
            "events": ["*"], "retry_schedule": [1, 1]}
    sub = api("POST", "/v1/subscriptions", 201, json=body).json()["id"]
    api("POST", "/v1/subscriptions", 422, json={**body, "connector": "nope"})
    api("POST", "/v1/subscriptions", 422, json={**body, "events": ["no.such"]})
    api("POST", "/v1/subscriptions", 422,
        json={**body, "config": {"url": "ftp://x", "secret": SECRET}})
    api("POST", "/v1/subscriptions", 422,
        json={**body, "config": {"url": URL, "secret": SECRET + " "}})
    api("POST", "/v1/subscriptions", 422,
        json={**body, "config": {"url": URL, "secret": SECRET, "extra": SECRET}})
    api("PATCH", f"/v1/subscriptions/{sub}", 422, json={"config": {"url": URL, "secret": "x"}})
    api("PATCH", f"/v1/subscriptions/{sub}", 422, json={"config": {"url": "gopher://x"}})

    tpl = make_template(db, merchant, clock.now)
    codes = issue(db, merchant, tpl, clock.now, count=4)
    rid = redeem(api.client, merchant, codes[0])
    reverse(api.client, merchant, rid)
    for code in codes[1:]:
        redeem(api.client, merchant, code)

    plan = {codes[1]: [httpx.ConnectError("refused")] * 3 + [httpx.Response(200)],
            codes[2]: [httpx.Response(400, text="bad request")],
            codes[3]: [httpx.Response(503, headers={"Retry-After": "1"})] * 3}

    def answer(request: httpx.Request) -> httpx.Response:
        # a receiver that echoes what it was sent (headers included) in its error body
        steps = plan.get(code_of(request) or "", [])
        step = steps.pop(0) if steps else httpx.Response(200)
        if isinstance(step, Exception):
            raise step
        if step.status_code >= 400:
            echo = f"{dict(request.headers)} {request.content.decode()}"
            return httpx.Response(step.status_code, headers=step.headers, text=echo)
        return step

    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=answer)
        with runtime(db, clock) as rt:
            for _ in range(4):
                rt.drain()
                clock.advance(seconds=3)
            for req in (c.request for c in route.calls):
                Webhook(SECRET).verify(req.content, dict(req.headers))
            items = api("GET", "/v1/deliveries", 200, params={"limit": 500}).json()["items"]
            assert {d["status"] for d in items} >= {"succeeded", "dead"}
            for d in items:
                api("GET", f"/v1/deliveries/{d['id']}", 200)
            dead = [d for d in items if d["status"] == "dead"]
            api("POST", f"/v1/deliveries/{dead[0]['id']}/replay", 200)
            api("POST", f"/v1/subscriptions/{sub}/replay-dead", 200)
            # a secret change, then everything again with the new secret
            api("PATCH", f"/v1/subscriptions/{sub}", 200,
                json={"config": {"url": URL, "secret": NEW_SECRET}})
            api("POST", f"/v1/subscriptions/{sub}/pause", 200)
            api("POST", f"/v1/subscriptions/{sub}/resume", 200)
            rt.drain()
            clock.advance(seconds=3)
            rt.drain()
            assert Webhook(NEW_SECRET).verify(route.calls.last.request.content,
                                              dict(route.calls.last.request.headers))
    api("GET", "/v1/subscriptions", 200)
    api("GET", f"/v1/subscriptions/{sub}", 200)
    api("GET", "/v1/deliveries", 200,
        params={"subscription": sub, "from": iso_z(clock.now.replace(year=2000))})
    api("GET", "/metrics", 200)
    api("DELETE", f"/v1/subscriptions/{sub}", 200)
    api("GET", f"/v1/subscriptions/{sub}", 404)


# --- every connector's secrets, encrypted at rest, through a full run (issue 5) ---------

SF_CANARY = "sf-canary-3d7e-client-secret-never-logged"
SAP_CANARY = "Sap-canary-Pw-41b9-never-logged"
HS_CANARY = "pat-na1-canary-hs-5a0c-never-logged"
HDR_CANARY = "Bearer hdr-canary-88f1-never-logged"
SF_HOST, SAP_HOST, HS_HOST = "acme.my.salesforce.com", "my-s4.example", "api.hubapi.com"
GIFT = {"benefit": {"kind": "exchange", "sku": "SKU-GIFT-1", "qty": 1, "price": 0},
        "validity": {"type": "relative", "days": 30}}


def _every_form() -> list[str]:
    sap_basic = base64.b64encode(f"HUB_COMM_USER:{SAP_CANARY}".encode()).decode()
    return [*_forms(SECRET), *_forms(NEW_SECRET), HDR_CANARY, HDR_CANARY.split()[1],
            SF_CANARY, SAP_CANARY, sap_basic, HS_CANARY]


def _configs() -> dict[str, dict[str, Any]]:
    from tests.connectors.crm.fakes import SF_CONFIG
    from tests.connectors.erp.sap_fixtures import CONFIG as SAP_CONFIG

    return {
        "webhook": {"url": URL, "secret": SECRET, "headers": {"Authorization": HDR_CANARY}},
        "crm.salesforce": {**SF_CONFIG, "client_secret": SF_CANARY},
        "erp.sap": {**SAP_CONFIG, "password": SAP_CANARY},
        "crm.hubspot": {"access_token": HS_CANARY, "id_property": "hub_customer_id"},
    }


class Receivers:
    """The four systems, mocked: each fails its first answers with a body that echoes
    the request it got (headers, credentials and all), then answers as the real one."""

    def __init__(self, mock: respx.MockRouter) -> None:
        from tests.connectors.crm.fakes import hubspot_ok, salesforce_ok
        from tests.connectors.erp.sap_fixtures import realistic

        self.failures = {"webhook": 3, SF_HOST: 1, SAP_HOST: 2, HS_HOST: 1}
        self.webhook = mock.post(URL).mock(side_effect=self._answer("webhook", None))
        for host, real in ((SF_HOST, salesforce_ok), (SAP_HOST, realistic),
                           (HS_HOST, hubspot_ok)):
            mock.route(host=host).mock(side_effect=self._answer(host, real))

    def _answer(self, name: str, real: Any) -> Any:
        from hub.connectors import OutboundRequest

        def answer(request: httpx.Request) -> httpx.Response:
            if self.failures[name] > 0 and request.method != "GET":  # OAuth token too
                self.failures[name] -= 1
                status = 400 if name == "webhook" and self.failures[name] == 0 else 503
                echo = f"refused {dict(request.headers)} {request.content.decode()}"
                return httpx.Response(status, text=echo)
            if real is None:
                return httpx.Response(200)
            got = real(OutboundRequest(request.method, str(request.url),
                                       dict(request.headers), request.content))
            return httpx.Response(got.status, headers=list(got.raw_headers) or
                                  dict(got.headers), content=got.body)

        return answer


def test_no_connector_secret_leaks_through_a_full_run(client, db, merchant, clock, caplog,
                                                       capfd, monkeypatch, verbose_logs):
    """Four connectors' secrets through creation, refusals, deliveries that fail with
    receivers echoing the credentials, dead letters, replays, a key rotation on the command
    line, a wrong key, a secret change: no form of any secret in stdout, stderr, a log
    record, an API answer, a command's output or the stored configs."""
    from click.testing import CliRunner
    from sqlalchemy import text

    from hub.cli import main
    from hub.secrets import generate_key

    key_a, key_b, key_c = generate_key(), generate_key(), generate_key()
    monkeypatch.setenv("HUB_SECRET_KEY", key_a)
    api = Recorder(client, merchant.auth())
    cli_outputs: list[str] = []
    subs: dict[str, str] = {}
    for connector, config in _configs().items():
        body = {"connector": connector, "config": config, "events": ["*"],
                "retry_schedule": [1, 1, 1]}
        subs[connector] = api("POST", "/v1/subscriptions", 201, json=body).json()["id"]
        bad = {k: (v + "%" if isinstance(v, str) else v) for k, v in config.items()}
        api("POST", "/v1/subscriptions", 422, json={**body, "config": {**bad, "extra": 1}})

    members = issue(db, merchant, make_template(db, merchant, clock.now), clock.now,
                    customers=["M0001", "M0002"])
    [gift] = issue(db, merchant, make_template(db, merchant, clock.now, GIFT, "兑换"), clock.now)
    rids = [redeem(api.client, merchant, code) for code in members]
    r = api.client.post(
        "/v1/redemptions", headers={**merchant.auth(), "Idempotency-Key": "gift-1"},
        json={"code": gift, "store": "SH-001", "order": {
            "id": "G-1", "amount": 990,
            "lines": [{"sku": "SKU-GIFT-1", "qty": 1, "unit_price": 990}]}})
    assert r.status_code == 201, r.text
    reverse(api.client, merchant, rids[0])

    def rotate() -> None:
        result = CliRunner().invoke(main, ["secrets", "rotate", "--db",
                                           db.url.render_as_string(hide_password=False)])
        cli_outputs.append(result.output)
        assert result.exit_code == 0, result.output
        logging.getLogger("httpx").setLevel(logging.DEBUG)  # the CLI set its own levels

    with respx.mock(assert_all_called=False) as mock:
        rx = Receivers(mock)
        with runtime(db, clock) as rt:
            for _ in range(4):
                rt.drain()
                clock.advance(seconds=3)
            items = api("GET", "/v1/deliveries", 200, params={"limit": 500}).json()["items"]
            assert {d["status"] for d in items} >= {"succeeded", "dead"}
            for d in items:
                api("GET", f"/v1/deliveries/{d['id']}", 200)
            dead = [d for d in items if d["status"] == "dead"]
            api("POST", f"/v1/deliveries/{dead[0]['id']}/replay", 200)
            api("POST", f"/v1/subscriptions/{subs['webhook']}/replay-dead", 200)
            rt.drain()

            monkeypatch.setenv("HUB_SECRET_KEY", f"{key_b},{key_a}")
            rotate()
            monkeypatch.setenv("HUB_SECRET_KEY", key_b)
            [fresh] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now,
                            customers=["M0003"])
            redeem(api.client, merchant, fresh)
            monkeypatch.setenv("HUB_SECRET_KEY", key_c)  # a wrong key: clean failures
            rt.drain()
            waiting = api("GET", "/v1/deliveries", 200, params={"status": "retrying"})
            assert any("cannot decrypt" in (d["last_error"] or "")
                       for d in waiting.json()["items"])
            monkeypatch.setenv("HUB_SECRET_KEY", key_b)
            clock.advance(seconds=3)
            rt.drain()
            api("PATCH", f"/v1/subscriptions/{subs['webhook']}", 200,
                json={"config": {"url": URL, "secret": NEW_SECRET}})
            api("POST", f"/v1/subscriptions/{subs['webhook']}/pause", 200)
            api("POST", f"/v1/subscriptions/{subs['webhook']}/resume", 200)
            redeem(api.client, merchant, issue(
                db, merchant, make_template(db, merchant, clock.now), clock.now)[0])
            rt.drain()
            last = rx.webhook.calls.last.request
            assert Webhook(NEW_SECRET).verify(last.content, dict(last.headers))
            assert last.headers["authorization"] == HDR_CANARY  # kept, and sent
        items = api("GET", "/v1/deliveries", 200, params={"limit": 500}).json()["items"]
        for d in items:
            api("GET", f"/v1/deliveries/{d['id']}", 200)
        assert {d["status"] for d in items if d["subscription_id"] != subs["webhook"]} == {
            "succeeded"}
    api("GET", "/v1/subscriptions", 200)
    for sub in subs.values():
        api("GET", f"/v1/subscriptions/{sub}", 200)
    api("GET", "/metrics", 200)

    out, err = capfd.readouterr()
    everything = out + err + caplog.text
    for seen in ("delivery.attempted", "delivery.secret_undecryptable", "secrets.rotated",
                 "INSERT INTO subscriptions", "oauth2/token"):
        assert seen in everything + "".join(cli_outputs), seen  # the capture saw the run
    with db.connect() as conn:
        stored = "\n".join(str(v) for v in conn.execute(
            text("SELECT CAST(config AS TEXT) FROM subscriptions")).scalars())
    logged = [caplog.text, out, err, *cli_outputs, stored, *api.texts]
    for record in caplog.records:
        logged.append(record.getMessage())
        if record.exc_info:
            logged.append(logging.Formatter().formatException(record.exc_info))
    leaked = sorted({form for form in _every_form() for t in logged if form in t})
    leaks = [f"...{_around(t, form)}..." for form in leaked for t in logged if form in t]
    assert leaks == [], f"leaked: {leaked}"

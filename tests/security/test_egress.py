"""The egress policy (issue 9, item 1) and the scrubbing of echoed credentials (item 6).

Every test here runs with an empty ``HUB_EGRESS_ALLOW`` (the default: public addresses
only) unless it opens a range itself, and with a fake resolver: names "resolve" to the
addresses listed in ``NAMES``, nothing asks DNS, and nothing connects off loopback.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import respx
from click.testing import CliRunner

from hub import egress
from hub.connectors import OutboundRequest
from hub.delivery.transport import MAX_RESPONSE_BYTES, DeliveryClient, http_transport
from hub.secrets import scrub
from hub.services.subscriptions import MAX_BODY_LOGGED
from tests.conftest import issue, make_template
from tests.delivery.support import SECRET, redeem, runtime

PUBLIC = "93.184.215.14"
NAMES: dict[str, list[str]] = {
    "localhost": ["127.0.0.1", "::1"],
    "public.test": [PUBLIC],
    "internal.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": [PUBLIC, "192.168.1.10"],
    "ula.test": ["fd00::1"],
}


@pytest.fixture(autouse=True)
def policy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """An empty allow-list and the fake resolver (a dict the test may change)."""
    monkeypatch.setenv("HUB_EGRESS_ALLOW", "")
    names = {k: list(v) for k, v in NAMES.items()}

    def fake(host: str, port: int) -> list[str]:
        try:
            return list(names[host.lower().rstrip(".")])
        except KeyError:
            raise OSError("unknown name") from None

    monkeypatch.setattr(egress, "resolver", fake)
    return names


# --- the policy on its own ------------------------------------------------------------

REFUSED = [
    "http://127.0.0.1/hook",
    "http://2130706433/",  # decimal
    "http://0x7f.1/",  # hex, short
    "http://0x7f000001/",
    "http://017700000001/",  # octal
    "http://127.1/",  # short form
    "http://127.0.0.1./",  # trailing dot
    "http://0/",
    "http://0.0.0.0:8080/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:a9fe:a9fe]/",  # 169.254.169.254, IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/",  # … through NAT64
    "http://[fd00::1]/",
    "http://[fe80::1]/",
    "http://[ff02::1]/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/",  # CGNAT (a cloud's metadata service)
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://198.18.0.1/",
    "http://localhost:8080/",
    "http://LOCALHOST/",
    "http://internal.test/",
    "http://metadata.test/",
    "http://mixed.test/",  # one internal answer is enough
    "http://ula.test/",
    "http://user:pass@public.test/",  # credentials in the URL
    "http://user@public.test/",
    "http://public.test@127.0.0.1/",
    "http://public.test\\@127.0.0.1/",
    "file:///etc/passwd",
    "gopher://public.test/",
    "ftp://public.test/",
    "http:///no-host",
    "http://",
    "https:public.test",
    "//public.test/x",
    "public.test/x",
    "http://public .test/",
    "http://public.test/a b",
    " http://public.test/",
    "http://public.test:99999/",
    "http://public.test:0/",
    "http://public.test:abc/",
    "http://1.2.3.4.5/",
    "http://[fe80::1%25eth0]/",
    "http://%31%32%37.0.0.1/",  # percent-encoded host
    "http://127\u30020\u30020\u30021/",  # ideographic full stops: IDNA makes them dots
    "http://[1::]/",  # reserved IPv6 space
    "http://[2001:db8::1]/",
    "",
]
ALLOWED = [
    f"http://{PUBLIC}/",
    "https://public.test/hook?x=1",
    "https://public.test:8443/a/b",
    "https://[2606:4700:4700::1111]/",
    "https://no-such-name.test/",  # unresolvable now: judged again when connecting
]


@pytest.mark.parametrize("url", REFUSED)
def test_internal_and_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(egress.EgressDenied) as refused:
        egress.check_url(url)
    assert "pass" not in refused.value.reason and "127.0.0.1" not in refused.value.reason


@pytest.mark.parametrize("url", ALLOWED)
def test_public_urls_are_allowed(url: str) -> None:
    egress.check_url(url)


def test_the_allow_list_opens_exactly_its_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_EGRESS_ALLOW", " 10.0.0.0/8 , ::1/128,not-a-cidr")
    egress.check_url("http://internal.test/")
    egress.check_url("http://10.255.0.1:8069/")
    egress.check_url("http://[::1]/")
    for url in ("http://127.0.0.1/", "http://192.168.1.1/", "http://metadata.test/"):
        with pytest.raises(egress.EgressDenied):
            egress.check_url(url)
    monkeypatch.setenv("HUB_EGRESS_ALLOW", "127.0.0.0/8")  # mapped forms follow IPv4
    egress.check_url("http://[::ffff:127.0.0.1]/")
    egress.check_url("http://2130706433/")


def test_literal_addresses_in_every_spelling() -> None:
    same = ["127.0.0.1", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "127.1",
            "127.0.1", "0x7F.0.0.0x1", "017700000001"]
    assert {str(egress.literal_ip(h)) for h in same} == {"127.0.0.1"}
    assert egress.literal_ip("public.test") is None
    assert str(egress.literal_ip("[::ffff:127.0.0.1]")) == "::ffff:7f00:1"
    for bad in ("1.2.3.4.5", "256.1.1.1", "1.0x100.1.1", "127.0.0.08"):
        with pytest.raises(egress.EgressDenied):
            egress.literal_ip(bad)


# --- subscriptions: create, update, CLI check ------------------------------------------

def _configs(url: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """connector -> (its URL field, a config valid but for ``url``)."""
    wh = {"url": url, "secret": SECRET}
    return {
        "webhook": ("config.url", wh),
        "crm.webhook": ("config.url", dict(wh)),
        "erp.webhook": ("config.url", dict(wh)),
        "erp.tryton": ("config.base_url", {
            "base_url": url, "database": "hub", "app_key": "app-key-12345678",
            "company": 1, "locations": {"SH-001": 3}, "lost_found_location": 7}),
        "erp.sap": ("config.base_url", {
            "base_url": url, "username": "HUB_USER", "password": "sap-password-1",
            "cost_center": "C1",
            "plants": {"SH-001": {"plant": "1010", "storage_location": "101A"}}}),
        "crm.salesforce": ("config.instance_url", {
            "instance_url": url, "client_id": "cid", "client_secret": "sf-secret-1",
            "program_name": "P", "process_name": "Credit"}),
        "crm.hubspot": ("config.base_url", {
            "base_url": url, "access_token": "pat-na1-token-1", "id_property": "hub_id"}),
    }


def _create(client: Any, merchant: Any, connector: str,
            config: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/subscriptions", headers=merchant.auth(), json={
        "connector": connector, "config": config, "events": ["coupon.redeemed"]})


# spellings every connector's schema lets through (https, host only): the policy decides
SCHEMA_VALID_BAD = ["https://2130706433", "https://0x7f.1", "https://[::1]",
                    "https://[::ffff:169.254.169.254]", "https://internal.test",
                    "https://localhost", "https://169.254.169.254", "https://[fd00::1]",
                    "https://public.test:70000"]


@pytest.mark.parametrize("connector", sorted(_configs("x")))
def test_every_connector_refuses_internal_urls(client, merchant, connector: str) -> None:
    for url in [*SCHEMA_VALID_BAD, "http://user:pa55word@public.test", "file:///etc/passwd",
                "https://exa mple.test", "https://"]:
        field_name, config = _configs(url)[connector]
        r = _create(client, merchant, connector, config)
        assert r.status_code == 422, (url, r.text)
        problem = r.json()
        assert problem["code"] == "url_not_allowed", (url, problem)
        assert problem["errors"][0]["field"] == field_name
        assert problem["detail"].startswith(field_name)
        assert url not in r.text and "pa55word" not in r.text
    field_name, config = _configs("https://public.test")[connector]
    r = _create(client, merchant, connector, config)
    assert r.status_code == 201, r.text


def test_update_refuses_internal_urls_and_keeps_the_old_config(client, merchant) -> None:
    sub = _create(client, merchant, "webhook", {"url": "https://public.test/h", "secret": SECRET})
    assert sub.status_code == 201, sub.text
    sid = sub.json()["id"]
    for url in ("http://[::ffff:127.0.0.1]:8080/", "http://metadata.test/", "http://0x7f.1/"):
        r = client.patch(f"/v1/subscriptions/{sid}", headers=merchant.auth(),
                         json={"config": {"url": url}})
        assert r.status_code == 422 and r.json()["code"] == "url_not_allowed", r.text
        assert r.json()["errors"][0]["field"] == "config.url"
    shown = client.get(f"/v1/subscriptions/{sid}", headers=merchant.auth()).json()
    assert shown["config"]["url"] == "https://public.test/h"


def test_url_fields_are_found_generically() -> None:
    from hub.connectors import OutboundConnector

    class Plugin(OutboundConnector):
        name = "crm.future"
        url_fields = ("callback",)
        config_schema = {"type": "object", "properties": {
            "nested": {"type": "object", "properties": {"u": {"type": "string",
                                                               "format": "uri"}}},
            "hooks": {"type": "array", "items": {"type": "string", "format": "uri"}}}}

    config = {"nested": {"u": "http://a/"}, "hooks": ["http://b/"], "callback": "http://c/",
              "token_endpoint": "http://d/", "other": "http://e/"}
    found = dict(egress.url_values(Plugin(), config))
    assert found == {"config.nested.u": "http://a/", "config.hooks.0": "http://b/",
                     "config.callback": "http://c/", "config.token_endpoint": "http://d/"}
    with pytest.raises(Exception) as refused:
        egress.check_config_urls(Plugin(), {**config, "hooks": ["https://public.test",
                                                                "http://127.1/"]})
    assert getattr(refused.value, "code", None) == "url_not_allowed"
    assert refused.value.extra["errors"][0]["field"] == "config.hooks.1"  # type: ignore[attr-defined]


def test_the_example_plugin_declares_its_url() -> None:
    from pathlib import Path

    schema = json.loads((Path(__file__).parents[2] / "examples/hub-csv-crm/src/hub_csv_crm/"
                         "config.schema.json").read_text())
    assert schema["properties"]["url"]["format"] == "uri"


def test_connectors_check_refuses_internal_urls(tmp_path) -> None:
    from hub.cli import main

    config = tmp_path / "c.json"
    for url in ("http://169.254.169.254/latest", "http://2130706433/", "http://internal.test/"):
        config.write_text(json.dumps({"url": url, "secret": SECRET}))
        result = CliRunner().invoke(main, ["connectors", "check", "webhook", "--config",
                                           str(config)])
        assert result.exit_code != 0
        assert "url_not_allowed: config.url" in result.output, result.output
        assert "Traceback" not in result.output


def test_cli_subscriptions_refuse_internal_urls(db, merchant) -> None:
    from hub.cli import main

    url = db.url.render_as_string(hide_password=False)
    base = ["subscriptions", "create", "--db", url, "--merchant", merchant.id,
            "--connector", "webhook", "--events", "*", "--config"]
    for bad in ("http://0x7f.1:8080/", "http://[::ffff:10.0.0.1]/", "http://metadata.test/"):
        result = CliRunner().invoke(main, [*base, json.dumps({"url": bad, "secret": SECRET})])
        assert result.exit_code != 0 and "url_not_allowed: config.url" in result.output
    result = CliRunner().invoke(main, [*base, json.dumps(["not", "an", "object"])])
    assert result.exit_code != 0 and "invalid_config" in result.output, result.output
    assert "Traceback" not in result.output
    ok = CliRunner().invoke(main, [*base, json.dumps({"url": "https://public.test/h",
                                                      "secret": SECRET})])
    assert ok.exit_code == 0, ok.output
    sid = json.loads(ok.output)["id"]
    result = CliRunner().invoke(main, ["subscriptions", "update", "--db", url, "--merchant",
                                       merchant.id, sid, "--config",
                                       json.dumps({"url": "http://127.1/"})])
    assert result.exit_code != 0 and "url_not_allowed" in result.output, result.output


# --- connect time ---------------------------------------------------------------------

@dataclass
class Server:
    """A loopback HTTP server answering every request with ``answer``."""

    host: str = "127.0.0.1"
    answer: Callable[[BaseHTTPRequestHandler, bytes], tuple[int, dict[str, str], bytes]] = (
        lambda handler, body: (200, {}, b'{"ok": true}'))
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[ThreadingHTTPServer] = []

    def start(**kw: Any) -> Server:
        server = Server(**kw)

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                server.requests.append((self.path, dict(self.headers), body))
                status, headers, payload = server.answer(self, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer((server.host, 0), Handler)
        server.port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return server

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def _deliver(client: Any, db: Any, merchant: Any, clock: Any, url: str,
             config: dict[str, Any] | None = None,
             allow_at_create: str | None = None,
             monkeypatch: pytest.MonkeyPatch | None = None) -> dict[str, Any]:
    """Subscribe ``url``, redeem a coupon, run the deliveries; the delivery as the API
    shows it."""
    if allow_at_create is not None and monkeypatch is not None:
        monkeypatch.setenv("HUB_EGRESS_ALLOW", allow_at_create)
    r = client.post("/v1/subscriptions", headers=merchant.auth(), json={
        "connector": "webhook", "config": config or {"url": url, "secret": SECRET},
        "events": ["coupon.redeemed"], "retry_schedule": [1]})
    assert r.status_code == 201, r.text
    if allow_at_create is not None and monkeypatch is not None:
        monkeypatch.setenv("HUB_EGRESS_ALLOW", "")
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    redeem(client, merchant, code)
    with runtime(db, clock) as rt:
        rt.drain()
        clock.advance(seconds=5)
        rt.drain()
    items = client.get("/v1/deliveries", headers=merchant.auth()).json()["items"]
    [d] = items
    return dict(client.get(f"/v1/deliveries/{d['id']}", headers=merchant.auth()).json())


def test_dns_rebinding_is_caught_at_connect_time(client, db, merchant, clock, serve, policy,
                                                 monkeypatch) -> None:
    """The name resolves to a public address when the subscription is made, to
    loopback when the worker connects: nothing reaches the loopback receiver, and its
    answer is not readable through the API."""
    secret_service = serve(answer=lambda h, b: (500, {}, b"INTERNAL-ONLY-DATA"))
    url = f"http://rebind.test:{secret_service.port}/hook"
    policy["rebind.test"] = [PUBLIC]
    r = client.post("/v1/subscriptions", headers=merchant.auth(), json={
        "connector": "webhook", "config": {"url": url, "secret": SECRET},
        "events": ["coupon.redeemed"], "retry_schedule": [1]})
    assert r.status_code == 201, r.text
    policy["rebind.test"] = ["127.0.0.1"]
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    redeem(client, merchant, code)
    with runtime(db, clock) as rt:
        rt.drain()
    [d] = client.get("/v1/deliveries", headers=merchant.auth()).json()["items"]
    shown = client.get(f"/v1/deliveries/{d['id']}", headers=merchant.auth()).text
    assert secret_service.requests == []
    assert d["status"] == "dead"
    assert "egress" in shown and "INTERNAL-ONLY-DATA" not in shown


def test_the_checked_address_is_the_one_connected_to(serve, policy, monkeypatch) -> None:
    """Allowed by the operator, a name goes to the address that was judged (one
    look-up per connection; an internal answer among allowed ones is skipped)."""
    monkeypatch.setenv("HUB_EGRESS_ALLOW", "127.0.0.1/32")
    receiver = serve()
    policy["erp.test"] = ["10.9.9.9", "127.0.0.1"]
    looked_up: list[str] = []
    real = egress.resolver

    def counting(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return real(host, port)

    monkeypatch.setattr(egress, "resolver", counting)
    with egress.client() as c:
        r = c.get(f"http://erp.test:{receiver.port}/ping")
    assert r.status_code == 200 and len(receiver.requests) == 1
    assert receiver.requests[0][1]["Host"] == f"erp.test:{receiver.port}"
    assert looked_up == ["erp.test"]
    policy["erp.test"] = ["10.9.9.9"]
    with egress.client() as c, pytest.raises(egress.EgressDenied):
        c.get(f"http://erp.test:{receiver.port}/ping")


def test_a_stored_internal_url_is_not_delivered_to(client, db, merchant, clock, serve,
                                                   monkeypatch) -> None:
    """A subscription made while the operator allowed loopback, delivered after the
    allow-list was emptied: refused at send time, the receiver sees nothing."""
    receiver = serve(answer=lambda h, b: (400, {}, b"secret internal answer"))
    d = _deliver(client, db, merchant, clock, f"http://2130706433:{receiver.port}/h",
                 allow_at_create="127.0.0.0/8", monkeypatch=monkeypatch)
    assert receiver.requests == []
    assert d["status"] == "dead"
    assert d["attempt_log"][0]["error"].startswith("egress refused")
    assert "secret internal answer" not in json.dumps(d)


def test_redirects_are_not_followed(client, db, merchant, clock, serve, monkeypatch) -> None:
    target = serve(host="127.0.0.2")
    hop = serve(answer=lambda h, b: (302, {"Location": f"{target.url}/meta"}, b""))
    monkeypatch.setenv("HUB_EGRESS_ALLOW", "127.0.0.1/32")
    d = _deliver(client, db, merchant, clock, f"{hop.url}/h")
    assert len(hop.requests) == 1 and target.requests == []
    assert d["status"] == "dead" and "redirect" in d["attempt_log"][0]["error"]
    # and a client that did follow redirects would have each hop checked
    with (httpx.Client(transport=egress.EgressTransport(), follow_redirects=True) as c,
          pytest.raises(egress.EgressDenied)):
        c.post(f"{hop.url}/h")
    assert target.requests == []


def test_answers_are_capped(client, db, merchant, clock, serve, monkeypatch) -> None:
    big = serve(answer=lambda h, b: (500, {}, b"A" * 200_000))
    monkeypatch.setenv("HUB_EGRESS_ALLOW", "127.0.0.1/32")
    d = _deliver(client, db, merchant, clock, f"{big.url}/h")
    for attempt in d["attempt_log"]:
        assert attempt["response_body"] is not None
        assert 0 < len(attempt["response_body"]) <= MAX_BODY_LOGGED <= 1024
    # what is read at all is bounded too
    huge = httpx.MockTransport(lambda request: httpx.Response(200, content=b"B" * (3 << 20)))

    with httpx.Client(transport=huge) as c:
        got = http_transport(c)(OutboundRequest("POST", "https://public.test/x"))
    assert len(got.body) == MAX_RESPONSE_BYTES


# --- the delivery client: httpx's connection pool driven directly ----------------------


def test_the_delivery_client_sends_what_an_httpx_client_sends(serve, monkeypatch) -> None:
    """Same request headers as an httpx.Client (the request's own win, any case), the
    answer's headers as httpx reads them, and no cookie kept from one answer to the next."""
    monkeypatch.setenv("HUB_EGRESS_ALLOW", "127.0.0.1/32")
    receiver = serve(answer=lambda h, b: (201, {"Set-Cookie": "sid=abc", "X-Two": "1"}, b"ok"))
    body = b'{"id": 1}'
    with DeliveryClient() as c, httpx.Client() as plain:
        got = c.send(OutboundRequest("POST", f"{receiver.url}/h?q=1", {"X-Key": "v",
                                                                     "user-agent": "mine"},
                                     body))
        again = c.send(OutboundRequest("POST", f"{receiver.url}/h", {}, b""))
        assert again.status == 201
        plain.post(f"{receiver.url}/h?q=1", content=body,
                   headers={"X-Key": "v", "user-agent": "mine"})
    assert got.status == 201 and got.body == b"ok"
    assert got.header("set-cookie") == "sid=abc" and ("x-two", "1") in got.raw_headers
    (path, sent, seen), (_, second, empty), (_, by_httpx, _) = receiver.requests
    assert path == "/h?q=1" and seen == body and empty == b""
    sent = {k.lower(): v for k, v in sent.items()}
    second = {k.lower(): v for k, v in second.items()}
    assert sent == {k.lower(): v for k, v in by_httpx.items()}
    assert sent["user-agent"] == "mine" and sent["content-length"] == str(len(body))
    assert second["content-length"] == "0" and "cookie" not in second
    assert second["user-agent"].startswith("python-httpx/")


def test_the_delivery_client_decodes_and_caps_answers(serve, monkeypatch) -> None:
    import gzip

    monkeypatch.setenv("HUB_EGRESS_ALLOW", "127.0.0.1/32")
    packed = gzip.compress(b"C" * (2 << 20))
    zipped = serve(answer=lambda h, b: (200, {"Content-Encoding": "gzip"}, packed))
    big = serve(answer=lambda h, b: (200, {}, b"D" * (2 << 20)))
    with DeliveryClient() as c:
        unzipped = c.send(OutboundRequest("GET", f"{zipped.url}/x"))
        capped = c.send(OutboundRequest("GET", f"{big.url}/x"))
    assert unzipped.body == b"C" * MAX_RESPONSE_BYTES
    assert capped.body == b"D" * MAX_RESPONSE_BYTES


def test_the_delivery_client_keeps_the_policy_and_httpx_errors(serve, policy,
                                                              monkeypatch) -> None:
    receiver = serve()
    policy["erp.test"] = ["127.0.0.1"]
    with DeliveryClient() as c:
        with pytest.raises(egress.EgressDenied):  # a name that resolves to loopback
            c.send(OutboundRequest("GET", f"http://erp.test:{receiver.port}/x"))
        with pytest.raises(egress.EgressDenied):  # a literal internal address
            c.send(OutboundRequest("GET", f"http://2130706433:{receiver.port}/x"))
        monkeypatch.setenv("HUB_EGRESS_ALLOW", "127.0.0.1/32")
        with pytest.raises(httpx.ConnectError):  # nothing listens there: httpx's error
            c.send(OutboundRequest("GET", "http://127.0.0.1:1/x", timeout=2))
        assert c.send(OutboundRequest("GET", f"http://erp.test:{receiver.port}/x")).status == 200
    assert len(receiver.requests) == 1


# --- item 6: echoed credentials in every encoding ----------------------------------------

USER, PASSWORD = "hub-user", "pa/ss+w0rd=q?x y"
API_KEY = "key/4d1f+e9=zz"
BEARER = "tok.77c1/abc+def="
HEADERS = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
           "X-Api-Key": API_KEY, "X-Extra": f"Bearer {BEARER}",
           "Cookie": "sid=cookie-5e2f/val; theme=dark"}
PLAIN = [PASSWORD, API_KEY, BEARER, "cookie-5e2f/val", SECRET,
         f"{USER}:{PASSWORD}", HEADERS["Authorization"].split()[1]]


def _encodings(value: str) -> list[str]:
    raw = value.encode()
    return [
        value,
        json.dumps(value)[1:-1].replace("/", "\\/"),
        quote(value, safe=""),
        quote(value, safe="").lower().replace("%2f", "%2f"),
        quote_plus(value),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


def _echo(request: httpx.Request) -> httpx.Response:
    """A receiver that refuses and echoes what it got, in every encoding it likes."""
    sent = dict(request.headers)
    echo = {
        "json": json.dumps(sent).replace("/", "\\/"),
        "form": "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sent.items()),
        "pct": quote(json.dumps(sent), safe=""),
        "b64": base64.b64encode(json.dumps(sent).encode()).decode(),
        "decoded_basic": f"{USER}:{PASSWORD}",
        "b64_each": {k: base64.b64encode(v.encode()).decode() for k, v in sent.items()},
        "b64_password": base64.b64encode(PASSWORD.encode()).decode(),
    }
    return httpx.Response(401, text=json.dumps(echo))


def test_echoed_credentials_are_scrubbed_in_every_encoding(client, db, merchant,
                                                           clock) -> None:
    url = "https://echo.test/hook"
    with respx.mock() as mock:
        mock.post(url).mock(side_effect=_echo)
        d = _deliver(client, db, merchant, clock, url,
                     config={"url": url, "secret": SECRET, "headers": HEADERS})
    shown = json.dumps(d)
    assert d["attempt_log"] and "***" in d["attempt_log"][0]["response_body"]
    attempt_text = d["attempt_log"][0]["response_body"] + str(d["attempt_log"][0]["error"])
    for plain in PLAIN:
        for form in _encodings(plain):
            assert form not in shown and form not in attempt_text, (plain, form)


def test_scrub_knows_every_encoding() -> None:
    secret = "s3cr/et+val ue"
    for form in _encodings(secret):
        text = f"<<{form}>>"
        assert scrub(text, [secret]) == "<<***>>", form
    inside = base64.b64encode(b'{"k": "' + secret.encode() + b'"}').decode()
    assert scrub(inside, [secret]).count("***") == 1
    basic = "Basic " + base64.b64encode(b"me:" + secret.encode()).decode()
    assert scrub("user me:" + secret, [basic]) == "user ***"


def test_validation_errors_never_repeat_a_nested_secret(client, merchant) -> None:
    for headers in ({"X-Token": ["nested-secret-in-array-1"]},
                    {"X-Token": {"deep": "nested-secret-in-map-2"}},
                    {"X-Token": 987654321987}):
        r = _create(client, merchant, "webhook",
                    {"url": "https://public.test/h", "secret": SECRET, "headers": headers})
        assert r.status_code == 422 and r.json()["code"] == "invalid_config", r.text
        assert r.json()["errors"][0]["field"].startswith("config.headers")
        for value in ("nested-secret-in-array-1", "nested-secret-in-map-2", "987654321987"):
            assert value not in r.text
    # a config-wide failure (SAP needs a password or an API key) does not quote the config
    r = _create(client, merchant, "erp.sap", {
        "base_url": "https://public.test/sap", "username": "only-user-7781",
        "plants": {"SH-001": {"plant": "1010", "storage_location": "101A"}},
        "sku_map": {"A": "secret-looking-sku-7781"}})
    assert r.status_code == 422, r.text
    assert "secret-looking-sku-7781" not in r.text and "only-user-7781" not in r.text

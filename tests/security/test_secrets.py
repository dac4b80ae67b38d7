"""Connector secrets at rest: encrypted in ``subscriptions.config`` with Fernet keys from
``HUB_SECRET_KEY`` (or a key file), rotated by ``hub secrets rotate``, readable by the
delivery workers only, and never in an API answer.

Database tests run on SQLite and PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
import structlog
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select, text, update
from standardwebhooks.webhooks import Webhook

from hub import secrets as hub_secrets
from hub.cli import _check_secret_key, main
from hub.db.engine import make_engine
from hub.db.schema import subscriptions
from hub.secrets import (
    ENC,
    KEY_FILE_NAME,
    SecretKeyError,
    generate_key,
    is_encrypted,
    key_file_for,
    keyring,
)
from hub.services.secret_rotation import probe, rotate_all
from tests.conftest import issue, make_template
from tests.connectors.crm.fakes import SF_CONFIG, salesforce_ok
from tests.delivery.support import deliveries, delivery, runtime

KEY_A, KEY_B, KEY_C = generate_key(), generate_key(), generate_key()

WH_URL = "https://receiver.example/secret-hook"
WH_SECRET = "whsec_" + base64.b64encode(b"at-rest-canary-webhook-51c8e0").decode()
WH_SECRET_2 = "whsec_" + base64.b64encode(b"at-rest-canary-second-0d93aa").decode()
HDR_TOKEN = "Bearer hdr-canary-7c2e-at-rest"
WH_CONFIG: dict[str, Any] = {
    "url": WH_URL,
    "secret": WH_SECRET,
    "headers": {"Authorization": HDR_TOKEN},
}
SF_SECRET = "sf-at-rest-canary-client-secret-a1b2"
SF: dict[str, Any] = {**SF_CONFIG, "client_secret": SF_SECRET}
SAP_PASSWORD = "Sap-at-rest-canary-Pw-9e8d"
SAP: dict[str, Any] = {
    "base_url": "https://s4.example/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV",
    "username": "HUB_COMM_USER",
    "password": SAP_PASSWORD,
    "sap_client": "100",
    "plants": {"SH-001": {"plant": "1010", "storage_location": "0001"}},
    "cost_center": "10101101",
}
PLAINTEXTS = (WH_SECRET, WH_SECRET.removeprefix("whsec_"), HDR_TOKEN, SF_SECRET, SAP_PASSWORD)


# --- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_keys() -> Iterator[None]:
    hub_secrets.reset_cache()
    yield
    hub_secrets.reset_cache()


@pytest.fixture
def use_keys(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``use_keys(KEY_B, KEY_A)`` sets HUB_SECRET_KEY to "B,A"; key A is set to start."""

    def use(*keys: str) -> None:
        monkeypatch.setenv("HUB_SECRET_KEY", ",".join(keys))

    use(KEY_A)
    return use


def _subscribe(
    client: Any,
    merchant: Any,
    connector: str,
    config: dict[str, Any],
    events: list[str] | None = None,
) -> dict[str, Any]:
    r = client.post(
        "/v1/subscriptions",
        headers=merchant.auth(),
        json={"connector": connector, "config": config, "events": events or ["coupon.redeemed"]},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _raw(db: Engine, sub_id: str | None = None) -> str:
    """``subscriptions.config`` as the database holds it (its text), one or every row."""
    cast = "config::text" if db.dialect.name == "postgresql" else "CAST(config AS TEXT)"
    where = "WHERE id = :id" if sub_id else ""
    with db.connect() as conn:
        rows = conn.execute(text(f"SELECT {cast} FROM subscriptions {where}"), {"id": sub_id})
        return "\n".join(str(r[0]) for r in rows)


def _stored(db: Engine, sub_id: str) -> dict[str, Any]:
    with db.connect() as conn:
        return dict(
            conn.execute(
                select(subscriptions.c.config).where(subscriptions.c.id == sub_id)
            ).scalar_one()
        )


def _set_stored(db: Engine, sub_id: str, config: dict[str, Any]) -> None:
    with db.begin() as conn:
        conn.execute(
            update(subscriptions).where(subscriptions.c.id == sub_id).values(config=config)
        )


def _redeem(client: Any, merchant: Any, code: str) -> None:
    r = client.post(
        "/v1/redemptions",
        json={"code": code, "store": "SH-001", "order": {"id": f"O-{code}", "amount": 12800}},
        headers={**merchant.auth(), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text


def _member_codes(db: Engine, merchant: Any, clock: Any, count: int = 1) -> list[str]:
    """Coupons of a loyalty member (so that the CRM connectors have points to send)."""
    tpl = make_template(db, merchant, clock.now)
    return issue(db, merchant, tpl, clock.now, customers=[f"M{i:04d}" for i in range(1, count + 1)])


def _salesforce(request: httpx.Request) -> httpx.Response:
    from hub.connectors import OutboundRequest

    answer = salesforce_ok(
        OutboundRequest(request.method, str(request.url), dict(request.headers), request.content)
    )
    return httpx.Response(answer.status, headers=dict(answer.headers), content=answer.body)


class Receivers:
    """respx-mocked webhook and Salesforce, recording what they were sent."""

    def __init__(self, mock: respx.MockRouter, webhook_status: int = 200) -> None:
        self.webhook = mock.post(WH_URL).mock(return_value=httpx.Response(webhook_status))
        self.salesforce = mock.route(host="acme.my.salesforce.com").mock(side_effect=_salesforce)

    def token_secrets(self) -> list[str]:
        """The client_secret of every OAuth token request Salesforce received."""
        return [
            parse_qs(c.request.content.decode())["client_secret"][0]
            for c in self.salesforce.calls
            if c.request.url.path.endswith("/oauth2/token")
        ]


def _drain(db: Engine, clock: Any, webhook_status: int = 200) -> Receivers:
    with respx.mock(assert_all_called=False) as mock:
        rx = Receivers(mock, webhook_status)
        with runtime(db, clock) as rt:
            rt.drain()
    return rx


def _assert_signed(rx: Receivers, secret: str = WH_SECRET) -> None:
    assert rx.webhook.calls, "the webhook received nothing"
    for call in rx.webhook.calls:
        Webhook(secret).verify(call.request.content, dict(call.request.headers))
        assert call.request.headers["authorization"] == HDR_TOKEN


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _db_arg(db: Engine) -> str:
    return db.url.render_as_string(hide_password=False)


# --- keys -------------------------------------------------------------------------------


def test_values_round_trip_and_plaintext_passes_through(use_keys: Any) -> None:
    ring = keyring("sqlite://")
    for value in (WH_SECRET, {"Authorization": HDR_TOKEN, "X-密钥": "值"}, "", 0, None):
        stored = ring.encrypt(value)
        assert is_encrypted(stored) and set(stored) == {ENC}
        assert ring.decrypt(stored) == value
    assert WH_SECRET not in json.dumps(ring.encrypt(WH_SECRET))
    assert HDR_TOKEN not in json.dumps(ring.encrypt({"Authorization": HDR_TOKEN}))
    assert ring.encrypt(WH_SECRET) != ring.encrypt(WH_SECRET)  # a fresh IV each time
    assert ring.decrypt(WH_SECRET) == WH_SECRET  # stored before encryption existed
    assert ring.decrypt({"Authorization": HDR_TOKEN}) == {"Authorization": HDR_TOKEN}


def test_first_key_encrypts_every_key_decrypts(use_keys: Any) -> None:
    from cryptography.fernet import InvalidToken

    with_a = keyring("sqlite://").encrypt(SF_SECRET)
    use_keys(KEY_B, KEY_A)
    ring_ba = keyring("sqlite://")
    assert ring_ba.count == 2 and ring_ba.decrypt(with_a) == SF_SECRET
    rotated = ring_ba.rotate(with_a)
    use_keys(KEY_B)
    assert keyring("sqlite://").decrypt(rotated) == SF_SECRET
    with pytest.raises(InvalidToken):
        keyring("sqlite://").decrypt(with_a)


@pytest.mark.parametrize(
    "value",
    ["not-a-key", KEY_A[:-4], f"{KEY_A},{KEY_B[:20]}", " , "],
    ids=["text", "truncated", "second-truncated", "only-commas"],
)
def test_a_malformed_key_is_refused_without_echoing_it(use_keys: Any, value: str) -> None:
    use_keys(value)
    with pytest.raises(SecretKeyError) as err:
        keyring("sqlite://")
    assert "HUB_SECRET_KEY" in str(err.value)
    for part in value.split(","):
        if part.strip():
            assert part.strip() not in str(err.value)


def test_without_the_variable_a_key_file_is_made_next_to_the_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_SECRET_KEY", raising=False)
    db_file = tmp_path / "data" / "hub.db"
    db_file.parent.mkdir()
    with structlog.testing.capture_logs() as logs:
        ring = keyring(make_engine(str(db_file)))
        stored = ring.encrypt(WH_SECRET)
        assert keyring(str(db_file)) is ring  # loaded once per process
    key_file = db_file.parent / KEY_FILE_NAME
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [e["event"] for e in logs] == ["secrets.key_file"]  # one warning, once
    assert logs[0]["created"] is True and "HUB_SECRET_KEY" in logs[0]["message"]
    assert key_file.read_text().strip() not in json.dumps(logs)
    # another process (an empty cache) finds the same key
    hub_secrets.reset_cache()
    with structlog.testing.capture_logs() as logs:
        assert keyring(make_engine(str(db_file))).decrypt(stored) == WH_SECRET
    assert logs[0]["created"] is False


def test_postgresql_without_the_variable_uses_a_key_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    url = "postgresql://hub@127.0.0.1:5432/hub"
    assert key_file_for(url) == tmp_path.resolve() / KEY_FILE_NAME
    keyring(url).encrypt("x")
    assert (tmp_path / KEY_FILE_NAME).exists()
    # an in-memory SQLite database has nowhere to keep one: the key lives with the process
    assert key_file_for("sqlite://") is None and key_file_for(":memory:") is None
    with structlog.testing.capture_logs() as logs:
        ring = keyring("sqlite://")
        assert ring.decrypt(ring.encrypt("x")) == "x"
    assert [e["event"] for e in logs] == ["secrets.ephemeral_key"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE_NAME]


def test_processes_racing_to_create_the_key_file_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE_NAME
    made: list[bool] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        made.append(hub_secrets._create_key_file(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made.count(True) == 1
    assert len(path.read_text().split()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE_NAME]  # no leftovers


def test_a_readable_key_file_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_SECRET_KEY", raising=False)
    key_file = tmp_path / KEY_FILE_NAME
    key_file.write_text(f"{KEY_B}\n{KEY_A}\n")  # a key file may hold several keys too
    os.chmod(key_file, 0o644)
    with structlog.testing.capture_logs() as logs:
        ring = keyring(str(tmp_path / "hub.db"))
    assert ring.count == 2
    assert "secrets.key_file_permissions" in [e["event"] for e in logs]


def test_secrets_and_request_credentials_are_scrubbed_from_echoed_answers() -> None:
    from hub.secrets import credential_strings, scrub, secret_strings

    config = {
        "url": WH_URL,
        "secret": WH_SECRET,
        "headers": {"Authorization": HDR_TOKEN, "X-Short": "abc"},
    }
    hidden = secret_strings(config, ("secret", "headers"))
    assert hidden == sorted({WH_SECRET, HDR_TOKEN}, key=len, reverse=True)  # not "abc"
    hidden += credential_strings(
        {
            "Authorization": "Basic dXNlcjpwYXNzd29yZA==",
            "Cookie": "SID=abcdef",
            "x-csrf-token": "tok-123",
            "Idempotency-Key": "evt_01ABC",
            "Accept": "text/plain",
        }
    )
    echo = (
        f"refused {WH_SECRET} {HDR_TOKEN} dXNlcjpwYXNzd29yZA== SID=abcdef tok-123 "
        "evt_01ABC text/plain abc"
    )
    assert scrub(echo, hidden) == "refused *** *** *** *** *** evt_01ABC text/plain abc"
    # a secret across the cut is still replaced whole, then the text is cut
    text = "x" * 95 + WH_SECRET + "y" * 50
    assert scrub(text, hidden, 100) == "x" * 95 + "***yy"
    assert scrub("nothing here", []) == "nothing here"


def test_tampered_tokens_and_an_unwritable_key_directory_fail_cleanly(
    use_keys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import InvalidToken

    ring = keyring("sqlite://")
    good = ring.encrypt(SF_SECRET)[ENC]
    flipped = "B" if good[40] == "A" else "A"  # a changed character, whatever was there
    for token in ("", "not a token", "gAAAAA€", good[:-8], good[:40] + flipped + good[41:]):
        with pytest.raises(InvalidToken):
            ring.decrypt({ENC: token})
        with pytest.raises(InvalidToken):
            ring.rotate({ENC: token})
    with pytest.raises(hub_secrets.UndecryptableSecret) as err:
        hub_secrets.decrypt_config(ring, {"url": WH_URL, "secret": {ENC: "x"}})
    assert err.value.fields == ["secret"]
    monkeypatch.delenv("HUB_SECRET_KEY")
    not_a_dir = tmp_path / "plain-file"  # where the key file would go: no directory
    not_a_dir.write_text("")
    with pytest.raises(SecretKeyError, match="cannot create the key file"):
        keyring(str(not_a_dir / "hub.db"))


# --- the database holds ciphertext, the API shows *** -----------------------------------


def test_the_database_never_holds_a_secret_in_plaintext(client, db, merchant, use_keys):
    wh = _subscribe(client, merchant, "webhook", WH_CONFIG)
    sf = _subscribe(client, merchant, "crm.salesforce", SF)
    sap = _subscribe(client, merchant, "erp.sap", SAP)
    # secrets of this test alone (other tests write plaintext rows on purpose)
    mine = [f"own-canary-{uuid.uuid4().hex}" for _ in range(3)]
    own_webhook = "whsec_" + base64.b64encode(mine[0].encode()).decode()
    _subscribe(
        client,
        merchant,
        "webhook",
        {"url": WH_URL, "secret": own_webhook, "headers": {"X-Api-Key": mine[1]}},
    )
    _subscribe(client, merchant, "erp.sap", {**SAP, "password": mine[2]})
    raw = _raw(db)
    for secret in [*PLAINTEXTS, *mine, own_webhook]:
        assert secret not in raw
    assert WH_URL in raw and "Inner Circle" in raw and "HUB_COMM_USER" in raw  # not secret
    stored = _stored(db, wh["id"])
    assert is_encrypted(stored["secret"]) and is_encrypted(stored["headers"])
    assert is_encrypted(_stored(db, sf["id"])["client_secret"])
    assert _stored(db, sf["id"])["client_id"] == SF["client_id"]
    assert is_encrypted(_stored(db, sap["id"])["password"])
    ring = keyring(db)
    assert ring.decrypt(stored["secret"]) == WH_SECRET
    assert ring.decrypt(stored["headers"]) == {"Authorization": HDR_TOKEN}
    assert ring.decrypt(_stored(db, sap["id"])["password"]) == SAP_PASSWORD
    if db.dialect.name == "sqlite":  # not in any page of the file or of its WAL either
        path = Path(str(db.url.database))
        files = [f for f in (path, path.with_name(path.name + "-wal")) if f.exists()]
        assert files
        for f in files:
            data = f.read_bytes()
            assert not any(s.encode() in data for s in [*mine, own_webhook]), f


def test_the_api_answers_stars_for_every_secret(client, db, merchant, use_keys):
    wh = _subscribe(client, merchant, "webhook", WH_CONFIG)
    sf = _subscribe(client, merchant, "crm.salesforce", SF)
    sap = _subscribe(client, merchant, "erp.sap", SAP)
    assert wh["config"] == {"url": WH_URL, "secret": "***", "headers": "***"}
    assert sf["config"]["client_secret"] == "***"
    assert sf["config"]["client_id"] == SF["client_id"]
    assert sap["config"]["password"] == "***" and sap["config"]["username"] == "HUB_COMM_USER"
    texts = [
        client.get(f"/v1/subscriptions/{s['id']}", headers=merchant.auth()).text
        for s in (wh, sf, sap)
    ]
    texts.append(client.get("/v1/subscriptions", headers=merchant.auth()).text)
    r = client.patch(
        f"/v1/subscriptions/{wh['id']}",
        headers=merchant.auth(),
        json={"config": {"url": WH_URL + "/v2"}},
    )
    assert r.status_code == 200 and r.json()["config"]["secret"] == "***"
    texts.append(r.text)
    for t in texts:
        assert ENC not in t and "gAAAA" not in t  # neither plaintext nor ciphertext
        for secret in PLAINTEXTS:
            assert secret not in t


def test_a_patch_without_the_secret_keeps_it_encrypted(client, db, merchant, clock, use_keys):
    sub = _subscribe(client, merchant, "webhook", WH_CONFIG)
    before = _stored(db, sub["id"])
    r = client.patch(
        f"/v1/subscriptions/{sub['id']}",
        headers=merchant.auth(),
        json={"config": {"url": WH_URL, "timeout": 5}},
    )
    assert r.status_code == 200, r.text
    after = _stored(db, sub["id"])
    assert after["timeout"] == 5 and is_encrypted(after["secret"])
    ring = keyring(db)
    assert ring.decrypt(after["secret"]) == ring.decrypt(before["secret"]) == WH_SECRET
    assert ring.decrypt(after["headers"]) == {"Authorization": HDR_TOKEN}
    # a new secret replaces the old one, encrypted too
    r = client.patch(
        f"/v1/subscriptions/{sub['id']}",
        headers=merchant.auth(),
        json={"config": {"url": WH_URL, "secret": WH_SECRET_2}},
    )
    assert r.status_code == 200, r.text
    assert ring.decrypt(_stored(db, sub["id"])["secret"]) == WH_SECRET_2
    assert WH_SECRET_2 not in _raw(db, sub["id"])
    # the merged config is validated as a whole
    r = client.patch(
        f"/v1/subscriptions/{sub['id']}",
        headers=merchant.auth(),
        json={"config": {"url": "ftp://nope"}},
    )
    assert r.status_code == 422 and r.json()["code"] == "url_not_allowed"  # egress policy
    r = client.patch(
        f"/v1/subscriptions/{sub['id']}",
        headers=merchant.auth(),
        json={"config": {"url": WH_URL, "timeout": 0}},
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_config"


def test_deliveries_decrypt_sign_and_authenticate(client, db, merchant, clock, use_keys):
    _subscribe(client, merchant, "webhook", WH_CONFIG)
    _subscribe(client, merchant, "crm.salesforce", SF)
    for code in _member_codes(db, merchant, clock, 2):
        _redeem(client, merchant, code)
    rx = _drain(db, clock)
    _assert_signed(rx)
    assert len(rx.webhook.calls) == 2
    assert rx.token_secrets() == [SF_SECRET]  # one OAuth session, cached per subscription
    assert {d["status"] for d in deliveries(client, merchant)} == {"succeeded"}


# --- rotation ---------------------------------------------------------------------------


def test_rotation_lets_the_old_key_go(client, db, merchant, clock, use_keys):
    wh = _subscribe(client, merchant, "webhook", WH_CONFIG)
    sf = _subscribe(client, merchant, "crm.salesforce", SF)
    deleted = _subscribe(client, merchant, "erp.sap", SAP)
    client.delete(f"/v1/subscriptions/{deleted['id']}", headers=merchant.auth())
    with_a = _raw(db)
    use_keys(KEY_B, KEY_A)
    done = rotate_all(db)
    assert (done.subscriptions, done.rotated, done.encrypted) == (3, 4, 0)
    assert done.failed == {}
    assert _raw(db) != with_a
    use_keys(KEY_B)  # the old key is gone
    for code in _member_codes(db, merchant, clock):
        _redeem(client, merchant, code)
    rx = _drain(db, clock)
    _assert_signed(rx)
    assert rx.token_secrets() == [SF_SECRET]
    assert keyring(db).decrypt(_stored(db, deleted["id"])["password"]) == SAP_PASSWORD
    assert {d["status"] for d in deliveries(client, merchant)} == {"succeeded"}
    # and key A alone no longer opens anything
    use_keys(KEY_A)
    with pytest.raises(hub_secrets.UndecryptableSecret) as err:
        hub_secrets.decrypt_config(keyring(db), _stored(db, wh["id"]))
    assert err.value.fields == ["headers", "secret"]
    assert hub_secrets.decrypt_fields(keyring(db), _stored(db, sf["id"]), ["client_secret"])[1] == [
        "client_secret"
    ]


def test_hub_secrets_rotate_on_the_command_line(client, db, merchant, clock, use_keys):
    _subscribe(client, merchant, "webhook", WH_CONFIG)
    _subscribe(client, merchant, "crm.salesforce", SF)
    use_keys(KEY_B, KEY_A)
    result = _cli("secrets", "rotate", "--db", _db_arg(db))
    assert result.exit_code == 0, result.output
    assert "re-encrypted 3 secrets and encrypted 0 plaintext ones in 2 subscriptions" in (
        result.output
    )
    use_keys(KEY_B)
    for code in _member_codes(db, merchant, clock):
        _redeem(client, merchant, code)
    rx = _drain(db, clock)
    _assert_signed(rx)
    assert rx.token_secrets() == [SF_SECRET]
    for secret in PLAINTEXTS:
        assert secret not in result.output


def test_plaintext_rows_from_before_still_deliver_and_rotation_encrypts_them(
    client, db, merchant, clock, use_keys
):
    wh = _subscribe(client, merchant, "webhook", WH_CONFIG)
    sf = _subscribe(client, merchant, "crm.salesforce", SF)
    _set_stored(db, wh["id"], WH_CONFIG)  # as a database from before this change holds it
    _set_stored(db, sf["id"], SF)
    assert WH_SECRET in _raw(db)
    r = client.get(f"/v1/subscriptions/{wh['id']}", headers=merchant.auth())
    assert r.json()["config"]["secret"] == "***" and WH_SECRET not in r.text
    [code] = _member_codes(db, merchant, clock)
    _redeem(client, merchant, code)
    rx = _drain(db, clock)
    _assert_signed(rx)
    assert rx.token_secrets() == [SF_SECRET]

    done = rotate_all(db)
    assert (done.subscriptions, done.rotated, done.encrypted) == (2, 0, 3)
    raw = _raw(db)
    assert not any(secret in raw for secret in PLAINTEXTS)
    assert is_encrypted(_stored(db, wh["id"])["headers"])
    assert rotate_all(db).encrypted == 0  # nothing plaintext left
    [code] = _member_codes(db, merchant, clock)
    _redeem(client, merchant, code)
    _assert_signed(_drain(db, clock))


def test_a_wrong_key_fails_the_delivery_cleanly(client, db, merchant, clock, use_keys):
    sub = _subscribe(client, merchant, "webhook", WH_CONFIG)
    [code] = _member_codes(db, merchant, clock)
    _redeem(client, merchant, code)
    use_keys(KEY_C)  # not the key the secret was stored with
    with structlog.testing.capture_logs() as logs:
        rx = _drain(db, clock)
    assert rx.webhook.call_count == 0  # nothing sent unsigned or wrongly signed
    [d] = deliveries(client, merchant)
    assert d["status"] == "retrying" and d["attempts"] == 1
    assert (
        sub["id"] in d["last_error"]
        and "cannot decrypt config.headers, config.secret" in (d["last_error"])
    )
    assert delivery(client, merchant, d["id"])["attempt_log"][0]["outcome"] == "retry"
    events = [e for e in logs if e["event"] == "delivery.secret_undecryptable"]
    assert [e["subscription_id"] for e in events] == [sub["id"]]
    assert not any(s in json.dumps(logs, default=str) for s in PLAINTEXTS)
    # `hub serve` and `hub worker` say so at start
    assert probe(db) == (2, [sub["id"]])
    with structlog.testing.capture_logs() as logs:
        _check_secret_key(db)
    [error] = [e for e in logs if e["event"] == "secrets.undecryptable"]
    assert error["log_level"] == "error" and error["subscriptions"] == [sub["id"]]

    # a PATCH cannot keep a secret it cannot read: it asks for it again
    r = client.patch(
        f"/v1/subscriptions/{sub['id']}", headers=merchant.auth(), json={"config": {"url": WH_URL}}
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_config"
    assert {e["field"] for e in r.json()["errors"]} == {"config.secret", "config.headers"}
    # sending the secret again (with the new key) heals it; the retry then goes out
    r = client.patch(
        f"/v1/subscriptions/{sub['id']}", headers=merchant.auth(), json={"config": WH_CONFIG}
    )
    assert r.status_code == 200, r.text
    clock.advance(seconds=60)
    _assert_signed(_drain(db, clock))
    assert deliveries(client, merchant)[0]["status"] == "succeeded"


def test_a_malformed_key_fails_deliveries_and_commands_cleanly(
    client, db, merchant, clock, use_keys
):
    _subscribe(client, merchant, "webhook", WH_CONFIG)
    [code] = _member_codes(db, merchant, clock)
    _redeem(client, merchant, code)
    use_keys("this-is-not-a-fernet-key")
    rx = _drain(db, clock)
    assert rx.webhook.call_count == 0
    [d] = deliveries(client, merchant)
    assert d["status"] == "retrying" and "not a Fernet key" in d["last_error"]
    result = _cli("secrets", "rotate", "--db", _db_arg(db))
    assert result.exit_code == 1
    assert "HUB_SECRET_KEY: key #1 is not a Fernet key" in result.output
    assert "this-is-not-a-fernet-key" not in result.output


def test_rotation_leaves_an_undecryptable_subscription_and_says_so(
    client, db, merchant, clock, use_keys
):
    lost = _subscribe(client, merchant, "webhook", WH_CONFIG)
    use_keys(KEY_C)
    fine = _subscribe(client, merchant, "crm.salesforce", SF)
    lost_raw = _raw(db, lost["id"])
    use_keys(KEY_B, KEY_C)  # key A is lost
    result = _cli("secrets", "rotate", "--db", _db_arg(db))
    assert result.exit_code == 1
    assert "re-encrypted 1 secrets" in result.output
    assert f"{lost['id']}: cannot decrypt headers, secret" in result.output
    assert _raw(db, lost["id"]) == lost_raw  # untouched
    use_keys(KEY_B)
    assert keyring(db).decrypt(_stored(db, fine["id"])["client_secret"]) == SF_SECRET


def test_the_cli_and_the_api_share_the_key_file_of_a_sqlite_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded default with no configuration: ``hub seed``, ``hub subscriptions
    create`` and a delivery worker on another engine all use ``hub-secret.key``."""
    monkeypatch.delenv("HUB_SECRET_KEY", raising=False)
    path = tmp_path / "hub.db"
    assert _cli("seed", "--db", str(path)).exit_code == 0
    result = _cli(
        "subscriptions",
        "create",
        "--db",
        str(path),
        "--connector",
        "webhook",
        "--config",
        json.dumps(WH_CONFIG),
        "--events",
        "coupon.redeemed",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["config"]["secret"] == "***"
    key_file = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    engine = make_engine(str(path))
    try:
        assert WH_SECRET not in _raw(engine)
        hub_secrets.reset_cache()  # as a separate worker process would start
        ring = keyring(engine)
        [row] = _raw(engine).splitlines()
        assert ring.decrypt(json.loads(row)["secret"]) == WH_SECRET
        rotated = _cli("secrets", "rotate", "--db", str(path))
        assert rotated.exit_code == 0 and "in 1 subscriptions" in rotated.output
    finally:
        engine.dispose()
    assert sorted(p.name for p in tmp_path.iterdir() if "key" in p.name) == [KEY_FILE_NAME]


def test_generate_key_prints_a_usable_key(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _cli("secrets", "generate-key")
    assert result.exit_code == 0
    monkeypatch.setenv("HUB_SECRET_KEY", result.output.strip())
    assert keyring("sqlite://").decrypt(keyring("sqlite://").encrypt("x")) == "x"

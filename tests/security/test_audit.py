"""The audit log: every administrative change leaves who (key), what, when and from
where, in the same transaction; the log is append-only and admins read it."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import select, text

from hub.db.schema import audit_log
from tests.conftest import THRESHOLD_SPEC, issue, make_merchant, make_template


def entries(client, merchant, **params) -> list[dict]:
    r = client.get("/v1/audit", headers=merchant.auth(), params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def admin_key_id(merchant) -> str:
    return merchant.admin_key.split(".")[1]


def test_changes_are_audited_with_actor_time_and_address(client, db, merchant, clock):
    auth = merchant.auth()
    tpl = client.post("/v1/templates", headers=auth,
                      json={"name": "满100减20", **THRESHOLD_SPEC}).json()["id"]
    client.post(f"/v1/templates/{tpl}/pause", headers=auth)
    client.post(f"/v1/templates/{tpl}/pause", headers=auth)  # no change: no entry
    client.post(f"/v1/templates/{tpl}/resume", headers=auth)
    codes = client.post(f"/v1/templates/{tpl}/coupons", headers=auth,
                        json={"count": 2}).json()["coupons"]
    client.post(f"/v1/coupons/{codes[0]['code']}/claim", headers=auth, json={"customer": "M0001"})
    client.post(f"/v1/coupons/{codes[1]['code']}/void", headers=auth, json={"reason": "typo"})
    key = client.post("/v1/keys", headers=auth, json={"role": "analyst"}).json()
    client.post(f"/v1/keys/{key['id']}/revoke", headers=auth)
    got = entries(client, merchant)
    assert [e["action"] for e in got] == [
        "key.revoked", "key.created", "coupon.voided", "coupon.claimed", "coupons.issued",
        "template.resumed", "template.paused", "template.created"]
    for e in got:
        assert e["actor"] == {"key_id": admin_key_id(merchant), "role": "admin",
                              "address": "testclient", "staff_id": None}
        assert e["at"].startswith(clock.now.strftime("%Y-%m-%dT%H:%M"))
    by_action = {e["action"]: e for e in got}
    assert by_action["coupons.issued"]["details"] == {"count": 2, "to_customers": False}
    assert by_action["coupon.voided"]["target"] == {"type": "coupon", "id": codes[1]["code"]}
    assert by_action["key.created"]["details"]["role"] == "analyst"


def test_filters_and_pages(client, db, merchant, clock):
    auth = merchant.auth()
    tpl = make_template(db, merchant, clock.now)
    for _ in range(3):
        client.post(f"/v1/templates/{tpl}/pause", headers=auth)
        client.post(f"/v1/templates/{tpl}/resume", headers=auth)
    assert len(entries(client, merchant, action="template.paused")) == 3
    assert len(entries(client, merchant, target=tpl)) == 7  # and its creation
    assert entries(client, merchant, actor="key_nobody") == []
    first = client.get("/v1/audit", headers=auth, params={"limit": 4}).json()
    second = client.get("/v1/audit", headers=auth,
                        params={"limit": 4, "cursor": first["next_cursor"]}).json()
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 7 and second["next_cursor"] is None


def test_only_admins_read_it_and_only_their_merchants(client, db, merchant, clock):
    make_template(db, merchant, clock.now)
    client.post("/v1/keys", headers=merchant.auth(), json={"role": "integrator"})
    r = client.get("/v1/audit", headers=merchant.auth(merchant.store_keys["SH-001"]))
    assert r.status_code == 403
    other = make_merchant(db, clock.now, name="Other", stores=("BJ-001",))
    assert entries(client, other) == []


def test_the_log_is_append_only_in_the_database(client, db, merchant):
    client.post("/v1/keys", headers=merchant.auth(), json={"role": "analyst"})
    for statement in (sa.update(audit_log).values(action="key.revoked"), sa.delete(audit_log)):
        with pytest.raises(sa.exc.DBAPIError) as info, db.begin() as conn:
            conn.execute(statement)
        assert "append-only" in str(info.value)
    with db.connect() as conn:
        assert conn.execute(select(audit_log.c.action)).scalars().all() == ["key.created"]
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1


def test_a_refused_change_leaves_no_entry(client, merchant):
    r = client.post(f"/v1/coupons/{'2' * 14}/void", headers=merchant.auth(), json={})
    assert r.status_code in (404, 422)
    r = client.post(f"/v1/templates/tpl_{uuid.uuid4().hex[:10]}/pause", headers=merchant.auth())
    assert r.status_code == 404
    assert entries(client, merchant) == []


def test_cli_actions_are_audited_as_the_cli(db, merchant, client):
    from click.testing import CliRunner

    from hub.cli import main

    url = db.url.render_as_string(hide_password=False)
    out = CliRunner().invoke(main, ["keys", "create", "--db", url, "--merchant", merchant.id,
                                    "--role", "integrator"])
    assert out.exit_code == 0, out.output
    [e] = entries(client, merchant)
    assert e["action"] == "key.created" and e["actor"]["key_id"] == "cli"


def test_templates_made_outside_the_api_need_no_audit(db, merchant, clock, client):
    tpl = make_template(db, merchant, clock.now)  # the fixtures write through services too
    issue(db, merchant, tpl, clock.now)
    assert {e["action"] for e in entries(client, merchant)} <= {"template.created",
                                                                 "coupons.issued"}


def test_subscriptions_replays_reversals_and_rotation_are_audited(client, db, merchant, clock):
    from click.testing import CliRunner

    from hub.cli import main

    auth = merchant.auth()
    secret = "whsec_" + "QUJDRA" * 4
    sub = client.post("/v1/subscriptions", headers=auth, json={
        "connector": "webhook", "config": {"url": "https://receiver.example/a",
                                           "secret": secret},
        "events": ["coupon.redeemed"]}).json()["id"]
    client.patch(f"/v1/subscriptions/{sub}", headers=auth, json={"description": "ERP"})
    client.post(f"/v1/subscriptions/{sub}/pause", headers=auth)
    client.post(f"/v1/subscriptions/{sub}/resume", headers=auth)
    client.post(f"/v1/subscriptions/{sub}/replay-dead", headers=auth)
    [code] = issue(db, merchant, make_template(db, merchant, clock.now), clock.now)
    till = merchant.auth(merchant.store_keys["SH-001"])
    rid = client.post("/v1/redemptions", headers={**till, "Idempotency-Key": "a1"}, json={
        "code": code, "order": {"id": "A-1", "amount": 12800}}).json()["redemption_id"]
    client.post(f"/v1/redemptions/{rid}/reversal", headers={**till, "Idempotency-Key": "a2"},
                json={"reason": "refund"})
    url = db.url.render_as_string(hide_password=False)
    assert CliRunner().invoke(main, ["secrets", "rotate", "--db", url]).exit_code == 0
    client.delete(f"/v1/subscriptions/{sub}", headers=auth)
    every = entries(client, merchant)
    # the CLI's rotation is stamped with the wall clock, the API's with the test clock
    [rotated] = [e for e in every if e["action"] == "secrets.rotated"]
    assert rotated["actor"]["key_id"] == "cli" and rotated["target"]["id"] == sub
    ignored = {"secrets.rotated", "template.created", "coupons.issued"}  # the fixtures'
    got = [e for e in every if e["action"] not in ignored]
    assert [e["action"] for e in got][:7] == [
        "subscription.deleted", "redemption.reversed", "deliveries.replayed",
        "subscription.resumed", "subscription.paused", "subscription.updated",
        "subscription.created"]
    reversal = got[1]
    assert reversal["actor"]["role"] == "store" and reversal["details"]["reason"] == "refund"
    assert got[5]["details"] == {"fields": ["description"]}
    assert secret not in str(every)  # never a config value

"""The template API carries remind_days_before (in, out, template.created)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from hub.db.schema import outbox_events
from tests.conftest import THRESHOLD_SPEC, Merchant


def create(client: Any, merchant: Merchant, **extra: Any) -> Any:
    return client.post(
        "/v1/templates", json={**THRESHOLD_SPEC, "name": "x", **extra}, headers=merchant.auth()
    )


def test_given_default_and_none(client: Any, merchant: Merchant, db: Engine) -> None:
    given = create(client, merchant, remind_days_before=[1, 7, 3])
    assert given.status_code == 201, given.text
    assert given.json()["remind_days_before"] == [7, 3, 1]
    default = create(client, merchant)
    assert default.json()["remind_days_before"] == [3]
    none = create(client, merchant, remind_days_before=[])
    assert none.json()["remind_days_before"] == []
    got = client.get(f"/v1/templates/{given.json()['id']}", headers=merchant.auth())
    assert got.json()["remind_days_before"] == [7, 3, 1]
    listed = client.get("/v1/templates", headers=merchant.auth()).json()["items"]
    assert [t["remind_days_before"] for t in listed] == [[7, 3, 1], [3], []]
    with db.connect() as conn:
        data = conn.execute(
            select(outbox_events.c.data)
            .where(outbox_events.c.type == "template.created")
            .order_by(outbox_events.c.seq)
        ).scalars().all()
    assert [d["remind_days_before"] for d in data] == [[7, 3, 1], [3], []]


def test_refused(client: Any, merchant: Merchant) -> None:
    for value, code, field in (
        ([3, 3], "invalid_template", "remind_days_before"),
        ([0], "invalid_request", "remind_days_before[0]"),
        ([1, 2, 3, 4, 5, 6], "invalid_request", "remind_days_before"),
        (["3"], "invalid_request", "remind_days_before[0]"),
        (3, "invalid_request", "remind_days_before"),
    ):
        r = create(client, merchant, remind_days_before=value)
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == code, r.text
        named = body.get("field") or body["errors"][0]["field"]
        assert named == field, r.text


def test_stored_rules_without_the_field_read_as_three_days(
    client: Any, merchant: Merchant, db: Engine
) -> None:
    from sqlalchemy import update

    from hub.db.schema import coupon_templates

    tid = create(client, merchant).json()["id"]
    with db.begin() as conn:
        rules = conn.execute(
            select(coupon_templates.c.rules).where(coupon_templates.c.id == tid)
        ).scalar_one()
        rules = {k: v for k, v in rules.items() if k != "remind_days_before"}
        conn.execute(update(coupon_templates).where(coupon_templates.c.id == tid)
                     .values(rules=rules))
    assert client.get(f"/v1/templates/{tid}", headers=merchant.auth()).json()[
        "remind_days_before"
    ] == [3]

"""Valid-but-extreme times (issue 9, item 9): every field that takes a time answers a
422 with a code — never a 5xx — for ISO 8601 strings at year 1 / 9999 whose UTC instant
does not exist (``0001-01-01T00:00:00+14:00``, ``9999-12-31T23:59:59-14:00``), and
handles the extremes that do exist. A template under which no coupon could ever be used
is refused when it is created. On SQLite and PostgreSQL.

``FIELDS`` is the list of every such field; ``test_every_time_field_is_covered`` finds
them from the DTOs and the OpenAPI document, so a new one cannot be added untested.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hub.domain.errors import ERROR_CODES
from hub.domain.templates import MAX_DAYS
from hub.services import issuing
from hub.services.jsonio import iso
from tests.conftest import THRESHOLD_SPEC, issue, make_template, order

FIXTURES = Path(__file__).resolve().parents[1] / "connectors" / "pos" / "fixtures"
NO_UTC_INSTANT = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
UTC_EXTREMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999+14:00",
]


class Ctx:
    def __init__(self, client: Any, db: Any, merchant: Any, clock: Any) -> None:
        self.client, self.db, self.m, self.clock = client, db, merchant, clock

    def code(self) -> str:
        [code] = issue(self.db, self.m, make_template(self.db, self.m, self.clock.now),
                       self.clock.now)
        return code

    def post(self, path: str, body: Any, **headers: str) -> Any:
        h = {**self.m.auth(), "Idempotency-Key": uuid.uuid4().hex, **headers}
        if isinstance(body, bytes):
            return self.client.post(path, content=body, headers=h)
        return self.client.post(path, json=body, headers=h)


def _redeem_body(ctx: Ctx, value: str) -> dict[str, Any]:
    return {"code": ctx.code(), "store": "SH-001", "order": order(), "occurred_at": value}


def _order_body(ctx: Ctx, value: str) -> dict[str, Any]:
    return {"codes": [ctx.code()], "store": "SH-001", "channel": "pos", "order": order(),
            "occurred_at": value}


def _acme(ctx: Ctx, value: str) -> dict[str, Any]:
    doc = json.loads((FIXTURES / "mapped_acme_redeem.json").read_text())
    doc.update(req_id=uuid.uuid4().hex, coupon_no=ctx.code(), trade_time=value)
    doc["items"] = [{"sku_code": "SKU-TEA-1", "cat": "tea", "qty": 1, "price": "128.00"}]
    return doc


def _poslog(ctx: Ctx, value: str, element: str) -> bytes:
    doc = (FIXTURES / "v6_sale_coupon.xml").read_text()
    doc = re.sub(r"<((?:\w+:)?ScanCode)([^>]*)>[^<]+</\1>", rf"<\1\2>{ctx.code()}</\1>", doc)
    doc = re.sub(r"(<(?:\w+:)?(?:Begin|End)DateTime>)[^<]+(</)", rf"\g<1>{value}\2", doc)
    if element == "BeginDateTime":  # only the begin time carries the extreme value
        doc = re.sub(r"<((?:\w+:)?EndDateTime)>[^<]+</\1>", "", doc)
    return doc.encode()


def _template(ctx: Ctx, start: str, end: str) -> dict[str, Any]:
    return {"name": "extreme", "benefit": THRESHOLD_SPEC["benefit"],
            "validity": {"type": "fixed", "start": start, "end": end}}


def _campaign(ctx: Ctx, start: str, end: str) -> Any:
    template_id = make_template(ctx.db, ctx.m, ctx.clock.now)
    return ctx.post("/v1/campaigns", {"template_id": template_id, "channels": ["h5"],
                                      "starts_at": start, "ends_at": end, "total": 10})


@dataclass
class _ItemAnswer:
    """One sync item's answer, read as a response of its own (the call itself is 200)."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return json.dumps(self.body)

    def json(self) -> dict[str, Any]:
        return self.body


def _synced(ctx: Ctx, value: str) -> _ItemAnswer:
    item = {**_redeem_body(ctx, value), "idempotency_key": uuid.uuid4().hex}
    r = ctx.post("/v1/redemptions/sync", {"items": [item]})
    assert r.status_code == 200, r.text
    [got] = r.json()["items"]
    media = "application/json" if got["problem"] is None else "application/problem+json"
    return _ItemAnswer(got["status"], got["problem"] or got["redemption"],
                       {"content-type": media})


def _list(path: str, param: str) -> Callable[[Ctx, str], Any]:
    return lambda ctx, v: ctx.client.get(path, params={param: v}, headers=ctx.m.auth())


XML = {"Content-Type": "application/xml"}
FIELDS: dict[str, Callable[[Ctx, str], Any]] = {
    "redeem occurred_at": lambda c, v: c.post("/v1/redemptions", _redeem_body(c, v)),
    "validate occurred_at": lambda c, v: c.post("/v1/redemptions/validate", _redeem_body(c, v)),
    "order redeem occurred_at": lambda c, v: c.post("/v1/orders/redeem", _order_body(c, v)),
    "sync item occurred_at": _synced,
    "sale occurred_at": lambda c, v: c.post("/v1/sales", {"orders": [{
        "order_id": f"S-{uuid.uuid4().hex[:12]}", "store": "SH-001", "channel": "pos",
        "amount": 5600, "occurred_at": v}]}),
    "pos.native redeem occurred_at": lambda c, v: c.post(
        "/v1/pos/pos.native/redeem", _redeem_body(c, v)),
    "pos.native validate occurred_at": lambda c, v: c.post(
        "/v1/pos/pos.native/validate", _redeem_body(c, v)),
    "pos.mapped.acme redeem trade_time": lambda c, v: c.post(
        "/v1/pos/pos.mapped.acme/redeem", _acme(c, v)),
    "pos.mapped.acme validate trade_time": lambda c, v: c.post(
        "/v1/pos/pos.mapped.acme/validate", _acme(c, v)),
    "pos.poslog redeem EndDateTime": lambda c, v: c.post(
        "/v1/pos/pos.poslog/redeem", _poslog(c, v, "EndDateTime"), **XML),
    "pos.poslog validate BeginDateTime": lambda c, v: c.post(
        "/v1/pos/pos.poslog/validate", _poslog(c, v, "BeginDateTime"), **XML),
    "key expires_at": lambda c, v: c.post(
        "/v1/keys", {"role": "analyst", "name": "BI", "expires_at": v}),
    "template validity.start": lambda c, v: c.post(
        "/v1/templates", _template(c, v, iso(c.clock.now + timedelta(days=30)))),
    "template validity.end": lambda c, v: c.post(
        "/v1/templates", _template(c, iso(c.clock.now), v)),
    "campaign starts_at": lambda c, v: _campaign(
        c, v, iso(c.clock.now + timedelta(days=30))),
    "campaign ends_at": lambda c, v: _campaign(c, iso(c.clock.now), v),
    "GET /v1/redemptions from": _list("/v1/redemptions", "from"),
    "GET /v1/redemptions to": _list("/v1/redemptions", "to"),
    "GET /v1/deliveries from": _list("/v1/deliveries", "from"),
    "GET /v1/deliveries to": _list("/v1/deliveries", "to"),
    "GET /v1/conflicts from": _list("/v1/conflicts", "from"),
    "GET /v1/conflicts to": _list("/v1/conflicts", "to"),
    "GET /v1/alerts from": _list("/v1/alerts", "from"),
    "GET /v1/alerts to": _list("/v1/alerts", "to"),
    "GET /v1/audit from": _list("/v1/audit", "from"),
    "GET /v1/audit to": _list("/v1/audit", "to"),
}
# the DTO fields (struct, field) and query parameters (path, name) the cases above send
DTO_FIELDS = {("RedeemIn", "occurred_at"), ("OrderRedeemIn", "occurred_at"),
              ("KeyIn", "expires_at"),
              ("FixedWindowIn", "start"), ("FixedWindowIn", "end"),
              ("CampaignIn", "starts_at"), ("CampaignIn", "ends_at"),
              ("SyncItemIn", "occurred_at"), ("SaleIn", "occurred_at")}
QUERY_FIELDS = {(k.split()[1], k.split()[2]) for k in FIELDS if k.startswith("GET ")}


def refusal_code(r: Any) -> str:
    """The refusal's code: problem+json, ACME's reply (its ``msg`` names the hub code
    when unmapped) or POSLog's ``Reason/@Code``."""
    media = r.headers["content-type"].split(";")[0]
    if media == "application/xml":
        m = re.search(r'<Reason Code="([^"]+)"', r.text)
        assert m, r.text
        return m.group(1)
    doc = r.json()
    if "ret" in doc:  # ACME: HTTP 200, the vendor's code; the hub's code in the message
        assert doc["ret"] != 0, doc
        return str(doc["msg"])
    return str(doc["code"])


@pytest.fixture
def ctx(client, db, merchant, clock) -> Ctx:
    return Ctx(client, db, merchant, clock)


@pytest.mark.parametrize("value", NO_UTC_INSTANT)
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_a_time_with_no_utc_instant_is_a_422_with_a_code(ctx: Ctx, field: str, value: str):
    r = FIELDS[field](ctx, value)
    assert r.status_code < 500, r.text
    if field.startswith("pos.mapped.acme"):
        assert r.status_code == 200, r.text  # ACME answers 200, the code in `ret`
        assert r.json()["ret"] == 2003, r.text  # ACME's code for datetime_out_of_range
        assert r.json()["req_id"], r.text  # the vendor's request id is echoed
    else:
        assert r.status_code == 422, r.text
        assert refusal_code(r) == "datetime_out_of_range", r.text
    assert "traceback" not in r.text.lower()


@pytest.mark.parametrize("value", UTC_EXTREMES)
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_utc_extremes_are_handled(ctx: Ctx, field: str, value: str):
    """Times at the very ends of the UTC range: refused for what they mean (too old,
    in the future, in the past) or accepted — never a 5xx."""
    r = FIELDS[field](ctx, value)
    assert r.status_code < 500, r.text
    future = value.startswith("9999")
    if field.startswith("GET "):
        assert r.status_code == 200, r.text
    elif "occurred_at" in field or "DateTime" in field or "trade_time" in field:
        wanted = "occurred_at_in_future" if future else "occurred_at_too_old"
        if "acme" in field:
            assert r.json()["ret"] != 0, r.text
        else:
            assert refusal_code(r) == wanted, r.text
    elif field == "key expires_at":
        if future:
            assert r.status_code == 201, r.text
            token = r.json()["token"]
            assert ctx.client.get("/v1/templates", headers=ctx.m.auth(token)).status_code == 200
            listed = ctx.client.get("/v1/keys", headers=ctx.m.auth())
            assert listed.status_code == 200, listed.text
        else:
            assert (r.status_code, r.json()["code"]) == (422, "invalid_request"), r.text
    elif field == "campaign starts_at":
        if future:  # starts after it ends (next month)
            assert (r.status_code, r.json()["code"]) == (422, "invalid_request"), r.text
        else:
            assert r.status_code == 201, r.text
    elif field == "campaign ends_at":
        if future:
            assert r.status_code == 201, r.text
        else:
            assert (r.status_code, r.json()["code"]) == (422, "invalid_request"), r.text
    elif field == "template validity.start":
        if future:  # starts after it ends (next month)
            assert (r.status_code, r.json()["code"]) == (422, "invalid_template"), r.text
        else:
            assert r.status_code == 201, r.text  # from the dawn of time to next month
    else:  # validity.end
        if future:
            assert r.status_code == 201, r.text
        else:
            assert (r.status_code, r.json()["code"]) == (422, "invalid_template"), r.text


def test_coupons_of_a_template_open_to_the_ends_of_time_work(ctx: Ctx):
    """Issued, looked up, listed, redeemed and reversed with a window from year 1 to the
    last instant of 9999."""
    r = ctx.post("/v1/templates", _template(ctx, "0001-01-01T00:00:00-14:00",
                                            "9999-12-31T23:59:59.999999+14:00"))
    assert r.status_code == 201, r.text
    tpl = r.json()["id"]
    issued = ctx.post(f"/v1/templates/{tpl}/coupons", {"count": 2})
    assert issued.status_code == 201, issued.text
    code, other = (c["code"] for c in issued.json()["coupons"])
    for path in (f"/v1/coupons/{code}", "/v1/templates", f"/v1/templates/{tpl}"):
        got = ctx.client.get(path, headers=ctx.m.auth())
        assert got.status_code == 200, got.text
    redeemed = ctx.post("/v1/redemptions", {"code": code, "store": "SH-001", "order": order()})
    assert redeemed.status_code == 201, redeemed.text
    rid = redeemed.json()["redemption_id"]
    reversed_ = ctx.post(f"/v1/redemptions/{rid}/reversal", {"reason": "x"})
    assert reversed_.status_code == 201 and reversed_.json()["coupon_status"] == "issued"
    claimed = ctx.post(f"/v1/coupons/{other}/claim", {"customer": "M0001"})
    assert claimed.status_code == 200, claimed.text
    assert ctx.client.get(f"/v1/coupons/{code}", headers=ctx.m.auth()).status_code == 200


@pytest.mark.parametrize(("validity", "field"), [
    ({"type": "fixed", "start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"},
     "validity.end"),  # closed already: no coupon could ever be used
    ({"type": "fixed", "start": "2099-01-02T00:00:00Z", "end": "2099-01-01T00:00:00Z"},
     "validity.end"),  # ends before it starts
    ({"type": "fixed", "start": "2099-01-01T00:00:00+08:00", "end": "2098-12-31T16:00:00Z"},
     "validity.end"),  # the same instant: an empty window
])
def test_a_template_that_could_never_issue_is_refused(ctx: Ctx, validity: Any, field: str):
    body = {"name": "never", "benefit": THRESHOLD_SPEC["benefit"], "validity": validity}
    r = ctx.post("/v1/templates", body)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_template"), r.text
    assert r.json()["field"] == field


@pytest.mark.parametrize("validity", [
    {"type": "relative", "days": 0},
    {"type": "relative", "days": MAX_DAYS + 1},
    {"type": "relative", "days": 10**9},
    {"type": "relative", "days": 1, "start_after_days": 10**9},
    {"type": "relative", "days": 1, "start_after_days": -1},
])
def test_relative_windows_out_of_bounds_are_refused(ctx: Ctx, validity: Any):
    body = {"name": "huge", "benefit": THRESHOLD_SPEC["benefit"], "validity": validity}
    r = ctx.post("/v1/templates", body)
    assert r.status_code == 422 and r.json()["code"] in ("invalid_request", "invalid_template")
    # the service (CLI, seeds) refuses them too, before anything could overflow a date
    spec = {"benefit": THRESHOLD_SPEC["benefit"], "validity": validity}
    with pytest.raises(Exception) as info:
        issuing.create_template(ctx.db, ctx.m.principal, "huge", spec, ctx.clock.now)
    assert getattr(info.value, "code", None) == "invalid_template"


def test_the_longest_relative_window_issues(ctx: Ctx):
    spec = {"benefit": THRESHOLD_SPEC["benefit"],
            "validity": {"type": "relative", "days": MAX_DAYS, "start_after_days": MAX_DAYS}}
    tpl = make_template(ctx.db, ctx.m, ctx.clock.now, spec)
    assert len(issue(ctx.db, ctx.m, tpl, ctx.clock.now)) == 1


def test_nimbus_epoch_times_beyond_the_range_are_refused(ctx: Ctx):
    doc = json.loads((FIXTURES / "mapped_nimbus_redeem.json").read_text())
    doc["body"]["voucher"]["code"] = ctx.code()
    for ms in (-62135596800001, 253402300800000, 10**30):
        doc["header"].update(requestId=uuid.uuid4().hex, timestamp=ms)
        r = ctx.post("/v1/pos/pos.mapped.nimbus/redeem", doc)
        assert r.status_code == 422, r.text
        assert r.json()["errorCode"], r.text


def _takes_time(t: Any) -> bool:
    if isinstance(t, msgspec.inspect.Metadata):
        return _takes_time(t.type)
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_takes_time(x) for x in t.types)
    return isinstance(t, msgspec.inspect.DateTimeType)


def test_every_time_field_is_covered(client):
    """Every request struct field (any module of ``hub.api``) typed as a datetime and
    every query parameter documented as a date-time is one of the cases above."""
    import importlib
    import pkgutil

    import hub.api

    found = set()
    for mod in pkgutil.iter_modules(hub.api.__path__):
        module = importlib.import_module(f"hub.api.{mod.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, msgspec.Struct):
                info = msgspec.inspect.type_info(obj)
                for f in getattr(info, "fields", ()):
                    if _takes_time(f.type):
                        found.add((name, f.name))
    assert found == DTO_FIELDS
    doc = client.get("/schema/openapi.json").json()
    params = {
        (path, p["name"])
        for path, item in doc["paths"].items()
        for op in item.values() if isinstance(op, dict)
        for p in op.get("parameters", [])
        if p.get("schema", {}).get("format") == "date-time"
        or "date-time" in json.dumps(p.get("schema", {}))
    }
    assert params == QUERY_FIELDS
    assert "datetime_out_of_range" in ERROR_CODES


def test_cli_key_expiry_beyond_the_calendar_is_a_usage_error(tmp_path):
    from click.testing import CliRunner

    from hub.cli import main

    db = str(tmp_path / "k.db")
    runner = CliRunner()
    assert runner.invoke(main, ["migrate", "--db", db]).exit_code == 0
    assert runner.invoke(main, ["merchants", "create", "--name", "X", "--db", db]).exit_code == 0
    result = runner.invoke(main, ["keys", "create", "--role", "admin", "--db", db,
                                  "--expires-in-days", "100000000"])
    assert result.exit_code == 2 and "expires-in-days" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("path", ["/v1/redemptions", "/v1/deliveries", "/v1/alerts",
                                  "/v1/audit"])
@pytest.mark.parametrize("at", [*NO_UTC_INSTANT, *UTC_EXTREMES])
def test_forged_cursors_with_extreme_times_are_refused_or_read(ctx: Ctx, path: str, at: str):
    """A cursor carries a time: one forged with no UTC instant (or a NUL in its id) is
    ``invalid_cursor`` on both databases; one at the ends of the range pages normally."""
    import base64

    def cursor(at_: str, rid: str) -> str:
        raw = json.dumps([at_.replace("Z", "+00:00"), rid]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    r = ctx.client.get(path, params={"cursor": cursor(at, "x")}, headers=ctx.m.auth())
    if at in NO_UTC_INSTANT:
        assert (r.status_code, r.json()["code"]) == (400, "invalid_cursor"), r.text
    else:
        assert r.status_code == 200, r.text
    r = ctx.client.get(path, params={"cursor": cursor(UTC_EXTREMES[0], "x\u0000")},
                       headers=ctx.m.auth())
    assert (r.status_code, r.json()["code"]) == (400, "invalid_cursor"), r.text

"""Every route that looks a coupon code up is behind the guessing guard (issue 9 items 2
and 10), on both backends.

The routes are read from the app: every operation whose path, query or JSON body names a
``code`` (or a list of ``codes``), and the POS route once per installed inbound connector
(variants included) and operation — their bodies carry codes in the vendor's format.
:data:`PROBES` says how to send a code to each; a code-taking route without a probe (a
new route, a new connector or mapping file) fails
:func:`test_every_code_route_has_a_probe`, so no route can stay unguarded silently.

For each route: a real code decorated the way scanners and input methods send it
(full-width letters, U+3000, NBSP, CR LF, full-width dashes) is found and never
counted; unknown and mistyped codes are counted, and one over the key's limit — and
then even a real code — answers ``too_many_failed_attempts`` (429, or the vendor's
code for it).
"""

from __future__ import annotations

import json
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, func, select

from hub.api.app import create_app
from hub.connectors import InboundConnector, load_connectors
from hub.db.schema import failed_attempts
from hub.domain.codes import ALPHABET, generate_code
from hub.services.guard import Guard, Limits
from hub.services.settings import Settings
from tests.conftest import Clock, Merchant, issue, make_template

LIMIT = 3
FIXTURES = Path(__file__).resolve().parents[1] / "connectors" / "pos" / "fixtures"
CODE_IN_PATH = re.compile(r"\{code(?::\w+)?\}")
IGNORED_METHODS = {"OPTIONS", "HEAD"}
FAILURES = {"coupon_not_found", "code_malformed"}
BLOCKED = "too_many_failed_attempts"
OK = "ok"


# --- which routes take a code: read from the app ---------------------------------------------


def _types_in(annotation: Any) -> Iterator[Any]:
    """The classes an annotation names (through Optional, unions, Annotated, lists)."""
    origin = typing.get_origin(annotation)
    if origin is None:
        yield annotation
        return
    if origin is typing.Annotated:
        yield from _types_in(typing.get_args(annotation)[0])
        return
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        for arg in typing.get_args(annotation):
            yield from _types_in(arg)


def _names_a_code(annotation: Any, depth: int = 0) -> bool:
    for tp in _types_in(annotation):
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            if {"code", "codes"} & set(tp.__struct_fields__):  # one code, or a list
                return True
            hints = typing.get_type_hints(tp, include_extras=True)
            if depth < 3 and any(_names_a_code(h, depth + 1) for h in hints.values()):
                return True
    return False


def inbound_connectors() -> list[tuple[str, tuple[str, ...]]]:
    """(name, operations) of every installed inbound connector and variant."""
    out = []
    for name, connector in sorted(load_connectors().items()):
        if isinstance(connector, InboundConnector) and connector.operations:
            out.append((name, tuple(connector.operations)))
        for variant in connector.variants():
            impl = connector.variant(variant)
            if isinstance(impl, InboundConnector) and impl.operations:
                out.append((f"{name}.{variant}", tuple(impl.operations)))
    return out


def code_routes(app: Litestar) -> set[tuple[str, str]]:
    """(method, path) of every operation that takes a coupon code."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            params = handler.parsed_fn_signature.parameters
            for method in sorted(set(handler.http_methods) - IGNORED_METHODS):
                if "{connector" in route.path and "{operation" in route.path:
                    for name, operations in inbound_connectors():
                        for op in operations:
                            found.add((method, f"/v1/pos/{name}/{op}"))
                    continue
                takes = (
                    bool(CODE_IN_PATH.search(route.path))
                    or "code" in params  # a query parameter
                    or any(
                        _names_a_code(p.annotation)
                        for name, p in params.items()
                        if name == "data"
                    )
                )
                if takes:
                    found.add((method, CODE_IN_PATH.sub("{code}", route.path)))
    return found


# --- how to send a code to each of them -----------------------------------------------------


@dataclass
class Ctx:
    client: TestClient[Any]
    m: Merchant
    clock: Clock

    @property
    def store(self) -> dict[str, str]:
        return self.m.auth(self.m.store_keys["SH-001"])

    @property
    def admin(self) -> dict[str, str]:
        return self.m.auth()


@dataclass(frozen=True)
class Outcome:
    status: int
    codes: frozenset[str]  # what the answer means, in hub codes ("ok": success)


Probe = Callable[[Ctx, str], Outcome]


def _problem(r: httpx.Response) -> Outcome:
    if r.status_code < 400:
        return Outcome(r.status_code, frozenset({OK}))
    return Outcome(r.status_code, frozenset({r.json()["code"]}))


def _order() -> dict[str, Any]:
    return {"id": f"O-{uuid.uuid4().hex[:8]}", "amount": 12800}


def _json(ctx: Ctx, path: str, body: dict[str, Any], *, admin: bool = False, key: bool = False):
    headers = dict(ctx.admin if admin else ctx.store)
    if key:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return _problem(ctx.client.post(path, json=body, headers=headers))


def _sync(ctx: Ctx, code: str) -> Outcome:
    """One offline item: its own outcome is what the batch's answer says of it."""
    at = (ctx.clock.now - timedelta(minutes=5)).isoformat()
    item = {"idempotency_key": uuid.uuid4().hex, "code": code, "order": _order(),
            "occurred_at": at}
    r = ctx.client.post("/v1/redemptions/sync", json={"items": [item]}, headers=ctx.store)
    assert r.status_code == 200, r.text
    [got] = r.json()["items"]
    if got["problem"] is None:
        return Outcome(got["status"], frozenset({OK}))
    return Outcome(got["status"], frozenset({got["problem"]["code"]}))


def _get_coupon(ctx: Ctx, code: str) -> Outcome:
    return _problem(ctx.client.get(f"/v1/coupons/{quote(code, safe='')}", headers=ctx.store))


def _claim(ctx: Ctx, code: str) -> Outcome:
    path = f"/v1/coupons/{quote(code, safe='')}/claim"
    return _json(ctx, path, {"customer": "M0001"}, admin=True)


def _void(ctx: Ctx, code: str) -> Outcome:
    path = f"/v1/coupons/{quote(code, safe='')}/void"
    return _json(ctx, path, {"reason": "probe"}, admin=True)


def _quote(ctx: Ctx, code: str) -> Outcome:
    """The quote answers 200 with a refusal per candidate: the candidate's refusal code
    is what the answer means."""
    r = ctx.client.post(
        "/v1/orders/quote", json={"codes": [code], "order": _order()}, headers=ctx.store
    )
    if r.status_code != 200:
        return _problem(r)
    [candidate] = r.json()["candidates"]
    refusal = candidate["refusal"]
    return Outcome(200, frozenset({OK if refusal is None else refusal["code"]}))


def _transfer(ctx: Ctx, code: str) -> Outcome:
    path = f"/v1/coupons/{quote(code, safe='')}/transfers"
    return _json(ctx, path, {"customer": "M0001"}, admin=True, key=True)


def _native(op: str) -> Probe:
    def probe(ctx: Ctx, code: str) -> Outcome:
        if op == "reverse":
            body: dict[str, Any] = {"code": code, "reason": "probe"}
        else:
            body = {"code": code, "order": _order()}
        return _json(ctx, f"/v1/pos/pos.native/{op}", body, key=True)

    return probe


def _seq() -> str:
    return str(uuid.uuid4().int % 10**9)


def _poslog(op: str) -> Probe:
    def probe(ctx: Ctx, code: str) -> Outcome:
        name = "v6_post_void.xml" if op == "reverse" else "v6_sale_coupon.xml"
        doc = (FIXTURES / name).read_text()
        doc = re.sub(r"<((?:\w+:)?ScanCode)([^>]*)>[^<]+</\1>", rf"<\1\2>{code}</\1>", doc)
        seq = f"<SequenceNumber>{_seq()}</SequenceNumber>"  # the transaction's own number
        doc = re.sub(r"<SequenceNumber>\d+</SequenceNumber>", seq, doc, count=1)
        at = (ctx.clock.now - timedelta(minutes=5)).isoformat()
        doc = re.sub(r"(<(?:\w+:)?(?:Begin|End)DateTime>)[^<]+(</)", rf"\g<1>{at}\2", doc)
        r = ctx.client.post(
            f"/v1/pos/pos.poslog/{op}",
            content=doc.encode(),
            headers={**ctx.store, "Content-Type": "application/xml"},
        )
        if r.status_code == 200:
            return Outcome(200, frozenset({OK}))
        reason = re.search(r'<(?:\w+:)?Reason[^>]*\bCode="([^"]+)"', r.text)
        assert reason is not None, r.text
        return Outcome(r.status_code, frozenset({reason.group(1)}))

    return probe


def _vendor_codes(connector: str, vendor_code: Any) -> frozenset[str]:
    """The hub codes a mapped connector answers with ``vendor_code``."""
    mapping = load_connectors()["pos.mapped"].variant(connector.rpartition(".")[2]).mapping
    hub = {c for c, v in mapping.errors.items() if v.code == vendor_code}
    return frozenset(hub or {f"vendor:{vendor_code}"})


def _acme(op: str) -> Probe:
    def probe(ctx: Ctx, code: str) -> Outcome:
        body: dict[str, Any] = {"req_id": uuid.uuid4().hex, "shop_no": "SH-001", "coupon_no": code}
        if op != "reverse":
            body.update(order_no=_order()["id"], total_amt="128.00")
        r = ctx.client.post(f"/v1/pos/pos.mapped.acme/{op}", json=body, headers=ctx.store)
        reply = r.json()
        if reply["ret"] == 0:
            return Outcome(r.status_code, frozenset({OK}))
        return Outcome(r.status_code, _vendor_codes("pos.mapped.acme", reply["ret"]))

    return probe


def _nimbus(op: str) -> Probe:
    def probe(ctx: Ctx, code: str) -> Outcome:
        header = {
            "requestId": str(uuid.uuid4()),
            "timestamp": int(ctx.clock.now.timestamp() * 1000) - 60_000,
            "storeCode": "SH-001",
        }
        if op == "reverse":
            body: dict[str, Any] = {"voucherCode": code, "reason": "probe"}
        else:
            body = {
                "voucher": {"code": code},
                "order": {"orderNo": _order()["id"], "payableAmount": 12800},
            }
        r = ctx.client.post(
            f"/v1/pos/pos.mapped.nimbus/{op}",
            json={"header": header, "body": body},
            headers=ctx.store,
        )
        reply = r.json()
        if reply["success"]:
            return Outcome(r.status_code, frozenset({OK}))
        return Outcome(r.status_code, _vendor_codes("pos.mapped.nimbus", reply["errorCode"]))

    return probe


# Routes whose body has a `code` that is not a coupon's: checked like the probes (an entry
# for a route that no longer takes a `code` fails the test).
NOT_COUPON_CODES: dict[tuple[str, str], str] = {
    ("POST", "/v1/stores"): "a store's own code (SH-001), not a coupon code",
    ("POST", "/v1/staff/sessions"): "a staff sign-in code: counted per client address "
    "(test_the_staff_sign_in_counts_wrong_codes_per_address)",
}

def _coupon_get(suffix: str) -> Probe:
    """A coupon's token or QR code (hub/api/offline.py)."""

    def probe(ctx: Ctx, code: str) -> Outcome:
        path = f"/v1/coupons/{quote(code, safe='')}/{suffix}"
        return _problem(ctx.client.get(path, headers=ctx.store))

    return probe


PROBES: dict[tuple[str, str], Probe] = {
    ("GET", "/v1/coupons/{code}"): _get_coupon,
    ("GET", "/v1/coupons/{code}/token"): _coupon_get("token"),
    ("GET", "/v1/coupons/{code}/qr.svg"): _coupon_get("qr.svg"),
    ("GET", "/v1/coupons/{code}/qr.png"): _coupon_get("qr.png"),
    ("POST", "/v1/coupons/{code}/claim"): _claim,
    ("POST", "/v1/coupons/{code}/void"): _void,
    ("POST", "/v1/coupons/{code}/transfers"): _transfer,
    ("POST", "/v1/redemptions"): lambda ctx, code: _json(
        ctx, "/v1/redemptions", {"code": code, "order": _order()}, key=True
    ),
    ("POST", "/v1/redemptions/validate"): lambda ctx, code: _json(
        ctx, "/v1/redemptions/validate", {"code": code, "order": _order()}
    ),
    ("POST", "/v1/orders/quote"): _quote,
    ("POST", "/v1/redemptions/sync"): _sync,
    ("POST", "/v1/reservations"): lambda ctx, code: _json(
        ctx, "/v1/reservations", {"codes": [code], "channel": "web", "order": _order()}, key=True
    ),
    ("POST", "/v1/orders/redeem"): lambda ctx, code: _json(
        ctx, "/v1/orders/redeem", {"codes": [code], "channel": "pos", "order": _order()}, key=True
    ),
    **{
        ("POST", f"/v1/pos/{connector}/{op}"): make(op)
        for connector, make in (
            ("pos.native", _native),
            ("pos.poslog", _poslog),
            ("pos.mapped.acme", _acme),
            ("pos.mapped.nimbus", _nimbus),
        )
        for op in ("redeem", "validate", "reverse")
    },
}


def decorated(code: str) -> str:
    """``code`` as a scanner or a Chinese input method may send it."""
    fw = "".join(chr(ord(c) + 0xFEE0) if i % 2 else c.lower() for i, c in enumerate(code))
    return "\u3000" + fw[:4] + "\uff0d" + fw[4:8] + "\u2014" + fw[8:12] + "\xa0" + fw[12:] + "\r\n"


def wrong_check(code: str) -> str:
    return code[:-1] + next(c for c in ALPHABET if c != code[-1])


@contextmanager
def guarded_client(db: Engine, clock: Clock) -> Iterator[TestClient[Any]]:
    guard = Guard(Limits(max_per_key=LIMIT, max_per_address=0))
    with TestClient(create_app(db, Settings(guard=guard), clock=clock)) as c:
        yield c


def failures(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(failed_attempts)).scalar_one())


# --- the tests ------------------------------------------------------------------------------


def test_every_code_route_has_a_probe(db: Engine, clock: Clock) -> None:
    routes = code_routes(create_app(db, clock=clock))
    # the detector itself finds the routes we know take codes
    assert {
        ("GET", "/v1/coupons/{code}"),
        ("POST", "/v1/redemptions"),
        ("POST", "/v1/redemptions/validate"),
        ("POST", "/v1/orders/quote"),  # a list of codes
        ("POST", "/v1/reservations"),
        ("POST", "/v1/orders/redeem"),
        ("POST", "/v1/pos/pos.native/reverse"),
        ("POST", "/v1/pos/pos.poslog/reverse"),
    } <= routes
    missing = routes - set(PROBES) - set(NOT_COUPON_CODES)
    assert not missing, f"routes that take a code but are not proven guarded: {sorted(missing)}"
    stale = (set(PROBES) | set(NOT_COUPON_CODES)) - routes
    assert not stale, f"probes for routes the app does not have: {sorted(stale)}"


@pytest.mark.parametrize("route", sorted(PROBES), ids=lambda r: f"{r[0]} {r[1]}")
def test_the_route_counts_unknown_codes_and_blocks(
    route: tuple[str, str], db: Engine, merchant: Merchant, clock: Clock
) -> None:
    probe = PROBES[route]
    tpl = make_template(db, merchant, clock.now - timedelta(hours=1))
    real, other = issue(db, merchant, tpl, clock.now - timedelta(hours=1), count=2)
    with guarded_client(db, clock) as client:
        ctx = Ctx(client, merchant, clock)
        # a real code, decorated: found, never counted (item 10)
        got = probe(ctx, decorated(real))
        assert not got.codes & (FAILURES | {BLOCKED}), (route, got)
        assert failures(db) == 0
        # unknown and mistyped codes: counted, answered as themselves up to the limit
        for i in range(LIMIT):
            wrong = generate_code() if i % 2 == 0 else wrong_check(generate_code())
            got = probe(ctx, wrong)
            assert got.codes <= FAILURES and got.status != 429, (route, i, got)
        assert failures(db) == LIMIT
        # one over: too_many_failed_attempts, and a real code too
        for code in (generate_code(), other):
            got = probe(ctx, code)
            assert BLOCKED in got.codes, (route, got)
            if route[1].startswith("/v1/pos/pos.mapped.acme"):
                assert got.status == 200  # ACME answers every reply with 200 and `ret`
            else:
                assert got.status == 429, (route, got)
    assert failures(db) == LIMIT  # blocked requests are not stored


def test_pos_reverse_by_code_answers_429_with_retry_after(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    """The old hole: POS reverse by code told unknown (404) from real-but-unredeemed
    (409) codes without limit. Now unknown codes count like everywhere else."""
    tpl = make_template(db, merchant, clock.now)
    [real] = issue(db, merchant, tpl, clock.now)
    with guarded_client(db, clock) as client:
        ctx = Ctx(client, merchant, clock)
        body = {"reason": "refund"}
        for _ in range(LIMIT):
            r = client.post(
                "/v1/pos/pos.native/reverse",
                json={**body, "code": generate_code()},
                headers={**ctx.store, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert r.status_code == 404, r.text
        r = client.post(
            "/v1/pos/pos.native/reverse",
            json={**body, "code": real},
            headers={**ctx.store, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 429, r.text
        problem = json.loads(r.content)
        assert problem["code"] == BLOCKED and problem["retry_after"] > 0


def test_code_look_ups_go_through_the_one_choke_point() -> None:
    """Below the routes: only the look-up (hub/services/lookup.py) parses a caller's
    code, and every statement that selects a coupon by code is one for
    ``CodeLookup.find`` (bound ``b_code``), so a new service cannot bypass the guard."""
    root = Path(__file__).resolve().parents[2]
    allowed_parse = {"hub/domain/codes.py", "hub/services/lookup.py"}
    offenders = []
    for folder in ("hub", "connectors"):
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            text = path.read_text(encoding="utf-8")
            if rel not in allowed_parse and re.search(r"\bparse_code\b", text):
                offenders.append(f"{rel}: calls parse_code (use CodeLookup.parse)")
            for line in text.splitlines():
                if re.search(r"coupons\.c\.code\s*==", line) and 'bindparam("b_code")' not in line:
                    offenders.append(f"{rel}: selects a coupon by code outside CodeLookup.find")
    assert not offenders, offenders


def test_the_staff_sign_in_counts_wrong_codes_per_address(
    db: Engine, merchant: Merchant, clock: Clock
) -> None:
    """POST /v1/staff/sessions takes no key: a wrong, mistyped, used or expired sign-in
    code is one failure of the client address (scope ``signin:<address>``), and one over
    the limit — then even a real code — answers 429."""
    from hub.domain.staff import new_sign_in_code
    from hub.services import staff

    sid = staff.create_staff(db, merchant.principal, "SH-001", "Li Lei", clock.now)["id"]
    used = staff.create_sign_in_code(db, merchant.principal, sid, clock.now)["code"]
    guard = Guard(Limits(max_per_key=0, max_per_address=LIMIT))
    with TestClient(create_app(db, Settings(guard=guard), clock=clock)) as client:
        def sign_in(code: str) -> httpx.Response:
            return client.post("/v1/staff/sessions", json={"code": code})

        real = staff.create_sign_in_code(db, merchant.principal, sid, clock.now)["code"]
        assert sign_in(used.lower()).status_code == 201  # typed in lower case: found
        assert failures(db) == 0
        for wrong in (used, new_sign_in_code(), "ABCD-EFG0"):  # used, unknown, malformed
            r = sign_in(wrong)
            assert (r.status_code, r.json()["code"]) == (401, "sign_in_code_invalid"), r.text
        assert failures(db) == LIMIT
        for code in (new_sign_in_code(), real):
            r = sign_in(code)
            assert (r.status_code, r.json()["code"]) == (429, BLOCKED), r.text
    assert failures(db) == LIMIT

"""The order quote (自动抵扣): every candidate coupon on a cart and the best combination.

Read-only: it writes nothing but what the guessing guard counts. The candidates are

* the ``codes`` the caller sends (at most :data:`MAX_CODES`, none twice), each parsed
  and looked up through :class:`~hub.services.lookup.CodeLookup` like a validate: an
  unknown or mistyped code is a candidate refused with ``coupon_not_found`` /
  ``code_malformed`` *and* a failure the guard counts (one per code), and one over the
  key's limit answers the whole quote 429, or
* without ``codes``, the customer's usable coupons (the wallet's ``usable`` list,
  :mod:`hub.services.wallet`), soonest expiry first, at most :data:`WALLET_CANDIDATES`.

Each candidate is judged alone by the redeem decision, at the store and channel the
redeem would use, now; :func:`hub.domain.quote.best_combination` picks the best set
under the stacking rules (its docstring: the order of application, the tie-break, the
exact search up to ``EXACT_LIMIT`` usable candidates and the greedy step beyond).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam

from hub.db.engine import read_conn
from hub.db.schema import coupon_templates, coupons
from hub.domain.cart import Discount, Order
from hub.domain.combination import Candidate, Combination
from hub.domain.errors import DomainError, refuse
from hub.domain.quote import Evaluation, Refusal, best_combination
from hub.domain.redeeming import RedeemContext
from hub.services import wallet
from hub.services.lookup import CodeLookup
from hub.services.principal import Principal
from hub.services.redeem import check_channel, facts_of, resolve_store
from hub.services.settings import Settings
from hub.services.views import combination_lines, discount_lines, template_view

MAX_CODES = 50  # codes in one quote; more is too_many_coupons (422)
WALLET_CANDIDATES = 200  # a customer's usable coupons quoted, soonest expiry first

_CANDIDATES = wallet.WALLET_COUPONS.add_columns(coupon_templates.c.rules)
# built once (building a Core statement costs more than running it)
_HELD = (
    _CANDIDATES.where(
        coupons.c.merchant_id == bindparam("b_merchant"),
        coupons.c.customer_id == bindparam("b_customer"),
        wallet.usable_where(bindparam("b_now", type_=coupons.c.valid_until.type)),
    )
    .order_by(coupons.c.valid_until, coupons.c.id)
    .limit(WALLET_CANDIDATES)
)
_BY_CODE = _CANDIDATES.where(
    coupons.c.merchant_id == bindparam("b_merchant"),
    coupons.c.code == bindparam("b_code"),
)


@dataclass(frozen=True)
class QuoteCommand:
    """Quote ``order`` at ``store`` through ``channel``: with ``codes`` (as presented),
    or, when ``codes`` is ``None``, with the coupons ``customer`` holds."""

    store: str | None
    channel: str
    order: Order
    customer: str | None = None
    codes: tuple[str, ...] | None = None


@dataclass
class _Found:
    """The candidates read, in the order given, and the refusals of codes not found."""

    rows: dict[str, Row[Any]]  # normalised code -> coupon row
    given: list[tuple[str, str | None]]  # (code as shown, normalised code or None)
    missing: dict[str, Refusal]  # code as shown -> its refusal


def quote(
    engine: Engine,
    p: Principal,
    cmd: QuoteCommand,
    now: datetime,
    settings: Settings = Settings(),
    client: str | None = None,
) -> dict[str, Any]:
    """Every candidate alone and the best combination; changes nothing (but the
    guard's counts of unknown codes)."""
    p.require("admin", "store", "app")
    check_channel(cmd.channel)
    p.require_channel(cmd.channel)
    if cmd.codes is None:
        if cmd.customer is None:
            raise refuse(
                "invalid_request",
                "Send `codes`, or a `customer` whose coupons to quote.",
                errors=[{"field": "customer", "message": "required when codes is absent"}],
            )
        with read_conn(engine) as conn:
            store_code = resolve_store(conn, p, cmd.store)[1]
            holder = wallet.customer_id(conn, p, cmd.customer)
            params = {"b_merchant": p.merchant_id, "b_customer": holder, "b_now": now}
            rows = conn.execute(_HELD, params).all()
        found = _Found({r.code: r for r in rows}, [(r.code, r.code) for r in rows], {})
    else:
        _check_codes(cmd.codes)
        store_code, found = _look_up(engine, p, cmd, now, settings, client)
    return _answer(p, cmd, store_code, found, now)


def _check_codes(codes: tuple[str, ...]) -> None:
    if len(codes) > MAX_CODES:
        raise refuse(
            "too_many_coupons",
            f"At most {MAX_CODES} codes per quote; {len(codes)} were sent.",
            limit=MAX_CODES,
        )
    _no_duplicate(codes)


def _no_duplicate(codes: list[str] | tuple[str, ...]) -> None:
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            raise refuse("duplicate_coupon", "A coupon code is given more than once.", coupon=code)
        seen.add(code)


def _look_up(
    engine: Engine,
    p: Principal,
    cmd: QuoteCommand,
    now: datetime,
    settings: Settings,
    client: str | None,
) -> tuple[str, _Found]:
    """The store, and every code looked up through the guard as a validate does (each
    failure counts)."""
    assert cmd.codes is not None
    rows: dict[str, Row[Any]] = {}
    given: list[tuple[str, str | None]] = []
    missing: dict[str, Refusal] = {}
    with (
        CodeLookup(engine, settings.guard, p, now, client) as lookup,
        read_conn(engine) as conn,
    ):
        store_code = resolve_store(conn, p, cmd.store)[1]
        if cmd.customer is not None:
            wallet.customer_id(conn, p, cmd.customer)  # it must exist
        parsed: list[str] = []
        for raw in cmd.codes:
            try:
                code = lookup.parse(raw)
            except DomainError as err:
                given.append((raw, None))
                missing[raw] = Refusal(err.code, err.message)
                continue
            parsed.append(code)
            given.append((code, code))
        _no_duplicate(parsed)  # the same code decorated two ways
        for code in parsed:
            row = _find(conn, lookup, code, now)
            if isinstance(row, Refusal):
                missing[code] = row
            else:
                rows[code] = row
    # the failures were counted as the block ended; one over the limit answered 429 there
    # (no candidate is answered, real ones neither)
    return store_code, _Found(rows, given, missing)


def _find(
    conn: Connection, lookup: CodeLookup, code: str, now: datetime
) -> Row[Any] | Refusal:
    try:  # b_now: for any column of the wallet's statement judged at a time
        return lookup.find(conn, _BY_CODE, code, b_now=now)
    except DomainError as err:
        if err.code != "coupon_not_found":
            raise  # blocked while looking up: the whole quote is refused
        return Refusal(err.code, err.message)


def _candidate(row: Row[Any]) -> Candidate:
    return Candidate(code=row.code, facts=facts_of(row))


def _answer(
    p: Principal, cmd: QuoteCommand, store_code: str, found: _Found, now: datetime
) -> dict[str, Any]:
    ctx = RedeemContext(store_code, cmd.channel, now, p.tz)
    result = best_combination(cmd.order, [_candidate(r) for r in found.rows.values()], ctx)
    judged = {ev.code: ev for ev in result.evaluations}
    candidates = []
    for shown, code in found.given:
        if code is None or code not in found.rows:
            refusal = found.missing[shown]
            candidates.append(_candidate_view(shown, None, None, refusal))
            continue
        ev: Evaluation = judged[code]
        candidates.append(_candidate_view(code, found.rows[code], ev.discount, ev.refusal))
    return {
        "store": store_code,
        "channel": cmd.channel,
        "customer": cmd.customer,
        "order_id": cmd.order.id,
        "amount": cmd.order.amount,
        "candidates": candidates,
        "best": _best_view(result.best, result.exact),
    }


def _candidate_view(
    code: str, row: Row[Any] | None, discount: Discount | None, refusal: Refusal | None
) -> dict[str, Any]:
    return {
        "code": code,
        "template": None if row is None else template_view(row),
        "usable": discount is not None,
        "discount": None if discount is None else discount.total,
        "lines": [] if discount is None else discount_lines(discount),
        "refusal": None if refusal is None else {"code": refusal.code, "message": refusal.message},
    }


def _best_view(best: Combination, exact: bool) -> dict[str, Any]:
    return {
        "codes": list(best.codes),
        "discount": best.total,
        "payable": best.payable,
        "exact": exact,
        "steps": [
            {
                "code": a.code,
                "kind": a.kind,
                "discount": a.discount.total,
                "lines": discount_lines(a.discount),
            }
            for a in best.applied
        ],
        "lines": combination_lines(best),
    }

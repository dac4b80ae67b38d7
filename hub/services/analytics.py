"""The analytics API's figures, read from the rollups (``hub/services/rollup.py``) — never
from the base tables (``expiring`` reads ``analytics_open_claims`` and a short range of
coupons by ``ix_coupons_merchant_valid_until``: those whose window closed earlier today).

Definitions (the README's "Analytics" section says the same):

* Activity figures count by the merchant's local day the thing happened: ``issued`` and
  ``claimed`` (a coupon issued to a customer is claimed at issue; a campaign claim issues
  and claims at once; a claim of an unheld coupon counts on its day), ``redeemed``
  (redemptions that occurred that day), ``reversed`` (those of them reversed since — a
  reversal decrements the day of the redemption it reverses, whenever it happens),
  ``net_redeemed`` = redeemed − reversed, ``discount`` and ``order_amount`` (net of
  reversals; the order amount of each redemption, so an order that redeemed two coupons
  counts twice).
* Cohort figures count the coupons issued on the range's days and what became of them
  (as of now): ``redemption_rate`` = those redeemed (and not reversed) ÷ those issued;
  ``redemption_rate_within`` = those redeemed less than N×24 h after issue ÷ issued;
  ``time_to_redeem_days`` = whole days (24 h) from issue to redemption, nearest-rank
  median and p90.
* Coupons are issued to no store: with a store filter (or a store key, or an analyst
  limited to stores), ``issued`` and ``claimed`` still count every coupon matching the
  other filters, and the cohort redeemed counts only those redeemed at the stores — a
  store's redemption rate is its share of the cohort.
* Channel: of an issue or claim, the coupon's channel; of a redemption, the channel it
  was redeemed through. Cohort figures filter by the coupon's (issue) channel.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Engine, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from hub.db.engine import read_conn
from hub.db.schema import (
    analytics_applied,
    analytics_cohorts,
    analytics_cohorts_monthly,
    analytics_daily,
    analytics_lags,
    analytics_lags_monthly,
    analytics_monthly,
    analytics_open_claims,
    analytics_progress,
    analytics_repeat,
    analytics_sales,
    coupon_templates,
    coupons,
    outbox_events,
    stores,
)
from hub.domain import analytics as fig
from hub.domain.errors import refuse
from hub.domain.templates import CHANNELS, KINDS
from hub.services.jsonio import iso
from hub.services.principal import Principal
from hub.services.rollup import LAG_SECONDS, NONE, PROGRESS

DEFAULT_DAYS = 30
MAX_DAYS = 731  # two years of days in one answer
ONLINE = tuple(c for c in CHANNELS if c != "pos")
OFFLINE = ("pos",)
READERS = ("admin", "store", "analyst")
BREAKDOWNS = ("store", "channel", "online", "template", "kind")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_STORE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_TEMPLATE = re.compile(r"tpl_[0-9A-HJKMNP-TV-Z]{26}")


def _bad(field: str, message: str) -> Exception:
    return refuse(
        "invalid_request", f"{field}: {message}", errors=[{"field": field, "message": message}]
    )


def _day(field: str, raw: str | None) -> date | None:
    if raw is None:
        return None
    if not _DATE.fullmatch(raw):
        raise _bad(field, "a local date YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _bad(field, "not a calendar date") from None


def int_param(field: str, raw: str | None, default: int, lo: int, hi: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw):
        raise _bad(field, f"an integer from {lo} to {hi}")
    value = int(raw)
    if not lo <= value <= hi:
        raise _bad(field, f"an integer from {lo} to {hi}")
    return value


def repeat_param(raw: str | None) -> int:
    """``repeat_days``: one of the windows the repeat rollup keeps (7, 14, 30)."""
    if raw is None:
        return fig.REPEAT_HORIZON
    if raw not in {str(n) for n in fig.REPEAT_WINDOWS}:
        raise _bad("repeat_days", "7, 14 or 30")
    return int(raw)


def margin_param(raw: str | None) -> Decimal:
    if raw is None:
        return Decimal("0.2")
    if not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,4})?", raw):
        raise _bad("margin", "a decimal from 0 to 0.99, e.g. 0.2")
    try:
        value = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits decimals only
        raise _bad("margin", "a decimal from 0 to 0.99") from None
    if not Decimal(0) <= value < Decimal(1):
        raise _bad("margin", "a decimal from 0 to 0.99, e.g. 0.2")
    return value


@dataclass(frozen=True)
class Query:
    """The common filters, checked and resolved."""

    start: date
    end: date
    stores: tuple[str, ...] | None  # None: every store (and the key sees all)
    channels: tuple[str, ...] | None
    templates: tuple[str, ...] | None
    scoped: bool  # a store filter or a store-limited key: merchant-wide figures are hidden
    filtered: bool  # any filter narrower than the merchant (store, channel, template, kind)


def parse(
    conn: Connection,
    p: Principal,
    now: datetime,
    *,
    start: str | None,
    end: str | None,
    store: str | None,
    channel: str | None,
    template: str | None,
    kind: str | None,
) -> Query:
    p.require("admin", "store", "analyst")
    today = now.astimezone(p.tz).date()
    s, e = _day("from", start), _day("to", end)
    if e is None:
        e = today if s is None else min(today, s + timedelta(days=DEFAULT_DAYS - 1))
        if s is not None and e < s:
            e = s + timedelta(days=DEFAULT_DAYS - 1)
    if s is None:
        s = e - timedelta(days=DEFAULT_DAYS - 1)
    if e < s:
        raise _bad("to", "on or after from")
    if fig.days(s, e) > MAX_DAYS:
        raise _bad("to", f"at most {MAX_DAYS} days from from")
    scope = p.store_scope
    chosen: tuple[str, ...] | None = scope
    if store is not None:
        if not _STORE.fullmatch(store):
            raise _bad("store", "a store code")
        found = conn.execute(
            select(stores.c.code).where(
                stores.c.merchant_id == p.merchant_id, stores.c.code == store
            )
        ).first()
        if found is None:
            raise refuse("store_not_found", f"No store with code {store}.", store=store)
        if scope is not None and store not in scope:
            raise refuse("store_forbidden", f"This key does not read store {store}.")
        chosen = (store,)
    channels: tuple[str, ...] | None = None
    if channel is not None:
        if channel == "online":
            channels = ONLINE
        elif channel == "offline":
            channels = OFFLINE
        elif channel in CHANNELS:
            channels = (channel,)
        else:
            raise _bad("channel", f"one of {', '.join((*CHANNELS, 'online', 'offline'))}")
    templates: tuple[str, ...] | None = None
    t = coupon_templates.c
    if template is not None:
        if not _TEMPLATE.fullmatch(template):
            raise _bad("template", "a template id (tpl_…)")
        found = conn.execute(
            select(t.id).where(t.merchant_id == p.merchant_id, t.id == template)
        ).first()
        if found is None:
            raise refuse("template_not_found", f"No template {template}.")
        templates = (template,)
    if kind is not None:
        if kind not in KINDS:
            raise _bad("kind", f"one of {', '.join(KINDS)}")
        of_kind = tuple(
            conn.execute(
                select(t.id).where(t.merchant_id == p.merchant_id, t.kind == kind)
            ).scalars()
        )
        templates = of_kind if templates is None else tuple(x for x in templates if x in of_kind)
    return Query(
        start=s,
        end=e,
        stores=chosen,
        channels=channels,
        templates=templates,
        scoped=chosen is not None,
        filtered=chosen is not None or channels is not None or templates is not None,
    )


# --- reading the rollups -----------------------------------------------------------------------


def _in(col: Any, values: tuple[str, ...]) -> ColumnElement[bool]:
    return col.in_(values) if values else literal(False)


def _spans(
    q: Query, daily: Any, monthly: Any, *, months: bool = True
) -> list[tuple[Any, date, date]]:
    """(table, lo, hi): the range's whole months from the monthly level, its cut edges
    from the daily one (``months`` False: all from the daily one)."""
    if not months:
        return [(daily, q.start, q.end)]
    return [(monthly if m else daily, lo, hi) for m, lo, hi in fig.month_spans(q.start, q.end)]


def _daily_where(
    p: Principal, q: Query, *, store_less: bool, table: Any, lo: date, hi: date
) -> list[ColumnElement[bool]]:
    d = table.c
    where = [d.merchant_id == p.merchant_id, d.day >= lo, d.day <= hi]
    if q.channels is not None:
        where.append(_in(d.channel, q.channels))
    if q.templates is not None:
        where.append(_in(d.template_id, q.templates))
    if store_less:  # the rows of issues and claims
        where.append(d.store_code == NONE)
    elif q.stores is not None:
        where.append(_in(d.store_code, q.stores))
    return where


ACTIVITY = ("issued", "claimed", "redeemed", "reversed", "net_redeemed", "discount", "order_amount")


def _activity(
    conn: Connection, p: Principal, q: Query, by: str | None = None
) -> dict[Any, dict[str, int]]:
    """Activity figures (by a key column of analytics_daily, or all in one under None).
    Issued and claimed are store-less: read without the store filter."""
    out: dict[Any, dict[str, int]] = defaultdict(lambda: dict.fromkeys(ACTIVITY, 0))
    for table, lo, hi in _spans(q, analytics_daily, analytics_monthly, months=by != "day"):
        _activity_of(conn, p, q, by, table, lo, hi, out)
    for v in out.values():
        v["net_redeemed"] = v["redeemed"] - v["reversed"]
    return out


def _activity_of(
    conn: Connection, p: Principal, q: Query, by: str | None, table: Any, lo: date, hi: date,
    out: dict[Any, dict[str, int]],
) -> None:  # fmt: skip
    d = table.c
    keys = [d[by]] if by is not None else []
    sums = [
        func.sum(d.issued),
        func.sum(d.claimed),
        func.sum(d.redeemed),
        func.sum(d.reversed),
        func.sum(d.redeemed_discount - d.reversed_discount),
        func.sum(d.redeemed_order_amount - d.reversed_order_amount),
    ]
    money = ("redeemed", "reversed", "discount", "order_amount")
    passes: list[tuple[bool, tuple[str, ...]]] = (
        [(False, ("issued", "claimed", *money))]
        if q.stores is None
        else [(True, ("issued", "claimed")), (False, money)]
    )
    for store_less, names in passes:
        where = _daily_where(p, q, store_less=store_less, table=table, lo=lo, hi=hi)
        stmt = select(*keys, *sums).where(*where)
        if keys:
            stmt = stmt.group_by(*keys)
        for row in conn.execute(stmt):
            k = row[0] if keys else None
            vals = dict(
                zip(
                    ("issued", "claimed", "redeemed", "reversed", "discount", "order_amount"),
                    (int(v or 0) for v in row[len(keys) :]),
                    strict=True,
                )
            )
            for n in names:
                out[k][n] += vals[n]


def _cohort_where(
    table: Any, p: Principal, q: Query, lo: date, hi: date
) -> list[ColumnElement[bool]]:
    c = table.c
    where = [c.merchant_id == p.merchant_id, c.issue_day >= lo, c.issue_day <= hi]
    if q.channels is not None:
        where.append(_in(c.channel, q.channels))
    if q.templates is not None:
        where.append(_in(c.template_id, q.templates))
    return where


def _cohorts(
    conn: Connection, p: Principal, q: Query, by: str | None = None
) -> dict[Any, dict[str, int]]:
    """Cohort counts: issued and claimed (store-less rows), redeemed (rows of the stores
    in the filter, or all)."""
    out: dict[Any, dict[str, int]] = defaultdict(lambda: {"issued": 0, "claimed": 0, "redeemed": 0})
    for table, lo, hi in _spans(q, analytics_cohorts, analytics_cohorts_monthly):
        _cohorts_of(conn, p, q, by, table, lo, hi, out)
    return out


def _cohorts_of(
    conn: Connection, p: Principal, q: Query, by: str | None, table: Any, lo: date, hi: date,
    out: dict[Any, dict[str, int]],
) -> None:  # fmt: skip
    c = table.c
    keys = [c[by]] if by is not None else []
    where = _cohort_where(table, p, q, lo, hi)
    stmt = select(*keys, func.sum(c.issued), func.sum(c.claimed)).where(
        *where, c.store_code == NONE
    )
    for row in conn.execute(stmt.group_by(*keys) if keys else stmt):
        k = row[0] if keys else None
        out[k]["issued"] += int(row[len(keys)] or 0)
        out[k]["claimed"] += int(row[len(keys) + 1] or 0)
    red_where = [*where, c.store_code != NONE]
    if q.stores is not None:
        red_where.append(_in(c.store_code, q.stores))
    stmt = select(*keys, func.sum(c.redeemed)).where(*red_where)
    for row in conn.execute(stmt.group_by(*keys) if keys else stmt):
        k = row[0] if keys else None
        out[k]["redeemed"] += int(row[len(keys)] or 0)


def _lags(conn: Connection, p: Principal, q: Query) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for table, lo, hi in _spans(q, analytics_lags, analytics_lags_monthly):
        g = table.c
        where = _cohort_where(table, p, q, lo, hi)
        if q.stores is not None:
            where.append(_in(g.store_code, q.stores))
        stmt = select(g.lag_days, func.sum(g.redeemed)).where(*where).group_by(g.lag_days)
        for r in conn.execute(stmt):
            out[int(r[0])] += int(r[1] or 0)
    return dict(out)


def _customer_figures(
    conn: Connection, p: Principal, q: Query, repeat_days: int
) -> tuple[int | None, str | None]:
    """(average order without a coupon, repeat purchase rate) from their small rollups
    (``analytics_sales``, ``analytics_repeat``: per local day, store and channel), under
    the store and channel filters; both None under a template or kind filter (an order
    without a coupon has no template, a customer's next order neither)."""
    if q.templates is not None:
        return None, None
    out: list[Any] = []
    for table, sums in (
        (analytics_sales, ("orders", "amount")),
        (analytics_repeat, ("coupon_days", f"repeated_{repeat_days}")),
    ):
        c = table.c
        where = [c.merchant_id == p.merchant_id, c.day >= q.start, c.day <= q.end]
        if q.channels is not None:
            where.append(_in(c.channel, q.channels))
        if q.stores is not None:
            where.append(_in(c.store_code, q.stores))
        out.append(conn.execute(select(*(func.sum(c[n]) for n in sums)).where(*where)).one())
    (orders, amount), (days, repeated) = out
    return (
        fig.average(int(amount or 0), int(orders or 0)),
        fig.rate(int(repeated or 0), int(days or 0)),
    )


def _as_of(conn: Connection, now: datetime) -> datetime:
    """Events recorded before this time are counted: now when the consumer has read
    everything, else the recording time of the first event not counted yet."""
    o, a = outbox_events.c, analytics_applied.c
    mark = conn.execute(
        select(analytics_progress.c.seq).where(analytics_progress.c.name == PROGRESS)
    ).scalar()
    mark = int(mark or 0)
    first = conn.execute(
        select(o.recorded_at)
        .where(o.seq > mark, ~select(a.seq).where(a.seq == o.seq).exists())
        .order_by(o.seq)
        .limit(1)
    ).scalar()
    return now if first is None else min(first, now)


def _envelope(p: Principal, q: Query, conn: Connection, now: datetime) -> dict[str, Any]:
    return {
        "timezone": p.tz.key,
        "from": q.start.isoformat(),
        "to": q.end.isoformat(),
        "as_of": iso(_as_of(conn, now)),
        "lag_seconds": LAG_SECONDS,
    }


# --- the routes ------------------------------------------------------------------------------


def summary(
    engine: Engine, p: Principal, now: datetime, filters: dict[str, str | None],
    within_days: str | None, repeat_days: str | None,
) -> dict[str, Any]:  # fmt: skip
    within = int_param("within_days", within_days, 7, 1, 366)
    repeat = repeat_param(repeat_days)
    with read_conn(engine) as conn:
        q = parse(conn, p, now, **filters)
        act = _activity(conn, p, q)[None]
        coh = _cohorts(conn, p, q)[None]
        lags = _lags(conn, p, q)
        without, repeat_rate = _customer_figures(conn, p, q, repeat)
        env = _envelope(p, q, conn, now)
    redeemed_within = sum(n for d, n in lags.items() if d < within)
    return {
        **env,
        "figures": {
            "issued": act["issued"],
            "claimed": act["claimed"],
            "redeemed": act["redeemed"],
            "reversed": act["reversed"],
            "net_redeemed": act["net_redeemed"],
            "redemption_rate": fig.rate(coh["redeemed"], coh["issued"]),
            "redemption_rate_within": {
                "days": within,
                "rate": fig.rate(redeemed_within, coh["issued"]),
            },
            "discount": act["discount"],
            "order_amount": act["order_amount"],
            "average_order_with_coupon": fig.average(act["order_amount"], act["net_redeemed"]),
            "average_order_without_coupon": without,
            "repeat_purchase_rate": repeat_rate,
            "repeat_within_days": repeat,
            "time_to_redeem_days": {
                "median": fig.nearest_rank(lags, fig.MEDIAN),
                "p90": fig.nearest_rank(lags, fig.P90),
            },
        },
    }


def series(
    engine: Engine, p: Principal, now: datetime, filters: dict[str, str | None], group: str | None
) -> dict[str, Any]:
    g = group or "day"
    if g not in fig.GROUPS:
        raise _bad("group", "day, week or month")
    with read_conn(engine) as conn:
        q = parse(conn, p, now, **filters)
        by_day = _activity(conn, p, q, "day")
        env = _envelope(p, q, conn, now)
    points: dict[str, dict[str, int]] = {
        k: dict.fromkeys(ACTIVITY, 0) for k in fig.periods(q.start, q.end, g)
    }
    for day, values in by_day.items():
        d = day if isinstance(day, date) else date.fromisoformat(str(day))
        point = points[fig.period(d, g)]
        for k in ACTIVITY:
            point[k] += values[k]
    return {**env, "group": g, "points": [{"period": k, **v} for k, v in points.items()]}


def _labels(conn: Connection, p: Principal, by: str) -> dict[str, str]:
    if by == "store":
        s = stores.c
        rows = conn.execute(select(s.code, s.name).where(s.merchant_id == p.merchant_id))
        return {r.code: r.name for r in rows}
    if by == "template":
        t = coupon_templates.c
        rows = conn.execute(select(t.id, t.name).where(t.merchant_id == p.merchant_id))
        return {r.id: r.name for r in rows}
    return {}


def _group_key(by: str, kinds: dict[str, str]) -> Any:
    if by == "online":
        return lambda ch: NONE if ch == NONE else ("offline" if ch in OFFLINE else "online")
    if by == "kind":
        return lambda tid: kinds.get(tid, NONE)
    return lambda k: k


def breakdown(
    engine: Engine, p: Principal, now: datetime, filters: dict[str, str | None], by: str | None
) -> dict[str, Any]:
    if by not in BREAKDOWNS:
        raise _bad("by", ", ".join(BREAKDOWNS))
    with read_conn(engine) as conn:
        q = parse(conn, p, now, **filters)
        rows = _breakdown_rows(conn, p, q, by)
        env = _envelope(p, q, conn, now)
    return {**env, "by": by, "rows": rows}


def _kinds(conn: Connection, p: Principal) -> dict[str, str]:
    t = coupon_templates.c
    rows = conn.execute(select(t.id, t.kind).where(t.merchant_id == p.merchant_id))
    return {r.id: r.kind for r in rows}


def _breakdown_rows(conn: Connection, p: Principal, q: Query, by: str) -> list[dict[str, Any]]:
    columns = {"store": "store_code", "channel": "channel", "online": "channel"}
    column = columns.get(by, "template_id")
    act = _activity(conn, p, q, column)
    coh = _cohorts(conn, p, q, column)
    labels = _labels(conn, p, by)
    key = _group_key(by, _kinds(conn, p))
    rows: dict[str, dict[str, Any]] = {}

    def row(k: str) -> dict[str, Any]:
        if k not in rows:
            rows[k] = {**dict.fromkeys(ACTIVITY, 0), "cohort_issued": 0, "cohort_redeemed": 0}
        return rows[k]

    if by == "store":  # every store the key reads, with zeros
        codes = q.stores if q.stores is not None else tuple(sorted(labels))
        for code in codes:
            row(code)
    for raw, values in act.items():
        k = key(raw)
        if by == "store" and k == NONE:
            continue  # issued and claimed belong to no store
        r = row(k)
        for n in ACTIVITY:
            r[n] += values[n]
    total_issued = sum(v["issued"] for v in coh.values())
    for raw, values in coh.items():
        k = key(raw)
        if by == "store":
            if k != NONE:
                row(k)["cohort_redeemed"] += values["redeemed"]
            continue
        r = row(k)
        r["cohort_issued"] += values["issued"]
        r["cohort_redeemed"] += values["redeemed"]
    out = []
    for k in sorted(rows):
        r = rows[k]
        issued = total_issued if by == "store" else r["cohort_issued"]
        out.append(
            {
                "key": k or "none",
                "label": labels.get(k, k or "none"),
                "issued": None if by == "store" else r["issued"],
                "claimed": None if by == "store" else r["claimed"],
                **{n: r[n] for n in ACTIVITY[2:]},
                "redemption_rate": fig.rate(r["cohort_redeemed"], issued),
            }
        )
    return out


def league(
    engine: Engine, p: Principal, now: datetime, filters: dict[str, str | None], margin: str | None
) -> dict[str, Any]:
    m = margin_param(margin)
    with read_conn(engine) as conn:
        q = parse(conn, p, now, **filters)
        rows = _breakdown_rows(conn, p, q, "store")
        env = _envelope(p, q, conn, now)
    by_store = {r["key"]: r for r in rows}
    figures = [
        fig.StoreFigures(
            store=r["key"],
            net_redeemed=r["net_redeemed"],
            discount=r["discount"],
            redemption_rate=None if r["redemption_rate"] is None else Decimal(r["redemption_rate"]),
        )
        for r in rows
    ]
    table = fig.league(figures, m)
    pct = (m * 100).normalize()
    return {
        **env,
        "margin": fig.fixed(m, 2),
        "merchant_average": {k: fig.fixed(v) for k, v in table.averages.items()},
        "rows": [
            {
                "rank": lr.rank,
                "store": lr.store,
                "name": by_store[lr.store]["label"],
                "net_redeemed": by_store[lr.store]["net_redeemed"],
                "discount": by_store[lr.store]["discount"],
                "order_amount": by_store[lr.store]["order_amount"],
                "redemption_rate": by_store[lr.store]["redemption_rate"],
                "lagging": lr.lagging,
                "reason": (
                    f"{', '.join(lr.reasons)} below the store average by more than {pct:f}%"
                    if lr.lagging
                    else None
                ),
            }
            for lr in table.rows
        ],
    }


def funnel(
    engine: Engine, p: Principal, now: datetime, filters: dict[str, str | None]
) -> dict[str, Any]:
    with read_conn(engine) as conn:
        q = parse(conn, p, now, **filters)
        coh = _cohorts(conn, p, q)[None]
        env = _envelope(p, q, conn, now)
    steps = []
    first = coh["issued"]
    previous = None
    for step in ("issued", "claimed", "redeemed"):
        n = coh[step]
        steps.append(
            {
                "step": step,
                "count": n,
                "rate_from_previous": None if previous is None else fig.rate(n, previous),
                "rate_from_first": fig.rate(n, first),
            }
        )
        previous = n
    return {**env, "steps": steps}


def expiring(
    engine: Engine, p: Principal, now: datetime, filters: dict[str, str | None], days: str | None
) -> dict[str, Any]:
    """Claimed, unredeemed coupons (status issued, with a holder) whose last usable local
    day is today or one of the next ``days`` − 1 days, and still usable now (now <
    valid_until ≤ local midnight starting day today + days). Coupons belong to no store:
    the store filter does not narrow them.

    Read from ``analytics_open_claims`` (per last local day, template and channel; kept by
    the outbox consumer), less the coupons of today's row whose window already closed —
    valid_until in (local midnight today, now], status issued, with a holder: a short
    range of ``ix_coupons_merchant_valid_until``."""
    n = int_param("days", days, 7, 1, 90)
    with read_conn(engine) as conn:
        q = parse(conn, p, now, **filters)
        today = now.astimezone(p.tz).date()
        o, t = analytics_open_claims.c, coupon_templates.c
        where = [
            o.merchant_id == p.merchant_id,
            o.last_day >= today,
            o.last_day <= today + timedelta(days=n - 1),
        ]
        if q.channels is not None:
            where.append(_in(o.channel, q.channels))
        if q.templates is not None:
            where.append(_in(o.template_id, q.templates))
        rows = conn.execute(
            select(o.last_day, o.template_id, t.name, func.sum(o.claims).label("n"))
            .select_from(analytics_open_claims.join(coupon_templates, t.id == o.template_id))
            .where(*where)
            .group_by(o.last_day, o.template_id, t.name)
        ).all()
        c = coupons.c
        midnight = datetime.combine(today, time(0), p.tz).astimezone(UTC)
        closed = [
            c.merchant_id == p.merchant_id,
            c.valid_until > midnight,
            c.valid_until <= now,
            c.status == "issued",
            c.customer_id.isnot(None),
        ]
        if q.channels is not None:
            closed.append(_in(c.channel, q.channels))
        if q.templates is not None:
            closed.append(_in(c.template_id, q.templates))
        gone = {
            r.template_id: int(r.n)
            for r in conn.execute(
                select(c.template_id, func.count().label("n")).where(*closed).group_by(
                    c.template_id
                )
            )
        }
        env = _envelope(p, q, conn, now)
    counts: dict[tuple[date, str], list[Any]] = {}
    for r in rows:
        left = int(r.n or 0) - (gone.get(r.template_id, 0) if r.last_day == today else 0)
        if left > 0:
            counts[(r.last_day, r.template_id)] = [r.name, left]
    out = [
        {"day": d.isoformat(), "template_id": tid, "template_name": v[0], "coupons": v[1]}
        for (d, tid), v in sorted(counts.items())
    ]
    return {**env, "days": n, "rows": out, "total": sum(r["coupons"] for r in out)}


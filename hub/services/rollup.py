"""Analytics rollups, kept off the redeem path: an internal consumer of the outbox.

:func:`consume` reads ``outbox_events`` in ``seq`` order past the watermark
(``analytics_progress``) and adds what each event means to the rollup tables
(``analytics_daily``, ``analytics_cohorts``, ``analytics_lags``,
``analytics_customer_days``, ``analytics_sales``, ``analytics_repeat``). It runs as a
periodic job of every delivery runtime (``hub.delivery.runtime.PERIODIC_JOBS``, every
second), so a redeem pays nothing for analytics; figures lag the redeem by at most about
two seconds (one round of the job plus its batch) while the hub keeps up.

Exactly once:

* One consumer at a time: PostgreSQL ``pg_try_advisory_xact_lock`` (a second process
  finds it taken and returns at once); SQLite's writer lock (``BEGIN IMMEDIATE``).
* Crashes: the increments, the applied set and the watermark change in ONE transaction.
* Late commits: a sequence number is taken when a row is inserted, not when its
  transaction commits, so a lower ``seq`` can become visible after a higher one. The
  watermark only moves over a contiguous run of seen events; events above an open gap
  are applied and remembered in ``analytics_applied`` (and forgotten once the watermark
  passes them). A gap whose next event was recorded more than :data:`GAP_BOUND` ago is
  closed as a rolled-back transaction's (its seq never commits).

:func:`rebuild_rollups` recomputes the tables from the base tables with the same
per-fact rules (:class:`Tally`), so both paths agree.

Repeat purchase (``analytics_repeat``) is additive: each coupon customer-day (a customer
with a net redemption that local day at a store through a channel) counts once, and once
more under each window (7, 14, 30 days) its customer's next order day falls in. A batch
changes the customer days it touches; a unit's next order day can only change when a
touched day lies in the 30 days after it, so the consumer reads each touched customer's
days from 30 days before its first touched day to 30 days after its last, and adds the
difference of the units in reach (recomputed with the batch minus as they were) —
exact whatever order the events come in (offline sync reports old days late), reversals
included (a day whose orders all were reversed is no order day any more).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    true,
    update,
)

from hub.db.among import CHUNK, among
from hub.db.engine import read_conn, write_conn
from hub.db.schema import (
    analytics_applied,
    analytics_cohorts,
    analytics_cohorts_monthly,
    analytics_customer_days,
    analytics_daily,
    analytics_lags,
    analytics_lags_monthly,
    analytics_monthly,
    analytics_open_claims,
    analytics_progress,
    analytics_repeat,
    analytics_sales,
    coupons,
    merchants,
    outbox_events,
    redemptions,
    sales,
)
from hub.db.upsert import add_counts
from hub.domain.analytics import REPEAT_HORIZON, REPEAT_WINDOWS, repeat_counts

log = structlog.get_logger("hub.analytics")

PROGRESS = "rollup"
BATCH = 5000
GAP_BOUND = timedelta(minutes=10)
LOCK_ID = 0x616E616C79746963  # "analytic"
# the bound the API states: one round of the periodic job (1 s) plus a batch
LAG_SECONDS = 2

EVENTS = (
    "coupon.issued",
    "coupon.claimed",
    "coupon.redeemed",
    "coupon.redemption_reversed",
    "coupon.voided",
    "sale.recorded",
)

NONE = ""  # "none" in key columns (no channel, no store, no customer)

DAILY = (
    "issued", "claimed", "redeemed", "reversed",
    "redeemed_discount", "redeemed_order_amount", "reversed_discount", "reversed_order_amount",
)  # fmt: skip
COHORT = ("issued", "claimed", "redeemed")
CUSTOMER = ("orders", "order_amount", "coupon_orders", "coupon_order_amount")
DAILY_KEY = ("merchant_id", "day", "store_code", "channel", "template_id")
COHORT_KEY = ("merchant_id", "issue_day", "template_id", "channel", "store_code")
LAG_KEY = (*COHORT_KEY, "lag_days")
CUSTOMER_KEY = ("merchant_id", "customer_id", "day", "store_code", "channel")
SALES = ("orders", "amount")
SALES_KEY = ("merchant_id", "day", "store_code", "channel")
REPEAT = ("coupon_days", *(f"repeated_{n}" for n in REPEAT_WINDOWS))
REPEAT_KEY = SALES_KEY
OPEN_KEY = ("merchant_id", "last_day", "template_id", "channel")


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def lag_days(issued_at: datetime, redeemed_at: datetime) -> int:
    """Whole days (24 h) from issue to redemption, never negative."""
    return max(0, (redeemed_at - issued_at) // timedelta(days=1))


class CouponFacts(NamedTuple):  # a tuple: built once per event, cheaply
    template_id: str
    issued_at: datetime
    channel: str | None


class OpenFacts(NamedTuple):  # a tuple: built once per event, cheaply
    """What ``analytics_open_claims`` keys a coupon by, and whether it has a holder."""

    template_id: str
    channel: str | None
    valid_until: datetime
    held: bool


def last_day(valid_until: datetime, tz: ZoneInfo) -> date:
    """The local date of a coupon's last usable moment (valid_until is exclusive)."""
    return local_day(valid_until - timedelta(microseconds=1), tz)


class RedemptionFacts(NamedTuple):  # a tuple: built once per event, cheaply
    occurred_at: datetime
    store_code: str
    channel: str
    template_id: str
    order_amount: int
    discount: int
    customer_id: str | None
    coupon: CouponFacts


def _by_month(rows: dict[tuple[Any, ...], list[int]]) -> dict[tuple[Any, ...], list[int]]:
    """Rows keyed (merchant, local day, …) summed per (merchant, the month's first day, …):
    the monthly level long ranges read."""
    out: dict[tuple[Any, ...], list[int]] = {}
    for (m, day, *rest), v in rows.items():
        into = out.setdefault((m, day.replace(day=1), *rest), [0] * len(v))
        for i, x in enumerate(v):
            into[i] += x
    return out


@dataclass
class Tally:
    """Increments to the rollup tables, keyed by their primary keys."""

    daily: dict[tuple[Any, ...], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * len(DAILY))
    )
    cohorts: dict[tuple[Any, ...], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * len(COHORT))
    )
    lags: dict[tuple[Any, ...], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0]))
    customers: dict[tuple[Any, ...], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * len(CUSTOMER))
    )
    sales: dict[tuple[Any, ...], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * len(SALES))
    )
    repeat: dict[tuple[Any, ...], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * len(REPEAT))
    )
    open_claims: dict[tuple[Any, ...], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0])
    )

    # --- the facts ----------------------------------------------------------------------
    def issued(self, m: str, tz: ZoneInfo, c: CouponFacts, *, with_holder: bool) -> None:
        day = local_day(c.issued_at, tz)
        ch = c.channel or NONE
        d = self.daily[(m, day, NONE, ch, c.template_id)]
        k = self.cohorts[(m, day, c.template_id, ch, NONE)]
        d[0] += 1
        k[0] += 1
        if with_holder:  # issued to a customer: claimed at issue
            d[1] += 1
            k[1] += 1

    def claimed(self, m: str, tz: ZoneInfo, c: CouponFacts, at: datetime) -> None:
        ch = c.channel or NONE
        self.daily[(m, local_day(at, tz), NONE, ch, c.template_id)][1] += 1
        self.cohorts[(m, local_day(c.issued_at, tz), c.template_id, ch, NONE)][1] += 1

    def redeemed(self, m: str, tz: ZoneInfo, r: RedemptionFacts, *, sign: int = 1) -> None:
        """A redemption (sign 1) or its reversal (sign -1: counted as reversed on the
        redemption's own day, taken off its cohort, lag and customer day)."""
        day = local_day(r.occurred_at, tz)
        d = self.daily[(m, day, r.store_code, r.channel, r.template_id)]
        if sign > 0:
            d[2] += 1
            d[4] += r.discount
            d[5] += r.order_amount
        else:
            d[3] += 1
            d[6] += r.discount
            d[7] += r.order_amount
        issue_day = local_day(r.coupon.issued_at, tz)
        cohort = (m, issue_day, r.template_id, r.coupon.channel or NONE, r.store_code)
        self.cohorts[cohort][2] += sign
        self.lags[(*cohort, lag_days(r.coupon.issued_at, r.occurred_at))][0] += sign
        if r.customer_id:
            cd = self.customers[(m, r.customer_id, day, r.store_code, r.channel)]
            cd[0] += sign
            cd[1] += sign * r.order_amount
            cd[2] += sign
            cd[3] += sign * r.order_amount

    def open_claim(self, m: str, tz: ZoneInfo, o: OpenFacts, sign: int) -> None:
        """A coupon with a holder becomes (1) or stops being (-1) issued and unredeemed."""
        key = (m, last_day(o.valid_until, tz), o.template_id, o.channel or NONE)
        self.open_claims[key][0] += sign

    def sale(
        self, m: str, tz: ZoneInfo, at: datetime, customer_id: str | None, amount: int,
        store_code: str, channel: str,
    ) -> None:  # fmt: skip
        """A reported order that redeemed no coupon (one that did is counted by its
        redemption)."""
        day = local_day(at, tz)
        s = self.sales[(m, day, store_code, channel)]
        s[0] += 1
        s[1] += amount
        if customer_id:
            cd = self.customers[(m, customer_id, day, store_code, channel)]
            cd[0] += 1
            cd[1] += amount

    # --- writing --------------------------------------------------------------------------
    def write(self, conn: Connection) -> None:
        for table, keys, names, rows in (
            (analytics_daily, DAILY_KEY, DAILY, self.daily),
            (analytics_cohorts, COHORT_KEY, COHORT, self.cohorts),
            (analytics_lags, LAG_KEY, ("redeemed",), self.lags),
            (analytics_monthly, DAILY_KEY, DAILY, _by_month(self.daily)),
            (analytics_cohorts_monthly, COHORT_KEY, COHORT, _by_month(self.cohorts)),
            (analytics_lags_monthly, LAG_KEY, ("redeemed",), _by_month(self.lags)),
            (analytics_customer_days, CUSTOMER_KEY, CUSTOMER, self.customers),
            (analytics_sales, SALES_KEY, SALES, self.sales),
            (analytics_repeat, REPEAT_KEY, REPEAT, self.repeat),
            (analytics_open_claims, OPEN_KEY, ("claims",), self.open_claims),
        ):
            batch = [
                {**dict(zip(keys, k, strict=True)), **dict(zip(names, v, strict=True))}
                for k, v in sorted(rows.items(), key=lambda kv: tuple(map(str, kv[0])))
                if any(v)
            ]
            for i in range(0, len(batch), 1000):
                add_counts(conn, table, keys, batch[i : i + 1000])


# --- repeat purchase ---------------------------------------------------------------------------


def _add(into: list[int], values: list[int], sign: int) -> None:
    for i, v in enumerate(values):
        into[i] += sign * v


def _repeat_units(
    rows: dict[tuple[Any, ...], list[int]], lo: date | None = None, hi: date | None = None
) -> dict[tuple[date, tuple[str, str]], list[int]]:
    """One customer's repeat counts from its customer-day rows {(day, store, channel):
    counts}, of the units (coupon days) from ``lo`` to ``hi`` (None: unbounded)."""
    per_day: dict[date, int] = defaultdict(int)
    for (day, _store, _channel), v in rows.items():
        per_day[day] += v[0]
    units = [
        (day, (store, channel))
        for (day, store, channel), v in rows.items()
        if v[2] > 0 and (lo is None or day >= lo) and (hi is None or day <= hi)
    ]
    return repeat_counts(units, (d for d, n in per_day.items() if n > 0))


def _repeat_changes(conn: Connection, t: Tally) -> None:
    """Add to ``t.repeat`` what ``t.customers`` changes in the repeat counts: per touched
    customer, the units in reach before and after the batch (see the module's doc)."""
    touched: dict[tuple[str, str], list[date]] = {}
    for m, cust, day, _store, _channel in t.customers:
        span = touched.setdefault((m, cust), [day, day])
        span[0], span[1] = min(span[0], day), max(span[1], day)
    if not touched:
        return
    reach = timedelta(days=REPEAT_HORIZON)
    before: dict[tuple[str, str], dict[tuple[Any, ...], list[int]]] = defaultdict(dict)
    cd = analytics_customer_days.c
    by_merchant: dict[str, list[str]] = defaultdict(list)
    for m, cust in touched:
        by_merchant[m].append(cust)
    for m, custs in by_merchant.items():
        lo = min(touched[(m, c)][0] for c in custs) - reach
        hi = max(touched[(m, c)][1] for c in custs) + reach
        for chunk in _chunks(sorted(custs)):
            rows = conn.execute(
                select(cd.customer_id, cd.day, cd.store_code, cd.channel,
                       *(cd[n] for n in CUSTOMER))
                .where(cd.merchant_id == m, cd.customer_id.in_(chunk),
                       cd.day >= lo, cd.day <= hi)
            )
            for r in rows:
                first, last = touched[(m, r.customer_id)]
                if first - reach <= r.day <= last + reach:
                    before[(m, r.customer_id)][(r.day, r.store_code, r.channel)] = [
                        int(x) for x in r[4:]
                    ]
    after: dict[tuple[str, str], dict[tuple[Any, ...], list[int]]] = {
        k: {kk: list(vv) for kk, vv in v.items()} for k, v in before.items()
    }
    for (m, cust, day, store, channel), v in t.customers.items():
        row = after.setdefault((m, cust), {}).setdefault((day, store, channel), [0] * len(CUSTOMER))
        _add(row, v, 1)
    for (m, cust), (first, last) in touched.items():
        lo = first - reach
        for sign, rows_ in ((-1, before.get((m, cust), {})), (1, after[(m, cust)])):
            for (day, key), v in _repeat_units(rows_, lo, last).items():
                _add(t.repeat[(m, day, *key)], v, sign)


# --- reading base rows -----------------------------------------------------------------------


def _chunks(items: list[str], n: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _timezones(conn: Connection) -> dict[str, ZoneInfo]:
    rows = conn.execute(select(merchants.c.id, merchants.c.timezone))
    return {r.id: ZoneInfo(r.timezone) for r in rows}


def _coupon_facts(row: Any) -> CouponFacts:
    return CouponFacts(row.template_id, row.issued_at, row.channel)


_COUPON_COLUMNS = (coupons.c.id, coupons.c.template_id, coupons.c.issued_at, coupons.c.channel)
# a redemption's own facts, in the order RedemptionFacts takes them
_REDEMPTION_OWN = (
    redemptions.c.occurred_at,
    redemptions.c.store_code,
    redemptions.c.channel,
    redemptions.c.template_id,
    redemptions.c.order_amount,
    redemptions.c.discount,
)
_REDEMPTION_COLUMNS = (
    redemptions.c.id,
    *_REDEMPTION_OWN,
    coupons.c.customer_id,
    coupons.c.issued_at,
    coupons.c.channel.label("coupon_channel"),
)
_REDEMPTION_JOIN = redemptions.join(coupons, coupons.c.id == redemptions.c.coupon_id)


def _facts(
    own: Any, customer_id: str | None, issued_at: datetime, coupon_channel: str | None
) -> RedemptionFacts:
    """A redemption's facts from its own columns (:data:`_REDEMPTION_OWN`) and its coupon's."""
    at, store, channel, template_id, amount, discount = own
    coupon = CouponFacts(template_id, issued_at, coupon_channel)
    return RedemptionFacts(
        at, store, channel, template_id, int(amount), int(discount), customer_id, coupon
    )


def _redemption_facts(row: Any) -> RedemptionFacts:
    own = (row.occurred_at, row.store_code, row.channel, row.template_id, row.order_amount,
           row.discount)  # fmt: skip
    return _facts(own, row.customer_id, row.issued_at, row.coupon_channel)


def _by_ids(conn: Connection, stmt: Any, column: Any, ids: set[str]) -> list[Any]:
    """The rows of ``stmt`` whose ``column`` is one of ``ids`` (PostgreSQL: one array
    parameter for the whole batch; SQLite: expanding IN in chunks)."""
    pg = conn.dialect.name == "postgresql"
    bound = stmt.where(among(column, "ids", pg))
    out: list[Any] = []
    for chunk in _chunks(sorted(ids), CHUNK[pg]):
        out += conn.execute(bound, {"ids": chunk}).all()
    return out


_COUPON_ROW = select(
    coupons.c.id,
    coupons.c.template_id,
    coupons.c.issued_at,
    coupons.c.channel,
    coupons.c.valid_until,
    coupons.c.customer_id,
)


def _coupon_rows(
    conn: Connection, ids: set[str]
) -> dict[str, tuple[CouponFacts, OpenFacts, str | None]]:
    """Each coupon's facts for the cohorts and for the open claims, and its holder, in one
    read for the whole batch."""
    out: dict[str, tuple[CouponFacts, OpenFacts, str | None]] = {}
    for cid, template_id, issued_at, channel, valid_until, customer_id in _by_ids(
        conn, _COUPON_ROW, coupons.c.id, ids
    ):
        out[cid] = (
            CouponFacts(template_id, issued_at, channel),
            OpenFacts(template_id, channel, valid_until, customer_id is not None),
            customer_id,
        )
    return out


def _open_change(e: Any, o: OpenFacts) -> int:
    """What an event changes in the open claims of its coupon. A coupon's holder, once
    set, stays, and a coupon is claimed only while issued: so the holder it has now
    (when the event is applied) tells a redeem, reversal or void of a held coupon — an
    unheld coupon redeemed, reversed and then claimed nets -1 +1 +1 = 1 either way."""
    if e.type == "coupon.issued":
        return 1 if e.customer is not None else 0
    if e.type == "coupon.claimed":  # a campaign's claim issued to the customer: counted
        return 0 if e.campaign_id is not None else 1
    if not o.held:
        return 0
    if e.type == "coupon.redeemed":
        return -1
    if e.type == "coupon.redemption_reversed":
        return 1 if e.coupon_status == "issued" else 0
    if e.type == "coupon.voided":
        return -1
    return 0


def _redemption_rows(conn: Connection, ids: set[str]) -> dict[str, tuple[str, Any]]:
    """Each redemption's coupon id and own facts (its coupon's come from
    :func:`_coupon_rows`, read once for every event of the batch)."""
    stmt = select(redemptions.c.id, redemptions.c.coupon_id, *_REDEMPTION_OWN)
    rows = _by_ids(conn, stmt, redemptions.c.id, ids)
    return {r[0]: (r[1], r[2:]) for r in rows}


def _redemption_facts_of(
    reds: dict[str, tuple[str, Any]],
    coupon_rows: dict[str, tuple[CouponFacts, OpenFacts, str | None]],
) -> dict[str, RedemptionFacts]:
    out: dict[str, RedemptionFacts] = {}
    for rid, (coupon_id, own) in reds.items():
        found = coupon_rows.get(coupon_id)
        if found is not None:
            coupon, _open, customer_id = found
            out[rid] = _facts(own, customer_id, coupon.issued_at, coupon.channel)
    return out


def _sales_by_id(conn: Connection, ids: set[str]) -> dict[str, Any]:
    return {r.id: r for r in _by_ids(conn, select(sales), sales.c.id, ids)}


# --- the consumer ----------------------------------------------------------------------------


def _locked(conn: Connection) -> bool:
    """This transaction is the only consumer (PostgreSQL: the advisory lock, taken
    without waiting; SQLite: the writer lock ``write_conn`` holds already)."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(select(func.pg_try_advisory_xact_lock(LOCK_ID))).scalar())


def _watermark(conn: Connection, now: datetime) -> int:
    p = analytics_progress.c
    seq = conn.execute(select(p.seq).where(p.name == PROGRESS)).scalar()
    if seq is None:  # the first run: from the first event there is
        first = conn.execute(select(func.min(outbox_events.c.seq))).scalar()
        start = max(0, int(first) - 1) if first is not None else 0
        conn.execute(insert(analytics_progress).values(name=PROGRESS, seq=start, updated_at=now))
        return start
    return int(seq)


# What the consumer reads of an event's data, extracted by the database (the whole
# document, order lines and all, is never decoded here): JSON null and absent are NULL.
_EVENT_REFS = ("customer", "campaign_id", "redemption_id", "sale_id", "coupon_status")


def _event_columns() -> tuple[Any, ...]:
    o = outbox_events.c
    refs = (o.data[k].as_string().label(k) for k in _EVENT_REFS)
    return (o.seq, o.type, o.merchant_id, o.coupon_id, o.occurred_at, o.recorded_at, *refs)


def _tally_events(conn: Connection, events: list[Any]) -> Tally:
    """What these events add to the rollups (reads only). An event whose row is gone (or
    malformed) is logged and skipped: it must not stop the consumer."""
    t = Tally()
    wanted = [e for e in events if e.type in EVENTS]
    if not wanted:
        return t
    tz = _timezones(conn)
    coupon_ids = {e.coupon_id for e in wanted if e.type in ("coupon.issued", "coupon.claimed")}
    red_ids = {
        e.redemption_id
        for e in wanted
        if e.type in ("coupon.redeemed", "coupon.redemption_reversed")
    }
    sale_ids = {e.sale_id for e in wanted if e.type == "sale.recorded"}
    red_rows = _redemption_rows(conn, {i for i in red_ids if i})
    of_reds = {coupon_id for coupon_id, _ in red_rows.values()}
    rows = _coupon_rows(conn, {e.coupon_id for e in wanted if e.coupon_id} | of_reds)
    cps = {i: rows[i][0] for i in coupon_ids if i and i in rows}
    opens = {i: v[1] for i, v in rows.items()}
    reds = _redemption_facts_of(red_rows, rows)
    sold = _sales_by_id(conn, {i for i in sale_ids if i})
    for e in wanted:
        m, z = e.merchant_id, tz.get(e.merchant_id)
        held = opens.get(e.coupon_id or "")
        if z is not None and held is not None:
            change = _open_change(e, held)
            if change:
                t.open_claim(m, z, held, change)
        if e.type == "coupon.voided":
            continue
        coupon = cps.get(e.coupon_id or "")
        red = reds.get(e.redemption_id or "")
        sale = sold.get(e.sale_id or "")
        if z is None or (coupon, red, sale) == (None, None, None):
            log.warning("analytics.event_skipped", seq=e.seq, type=e.type)
            continue
        if e.type == "coupon.issued" and coupon is not None:
            t.issued(m, z, coupon, with_holder=e.customer is not None)
        elif e.type == "coupon.claimed" and coupon is not None:
            if e.campaign_id is None:  # a campaign's claim was counted at issue
                t.claimed(m, z, coupon, e.occurred_at)
        elif e.type == "coupon.redeemed" and red is not None:
            t.redeemed(m, z, red)
        elif e.type == "coupon.redemption_reversed" and red is not None:
            t.redeemed(m, z, red, sign=-1)
        # a reported coupon order is counted by its redemption, not again
        elif e.type == "sale.recorded" and sale is not None and not sale.coupon_order:
            t.sale(m, z, sale.occurred_at, sale.customer_id, int(sale.amount),
                   sale.store_code, sale.channel)  # fmt: skip
    _repeat_changes(conn, t)
    return t


def _next_watermark(
    conn: Connection, mark: int, present: list[int], now: datetime
) -> int:
    """The highest seq up to which every seq is present (seen now or applied before) or a
    gap closed by :data:`GAP_BOUND`."""
    for seq in present:
        if seq == mark + 1:
            mark = seq
            continue
        at = conn.execute(
            select(outbox_events.c.recorded_at).where(outbox_events.c.seq == seq)
        ).scalar()
        if at is None or at > now - GAP_BOUND:
            break  # the gap below seq is still open: its transaction may commit
        mark = seq
    return mark


def _anything_new(engine: Engine) -> bool:
    """Events past the watermark, or applied ones above it waiting for a gap (one read)."""
    o, p = outbox_events.c, analytics_progress.c
    top = select(func.max(o.seq)).scalar_subquery()
    mark = select(p.seq).where(p.name == PROGRESS).scalar_subquery()
    waiting = exists().where(analytics_applied.c.seq.isnot(None))
    with read_conn(engine) as conn:
        row = conn.execute(select(top, mark, waiting)).one()
    top_, mark_, waiting_ = row
    return top_ is not None and (mark_ is None or int(top_) > int(mark_) or bool(waiting_))


@dataclass
class _Plan:
    """A batch read and tallied: the watermark and applied set it was read against, and
    what committing it writes."""

    mark: int
    applied: list[int]
    events: list[Any]
    tally: Tally
    new_mark: int


def _applied_above(conn: Connection, mark: int) -> list[int]:
    a = analytics_applied.c
    return list(conn.execute(select(a.seq).where(a.seq > mark).order_by(a.seq)).scalars())


def _plan(conn: Connection, mark: int, now: datetime, batch: int) -> _Plan | None:
    """Read the next batch past ``mark`` and tally it (reads only); None: nothing to do."""
    o, a = outbox_events.c, analytics_applied.c
    events = conn.execute(
        select(*_event_columns())
        .where(o.seq > mark, ~exists().where(a.seq == o.seq))
        .order_by(o.seq)
        .limit(batch)
    ).all()
    applied = _applied_above(conn, mark)
    if not events and not applied:
        return None
    tally = _tally_events(conn, list(events))
    present = sorted({int(e.seq) for e in events} | {int(s) for s in applied})
    return _Plan(mark, applied, list(events), tally, _next_watermark(conn, mark, present, now))


def _commit(conn: Connection, plan: _Plan, now: datetime) -> int:
    """Write a planned batch: the increments, the applied set and the watermark."""
    a = analytics_applied.c
    plan.tally.write(conn)
    above = [int(e.seq) for e in plan.events if e.seq > plan.new_mark]
    if above:
        conn.execute(insert(analytics_applied), [{"seq": s} for s in above])
    if plan.applied and plan.applied[0] <= plan.new_mark:
        conn.execute(delete(analytics_applied).where(a.seq <= plan.new_mark))
    if plan.new_mark != plan.mark or plan.events:
        conn.execute(
            update(analytics_progress)
            .where(analytics_progress.c.name == PROGRESS)
            .values(seq=plan.new_mark, updated_at=now)
        )
    return len(plan.events)


def _stored_mark(conn: Connection) -> int | None:
    p = analytics_progress.c
    seq = conn.execute(select(p.seq).where(p.name == PROGRESS)).scalar()
    return None if seq is None else int(seq)


def _consume_sqlite(engine: Engine, now: datetime, batch: int) -> int | None:
    """SQLite's writer lock is the whole database's: every redeem waits while it is held.
    So the batch is read and tallied in a read transaction, and the lock is taken only to
    write it — after checking that the watermark and the applied set are still what the
    batch was read against (else another consumer went first: nothing is written, the
    next round reads again). The first run (no watermark yet) takes the locked path."""
    with read_conn(engine) as conn:
        mark = _stored_mark(conn)
        plan = None if mark is None else _plan(conn, mark, now, batch)
    if mark is None:
        return _consume_locked(engine, now, batch)
    if plan is None:
        return 0
    with write_conn(engine) as conn:
        if _stored_mark(conn) != plan.mark or _applied_above(conn, plan.mark) != plan.applied:
            return None
        return _commit(conn, plan, now)


def _consume_locked(engine: Engine, now: datetime, batch: int) -> int | None:
    with write_conn(engine) as conn:
        if not _locked(conn):
            return None
        plan = _plan(conn, _watermark(conn, now), now, batch)
        return 0 if plan is None else _commit(conn, plan, now)


def consume_once(engine: Engine, now: datetime, batch: int = BATCH) -> int | None:
    """Apply the next batch of events; the number applied, or None when another consumer
    holds the lock (or, on SQLite, went first). With nothing new (a read, no write
    transaction: SQLite's writer lock is not taken every second for nothing) 0.
    PostgreSQL reads, tallies and writes in one transaction holding the consumer's
    advisory lock (redeems do not wait for it); SQLite see :func:`_consume_sqlite`."""
    if not _anything_new(engine):
        return 0
    if engine.dialect.name == "sqlite":
        return _consume_sqlite(engine, now, batch)
    return _consume_locked(engine, now, batch)


def consume(
    engine: Engine, now: datetime | None = None, *, max_batches: int = 20, batch: int = BATCH
) -> int:
    """The periodic job: apply the events that are new, in one batch, and more batches
    only while each one came back full (a backlog: at most ``max_batches``). Never
    "until nothing is left": under load new events arrive while a batch is applied, and
    chasing them with a stream of tiny batches multiplies the fixed cost of a batch (its
    reads, the lock, the watermark, a commit) — the next round picks them up instead."""
    total = 0
    for _ in range(max_batches):
        done = consume_once(engine, now or datetime.now(UTC), batch)
        if not done:
            break
        total += done
        if done < batch:
            break
    return total


def progress(engine: Engine) -> tuple[int, datetime | None]:
    """(watermark seq, when it last moved)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(analytics_progress.c.seq, analytics_progress.c.updated_at).where(
                analytics_progress.c.name == PROGRESS
            )
        ).first()
    return (int(row.seq), row.updated_at) if row is not None else (0, None)


# --- rebuild ---------------------------------------------------------------------------------


def _stream(conn: Connection, stmt: Any) -> Iterator[Any]:
    """Rows of ``stmt`` a few thousand at a time (a server-side cursor on PostgreSQL)."""
    yield from conn.execute(stmt.execution_options(yield_per=5000))


def _tally_from_base(conn: Connection, merchant_id: str | None) -> Tally:
    tz = _timezones(conn)
    t = Tally()

    def mine(col: Any) -> Any:
        return col == merchant_id if merchant_id else true()

    o = outbox_events.c
    # when a coupon got its holder after issue (a claim of an unheld coupon)
    late_claims = (
        select(o.coupon_id, func.min(o.occurred_at).label("at"))
        .where(o.type == "coupon.claimed", mine(o.merchant_id))
        .group_by(o.coupon_id)
        .subquery()
    )
    c = coupons.c
    rows = _stream(
        conn,
        select(c.merchant_id, *_COUPON_COLUMNS, c.customer_id, late_claims.c.at)
        .select_from(coupons.outerjoin(late_claims, late_claims.c.coupon_id == c.id))
        .where(mine(c.merchant_id))
    )
    for r in rows:
        z = tz[r.merchant_id]
        facts = _coupon_facts(r)
        later = r.customer_id is not None and r.at is not None and r.at > r.issued_at
        t.issued(r.merchant_id, z, facts, with_holder=r.customer_id is not None and not later)
        if later:
            t.claimed(r.merchant_id, z, facts, r.at)
    rows = _stream(
        conn,
        select(c.merchant_id, c.template_id, c.channel, c.valid_until).where(
            mine(c.merchant_id), c.status == "issued", c.customer_id.isnot(None)
        ),
    )
    for r in rows:
        still = OpenFacts(r.template_id, r.channel, r.valid_until, True)
        t.open_claim(r.merchant_id, tz[r.merchant_id], still, 1)
    rows = _stream(
        conn,
        select(redemptions.c.merchant_id, redemptions.c.status, *_REDEMPTION_COLUMNS)
        .select_from(_REDEMPTION_JOIN)
        .where(mine(redemptions.c.merchant_id))
    )
    for r in rows:
        z = tz[r.merchant_id]
        red = _redemption_facts(r)
        t.redeemed(r.merchant_id, z, red)
        if r.status == "reversed":
            t.redeemed(r.merchant_id, z, red, sign=-1)
    s = sales.c
    rows = _stream(
        conn,
        select(s.merchant_id, s.occurred_at, s.customer_id, s.amount, s.store_code,
               s.channel).where(
            mine(s.merchant_id), s.coupon_order.is_(False)
        )
    )
    for r in rows:
        t.sale(r.merchant_id, tz[r.merchant_id], r.occurred_at, r.customer_id, int(r.amount),
               r.store_code, r.channel)  # fmt: skip
    by_customer: dict[tuple[str, str], dict[tuple[Any, ...], list[int]]] = defaultdict(dict)
    for (m, cust, day, store, channel), v in t.customers.items():
        by_customer[(m, cust)][(day, store, channel)] = v
    for (m, _cust), rows_ in by_customer.items():
        for (day, key), v in _repeat_units(rows_).items():
            _add(t.repeat[(m, day, *key)], v, 1)
    return t


def _clear(conn: Connection, merchant_id: str | None) -> None:
    for table in (
        analytics_daily, analytics_cohorts, analytics_lags, analytics_customer_days,
        analytics_sales, analytics_repeat, analytics_monthly, analytics_cohorts_monthly,
        analytics_lags_monthly, analytics_open_claims,
    ):  # fmt: skip
        stmt = delete(table)
        if merchant_id:
            stmt = stmt.where(table.c.merchant_id == merchant_id)
        conn.execute(stmt)


class _Busy(Exception):
    """A consumer batch holds the lock."""


def _rebuild(engine: Engine, merchant_id: str | None, now: datetime) -> int:
    with write_conn(engine) as conn:
        if conn.dialect.name == "postgresql":
            # one snapshot for everything read below, taken by the statement that takes
            # the lock (so after the last consumer batch committed)
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            if not _locked(conn):
                raise _Busy
        mark = _watermark(conn, now)
        _clear(conn, merchant_id)
        _tally_from_base(conn, merchant_id).write(conn)
        o, a = outbox_events.c, analytics_applied.c
        if merchant_id is None:
            old = conn.execute(
                select(func.max(o.seq)).where(o.recorded_at <= now - GAP_BOUND)
            ).scalar()
            mark = max(mark, int(old or 0))
            conn.execute(delete(analytics_applied))
            seen = select(o.seq).where(o.seq > mark)
        else:
            seen = select(o.seq).where(
                o.seq > mark,
                o.merchant_id == merchant_id,
                ~exists().where(a.seq == o.seq),
            )
        conn.execute(insert(analytics_applied).from_select(["seq"], seen))
        conn.execute(
            update(analytics_progress)
            .where(analytics_progress.c.name == PROGRESS)
            .values(seq=mark, updated_at=now)
        )
    return mark


def rebuild_rollups(
    engine: Engine, merchant_id: str | None = None, now: datetime | None = None
) -> int:
    """Recompute every rollup (of one merchant, or all) from the base tables — coupons,
    redemptions, sales and the claims recorded in the outbox — in one transaction that
    holds the consumer's lock. Then no committed event is applied twice nor missed:

    * all merchants: the watermark moves to the last event recorded more than
      :data:`GAP_BOUND` ago, and every visible event above it is marked applied (an
      event of a transaction still open commits later, in a gap, and is applied then);
    * one merchant: the watermark stays; that merchant's visible events above it are
      marked applied.

    Returns the watermark. Waits (PostgreSQL) while a consumer batch is running."""
    now = now or datetime.now(UTC)
    while True:
        try:
            mark = _rebuild(engine, merchant_id, now)
            break
        except _Busy:
            time.sleep(0.05)
    log.info("analytics.rebuilt", merchant=merchant_id, watermark=mark)
    return mark

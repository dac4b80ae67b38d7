"""Reconciliation exports (对账): redemptions and reversals of a local date range as rows
for finance, and the per-store per-day summary, streamed in bounded memory.

Rows (:data:`COLUMNS`, a fixed order): every redemption that occurred in the range, and
every reversal made in the range as a row of its own (``record_type`` ``reversal``) at
the reversal's time with negative amounts. Rows come in time order (UTC instant, then a
redemption before a reversal at the same instant, then redemption id).

How memory stays bounded: two keyset scans (redemptions by ``(occurred_at, id)`` on
``ix_redemptions_merchant_time``, reversals by ``(reversed_at, id)`` on
``ix_redemptions_reversed``), :data:`PAGE` rows a page, each page read in its own short
read transaction (no connection is held while the client reads), merged by time. The CSV
is written page by page; the XLSX by xlsxwriter in ``constant_memory`` mode (rows flushed
to a temporary file as they are written); the summary holds one accumulator per (local
day, store). Nothing holds the whole export.

A snapshot in time: the export counts what the hub had recorded at ``as_of`` (the time
the request was made): redemptions recorded by then, reversals made by then. Rows
recorded later (an offline till syncing a past sale) appear in a later export of the
same range.
"""

from __future__ import annotations

import csv
import heapq
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import IO, Any, Final

from sqlalchemy import Engine, Select, select, tuple_

from hub.db.engine import read_conn
from hub.db.schema import api_keys, coupon_templates, coupons, customers, redemptions, stores
from hub.domain.errors import refuse
from hub.domain.export_range import MAX_DAYS, LocalRange, local_range
from hub.domain.money_text import yuan
from hub.services.jsonio import iso
from hub.services.principal import Principal

__all__ = [
    "COLUMNS",
    "MAX_DAYS",
    "PAGE",
    "SUMMARY_COLUMNS",
    "Export",
    "csv_chunks",
    "prepare",
    "rows",
    "summary",
    "summary_csv_chunks",
    "write_xlsx",
]

PAGE: Final = 2000  # rows per keyset page (each page: one short read transaction)
CHUNK: Final = 64 * 1024  # bytes per streamed CSV chunk
BOM: Final = "\ufeff".encode()  # so Excel opens UTF-8 (Chinese names) correctly
XLSX_MAX_ROWS: Final = 1_048_576  # a worksheet's rows, its header included

# (name, meaning): the export's columns, in this order (the README shows this table)
COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("record_type", "`redemption`, or `reversal` (a row of its own, at the reversal's time)"),
    ("redemption_id", "the redemption (a reversal row names the redemption it reverses)"),
    ("local_time", "when (the merchant's time zone), `YYYY-MM-DD HH:MM:SS`: redeemed, or reversed"),
    ("utc_time", "the same instant in UTC, ISO 8601 (`2026-11-25T08:00:00.000Z`)"),
    ("store_code", "the store"),
    ("store_name", "its name"),
    ("channel", "pos, mini_program, h5, app or web"),
    ("template_id", "the coupon's template"),
    ("template_name", "its name"),
    ("kind", "threshold, percentage or exchange"),
    ("coupon_code", "the coupon code"),
    ("order_id", "the merchant's order id"),
    ("order_amount_fen", "the order's amount in fen (negative on a reversal row)"),
    ("order_amount_yuan", "the same in yuan, two decimals (`128.00`, `-128.00`)"),
    ("discount_fen", "the coupon's discount in fen (negative on a reversal row)"),
    ("discount_yuan", "the same in yuan"),
    ("payable_fen", "order amount minus discount, in fen (negative on a reversal row)"),
    ("payable_yuan", "the same in yuan"),
    ("customer", "the coupon holder's external id (empty: an unassigned coupon)"),
    ("order_redemption_id", "the multi-coupon order redemption it belongs to, if any"),
    ("api_key_id", "the key that redeemed (the till, or the app/admin key)"),
    ("api_key_name", "that key's name"),
    ("redeemed_local_time", "when the redemption occurred (local), on both row types"),
    ("reversed_local_time", "when it was reversed (local), empty if not reversed by as_of"),
    ("recorded_utc", "when the hub recorded the redemption (an offline sale: later)"),
    ("reversal_reason", "the reason given with the reversal (reversal rows)"),
)
HEADER: Final = tuple(name for name, _ in COLUMNS)

SUMMARY_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("day", "the local day (`total`: the store's or, with an empty store, every store's)"),
    ("store_code", "the store"),
    ("store_name", "its name"),
    ("redeemed", "redemptions that occurred that day"),
    ("reversed", "of those, how many were reversed by as_of (whenever the reversal was)"),
    ("net_redeemed", "redeemed − reversed"),
    ("discount_fen", "discount of the net redemptions (those not reversed), fen"),
    ("discount_yuan", "the same in yuan"),
    ("order_amount_fen", "order amount of the net redemptions, fen"),
    ("order_amount_yuan", "the same in yuan"),
    ("reversals_made", "reversals made that day (of redemptions of any day)"),
    ("reversals_made_discount_fen", "their discount, fen (positive)"),
    ("reversals_made_discount_yuan", "the same in yuan"),
    ("reversals_made_order_amount_fen", "their order amount, fen (positive)"),
    ("reversals_made_order_amount_yuan", "the same in yuan"),
)
SUMMARY_HEADER: Final = tuple(name for name, _ in SUMMARY_COLUMNS)

# Columns holding text a caller chose (names, order ids, external ids, reasons): in the
# CSV, a value starting with = + - @ (or a tab/CR) gets a leading ' so a spreadsheet
# never runs it as a formula (CSV injection). Amount columns are numbers, left alone.
_FREE_TEXT: Final = frozenset(
    {"store_name", "template_name", "order_id", "customer", "api_key_name", "reversal_reason"}
)
_FREE_TEXT_AT: Final = frozenset(i for i, name in enumerate(HEADER) if name in _FREE_TEXT)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Export:
    """A validated export request, with the merchant's small dimension tables (stores,
    templates, key names) looked up once."""

    merchant_id: str
    tz: tzinfo
    range: LocalRange
    as_of: datetime
    stores: tuple[str, ...] | None  # store codes to include (None: every store)
    template: str | None
    store_names: dict[str, str] = field(repr=False)
    templates: dict[str, tuple[str, str]] = field(repr=False)  # id: (name, kind)
    key_names: dict[str, str] = field(repr=False)

    def filename(self, what: str, ext: str) -> str:
        parts = [what]
        if self.stores is not None and len(self.stores) == 1:
            parts.append(self.stores[0])
        parts += [self.range.first.isoformat(), self.range.last.isoformat()]
        name = "_".join(parts)
        return "".join(c if (c.isalnum() and c.isascii()) or c in "-_" else "-" for c in name) + ext


def prepare(
    engine: Engine,
    p: Principal,
    *,
    raw_from: str | None,
    raw_to: str | None,
    store: str | None,
    template: str | None,
    now: datetime,
) -> Export:
    """Every check an export makes, before a byte is sent (so nothing fails mid-stream
    for a reason the request could have known): the dates, the store (it exists, and the
    key may read it), the template."""
    p.require("admin", "analyst", "store")
    rng = local_range(raw_from, raw_to, p.tz, now)
    with read_conn(engine) as conn:
        store_names = dict(
            conn.execute(
                select(stores.c.code, stores.c.name).where(stores.c.merchant_id == p.merchant_id)
            ).all()
        )
        templates = {
            row.id: (row.name, row.kind)
            for row in conn.execute(
                select(coupon_templates.c.id, coupon_templates.c.name, coupon_templates.c.kind)
                .where(coupon_templates.c.merchant_id == p.merchant_id)
            )
        }
        key_names = dict(
            conn.execute(
                select(api_keys.c.id, api_keys.c.name).where(
                    api_keys.c.merchant_id == p.merchant_id
                )
            ).all()
        )
    scope = p.store_scope
    chosen: tuple[str, ...] | None = scope
    if store is not None:
        if store not in store_names:
            raise refuse("store_not_found", f"No store {store[:64]!r} for this merchant.")
        if scope is not None and store not in scope:
            if p.store_code is not None:
                raise refuse(
                    "store_forbidden",
                    f"This key belongs to store {p.store_code}; it cannot export {store}.",
                )
            raise refuse("forbidden", f"This key reads only stores {', '.join(scope)}.")
        chosen = (store,)
    if template is not None and template not in templates:
        raise refuse("template_not_found", f"No template {template[:64]!r} for this merchant.")
    return Export(
        merchant_id=p.merchant_id,
        tz=p.tz,
        range=rng,
        as_of=now.astimezone(UTC),
        stores=chosen,
        template=template,
        store_names=store_names,
        templates=templates,
        key_names=key_names,
    )


# --- the rows ---------------------------------------------------------------------------

_REDEEMED, _REVERSED = 0, 1  # a redemption sorts before a reversal at the same instant

_ROW_COLUMNS = (
    redemptions.c.id,
    redemptions.c.occurred_at,
    redemptions.c.recorded_at,
    redemptions.c.reversed_at,
    redemptions.c.reversal_reason,
    redemptions.c.store_code,
    redemptions.c.channel,
    redemptions.c.template_id,
    redemptions.c.order_id,
    redemptions.c.order_amount,
    redemptions.c.discount,
    redemptions.c.order_redemption_id,
    redemptions.c.api_key_id,
    coupons.c.code,
    customers.c.external_id,
)
# what the summary needs (no joins)
_SUMMARY_COLUMNS = (
    redemptions.c.id,
    redemptions.c.occurred_at,
    redemptions.c.reversed_at,
    redemptions.c.store_code,
    redemptions.c.order_amount,
    redemptions.c.discount,
)


def _base(ex: Export, columns: tuple[Any, ...], joined: bool) -> Select[Any]:
    r = redemptions
    q = select(*columns)
    if joined:
        q = q.select_from(
            r.join(coupons, coupons.c.id == r.c.coupon_id).outerjoin(
                customers, customers.c.id == coupons.c.customer_id
            )
        )
    q = q.where(r.c.merchant_id == ex.merchant_id, r.c.recorded_at <= ex.as_of)
    if ex.stores is not None:
        q = q.where(r.c.store_code.in_(ex.stores))
    if ex.template is not None:
        q = q.where(r.c.template_id == ex.template)
    return q


def _keyset(
    engine: Engine, ex: Export, kind: int, columns: tuple[Any, ...], joined: bool
) -> Iterator[tuple[datetime, int, str, Any]]:
    """(time, kind, id, row) of one kind, in (time, id) order, page by page."""
    r = redemptions
    at = r.c.occurred_at if kind == _REDEEMED else r.c.reversed_at
    q = _base(ex, columns, joined).where(at < ex.range.until)
    if kind == _REVERSED:
        q = q.where(r.c.reversed_at.isnot(None), r.c.reversed_at <= ex.as_of)
    q = q.order_by(at, r.c.id).limit(PAGE)
    after: tuple[datetime, str] | None = None
    while True:
        # each page names one lower bound: SQLite, given both ``at >= since`` and the
        # row value, started its index range at ``since`` on every page (quadratic)
        if after is None:
            page_q = q.where(at >= ex.range.since)
        else:
            page_q = q.where(at >= after[0], tuple_(at, r.c.id) > tuple_(*after))
        with read_conn(engine) as conn:
            page = conn.execute(page_q).all()
        for row in page:
            t = row.occurred_at if kind == _REDEEMED else row.reversed_at
            yield t, kind, row.id, row
        if len(page) < PAGE:
            return
        last = page[-1]
        after = (last.occurred_at if kind == _REDEEMED else last.reversed_at, last.id)


def _events(
    engine: Engine, ex: Export, columns: tuple[Any, ...], joined: bool
) -> Iterator[tuple[datetime, int, str, Any]]:
    """Redemptions and reversals of the range merged in time order."""
    return heapq.merge(
        _keyset(engine, ex, _REDEEMED, columns, joined),
        _keyset(engine, ex, _REVERSED, columns, joined),
        key=lambda e: (e[0], e[1], e[2]),
    )


def _local(t: datetime, tz: tzinfo) -> str:
    lt = t.astimezone(tz)
    return (
        f"{lt.year:04d}-{lt.month:02d}-{lt.day:02d} "
        f"{lt.hour:02d}:{lt.minute:02d}:{lt.second:02d}"
    )


def _reversed_by(row: Any, as_of: datetime) -> datetime | None:
    t: datetime | None = row.reversed_at
    return t if t is not None and t <= as_of else None


def rows(engine: Engine, ex: Export) -> Iterator[tuple[Any, ...]]:
    """The export's rows (values in :data:`COLUMNS` order): amounts as ``int`` fen and
    ``str`` yuan, everything else ``str`` (empty for none)."""
    for t, kind, _, row in _events(engine, ex, _ROW_COLUMNS, True):
        yield _row_values(ex, t, kind, row)


def _csv_safe(values: tuple[Any, ...]) -> list[Any]:
    out = list(values)
    for i in _FREE_TEXT_AT:
        v = out[i]
        if v and v.startswith(_FORMULA_START):
            out[i] = "'" + v
    return out


def _csv(header: tuple[str, ...], lines: Iterable[Iterable[Any]]) -> Iterator[bytes]:
    """UTF-8 CSV with a BOM (RFC 4180: CRLF, quotes where needed), in chunks of about
    :data:`CHUNK` bytes."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    first = True
    for line in lines:
        w.writerow(line)
        if buf.tell() >= CHUNK:
            data = buf.getvalue().encode()
            yield BOM + data if first else data
            first = False
            buf.seek(0)
            buf.truncate()
    data = buf.getvalue().encode()
    yield BOM + data if first else data


def csv_chunks(engine: Engine, ex: Export) -> Iterator[bytes]:
    """The export as CSV bytes, streamed."""
    return _csv(HEADER, (_csv_safe(r) for r in rows(engine, ex)))


# --- the summary --------------------------------------------------------------------------


@dataclass
class _Day:
    redeemed: int = 0
    reversed: int = 0
    discount: int = 0  # net: redemptions not reversed
    order_amount: int = 0
    reversals_made: int = 0
    reversals_made_discount: int = 0
    reversals_made_order_amount: int = 0

    def add(self, other: _Day) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


class _Summary:
    """One accumulator per (local day, store): memory grows with days × stores, not rows."""

    def __init__(self, ex: Export) -> None:
        self.ex = ex
        self.cells: dict[tuple[date, str], _Day] = {}

    def add(self, t: datetime, kind: int, row: Any) -> None:
        day = t.astimezone(self.ex.tz).date()
        cell = self.cells.get((day, row.store_code))
        if cell is None:
            cell = self.cells[(day, row.store_code)] = _Day()
        if kind == _REDEEMED:
            cell.redeemed += 1
            if _reversed_by(row, self.ex.as_of) is not None:
                cell.reversed += 1
            else:
                cell.discount += row.discount
                cell.order_amount += row.order_amount
        else:
            cell.reversals_made += 1
            cell.reversals_made_discount += row.discount
            cell.reversals_made_order_amount += row.order_amount

    def lines(self) -> list[tuple[Any, ...]]:
        """Rows by day then store; then each store's total (day ``total``), then the
        total of every store (day ``total``, store empty)."""
        names = self.ex.store_names
        out = []
        per_store: dict[str, _Day] = {}
        grand = _Day()
        for (day, store), cell in sorted(self.cells.items()):
            out.append(_summary_line(day.isoformat(), store, names.get(store, ""), cell))
            per_store.setdefault(store, _Day()).add(cell)
            grand.add(cell)
        for store, cell in sorted(per_store.items()):
            out.append(_summary_line("total", store, names.get(store, ""), cell))
        out.append(_summary_line("total", "", "", grand))
        return out


def _summary_line(day: str, store: str, name: str, c: _Day) -> tuple[Any, ...]:
    return (
        day,
        store,
        name,
        c.redeemed,
        c.reversed,
        c.redeemed - c.reversed,
        c.discount,
        yuan(c.discount),
        c.order_amount,
        yuan(c.order_amount),
        c.reversals_made,
        c.reversals_made_discount,
        yuan(c.reversals_made_discount),
        c.reversals_made_order_amount,
        yuan(c.reversals_made_order_amount),
    )


def summary(engine: Engine, ex: Export) -> list[tuple[Any, ...]]:
    """The per-store per-day summary (:data:`SUMMARY_COLUMNS`), from a narrow scan."""
    acc = _Summary(ex)
    for t, kind, _, row in _events(engine, ex, _SUMMARY_COLUMNS, False):
        acc.add(t, kind, row)
    return acc.lines()


def summary_csv_chunks(engine: Engine, ex: Export) -> Iterator[bytes]:
    """The summary as CSV bytes (BOM, same columns as the XLSX's Summary sheet)."""

    def lines() -> Iterator[list[Any]]:
        for line in summary(engine, ex):
            out = list(line)
            if out[2] and str(out[2]).startswith(_FORMULA_START):
                out[2] = "'" + out[2]
            yield out

    return _csv(SUMMARY_HEADER, lines())


# --- XLSX ----------------------------------------------------------------------------------

_FEN_COLUMNS = frozenset(i for i, n in enumerate(HEADER) if n.endswith("_fen"))
_YUAN_COLUMNS = frozenset(i for i, n in enumerate(HEADER) if n.endswith("_yuan"))
_SUMMARY_NUMBERS = frozenset(range(3, len(SUMMARY_HEADER)))
_SUMMARY_YUAN = frozenset(i for i, n in enumerate(SUMMARY_HEADER) if n.endswith("_yuan"))


def write_xlsx(
    engine: Engine,
    ex: Export,
    out: IO[bytes],
    *,
    progress: Callable[[int], None] | None = None,
    max_rows: int = XLSX_MAX_ROWS,
) -> int:
    """The export as an XLSX workbook written to ``out`` (a seekable binary file):
    sheet ``Redemptions`` (continued on ``Redemptions 2``, … past a worksheet's
    1,048,576 rows), then ``Summary``. Fen as whole numbers, yuan as numbers shown with
    two decimals (written from the exact decimal text), everything else as text (never
    a formula). Returns the number of rows written."""
    import xlsxwriter  # imported here: only the XLSX export needs it

    wb = xlsxwriter.Workbook(
        out, {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False}
    )
    try:
        bold = wb.add_format({"bold": True})
        money = wb.add_format({"num_format": "0.00"})
        acc = _Summary(ex)
        sheet, sheet_no, r, n = None, 0, 0, 0
        for t, kind, _, row in _events(engine, ex, _ROW_COLUMNS, True):
            acc.add(t, kind, row)
            if sheet is None or r >= max_rows:
                sheet_no += 1
                title = "Redemptions" if sheet_no == 1 else f"Redemptions {sheet_no}"
                sheet = wb.add_worksheet(title)
                sheet.write_row(0, 0, HEADER, bold)
                r = 1
            values = _row_values(ex, t, kind, row)
            for c, v in enumerate(values):
                if c in _FEN_COLUMNS:
                    sheet.write_number(r, c, v)
                elif c in _YUAN_COLUMNS:
                    sheet.write_number(r, c, float(v), money)
                elif v != "":
                    sheet.write_string(r, c, v)
            r += 1
            n += 1
            if progress is not None and n % 10_000 == 0:
                progress(n)
        if sheet is None:
            sheet = wb.add_worksheet("Redemptions")
            sheet.write_row(0, 0, HEADER, bold)
        summary_sheet = wb.add_worksheet("Summary")
        summary_sheet.write_row(0, 0, SUMMARY_HEADER, bold)
        for i, line in enumerate(acc.lines(), start=1):
            for c, v in enumerate(line):
                if c in _SUMMARY_YUAN:
                    summary_sheet.write_number(i, c, float(v), money)
                elif c in _SUMMARY_NUMBERS:
                    summary_sheet.write_number(i, c, v)
                elif v != "":
                    summary_sheet.write_string(i, c, v)
    finally:
        wb.close()
    return n


def _row_values(ex: Export, t: datetime, kind: int, row: Any) -> tuple[Any, ...]:
    """One row of the export (CSV and XLSX alike)."""
    tz = ex.tz
    reversal = kind == _REVERSED
    amount, discount = (-row.order_amount, -row.discount) if reversal else (
        row.order_amount, row.discount)  # fmt: skip
    payable = amount - discount
    name, tkind = ex.templates.get(row.template_id, ("", ""))
    reversed_at = _reversed_by(row, ex.as_of)
    local = _local(t, tz)
    redeemed_local = _local(row.occurred_at, tz) if reversal else local
    reversed_local = "" if reversed_at is None else local if reversal else _local(reversed_at, tz)
    return (
        "reversal" if reversal else "redemption",
        row.id,
        local,
        iso(t),
        row.store_code,
        ex.store_names.get(row.store_code, ""),
        row.channel,
        row.template_id,
        name,
        tkind,
        row.code,
        row.order_id,
        amount,
        yuan(amount),
        discount,
        yuan(discount),
        payable,
        yuan(payable),
        row.external_id or "",
        row.order_redemption_id or "",
        row.api_key_id,
        ex.key_names.get(row.api_key_id, ""),
        redeemed_local,
        reversed_local,
        iso(row.recorded_at),
        (row.reversal_reason or "") if kind == _REVERSED else "",
    )

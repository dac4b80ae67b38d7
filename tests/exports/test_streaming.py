"""The exports never hold the whole result: the CSV is made page by page (keyset pages,
each its own short read), so the memory it allocates stays a small fraction of what it
writes; the XLSX continues on a new sheet past a worksheet's row limit. (Figures at a
million rows: ``python -m bench exports``, bench/README.md.)"""

from __future__ import annotations

import io
import tracemalloc
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import Engine, event

from bench import exports as bench
from hub.services import exports as svc
from hub.services.principal import Principal
from tests.exports.conftest import AS_OF, MERCHANT, RANGE, load_fixed

N = 10_000
PAGE = 200


def _principal(merchant: str) -> Principal:
    return Principal(key_id="k", merchant_id=merchant, role="admin", tz=ZoneInfo("Asia/Shanghai"))


def _measure(db: Engine, ex: svc.Export) -> tuple[int, int, int, int, int]:
    """(bytes, lines, biggest chunk, traced peak, page queries before the first chunk and
    in all) of one CSV export."""
    pages = 0

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal pages
        pages += "FROM redemptions" in statement and "LIMIT" in statement

    event.listen(db, "before_cursor_execute", count)
    tracemalloc.start()
    try:
        chunks = svc.csv_chunks(db, ex)
        first = next(chunks)
        first_pages = pages
        size, lines, biggest = len(first), first.count(b"\n"), len(first)
        for chunk in chunks:
            size += len(chunk)
            lines += chunk.count(b"\n")
            biggest = max(biggest, len(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        event.remove(db, "before_cursor_execute", count)
    assert first_pages <= 4 < pages  # the first bytes came before most rows were read
    assert biggest < 2 * svc.CHUNK
    return size, lines, peak, first_pages, pages


@pytest.mark.slow  # ~5 s a database (tracemalloc slows every allocation)
def test_the_csv_is_made_page_by_page_in_bounded_memory(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memory an export holds at most does not grow with its rows: 30 days (10,000
    rows) peak about as high as 2 days (~700 rows) — what it holds is a page of rows
    and a chunk of text."""
    bench.load(db, N)
    monkeypatch.setattr(svc, "PAGE", PAGE)
    p = _principal(bench.MERCHANT)

    def export(first: str) -> svc.Export:
        return svc.prepare(db, p, raw_from=first, raw_to=bench.RANGE["to"], store=None,
                           template=None, now=datetime.now(UTC))  # fmt: skip

    whole, tail = export(bench.RANGE["from"]), export("2026-11-29")
    _measure(db, whole)  # warm: compiled statements and caches are not the export's
    size, lines, peak, _, pages = _measure(db, whole)
    small_size, small_lines, small_peak, _, _ = _measure(db, tail)
    assert lines - 1 == bench.expected_rows(N)
    assert pages >= N // PAGE  # every page was its own query
    assert size > 10 * small_size and lines > 10 * small_lines
    assert peak < 1.5 * small_peak, (peak, small_peak)


def test_the_xlsx_continues_on_a_new_sheet_past_the_row_limit(db: Engine) -> None:
    load_fixed(db)
    ex = svc.prepare(
        db, _principal(MERCHANT), raw_from=RANGE["from"], raw_to=RANGE["to"], store=None,
        template=None, now=AS_OF,
    )  # fmt: skip
    out = io.BytesIO()
    assert svc.write_xlsx(db, ex, out, max_rows=3) == 6  # a header and 2 rows a sheet
    wb = openpyxl.load_workbook(io.BytesIO(out.getvalue()), read_only=True)
    assert wb.sheetnames == ["Redemptions", "Redemptions 2", "Redemptions 3", "Summary"]
    ids = []
    for name in wb.sheetnames[:3]:
        header, *rows = list(wb[name].iter_rows(values_only=True))
        assert header[:2] == ("record_type", "redemption_id")
        ids += [r[1] for r in rows]
    assert ids == ["rdm_06", "rdm_01", "rdm_04", "rdm_02", "rdm_03", "rdm_03"]

"""Reconciliation exports (对账): ``GET /v1/exports/redemptions.csv|.xlsx`` and
``GET /v1/exports/summary.csv`` (hub/services/exports.py says what they hold).

Every check runs before the response starts (a refusal is a problem document); then the
CSV streams page by page, and the XLSX is built in a temporary file (constant memory)
and streamed from it with its length. A failure after the response has started aborts
the connection (the client sees an incomplete download, never a short file that looks
whole).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO, Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Stream

from hub.api.responses import problem_docs
from hub.api.state import hub, principal
from hub.services import exports as svc

CSV_MEDIA_TYPE = "text/csv"  # litestar adds "; charset=utf-8" to text/* types
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

From = Annotated[
    str | None,
    QueryParameter(
        name="from",
        description="first local day (merchant's time zone), YYYY-MM-DD, inclusive; "
        "default: 29 days before `to`",
        format="date",
    ),
]
To = Annotated[
    str | None,
    QueryParameter(
        name="to",
        description=f"last local day, YYYY-MM-DD, inclusive; default: today. At most "
        f"{svc.MAX_DAYS} days from `from`",
        format="date",
    ),
]
Store = Annotated[str | None, QueryParameter(description="a store code (default: every store "
                                             "the key may read)")]  # fmt: skip
Template = Annotated[str | None, QueryParameter(description="a template id")]


def _file(media_type: str, what: str) -> dict[int, ResponseSpec]:
    return {
        200: ResponseSpec(
            data_container=bytes,
            media_type=media_type,
            description=f"{what} (attachment; Content-Disposition names the file)",
        )
    }


_PROBLEMS = problem_docs(401, 403, 404, 422)


class ExportController(Controller):
    path = "/v1/exports"
    tags = ["exports"]

    @get(
        "/redemptions.csv",
        sync_to_thread=True,
        summary="Redemptions and reversals of a local date range, CSV (streamed)",
        description="UTF-8 with a BOM; columns in the documented order (README, "
        "'Reconciliation exports'). A reversal is a row of its own at its own time, "
        "with negative amounts.",
        media_type=CSV_MEDIA_TYPE,
        responses=_file(CSV_MEDIA_TYPE, "CSV") | _PROBLEMS,
    )
    def redemptions_csv(
        self,
        request: Request[Any, Any, Any],
        from_: From = None,
        to: To = None,
        store: Store = None,
        template: Template = None,
    ) -> Stream:
        ex = _prepare(request, from_, to, store, template)
        return Stream(
            _in_thread(svc.csv_chunks(hub(request).engine, ex)),
            media_type=CSV_MEDIA_TYPE,
            headers=_attachment(ex.filename("redemptions", ".csv")),
        )

    @get(
        "/summary.csv",
        sync_to_thread=True,
        summary="Per store per local day: redeemed, reversed, net, discount, order amount",
        media_type=CSV_MEDIA_TYPE,
        responses=_file(CSV_MEDIA_TYPE, "CSV") | _PROBLEMS,
    )
    def summary_csv(
        self,
        request: Request[Any, Any, Any],
        from_: From = None,
        to: To = None,
        store: Store = None,
        template: Template = None,
    ) -> Stream:
        ex = _prepare(request, from_, to, store, template)
        return Stream(
            _in_thread(svc.summary_csv_chunks(hub(request).engine, ex)),
            media_type=CSV_MEDIA_TYPE,
            headers=_attachment(ex.filename("summary", ".csv")),
        )

    @get(
        "/redemptions.xlsx",
        sync_to_thread=True,
        summary="Redemptions and reversals (sheet Redemptions) and the Summary sheet, XLSX",
        media_type=XLSX_MEDIA_TYPE,
        responses=_file(XLSX_MEDIA_TYPE, "XLSX workbook") | _PROBLEMS,
    )
    def redemptions_xlsx(
        self,
        request: Request[Any, Any, Any],
        from_: From = None,
        to: To = None,
        store: Store = None,
        template: Template = None,
    ) -> Stream:
        ex = _prepare(request, from_, to, store, template)
        # removed when closed (by _read_file once sent, or here on a failure)
        out = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            svc.write_xlsx(hub(request).engine, ex, out)
            size = out.tell()
            out.seek(0)
        except BaseException:
            out.close()
            raise
        headers = _attachment(ex.filename("redemptions", ".xlsx"))
        headers["Content-Length"] = str(size)
        return Stream(_in_thread(_read_file(out)), media_type=XLSX_MEDIA_TYPE, headers=headers)


def _prepare(
    request: Request[Any, Any, Any],
    raw_from: str | None,
    raw_to: str | None,
    store: str | None,
    template: str | None,
) -> svc.Export:
    h = hub(request)
    return svc.prepare(
        h.engine,
        principal(request),
        raw_from=raw_from,
        raw_to=raw_to,
        store=store,
        template=template,
        now=h.clock(),
    )


def _attachment(filename: str) -> dict[str, str]:
    # the name is ASCII letters, digits, '-', '_' and '.' (Export.filename): no quoting issue
    return {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
    }


def _read_file(f: IO[bytes]) -> Iterator[bytes]:
    with f:
        while chunk := f.read(svc.CHUNK):
            yield chunk


async def _in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Each chunk made in a worker thread (database pages, CSV text). Unlike litestar's
    own wrapper for sync iterators, an exception raised while making a chunk propagates
    (litestar's turns a ValueError into a quiet end of the body: a short file that looks
    whole); the server then aborts the connection. The iterator is closed when the
    client goes away."""
    try:
        while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()

"""``pos.poslog``: ARTS/NRF POSLog XML (``http://www.nrf-arts.org/IXRetail/namespace/``).

Reads the V6 shape and the older 2.x shape, with a default namespace, with prefixes
(``poslog:``, ``ns:`` …) or with none, and ignores elements it does not know (vendor
extensions in another namespace are never mistaken for POSLog ones). The root is a
``POSLog`` holding exactly one ``Transaction``, or a bare ``Transaction``.

From the transaction (paths relative to ``Transaction``):

==================================  ===================================================
``BusinessUnit/UnitID`` (V6) or     the store (required)
``RetailStoreID`` (2.x)
``WorkstationID``                   the terminal (optional)
``SequenceNumber``                  the transaction number (required)
``BusinessDayDate``                 the business day (else the date of the times below)
``EndDateTime``/``BeginDateTime``   ``occurred_at`` when it carries an offset; a time
                                    without one is left out (the hub uses "now")
``RetailTransaction/LineItem``      ``Sale`` lines and one ``Coupon`` line; line items
                                    with ``VoidFlag="true"`` are skipped
==================================  ===================================================

A training transaction (``TrainingModeFlag="true"``) is refused: it must not spend real
coupons. So is a voided one (``TransactionStatus`` Voided/Cancelled/PostVoided, or
``CancelFlag``/``VoidFlag`` on the transaction) sent to redeem or validate.

A ``Sale`` gives an order line: ``ItemID`` (the one with ``Type="SKU"`` if there are
several) → sku; ``Quantity`` (1 when absent) → qty; ``ActualSalesUnitPrice`` (what the
customer pays), else ``RegularSalesUnitPrice``, else ``ExtendedAmount`` ÷ qty → unit
price; ``MerchandiseHierarchy`` (``Level="Category"`` preferred) → category. Amounts
are decimal yuan and become integer fen exactly (more than 2 significant decimals is
refused). A weighed item (a fractional quantity, 0.532 kg) becomes one line of qty 1
priced at its ``ExtendedAmount``. The order amount is the sum of the lines; a
transaction without sale lines uses ``RetailTransaction/Total[@TotalType=
'TransactionGrandAmount']`` (and then has no lines); with sale lines the total is not
used (tenders, other promotions and rounding make it differ; the lines are what the
hub's rules read). The ``Coupon`` line's ``ScanCode``
is the code (``CouponType`` and ``RewardValue`` are informational); two different codes
in one transaction are refused (the hub redeems one coupon per request).

Order id: ``{store}-{workstation}-{day}-{sequence, 6 digits}`` (``SH-001-POS01-2026-11-
25-000123``). Request id (the hub's idempotency key, so a terminal resending the same
transaction replays the first answer): ``poslog:{store}:{workstation}:{day}:{sequence}``;
a reverse's gets ``:reverse`` appended, so a post-void that reuses the sale's sequence
number does not collide with the sale.

Reverse: the transaction (a void, ``TransactionStatus``/``VoidFlag``/``CancelFlag``, or
a return) names the coupon by its ``Coupon`` line's ``ScanCode`` (voided coupon lines
count here); the hub reverses that coupon's current redemption with the reason
``POSLog void <sequence>`` (``POSLog return <sequence>`` when the transaction has
``Return`` lines and no void marker).

The reply is a POSLog acknowledgement in the same namespace, echoing the store,
workstation, sequence number and business day (left out when the request could not be
read), with ``Transaction/Status`` ``Accepted`` (redeem), ``Valid`` (validate),
``Reversed`` (reverse) or ``Rejected``. On success the discount is given once: as a
``RetailPriceModifier`` (``Amount Action="Subtract"``, ``ReasonCode`` ``COUPON``,
``PromotionID`` = the template id) on each sale line the hub discounted (its
``LineItem/SequenceNumber`` echoed), and whatever the lines do not cover on the coupon
line, which also carries the redemption id as ``Coupon/ReferenceID``;
``Total[@TotalType='TransactionGrandAmount']`` is what the customer pays. On refusal
``Transaction/Reason`` carries the hub's code (``@Code``) and detail. A replayed
answer (the same transaction sent again) is the first reply byte for byte, with the HTTP
header ``Idempotent-Replayed: true`` (as on the native API). HTTP status: 200
when the hub accepted, the hub's own status (404, 409, 422 …) when it refused, so both
the status and the body tell the terminal.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from connectors.pos import (
    OPERATION_CAPABILITIES,
    check_media_type,
    convert_redeem,
    fail,
    fen_to_yuan,
    redeem_command,
    yuan_to_fen,
)
from connectors.pos.xml import local_name, namespace, parse_xml
from hub.connectors import (
    OPERATIONS,
    InboundCommand,
    InboundConnector,
    InboundReply,
    InboundResult,
    Operation,
    package_schema,
)
from hub.domain.validity import to_utc

ARTS_NS = "http://www.nrf-arts.org/IXRetail/namespace/"
_ARTS_PREFIX = "http://www.nrf-arts.org/IXRetail/namespace"
MEDIA_TYPES = ("application/xml", "text/xml")

_STORE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # hub.api.dto.StoreCode
_PART = re.compile(r"[^:\x00-\x1f\x7f]{1,24}")  # workstation / sequence: no ':' (ids use it)
_QTY = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?")
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_TRUE = ("true", "1", "yes")
_LINE_FIELDS = {
    "sku": "ItemID",
    "qty": "Quantity",
    "unit_price": "ActualSalesUnitPrice",
    "category": "MerchandiseHierarchy",
}
_VOID_STATUSES = ("void", "voided", "cancel", "canceled", "cancelled", "postvoided")


@dataclass(frozen=True)
class _Reader:
    """Finds POSLog elements by local name, in the root's namespace (``ns``), the ARTS
    one or none: a vendor extension in its own namespace is never taken for POSLog."""

    ns: str

    def ours(self, el: ET.Element) -> bool:
        ns = namespace(el.tag)
        return ns in ("", self.ns) or ns.startswith(_ARTS_PREFIX)

    def kids(self, el: ET.Element, name: str) -> list[ET.Element]:
        return [c for c in el if local_name(c.tag) == name and self.ours(c)]

    def kid(self, el: ET.Element | None, *path: str) -> ET.Element | None:
        for name in path:
            if el is None:
                return None
            found = self.kids(el, name)
            el = found[0] if found else None
        return el

    def text(self, el: ET.Element | None, *path: str) -> str | None:
        found = self.kid(el, *path)
        if found is None:
            return None
        value = (found.text or "").strip()
        return value or None

    def attr(self, el: ET.Element, name: str) -> str | None:
        """An attribute by local name (with or without a namespace)."""
        for key, value in el.attrib.items():
            if local_name(key) == name:
                return value.strip()
        return None


@dataclass(frozen=True)
class _SaleLine:
    path: str  # element path of the LineItem
    line_seq: str | None  # its SequenceNumber
    sku: str
    qty: int
    unit_price: int
    category: str | None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


class PoslogConnector(InboundConnector):
    """ARTS/NRF POSLog XML (V6 and 2.x) from POS terminals: redeem, validate, reverse."""

    name: ClassVar[str] = "pos.poslog"
    kind: ClassVar[str] = "pos"
    version: ClassVar[str] = "1.0"
    summary: ClassVar[str] = "POS terminals sending ARTS/NRF POSLog XML (V6 and 2.x)"
    capabilities: ClassVar[tuple[str, ...]] = OPERATION_CAPABILITIES
    config_schema: ClassVar[dict[str, Any]] = package_schema("connectors.pos", "poslog.schema.json")
    operations: ClassVar[tuple[Operation, ...]] = OPERATIONS
    media_types: ClassVar[tuple[str, ...]] = MEDIA_TYPES

    # ---------------------------------------------------------------- parse
    def parse(
        self, operation: Operation, body: bytes, headers: Mapping[str, str]
    ) -> InboundCommand:
        check_media_type(headers, self.media_types)
        root = parse_xml(body)
        r = _Reader(namespace(root.tag))
        tx, tp = _transaction(r, root)
        head = _header(r, tx, tp)
        rt = r.kid(tx, "RetailTransaction")
        rtp = f"{tp}/RetailTransaction"
        if rt is None:
            fail(rtp, "the transaction has no RetailTransaction")
        items = [(f"{rtp}/LineItem[{i}]", li) for i, li in enumerate(r.kids(rt, "LineItem"), 1)]
        if _flag(r.attr(tx, "TrainingModeFlag")):
            fail(f"{tp}/@TrainingModeFlag", "a training transaction cannot use real coupons")
        voided = _voided(r, tx, rt)
        if operation == "reverse":
            return _reverse_command(r, head, items, rtp, voided)
        if voided:
            fail(f"{rtp}/@TransactionStatus", "a voided transaction redeems nothing (reverse it)")
        return _redeem_command(operation, r, head, rt, items, tp, rtp)

    # ---------------------------------------------------------------- reply
    def reply(
        self, operation: Operation, command: InboundCommand | None, result: InboundResult
    ) -> InboundReply:
        echo: Mapping[str, Any] = command.echo if command is not None else {}
        body = result.body
        root = ET.Element("POSLog", {"xmlns": ARTS_NS, "MajorVersion": "6", "MinorVersion": "0"})
        tx = _sub(root, "Transaction")
        if echo.get("store"):
            _sub(_sub(tx, "BusinessUnit"), "UnitID", echo["store"])
        for key, tag in (
            ("workstation", "WorkstationID"),
            ("sequence", "SequenceNumber"),
            ("business_day", "BusinessDayDate"),
        ):
            if echo.get(key):
                _sub(tx, tag, echo[key])
        _sub(tx, "Status", _status_word(operation, result))
        # a replay is the first reply byte for byte; the hub adds Idempotent-Replayed: true
        if not result.ok:
            reason = _sub(tx, "Reason", _str(body.get("detail")) or _str(body.get("title")))
            reason.set("Code", result.code or "internal_error")
            return _reply(result.status, root)
        rt = _sub(tx, "RetailTransaction")
        code = _str(echo.get("scan_code")) or _str(body.get("code"))
        redemption_id = _str(body.get("redemption_id"))
        template = body.get("template")
        promotion = _str(template.get("id")) if isinstance(template, Mapping) else ""
        description = _str(template.get("name")) if isinstance(template, Mapping) else ""
        discount = _fen(body.get("discount"))
        if operation == "reverse":
            li = _sub(rt, "LineItem")
            coupon = _coupon_element(li, echo, code, redemption_id)
            coupon_status = _str(body.get("coupon_status"))
            if coupon_status:
                _sub(coupon, "CouponStatus", coupon_status)
            if discount:
                _modifier(li, discount, "COUPON_REVERSAL", promotion, description, "Add")
            return _reply(200, root)
        covered = 0
        line_seqs = echo.get("lines") or ()
        for entry in _line_discounts(body.get("lines")):
            index, sku, amount = entry
            li = _sub(rt, "LineItem")
            if 0 <= index < len(line_seqs) and line_seqs[index]:
                _sub(li, "SequenceNumber", line_seqs[index])
            sale = _sub(li, "Sale")
            if sku:
                _sub(sale, "ItemID", sku)
            _modifier(sale, amount, "COUPON", promotion, description)
            covered += amount
        li = _sub(rt, "LineItem")
        _coupon_element(li, echo, code, redemption_id)
        remainder = discount - covered  # what the per-line split does not cover
        if remainder > 0 or not covered:
            _modifier(li, max(remainder, 0), "COUPON", promotion, description)
        if "payable" in body:
            total = _sub(rt, "Total", fen_to_yuan(_fen(body.get("payable"))))
            total.set("TotalType", "TransactionGrandAmount")
        return _reply(200, root)


# -------------------------------------------------------------------- parse helpers


def _transaction(r: _Reader, root: ET.Element) -> tuple[ET.Element, str]:
    name = local_name(root.tag)
    if name == "Transaction":
        return root, "Transaction"
    if name != "POSLog":
        fail(name or "body", "the root element must be POSLog (or a bare Transaction)")
    found = r.kids(root, "Transaction")
    if not found:
        fail("POSLog/Transaction", "the POSLog holds no Transaction")
    if len(found) > 1:
        fail("POSLog/Transaction", f"one Transaction per request, not {len(found)}")
    return found[0], "POSLog/Transaction"


def _check_part(value: str, where: str) -> None:
    if not _PART.fullmatch(value):
        fail(where, "at most 24 characters, no ':' and no control characters")


def _time(value: str | None, where: str) -> datetime | None:
    """A time with an offset as UTC; a naive one is not a point in time: ``None``."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(where, f"{value[:40]!r} is not an ISO 8601 time")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return to_utc(parsed, where)  # 0001-01-01T00:00:00+14:00: datetime_out_of_range


def _business_day(value: str | None, where: str, *times: str | None) -> str:
    """``BusinessDayDate``, else the (local) date the transaction's times are written in."""
    if value is None:
        value = next((t for t in times if t and _is_date(t[:10])), None)
        if value is None:
            fail(where, "the business day is missing")
    if not _is_date(value[:10]):
        fail(where, f"{value[:40]!r} is not a date (YYYY-MM-DD)")
    return value[:10]


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _coupon(
    r: _Reader, items: Iterable[tuple[str, ET.Element]], rtp: str, *, include_voided: bool
) -> tuple[str, str | None]:
    """The one coupon code of the transaction, and its line's sequence number."""
    found: dict[str, str | None] = {}
    for path, li in items:
        coupon = r.kid(li, "Coupon")
        if coupon is None:
            continue
        if not include_voided and _flag(r.attr(li, "VoidFlag")):
            continue
        code = r.text(coupon, "ScanCode")
        if code is None:
            fail(f"{path}/Coupon/ScanCode", "the coupon line has no scan code")
        if len(code) > 64:
            fail(f"{path}/Coupon/ScanCode", "a coupon code has at most 64 characters")
        found.setdefault(code, r.text(li, "SequenceNumber"))
    if not found:
        fail(f"{rtp}/LineItem/Coupon/ScanCode", "the transaction has no coupon line")
    if len(found) > 1:
        fail(f"{rtp}/LineItem/Coupon/ScanCode", "one coupon per transaction")
    code, seq = next(iter(found.items()))
    return code, seq


def _pick(r: _Reader, els: list[ET.Element], attr: str, wanted: str) -> ET.Element | None:
    for el in els:
        if (r.attr(el, attr) or "").lower() == wanted:
            return el
    return els[0] if els else None


def _sale_line(r: _Reader, sale: ET.Element, path: str, line_seq: str | None) -> _SaleLine:
    sp = f"{path}/Sale"
    item = _pick(r, r.kids(sale, "ItemID"), "Type", "sku")
    sku = (item.text or "").strip() if item is not None else ""
    if not sku:
        fail(f"{sp}/ItemID", "the sale line has no item id")
    hierarchy = _pick(r, r.kids(sale, "MerchandiseHierarchy"), "Level", "category")
    category = (hierarchy.text or "").strip() or None if hierarchy is not None else None
    extended = r.text(sale, "ExtendedAmount")
    raw_qty = r.text(sale, "Quantity") or "1"
    if not _QTY.fullmatch(raw_qty) or Decimal(raw_qty) <= 0:
        fail(f"{sp}/Quantity", f"{raw_qty[:40]!r} is not a positive quantity")
    qty_dec = Decimal(raw_qty)
    if qty_dec != qty_dec.to_integral_value():  # a weighed item: one line at its amount
        if extended is None:
            fail(f"{sp}/ExtendedAmount", "a fractional quantity needs the line's amount")
        fen = yuan_to_fen(extended, f"{sp}/ExtendedAmount")
        return _SaleLine(path, line_seq, sku, 1, fen, category)
    qty = int(qty_dec)
    for tag in ("ActualSalesUnitPrice", "RegularSalesUnitPrice"):
        price = r.text(sale, tag)
        if price is not None:
            return _SaleLine(path, line_seq, sku, qty, yuan_to_fen(price, f"{sp}/{tag}"), category)
    if extended is None:
        fail(f"{sp}/ActualSalesUnitPrice", "the sale line has no price (or RegularSalesUnitPrice)")
    total = yuan_to_fen(extended, f"{sp}/ExtendedAmount")
    if total % qty:
        fail(f"{sp}/ActualSalesUnitPrice", f"no unit price, and {extended} is not {qty} × a price")
    return _SaleLine(path, line_seq, sku, qty, total // qty, category)


def _grand_total(r: _Reader, rt: ET.Element) -> str | None:
    for total in r.kids(rt, "Total"):
        if (r.attr(total, "TotalType") or "") == "TransactionGrandAmount":
            return (total.text or "").strip()
    return None


def _voided(r: _Reader, tx: ET.Element, rt: ET.Element) -> bool:
    """Whether the transaction is a void: ``TransactionStatus`` (attribute or element)
    voided/cancelled, or a ``CancelFlag``/``VoidFlag`` on the transaction."""
    status = (r.attr(rt, "TransactionStatus") or r.text(rt, "TransactionStatus") or "").lower()
    return (
        status in _VOID_STATUSES
        or _flag(r.attr(tx, "CancelFlag"))
        or _flag(r.attr(tx, "VoidFlag"))
        or _flag(r.attr(rt, "VoidFlag"))
    )


# -------------------------------------------------------------------- reply helpers


def _sub(parent: ET.Element, name: str, text: Any = None) -> ET.Element:
    el = ET.SubElement(parent, name)
    if text is not None:
        el.text = _str(text)
    return el


def _str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _fen(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _status_word(operation: Operation, result: InboundResult) -> str:
    if not result.ok:
        return "Rejected"
    return {"redeem": "Accepted", "validate": "Valid", "reverse": "Reversed"}[operation]


def _line_discounts(lines: Any) -> list[tuple[int, str, int]]:
    """``(index, sku, discount)`` of the hub's per-line split (bad entries skipped)."""
    if not isinstance(lines, list):
        return []
    found = []
    for line in lines:
        if not isinstance(line, Mapping):
            continue
        index, amount = line.get("index"), _fen(line.get("discount"))
        if isinstance(index, int) and amount > 0:
            found.append((index, _str(line.get("sku")), amount))
    return found


def _coupon_element(li: ET.Element, echo: Mapping[str, Any], code: str, rid: str) -> ET.Element:
    if echo.get("coupon_line"):
        _sub(li, "SequenceNumber", echo["coupon_line"])
    coupon = _sub(li, "Coupon")
    if code:
        _sub(coupon, "ScanCode", code)
    if rid:
        _sub(coupon, "ReferenceID", rid)
    return coupon


def _modifier(
    parent: ET.Element,
    fen: int,
    reason: str,
    promotion: str,
    description: str,
    action: str = "Subtract",
) -> None:
    mod = _sub(parent, "RetailPriceModifier")
    _sub(mod, "Amount", fen_to_yuan(fen)).set("Action", action)
    _sub(mod, "ReasonCode", reason)
    if promotion:
        _sub(mod, "PromotionID", promotion)
    if description:
        _sub(mod, "Description", description)


def _reply(status: int, root: ET.Element) -> InboundReply:
    """Reply elements are unqualified under a root declaring the default namespace
    (ElementTree's ``default_namespace`` cannot write unqualified attributes)."""
    body = _DECLARATION + ET.tostring(root, encoding="unicode").encode("utf-8")
    return InboundReply(status, "application/xml", body)


@dataclass(frozen=True)
class _Header:
    """What a POSLog transaction says about itself: where, which till, which sale, when."""

    store: str
    workstation: str | None
    sequence: str
    day: str
    occurred: datetime | None

    @property
    def request_id(self) -> str:
        return f"poslog:{self.store}:{self.workstation or ''}:{self.day}:{self.sequence}"

    def echo(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "workstation": self.workstation,
            "sequence": self.sequence,
            "business_day": self.day,
        }


def _header(r: _Reader, tx: Any, tp: str) -> _Header:
    store = r.text(tx, "BusinessUnit", "UnitID") or r.text(tx, "RetailStoreID")
    if store is None:
        fail(f"{tp}/BusinessUnit/UnitID", "the store is missing (or RetailStoreID in 2.x)")
    if not _STORE.fullmatch(store):
        fail(f"{tp}/BusinessUnit/UnitID", f"{store[:70]!r} is not a store code")
    sequence = r.text(tx, "SequenceNumber")
    if sequence is None:
        fail(f"{tp}/SequenceNumber", "the transaction's sequence number is missing")
    _check_part(sequence, f"{tp}/SequenceNumber")
    workstation = r.text(tx, "WorkstationID")
    if workstation is not None:
        _check_part(workstation, f"{tp}/WorkstationID")
    end_text, begin_text = r.text(tx, "EndDateTime"), r.text(tx, "BeginDateTime")
    end = _time(end_text, f"{tp}/EndDateTime")
    begin = _time(begin_text, f"{tp}/BeginDateTime")
    day = _business_day(
        r.text(tx, "BusinessDayDate"), f"{tp}/BusinessDayDate", end_text, begin_text
    )
    return _Header(store, workstation, sequence, day, end or begin)


def _reverse_command(
    r: _Reader, head: _Header, items: list[tuple[str, Any]], rtp: str, voided: bool
) -> InboundCommand:
    """A void or return undoes the coupon's redemption."""
    code, coupon_seq = _coupon(r, items, rtp, include_voided=True)
    returns = any(r.kid(li, "Return") is not None for _p, li in items)
    kind = "return" if returns and not voided else "void"
    return InboundCommand(
        operation="reverse",
        request_id=f"{head.request_id}:reverse",
        code=code,
        store=head.store,
        reason=f"POSLog {kind} {head.sequence}",
        echo=head.echo() | {"scan_code": code, "coupon_line": coupon_seq},
    )


def _redeem_command(
    operation: Operation,
    r: _Reader,
    head: _Header,
    rt: Any,
    items: list[tuple[str, Any]],
    tp: str,
    rtp: str,
) -> InboundCommand:
    """A sale with a coupon line redeems it against the sale lines (or the grand total)."""
    live = [(p, li) for p, li in items if not _flag(r.attr(li, "VoidFlag"))]
    code, coupon_seq = _coupon(r, live, rtp, include_voided=False)
    sales = [
        _sale_line(r, sale, p, r.text(li, "SequenceNumber"))
        for p, li in live
        if (sale := r.kid(li, "Sale")) is not None
    ]
    amount_path = f"{rtp}/LineItem/Sale"
    if sales:
        amount = sum(s.qty * s.unit_price for s in sales)
    else:
        amount_path = f"{rtp}/Total[@TotalType='TransactionGrandAmount']"
        total = _grand_total(r, rt)
        if total is None:
            fail(f"{rtp}/LineItem/Sale", "the transaction has no sale lines and no total")
        amount = yuan_to_fen(total, amount_path)
    seq = head.sequence
    seq6 = seq.zfill(6) if seq.isdigit() else seq
    order: dict[str, Any] = {
        "id": "-".join(p for p in (head.store, head.workstation, head.day, seq6) if p),
        "amount": amount,
    }
    if sales:
        order["lines"] = [
            {"sku": s.sku, "qty": s.qty, "unit_price": s.unit_price}
            | ({"category": s.category} if s.category else {})
            for s in sales
        ]
    data: dict[str, Any] = {"code": code, "store": head.store, "channel": "pos", "order": order}
    if head.occurred is not None:
        data["occurred_at"] = head.occurred
    paths = {
        "code": f"{rtp}/LineItem/Coupon/ScanCode",
        "store": f"{tp}/BusinessUnit/UnitID",
        "order.id": f"{tp}/SequenceNumber",
        "order.amount": amount_path,
        "order.lines": f"{rtp}/LineItem",
        "occurred_at": f"{tp}/EndDateTime",
    }

    def where(field: str) -> str:
        m = re.fullmatch(r"order\.lines\[(\d+)\](?:\.(\w+))?", field)
        if m and int(m.group(1)) < len(sales):
            line = f"{sales[int(m.group(1))].path}/Sale"
            return f"{line}/{_LINE_FIELDS.get(m.group(2) or '', '')}".rstrip("/")
        return paths.get(field, field)

    redeem = convert_redeem(data, where)
    return InboundCommand(
        operation=operation,
        request_id=head.request_id,
        redeem=redeem_command(redeem),
        store=head.store,
        echo=head.echo()
        | {"scan_code": code, "coupon_line": coupon_seq, "lines": tuple(s.line_seq for s in sales)},
    )

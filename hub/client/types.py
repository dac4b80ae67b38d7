"""What the client's calls return: frozen dataclasses read from the hub's JSON answers.

Every result keeps the whole answer in ``raw`` (the hub may add members; nothing is
lost), and types the members a till uses. Money is integer fen, times are UTC-aware
:class:`~datetime.datetime`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.domain.cart import Line, Order
from hub.domain.offline import OfflineRules
from hub.domain.template_codec import template_from_dict
from hub.domain.templates import Template


def parse_time(value: Any) -> datetime:
    text = str(value)
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


def format_time(at: datetime) -> str:
    """ISO 8601 UTC with ``Z``, as the hub writes times."""
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    from datetime import UTC

    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- what the till sends ----------------------------------------------------------------

OrderLike = Order | Mapping[str, Any]


def order_json(order: OrderLike) -> dict[str, Any]:
    """The ``order`` member of a request from a domain :class:`Order` or a mapping."""
    if isinstance(order, Order):
        out: dict[str, Any] = {"id": order.id, "amount": order.amount}
        if order.lines is not None:
            out["lines"] = [
                {"sku": ln.sku, "qty": ln.qty, "unit_price": ln.unit_price}
                | ({"category": ln.category} if ln.category is not None else {})
                for ln in order.lines
            ]
        return out
    return dict(order)


def order_of(order: OrderLike) -> Order:
    """The domain :class:`Order` (the offline discount is computed on it)."""
    if isinstance(order, Order):
        return order
    lines = order.get("lines")
    return Order(
        id=str(order["id"]),
        amount=int(order["amount"]),
        lines=None
        if lines is None
        else tuple(
            Line(
                sku=str(ln["sku"]),
                qty=int(ln["qty"]),
                unit_price=int(ln["unit_price"]),
                category=ln.get("category"),
            )
            for ln in lines
        ),
    )


# --- what the hub answers ---------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRef:
    id: str
    name: str
    kind: str

    @classmethod
    def of(cls, d: Mapping[str, Any] | None) -> TemplateRef | None:
        return None if d is None else cls(str(d["id"]), str(d["name"]), str(d["kind"]))


@dataclass(frozen=True)
class LineDiscount:
    index: int
    sku: str
    discount: int


def _lines(items: Any) -> tuple[LineDiscount, ...]:
    return tuple(
        LineDiscount(int(x["index"]), str(x["sku"]), int(x["discount"])) for x in items or ()
    )


@dataclass(frozen=True)
class Redemption:
    """A redemption the hub recorded (``POST /v1/redemptions`` 201)."""

    redemption_id: str
    code: str
    store: str
    channel: str
    order_id: str
    template: TemplateRef
    customer: str | None
    discount: int
    eligible_amount: int
    payable: int
    lines: tuple[LineDiscount, ...]
    redeemed_at: datetime
    recorded_at: datetime
    idempotency_key: str
    replayed: bool = False  # the hub answered a retry with the first attempt's answer
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    offline = False

    @classmethod
    def from_json(cls, d: dict[str, Any], *, key: str, replayed: bool = False) -> Redemption:
        template = TemplateRef.of(d["template"])
        assert template is not None
        return cls(
            redemption_id=d["redemption_id"],
            code=d["code"],
            store=d["store"],
            channel=d["channel"],
            order_id=d["order_id"],
            template=template,
            customer=d.get("customer"),
            discount=int(d["discount"]),
            eligible_amount=int(d["eligible_amount"]),
            payable=int(d["payable"]),
            lines=_lines(d.get("lines")),
            redeemed_at=parse_time(d["redeemed_at"]),
            recorded_at=parse_time(d["recorded_at"]),
            idempotency_key=key,
            replayed=replayed,
            raw=d,
        )


@dataclass(frozen=True)
class OfflineReceipt:
    """A redemption the terminal accepted while the hub was unreachable: committed to
    the local queue before this is returned, sent to the hub by :meth:`sync` with the
    same ``idempotency_key`` and ``occurred_at``. The hub has the last word: a coupon
    redeemed elsewhere meanwhile becomes a conflict for the merchant to settle."""

    code: str  # the coupon code the token names
    discount: int
    payable: int
    lines: tuple[LineDiscount, ...]
    occurred_at: datetime
    idempotency_key: str
    terminal_id: str
    store: str
    order_id: str
    template_id: str
    offline = True


@dataclass(frozen=True)
class Validation:
    code: str
    store: str
    channel: str
    template: TemplateRef
    discount: int
    eligible_amount: int
    payable: int
    lines: tuple[LineDiscount, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Validation:
        template = TemplateRef.of(d["template"])
        assert template is not None
        return cls(
            d["code"],
            d["store"],
            d["channel"],
            template,
            int(d["discount"]),
            int(d["eligible_amount"]),
            int(d["payable"]),
            _lines(d.get("lines")),
            d,
        )


@dataclass(frozen=True)
class Reversal:
    redemption_id: str
    code: str
    store: str
    order_id: str
    discount: int
    reason: str | None
    reversed_at: datetime
    coupon_status: str
    idempotency_key: str
    replayed: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any], *, key: str, replayed: bool = False) -> Reversal:
        return cls(
            d["redemption_id"],
            d["code"],
            d["store"],
            d["order_id"],
            int(d["discount"]),
            d.get("reason"),
            parse_time(d["reversed_at"]),
            d["coupon_status"],
            key,
            replayed,
            d,
        )


@dataclass(frozen=True)
class Coupon:
    """A coupon's status and history (``GET /v1/coupons/{code}``)."""

    code: str
    display_code: str
    status: str
    template: TemplateRef
    holder: str | None
    valid_from: datetime
    valid_until: datetime
    redemption_id: str | None
    history: tuple[dict[str, Any], ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Coupon:
        template = TemplateRef.of(d["template"])
        assert template is not None
        return cls(
            d["code"],
            d["display_code"],
            d["status"],
            template,
            d.get("holder"),
            parse_time(d["valid_from"]),
            parse_time(d["valid_until"]),
            d.get("redemption_id"),
            tuple(d.get("history") or ()),
            d,
        )


@dataclass(frozen=True)
class QuoteCandidate:
    code: str
    usable: bool
    discount: int | None  # alone on this order
    template: TemplateRef | None
    refusal_code: str | None
    refusal_message: str | None


@dataclass(frozen=True)
class Quote:
    """Each candidate coupon alone, and the best combination (``best_codes``)."""

    order_id: str
    amount: int
    candidates: tuple[QuoteCandidate, ...]
    best_codes: tuple[str, ...]
    best_discount: int
    best_payable: int
    exact: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Quote:
        cands = tuple(
            QuoteCandidate(
                code=c["code"],
                usable=bool(c["usable"]),
                discount=c.get("discount"),
                template=TemplateRef.of(c.get("template")),
                refusal_code=(c.get("refusal") or {}).get("code"),
                refusal_message=(c.get("refusal") or {}).get("message"),
            )
            for c in d["candidates"]
        )
        best = d["best"]
        return cls(
            d["order_id"],
            int(d["amount"]),
            cands,
            tuple(best["codes"]),
            int(best["discount"]),
            int(best["payable"]),
            bool(best["exact"]),
            d,
        )


@dataclass(frozen=True)
class OrderCoupon:
    redemption_id: str
    code: str
    template: TemplateRef
    discount: int


@dataclass(frozen=True)
class OrderRedemption:
    """Several coupons redeemed on one order, all or nothing (``POST /v1/orders/redeem``)."""

    order_redemption_id: str
    order_id: str
    store: str
    channel: str
    coupons: tuple[OrderCoupon, ...]
    order_amount: int
    discount: int
    payable: int
    redeemed_at: datetime
    idempotency_key: str
    replayed: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any], *, key: str, replayed: bool = False) -> OrderRedemption:
        coupons = []
        for c in d["coupons"]:
            template = TemplateRef.of(c["template"])
            assert template is not None
            coupons.append(OrderCoupon(c["redemption_id"], c["code"], template, int(c["discount"])))
        return cls(
            d["order_redemption_id"],
            d["order_id"],
            d["store"],
            d["channel"],
            tuple(coupons),
            int(d["order_amount"]),
            int(d["discount"]),
            int(d["payable"]),
            parse_time(d["redeemed_at"]),
            key,
            replayed,
            d,
        )


# --- offline: the keys document, the queue, sync --------------------------------------------


@dataclass(frozen=True)
class OfflineTemplate:
    id: str
    name: str
    kind: str
    template: Template  # the rules, parsed by the hub's own codec


def _template_entry(d: Mapping[str, Any]) -> OfflineTemplate:
    # "rules" as the template API shows them (benefit, validity, usage, stacking…); a
    # document that spells them at the top level of the entry reads the same.
    rules = d.get("rules")
    spec = dict(rules) if isinstance(rules, Mapping) else dict(d)
    return OfflineTemplate(
        str(d["id"]), str(d.get("name", "")), str(d.get("kind", "")), template_from_dict(spec)
    )


@dataclass(frozen=True)
class KeysDocument:
    """``GET /v1/offline/keys``: the merchant's public keys, the terminal's offline
    limits and the templates that may be redeemed offline."""

    merchant: str
    public_keys: dict[str, str]  # kid → raw Ed25519 public key, base64url
    rules: OfflineRules
    templates: dict[str, OfflineTemplate]
    fetched_at: datetime
    refresh_after: int  # seconds
    timezone: str | None  # the merchant's, for weekday/hour rules (when the hub sends it)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KeysDocument:
        keys = {
            str(k["kid"]): str(k["x"])
            for k in d.get("keys") or ()
            if k.get("crv", "Ed25519") == "Ed25519"
        }
        templates = {}
        for t in d.get("templates") or ():
            if t.get("offline", True) is not True:
                continue
            entry = _template_entry(t)
            templates[entry.id] = entry
        return cls(
            merchant=str(d["merchant"]),
            public_keys=keys,
            rules=OfflineRules.from_json(d.get("rules")),
            templates=templates,
            fetched_at=parse_time(d["fetched_at"]),
            refresh_after=int(d.get("refresh_after") or 3600),
            timezone=d.get("timezone"),
            raw=d,
        )


@dataclass(frozen=True)
class QueueItem:
    """One offline redemption in the local queue, and (once synced) the hub's verdict."""

    seq: int
    idempotency_key: str
    code: str
    order_id: str
    discount: int
    occurred_at: datetime
    status: str  # "pending" until the hub's answer is committed locally, then "done"
    outcome: str | None  # redeemed | replayed | refused | conflict
    http_status: int | None
    problem: dict[str, Any] | None
    conflict_id: str | None
    redemption_id: str | None
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class SyncReport:
    """What one :meth:`sync` did: items sent and the hub's outcomes, what is still
    queued, and why it stopped early (``error``, e.g. the hub is unreachable again)."""

    sent: int
    counts: dict[str, int]
    remaining: int
    outcomes: tuple[QueueItem, ...]
    error: Exception | None = None

    @property
    def complete(self) -> bool:
        return self.remaining == 0 and self.error is None

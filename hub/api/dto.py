"""Request and response shapes. Unknown fields are refused; money is integer fen."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

Channel = Literal["pos", "mini_program", "h5", "app", "web"]
Fen = Annotated[int, Meta(ge=0, le=10**12, description="amount in fen (1/100 yuan)")]
ShortText = Annotated[str, Meta(min_length=1, max_length=128)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
StoreCode = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
UtcTime = Annotated[datetime, Meta(tz=True, description="ISO 8601 with offset, e.g. ...Z")]


class _In(Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


# --- redeem ---------------------------------------------------------------------------


class LineIn(_In):
    sku: ShortText
    qty: Annotated[int, Meta(ge=1, le=100_000)]
    unit_price: Fen
    category: ShortText | None = None


class OrderIn(_In):
    id: ShortText
    amount: Fen
    lines: Annotated[list[LineIn], Meta(max_length=500)] | None = None


class RedeemIn(_In):
    code: Annotated[str, Meta(min_length=1, max_length=64)]
    order: OrderIn
    store: StoreCode | None = None
    channel: Channel = "pos"
    occurred_at: UtcTime | None = None


class ReversalIn(_In):
    reason: Annotated[str, Meta(max_length=500)] | None = None


class LineDiscountOut(Struct):
    index: int
    sku: str
    discount: int


class TemplateRef(Struct):
    id: str
    name: str
    kind: str


class RedemptionOut(Struct):
    redemption_id: str
    status: Literal["redeemed"]
    code: str
    store: str
    channel: str
    order_id: str
    template: TemplateRef
    customer: str | None
    discount: int
    eligible_amount: int
    payable: int
    lines: list[LineDiscountOut]
    redeemed_at: str
    recorded_at: str


class ValidationOut(Struct):
    status: Literal["valid"]
    code: str
    store: str
    channel: str
    template: TemplateRef
    discount: int
    eligible_amount: int
    payable: int
    lines: list[LineDiscountOut]


class ReversalOut(Struct):
    redemption_id: str
    status: Literal["reversed"]
    code: str
    store: str
    order_id: str
    discount: int
    reason: str | None
    reversed_at: str
    coupon_status: str


class RedemptionItem(Struct):
    redemption_id: str
    status: str
    code: str | None
    template_id: str
    store: str
    channel: str
    order_id: str
    order_amount: int
    discount: int
    redeemed_at: str
    recorded_at: str
    reversed_at: str | None


class RedemptionPage(Struct):
    items: list[RedemptionItem]
    next_cursor: str | None


class Problem(Struct):
    """RFC 9457 problem document; ``code`` is the stable machine-readable reason."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


# --- catalogue --------------------------------------------------------------------------


class StoreIn(_In):
    code: StoreCode
    name: Name


class ProductIn(_In):
    sku: Annotated[str, Meta(min_length=1, max_length=64)]  # the column holds 64
    name: Name
    category: Annotated[str, Meta(min_length=1, max_length=64)]
    # the column is a 32-bit integer: PostgreSQL would refuse more, SQLite would store it
    price: Annotated[int, Meta(ge=0, le=2_147_483_647, description="price in fen")]


class CustomerIn(_In):
    external_id: ShortText
    name: Name | None = None
    phone: Annotated[str, Meta(max_length=32)] | None = None


class ThresholdIn(_In, tag_field="kind", tag="threshold"):
    """满减: eligible amount ≥ threshold → discount off."""

    threshold: Fen
    discount: Annotated[int, Meta(ge=1, le=10**12)]


class PercentageIn(_In, tag_field="kind", tag="percentage"):
    """折扣: percent_off % off (8.5折 = 15), optional threshold and cap."""

    percent_off: Annotated[int, Meta(ge=1, le=99)]
    threshold: Fen = 0
    cap: Annotated[int, Meta(ge=1, le=10**12)] | None = None


class ExchangeIn(_In, tag_field="kind", tag="exchange"):
    """兑换: qty × sku free (price 0) or at a fixed price."""

    sku: ShortText
    qty: Annotated[int, Meta(ge=1, le=1000)] = 1
    price: Fen = 0
    threshold: Fen = 0


class FixedWindowIn(_In, tag_field="type", tag="fixed"):
    start: UtcTime
    end: UtcTime


class RelativeWindowIn(_In, tag_field="type", tag="relative"):
    days: Annotated[int, Meta(ge=1, le=3650)]
    start_after_days: Annotated[int, Meta(ge=0, le=3650)] = 0


class HourRangeIn(_In):
    start: Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class UsageIn(_In):
    weekdays: Annotated[list[Annotated[int, Meta(ge=1, le=7)]], Meta(max_length=7)] = []
    hours: Annotated[list[HourRangeIn], Meta(max_length=24)] = []
    skus: Annotated[list[ShortText], Meta(max_length=1000)] = []
    categories: Annotated[list[ShortText], Meta(max_length=1000)] = []
    stores: Annotated[list[StoreCode], Meta(max_length=10_000)] = []
    channels: list[Channel] = []


class TemplateIn(_In):
    name: Name
    benefit: ThresholdIn | PercentageIn | ExchangeIn
    validity: FixedWindowIn | RelativeWindowIn
    usage: UsageIn | None = None
    total_quantity: Annotated[int, Meta(ge=1, le=100_000_000)] | None = None
    per_customer_limit: Annotated[int, Meta(ge=1, le=10_000)] | None = None

    def spec(self) -> dict[str, Any]:
        """The plain-dict form the domain builds a template from."""
        d: dict[str, Any] = msgspec.to_builtins(self)
        d["benefit"].setdefault("kind", type(self.benefit).__struct_config__.tag)
        d["validity"].setdefault("type", type(self.validity).__struct_config__.tag)
        return d


class IssueIn(_In):
    """Issue ``count`` unassigned coupons, or one coupon per entry of ``customers``."""

    count: Annotated[int, Meta(ge=1)] | None = None
    customers: list[ShortText] | None = None
    channel: Channel | None = None


class VoidIn(_In):
    reason: Annotated[str, Meta(max_length=500)] | None = None


class ClaimIn(_In):
    customer: ShortText


# --- subscriptions ---------------------------------------------------------------------


class SubscriptionFilterIn(_In):
    stores: Annotated[list[StoreCode], Meta(max_length=1000)] = []
    templates: Annotated[list[ShortText], Meta(max_length=1000)] = []


RetrySchedule = Annotated[
    list[Annotated[int, Meta(ge=0, le=604_800)]], Meta(min_length=1, max_length=30)
]


class SubscriptionIn(_In):
    """A connector instance: its config (validated by the connector's JSON Schema; secret
    fields are write-only), the event types it wants and optional filters."""

    connector: ShortText
    config: dict[str, Any]
    events: Annotated[list[ShortText], Meta(min_length=1, max_length=50)]
    filter: SubscriptionFilterIn | None = None
    retry_schedule: RetrySchedule | None = None
    description: Annotated[str, Meta(max_length=200)] | None = None


class SubscriptionPatch(_In):
    """Fields to change. A config without its secret fields keeps the stored secrets."""

    config: dict[str, Any] | None = None
    events: Annotated[list[ShortText], Meta(min_length=1, max_length=50)] | None = None
    filter: SubscriptionFilterIn | None = None
    retry_schedule: RetrySchedule | None = None
    description: Annotated[str, Meta(max_length=200)] | None = None

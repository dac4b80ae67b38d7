"""Request and response shapes. Unknown fields are refused; money is integer fen."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

# the native redeem body is shared with POS connectors, so it lives on their surface
from hub.connectors.pos_types import CODE_MAX
from hub.connectors.pos_types import Channel as Channel
from hub.connectors.pos_types import Fen as Fen
from hub.connectors.pos_types import LineIn as LineIn
from hub.connectors.pos_types import OrderIn as OrderIn
from hub.connectors.pos_types import RedeemIn as RedeemIn
from hub.connectors.pos_types import ShortText as ShortText
from hub.connectors.pos_types import StoreCode as StoreCode
from hub.connectors.pos_types import UtcTime as UtcTime
from hub.domain.templates import (
    DEFAULT_REMIND_DAYS,
    MAX_PER_ORDER,
    REMIND_DAYS_MAX,
    REMIND_MAX_COUNT,
)

Name = Annotated[str, Meta(min_length=1, max_length=200)]
ORDER_CODES_MAX = 100  # codes in one order's body (the service's own limit is lower)


class _In(Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


# --- redeem ---------------------------------------------------------------------------


class ReversalIn(_In):
    reason: Annotated[str, Meta(max_length=500)] | None = None


class LineDiscountOut(Struct):
    index: int
    sku: str
    discount: int


class StaffRef(Struct, kw_only=True):
    """The staff member who acted (a staff session's), as answers and events name them."""

    id: Annotated[str, Meta(description="stf_…")]
    name: str


STAFF_DOC = "the staff member who acted (a staff session); null for an API key"
StaffOrNone = Annotated[StaffRef | None, Meta(description=STAFF_DOC)]


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
    staff: StaffOrNone = None


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
    staff: StaffOrNone = None


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
    staff: StaffOrNone = None


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


Kind = Literal["threshold", "percentage", "exchange"]


class StackingIn(_In):
    """叠加规则: the kinds a coupon may share an order with (empty: exclusive, used
    alone) and the most coupons an order may use when it is among them (null: exclusive
    1, else no limit of its own)."""

    combines_with: Annotated[list[Kind], Meta(max_length=3)] = []
    max_per_order: Annotated[int, Meta(ge=1, le=MAX_PER_ORDER)] | None = None


class TemplateIn(_In):
    name: Name
    benefit: ThresholdIn | PercentageIn | ExchangeIn
    validity: FixedWindowIn | RelativeWindowIn
    usage: UsageIn | None = None
    total_quantity: Annotated[int, Meta(ge=1, le=100_000_000)] | None = None
    per_customer_limit: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    stacking: StackingIn | None = None  # absent: exclusive
    transferable: Annotated[
        bool, Meta(description="holders may pass its coupons to a friend (转赠)")
    ] = False
    offline: Annotated[
        bool,
        Meta(description="terminals may redeem its coupons offline (离线核销); false puts "
             "x: 0 in its coupon tokens"),
    ] = True
    remind_days_before: Annotated[
        list[Annotated[int, Meta(ge=1, le=REMIND_DAYS_MAX)]],
        Meta(
            max_length=REMIND_MAX_COUNT,
            description="expiry reminders (即将过期提醒): whole days before a coupon's "
            "window closes at which its holder is reminded (event coupon.expiring), each "
            "once; [] for none",
        ),
    ] = msgspec.field(default_factory=lambda: list(DEFAULT_REMIND_DAYS))

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


# --- responses ---------------------------------------------------------------------------
# What each endpoint answers, field for field (the services build these as plain dicts;
# the types document them in the OpenAPI document, tests/api/test_openapi.py checks every
# success response has one and schemathesis checks real bodies against them).

Time = Annotated[str, Meta(description="ISO 8601 UTC time, e.g. 2026-11-25T08:00:00.000Z")]
CouponStatus = Literal["issued", "redeemed", "voided", "expired"]


class _Out(Struct, kw_only=True):
    pass


class MerchantOut(_Out):
    id: str
    name: str
    timezone: Annotated[str, Meta(description="IANA time zone, e.g. Asia/Shanghai")]
    created_at: Time


class StoreOut(_Out):
    code: str
    name: str
    created_at: Time


class StoreList(_Out):
    items: list[StoreOut]


class ProductOut(_Out):
    sku: str
    name: str
    category: str
    price: Annotated[int, Meta(description="amount in fen (1/100 yuan)")]


class ProductList(_Out):
    items: list[ProductOut]


class CustomerOut(_Out):
    external_id: str
    name: str | None
    phone: str | None


class CustomerList(_Out):
    items: list[CustomerOut]


class ThresholdOut(_Out, tag_field="kind", tag="threshold"):
    threshold: int
    discount: int


class PercentageOut(_Out, tag_field="kind", tag="percentage"):
    percent_off: int
    threshold: int
    cap: int | None


class ExchangeOut(_Out, tag_field="kind", tag="exchange"):
    sku: str
    qty: int
    price: int
    threshold: int


class FixedWindowOut(_Out, tag_field="type", tag="fixed"):
    start: Annotated[str, Meta(description="ISO 8601 with offset")]
    end: Annotated[str, Meta(description="ISO 8601 with offset")]


class RelativeWindowOut(_Out, tag_field="type", tag="relative"):
    days: int
    start_after_days: int


class HourRangeOut(_Out):
    start: str
    end: str


class UsageOut(_Out):
    weekdays: list[int]
    hours: list[HourRangeOut]
    skus: list[str]
    categories: list[str]
    stores: list[str]
    channels: list[str]


class StackingOut(_Out):
    combines_with: list[Kind]
    max_per_order: int | None


class TemplateOut(_Out):
    id: str
    name: str
    kind: Literal["threshold", "percentage", "exchange"]
    status: Literal["active", "paused"]
    benefit: ThresholdOut | PercentageOut | ExchangeOut
    validity: FixedWindowOut | RelativeWindowOut
    usage: UsageOut
    total_quantity: int | None
    per_customer_limit: int | None
    stacking: StackingOut
    transferable: bool
    offline: bool
    remind_days_before: list[int]
    issued_count: int
    created_at: Time


class TemplateList(_Out):
    items: list[TemplateOut]


class IssuedCoupon(_Out):
    code: str
    customer: Annotated[str | None, Meta(description="the holder's external id")]
    channel: str | None
    valid_from: Time
    valid_until: Time


class IssueOut(_Out):
    template_id: str
    issued: int
    coupons: list[IssuedCoupon]


class HistoryEntry(_Out):
    """One event of a coupon's life; the fields after ``recorded_at`` appear when the
    event has them."""

    event_id: str
    type: str
    at: Time
    recorded_at: Time
    redemption_id: str | None = None
    store: str | None = None
    channel: str | None = None
    order_id: str | None = None
    discount: int | None = None
    customer: str | None = None
    reason: str | None = None
    coupon_status: str | None = None
    transfer_id: str | None = None
    from_customer: Annotated[str | None, Meta(description="transfers: who gave it")] = None
    to_customer: Annotated[str | None, Meta(description="transfers: who received it")] = None
    expires_at: Time | None = None  # a transfer offer: open until


class CouponOut(_Out):
    code: str
    display_code: Annotated[str, Meta(description="grouped for reading, e.g. TQZB-32SG-KUNH-V5")]
    status: CouponStatus
    template: TemplateRef
    holder: Annotated[str | None, Meta(description="the holder's external id")]
    channel: str | None
    issued_at: Time
    valid_from: Time
    valid_until: Time
    redemption_id: str | None
    history: list[HistoryEntry]


class ClaimOut(_Out):
    code: str
    customer: str
    status: CouponStatus


class VoidOut(_Out):
    code: str
    status: Literal["voided"]
    voided_at: Time
    reason: str | None


class SubscriptionFilterOut(_Out):
    stores: list[str]
    templates: list[str]


class SubscriptionOut(_Out):
    id: str
    connector: str
    config: Annotated[
        dict[str, Any],
        Meta(description="the connector's config; secret fields are shown as ***"),
    ]
    events: list[str]
    filter: SubscriptionFilterOut
    retry_schedule: list[int] | None
    status: str
    consecutive_failures: int
    circuit_retry_at: Time | None
    description: str | None
    created_at: Time
    updated_at: Time


class SubscriptionList(_Out):
    items: list[SubscriptionOut]


class SubscriptionDeleted(_Out):
    id: str
    status: Literal["deleted"]


class ReplayDeadOut(_Out):
    subscription_id: str
    replayed: Annotated[int, Meta(description="how many dead deliveries were queued again")]


class DeliveryOut(_Out):
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: Time | None
    last_status: int | None
    last_error: str | None
    created_at: Time
    updated_at: Time
    delivered_at: Time | None


class DeliveryPage(_Out):
    items: list[DeliveryOut]
    next_cursor: str | None


class AttemptOut(_Out):
    attempt: int
    started_at: Time
    latency_ms: int
    outcome: str
    http_status: int | None
    error: str | None
    response_body: str | None


class DeliveryDetail(DeliveryOut, kw_only=True):
    attempt_log: list[AttemptOut]


class JsonSchema(_Out):
    """A JSON Schema (draft 2020-12) of an event: the envelope, ``data`` constrained."""

    schema_: str = msgspec.field(name="$schema")
    id: str = msgspec.field(name="$id")
    title: str
    description: str
    type: Literal["object"]
    required: list[str]
    additionalProperties: bool
    properties: dict[str, Any]


class EventSchemas(_Out):
    envelope: JsonSchema
    types: Annotated[dict[str, JsonSchema], Meta(description="event type → its full schema")]


class KeyOut(_Out):
    id: str
    name: str
    role: Literal["admin", "store", "integrator", "analyst", "app"]
    store: str | None
    stores: list[str] | None
    channels: Annotated[list[str] | None, Meta(description="app keys: the channels they act on")]
    status: Literal["active", "expired", "revoked"]
    created_at: Time
    expires_at: Time | None
    revoked_at: Time | None
    last_used_at: Time | None


class KeyCreated(KeyOut, kw_only=True):
    token: Annotated[str, Meta(description="`hk.<key id>.<secret>`; shown in this answer only")]


class KeyList(_Out):
    items: list[KeyOut]


class AuditActor(_Out):
    key_id: Annotated[
        str, Meta(description="the acting API key's id, a staff session's id, or `cli`")
    ]
    role: str
    address: Annotated[str | None, Meta(description="the client's IP address")]
    staff_id: Annotated[
        str | None, Meta(description="the staff member, when a staff session acted")
    ] = None


class AuditTarget(_Out):
    type: str
    id: str


class AuditEntry(_Out):
    id: str
    at: Time
    actor: AuditActor
    action: str
    target: AuditTarget
    details: dict[str, Any]


class AuditPage(_Out):
    items: list[AuditEntry]
    next_cursor: str | None


class HealthOut(_Out):
    status: Literal["ok"]


class ReadyOut(_Out):
    """``status`` and one entry per check: ``ok`` or ``error: <kind>``."""

    status: Literal["ready", "not_ready"]
    database: str
    broker: str


# --- campaigns and claims ------------------------------------------------------------------

HhMm = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM")]


class DailyWindow(Struct, forbid_unknown_fields=True):
    start: Annotated[HhMm, Meta(description="opens daily at (merchant's time zone)")]
    end: Annotated[HhMm, Meta(description="closes daily at (exclusive)")]


class CampaignIn(_In):
    template_id: ShortText
    channels: Annotated[list[Channel], Meta(min_length=1, max_length=5)]
    starts_at: UtcTime
    ends_at: UtcTime
    total: Annotated[int, Meta(ge=1, le=10_000_000)]
    per_customer: Annotated[int, Meta(ge=1, le=100)] = 1
    name: Name | None = None
    daily_window: DailyWindow | None = None


class CampaignOut(_Out):
    id: str
    name: str
    template_id: str
    claim_token: Annotated[str, Meta(description="shareable token for the claim link")]
    channels: list[str]
    starts_at: Time
    ends_at: Time
    total: int
    per_customer: int
    daily_window: DailyWindow | None
    claimed: int
    remaining: int
    created_at: Time


class CampaignTemplateOut(_Out):
    id: str
    name: str
    kind: Literal["threshold", "percentage", "exchange"]
    benefit: ThresholdOut | PercentageOut | ExchangeOut


class CampaignByTokenOut(_Out):
    """A campaign as a customer-facing app shows it (read by its claim token)."""

    id: str
    name: str
    template: CampaignTemplateOut
    channels: Annotated[list[str], Meta(description="the campaign's channels this key may "
                                             "claim through")]
    starts_at: Time
    ends_at: Time
    daily_window: DailyWindow | None
    timezone: Annotated[str, Meta(description="the merchant's time zone (of daily_window)")]
    per_customer: int
    remaining: Annotated[int, Meta(description="coupons left to claim (the template's own "
                                          "stock included)")]
    open_now: Annotated[bool, Meta(description="a claim made now is not refused for the "
                                          "campaign's window, stock or template")]
    reason: Annotated[
        Literal["campaign_not_started", "campaign_ended", "campaign_sold_out",
                "template_paused", "template_out_of_stock"] | None,
        Meta(description="when not open: the code a claim made now would be refused with"),
    ]


class CampaignClaimIn(_In):
    customer: ShortText
    channel: Channel | None = None


class CampaignClaimOut(_Out):
    campaign_id: str
    code: str
    customer: str
    template_id: str
    channel: str
    valid_from: Time
    valid_until: Time
    claimed_at: Time


# --- a customer's wallet -------------------------------------------------------------------


class WalletCoupon(_Out):
    code: str
    customer: str
    template_id: str
    template_name: str
    kind: str
    status: Literal["issued", "redeemed", "expired", "voided"]
    channel: str | None
    valid_from: Time
    valid_until: Time
    usable_now: Annotated[bool, Meta(description="its state and window allow a redeem now")]
    reason: Annotated[
        str | None, Meta(description="when not usable now: the refusal code a redeem would give")
    ]
    transfer_offered_until: Annotated[
        str | None,
        Meta(description="an open offer to pass it to a friend lapses then (ISO 8601 UTC)"),
    ] = None
    qr_svg: Annotated[
        str | None,
        Meta(description="its QR code (the signed token offline tills accept), SVG; "
             "null once it cannot be redeemed"),
    ] = None
    qr_png: Annotated[str | None, Meta(description="the same QR code, PNG")] = None


class WalletPage(_Out):
    items: list[WalletCoupon]
    next_cursor: str | None


# --- checkout: the order quote ----------------------------------------------------------------


class QuoteIn(_In):
    """``POST /v1/orders/quote``: the candidates are ``codes`` or, without them, the
    ``customer``'s usable coupons."""

    order: OrderIn
    channel: Channel = "pos"
    store: StoreCode | None = None
    customer: ShortText | None = None
    codes: (
        Annotated[
            list[Annotated[str, Meta(min_length=1, max_length=CODE_MAX)]],
            Meta(description="at most 50 (more: too_many_coupons), none twice"),
        ]
        | None
    ) = None


class RefusalOut(Struct):
    code: str
    message: str


class QuoteCandidate(Struct):
    code: str
    template: TemplateRef | None
    usable: bool
    discount: Annotated[int | None, Meta(description="alone on this order (fen)")]
    lines: list[LineDiscountOut]
    refusal: RefusalOut | None


class QuoteStep(Struct):
    code: str
    kind: Kind
    discount: Annotated[int, Meta(description="on what the earlier coupons left")]
    lines: list[LineDiscountOut]


class CouponShare(Struct):
    code: str
    discount: int


class QuoteLine(Struct):
    index: int
    sku: str
    amount: int
    discount: int
    payable: int
    by_coupon: list[CouponShare]


class QuoteBest(Struct):
    codes: Annotated[list[str], Meta(description="in the order of application")]
    discount: int
    payable: int
    exact: Annotated[bool, Meta(description="false: more usable candidates than the "
                                            "exact search takes; a good set, maybe not the best")]
    steps: list[QuoteStep]
    lines: list[QuoteLine]


class QuoteOut(Struct):
    store: str
    channel: str
    customer: str | None
    order_id: str
    amount: int
    candidates: list[QuoteCandidate]
    best: QuoteBest


# --- transfers to a friend (转赠) -----------------------------------------------------------


class TransferOfferIn(_In):
    customer: Annotated[str, Meta(min_length=1, max_length=128,
                                  description="the holder's external id")]
    ttl_seconds: Annotated[int, Meta(ge=60, le=604_800,
                                     description="how long the offer stays open")] = 86_400


class TransferCustomerIn(_In):
    customer: Annotated[str, Meta(min_length=1, max_length=128,
                                  description="the customer's external id")]


class TransferOfferOut(_Out):
    id: str
    token: Annotated[str, Meta(description="secret: share it with the friend (link or QR)")]
    status: Literal["offered"]
    code: Annotated[str, Meta(description="masked")]
    template: TemplateRef
    from_customer: str
    offered_at: Time
    expires_at: Time


class TransferOut(_Out):
    id: str
    status: Literal["offered", "accepted", "cancelled", "expired"]
    code: Annotated[str, Meta(description="masked; in full for the recipient who accepted")]
    template: TemplateRef
    from_customer: str
    to_customer: str | None
    offered_at: Time
    expires_at: Time
    ended_at: Time | None
    valid_from: Time
    valid_until: Time


# --- orders: several coupons on one order, all or nothing ----------------------------------

CouponCode = Annotated[str, Meta(min_length=1, max_length=CODE_MAX)]


class OrderRedeemIn(_In):
    """``POST /v1/orders/redeem``: the single redeem's body with ``codes`` for ``code``."""

    codes: Annotated[
        list[CouponCode],
        Meta(
            min_length=1,
            max_length=ORDER_CODES_MAX,
            description="the coupon codes, any order (applied in the fixed order of "
            "application); more than the stacking rules or the hub allow: too_many_coupons",
        ),
    ]
    order: OrderIn
    channel: Channel
    store: StoreCode | None = None
    occurred_at: UtcTime | None = None


class OrderCouponOut(_Out):
    redemption_id: str
    code: str
    template: TemplateRef
    customer: str | None
    discount: int
    eligible_amount: Annotated[int, Meta(description="what the earlier coupons left of it")]
    lines: list[LineDiscountOut]
    gift: dict[str, Any] | None


class ByCouponOut(_Out):
    code: str
    discount: int


class OrderLineOut(_Out):
    index: int
    sku: str
    amount: int
    discount: int
    payable: int
    by_coupon: list[ByCouponOut]


class OrderRedemptionOut(_Out):
    order_redemption_id: str
    status: Literal["redeemed"]
    order_id: str
    store: str
    channel: str
    coupons: Annotated[list[OrderCouponOut], Meta(description="in the order of application")]
    order_amount: int
    discount: int
    payable: int
    lines: Annotated[list[OrderLineOut], Meta(description="empty without order lines")]
    reservation_id: str | None
    redeemed_at: Time
    recorded_at: Time
    staff: StaffOrNone = None


class OrderRedemptionView(_Out):
    order_redemption_id: str
    status: Literal["redeemed", "reversed"]
    order_id: str
    store: str
    channel: str
    coupons: list[OrderCouponOut]
    order_amount: int
    discount: int
    payable: int
    lines: list[OrderLineOut]
    reservation_id: str | None
    redeemed_at: Time
    recorded_at: Time
    reversed_at: Time | None
    reversal_reason: str | None
    staff: StaffOrNone = None


class OrderCouponReversedOut(_Out):
    redemption_id: str
    code: str
    discount: int
    coupon_status: str


class OrderReversalOut(_Out):
    order_redemption_id: str
    status: Literal["reversed"]
    order_id: str
    store: str
    channel: str
    discount: int
    reason: str | None
    reversed_at: Time
    coupons: list[OrderCouponReversedOut]
    staff: StaffOrNone = None


# --- reservations (a hold while an online customer pays) -------------------------------------


class ReservationIn(_In):
    codes: Annotated[
        list[CouponCode],
        Meta(min_length=1, max_length=ORDER_CODES_MAX,
             description="the coupon codes to hold (at most 10: too_many_coupons)"),
    ]
    order: OrderIn
    channel: Channel
    store: StoreCode | None = None
    ttl_seconds: Annotated[
        int, Meta(ge=1, le=10**9, description="how long the hold lasts: 60 to 1800 s")
    ] = 900


class ReservedCoupon(_Out):
    code: str
    template: TemplateRef
    discount: int
    lines: list[LineDiscountOut]


class ReservationOut(_Out):
    id: str
    status: Literal["held", "confirmed", "released", "expired"]
    codes: Annotated[list[str], Meta(description="in the order of application")]
    store: str
    channel: str
    order: dict[str, Any]
    held_at: Time
    expires_at: Time
    ended_at: Time | None
    order_redemption_id: str | None


class ReservationHeldOut(ReservationOut):
    amount: int
    discount: Annotated[int, Meta(description="what the coupons would take off, in fen")]
    payable: int
    coupons: list[ReservedCoupon]

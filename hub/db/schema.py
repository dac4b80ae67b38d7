"""Tables (SQLAlchemy Core). Every row that belongs to a merchant carries ``merchant_id``
and every query filters on it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from hub.db.types import JSONDoc, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BIGINT identity on PostgreSQL, INTEGER PRIMARY KEY (rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

merchants = Table(
    "merchants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False, server_default="Asia/Shanghai"),
    Column("created_at", UTCDateTime(), nullable=False),
    # what its terminals may accept offline (hub.domain.offline); null: the defaults
    Column("offline_rules", JSONDoc, nullable=True),
)

stores = Table(
    "stores",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("merchant_id", "code", name="uq_stores_merchant_code"),
)

products = Table(
    "products",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("category", String(64), nullable=False),
    Column("price", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("merchant_id", "sku", name="uq_products_merchant_sku"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("name", String(200), nullable=True),
    Column("phone", String(32), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("merchant_id", "external_id", name="uq_customers_merchant_external"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("store_id", ForeignKey("stores.id"), nullable=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("stores", JSONDoc, nullable=True),  # analyst keys: store codes they may read
    Column("created_by", String(40), nullable=True),  # the key that made it (API)
    Column("channels", JSONDoc, nullable=True),  # app keys: channels they act on
)

coupon_templates = Table(
    "coupon_templates",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("rules", JSONDoc, nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_quantity", Integer, nullable=True),
    Column("per_customer_limit", Integer, nullable=True),
    Column("issued_count", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_coupon_templates_merchant", "merchant_id", "created_at"),
)

coupons = Table(
    "coupons",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("template_id", ForeignKey("coupon_templates.id"), nullable=False),
    Column("code", String(32), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=True),
    Column("channel", String(32), nullable=True),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("valid_from", UTCDateTime(), nullable=False),
    Column("valid_until", UTCDateTime(), nullable=False),
    Column("redemption_id", String(40), nullable=True),
    Column("version", Integer, nullable=False, server_default="0"),
    # a hold while an online customer pays (reservations): live while reserved_until > now
    Column("reservation_id", String(40), nullable=True),
    Column("reserved_until", UTCDateTime(), nullable=True),
    Index("ix_coupons_template_customer", "template_id", "customer_id"),
)

redemptions = Table(
    "redemptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("coupon_id", ForeignKey("coupons.id"), nullable=False),
    Column("template_id", ForeignKey("coupon_templates.id"), nullable=False),
    Column("store_id", ForeignKey("stores.id"), nullable=False),
    Column("store_code", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("order_amount", BigInteger, nullable=False),
    Column("discount", BigInteger, nullable=False),
    Column("detail", JSONDoc, nullable=False),
    Column("status", String(16), nullable=False),  # redeemed | reversed
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("reversed_at", UTCDateTime(), nullable=True),
    Column("reversal_reason", Text, nullable=True),
    Column("api_key_id", String(40), nullable=False),
    Column("order_redemption_id", String(40), nullable=True),  # a multi-coupon redeem
    Column("staff_id", String(40), nullable=True),  # who redeemed, when a staff session
    Column("reversed_staff_id", String(40), nullable=True),  # who reversed, likewise
    Index("ix_redemptions_merchant_time", "merchant_id", "occurred_at", "id"),
    Index("ix_redemptions_coupon", "coupon_id"),
    Index("ix_redemptions_order_redemption", "order_redemption_id"),
)

# GET /v1/redemptions?staff=…: a staff member's redemptions, newest first (partial: the
# redemptions of API keys, most of them, cost this index nothing)
Index(
    "ix_redemptions_staff_time",
    redemptions.c.staff_id,
    redemptions.c.occurred_at,
    redemptions.c.id,
    sqlite_where=redemptions.c.staff_id.isnot(None),
    postgresql_where=redemptions.c.staff_id.isnot(None),
)

# Transactional outbox: one row per state change, written in the same transaction.
# ``seq`` is the global order (per coupon order follows from it); ``id`` is the
# stable event id receivers dedupe on.
outbox_events = Table(
    "outbox_events",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("type", String(64), nullable=False),
    Column("coupon_id", String(40), nullable=True),
    Column("store_code", String(64), nullable=True),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("data", JSONDoc, nullable=False),
    Index("ix_outbox_events_coupon", "coupon_id", "seq"),
)

# Audit log: who (key), what, when, from where. Append-only: the API never changes a
# row, and database triggers refuse UPDATE and DELETE (migration 0006).
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor_key_id", String(40), nullable=False),  # "cli" for the command line
    Column("actor_role", String(16), nullable=False),
    Column("address", String(64), nullable=True),  # the client's IP address
    Column("action", String(64), nullable=False),  # e.g. template.paused, key.revoked
    Column("target_type", String(32), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("details", JSONDoc, nullable=False),
    Column("staff_id", String(40), nullable=True),  # the staff member of a staff session
    Index("ix_audit_log_merchant_at", "merchant_id", "at", "id"),
)

# Idempotency records: scoped to the API key that made the request. A row becomes
# visible only on commit, together with the state change and its stored response.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("api_key_id", String(40), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_idempotency_keys_expires", "expires_at"),
)

# --- outbound delivery ---------------------------------------------------------------

# A subscription: a connector instance (with its config) that wants some event types of
# one merchant, optionally filtered by store codes and template ids.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("connector", String(64), nullable=False),
    Column("config", JSONDoc, nullable=False),  # secrets included: never returned or logged
    Column("events", JSONDoc, nullable=False),  # list of event types
    Column("filter", JSONDoc, nullable=False),  # {"stores": [...], "templates": [...]}
    Column("retry_schedule", JSONDoc, nullable=True),  # seconds; null = the default
    Column("status", String(16), nullable=False),  # active | paused | circuit_open | deleted
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("circuit_retry_at", UTCDateTime(), nullable=True),
    Column("description", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_subscriptions_merchant", "merchant_id", "status"),
)

# One delivery record per (event, subscription). ``event_seq`` and ``coupon_id`` give the
# per-coupon order: a delivery waits while an earlier one of the same coupon and
# subscription has not succeeded.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("subscription_id", ForeignKey("subscriptions.id"), nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("coupon_id", String(40), nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_until", UTCDateTime(), nullable=True),
    # when a message was last sent for it: the sweeper re-sends only what no recent
    # message covers
    Column("enqueued_at", UTCDateTime(), nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=True),
    UniqueConstraint("event_id", "subscription_id", name="uq_deliveries_event_subscription"),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
    Index("ix_deliveries_order", "subscription_id", "coupon_id", "event_seq"),
    Index("ix_deliveries_merchant", "merchant_id", "created_at"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", ForeignKey("deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # delivered | retry | failed
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("response_body", Text, nullable=True),  # truncated
    Index("ix_delivery_attempts_delivery", "delivery_id", "attempt"),
)

# --- guessing defence and repeat-attempt alerts (hub/services/guard.py, alerts.py) ----

# One row per failed code look-up (coupon_not_found, code_malformed) per scope: the API
# key ("key:<key id>") and the client address ("addr:<merchant id>:<address>"). The
# sliding-window count reads the scope's rows of the last window; older rows are pruned.
failed_attempts = Table(
    "failed_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("scope", String(200), nullable=False),
    # NULL for a scope no merchant owns: wrong staff sign-in codes from an address
    # ("signin:<address>", POST /v1/staff/sessions needs no key)
    Column("merchant_id", ForeignKey("merchants.id"), nullable=True),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_failed_attempts_scope", "scope", "at"),
)

# A blocked scope: every look-up, validate and redeem from it answers 429 until
# ``blocked_until``. Read by primary key (and cached ≤ 1 s per process) on the hot path.
throttle_blocks = Table(
    "throttle_blocks",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=True),  # NULL: "signin:…"
    Column("blocked_at", UTCDateTime(), nullable=False),
    Column("blocked_until", UTCDateTime(), nullable=False),
    Column("failures", Integer, nullable=False),
)

# Refused redeem/validate attempts at existing coupons (any refusal code), for the
# "same code, several stores, short time" alert. Pruned per coupon after the window.
code_attempts = Table(
    "code_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("coupon_id", ForeignKey("coupons.id"), nullable=False),
    Column("store_code", String(64), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_code_attempts_coupon", "coupon_id", "at"),
)

# When a coupon last raised repeat_redemption_attempt (at most one alert per window).
repeat_alerts = Table(
    "repeat_alerts",
    metadata,
    Column("coupon_id", ForeignKey("coupons.id"), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("alerted_at", UTCDateTime(), nullable=False),
)

# GET /v1/alerts reads alert.raised events; a partial index keeps that read cheap
# without costing the other (hot-path) outbox inserts anything.
Index(
    "ix_outbox_events_alerts",
    outbox_events.c.merchant_id,
    outbox_events.c.occurred_at,
    outbox_events.c.id,
    sqlite_where=outbox_events.c.type == "alert.raised",
    postgresql_where=outbox_events.c.type == "alert.raised",
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("template_id", ForeignKey("coupon_templates.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("claim_token", String(64), nullable=False, unique=True),  # shareable link token
    Column("channels", JSONDoc, nullable=False),  # channels customers claim through
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("total", Integer, nullable=False),
    Column("per_customer", Integer, nullable=False),
    Column("daily_start", String(5), nullable=True),  # "HH:MM", merchant's time zone
    Column("daily_end", String(5), nullable=True),
    Column("claimed", Integer, nullable=False, default=0),  # bumped only while < total
    Column("created_at", UTCDateTime(), nullable=False),
)

# One row per claim; (campaign, customer, seq) is unique so a customer's n-th claim can
# be made once however many requests race for it.
campaign_claims = Table(
    "campaign_claims",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("campaign_id", ForeignKey("campaigns.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("coupon_id", ForeignKey("coupons.id"), nullable=False),
    Column("claimed_at", UTCDateTime(), nullable=False),
    UniqueConstraint("campaign_id", "customer_id", "seq", name="uq_campaign_claims_seq"),
)

# A multi-coupon redeem (POST /v1/orders/redeem): one row per order redeemed through
# the hub, linking its redemptions (redemptions.order_redemption_id). Reversed as one.
order_redemptions = Table(
    "order_redemptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("order_id", String(128), nullable=False),  # the merchant's order id
    Column("store_id", ForeignKey("stores.id"), nullable=False),
    Column("store_code", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("order_amount", BigInteger, nullable=False),
    Column("discount", BigInteger, nullable=False),
    Column("detail", JSONDoc, nullable=False),
    Column("status", String(16), nullable=False),  # redeemed | reversed
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("reversed_at", UTCDateTime(), nullable=True),
    Column("reversal_reason", Text, nullable=True),
    Column("reservation_id", String(40), nullable=True),  # set when a hold was confirmed
    Column("api_key_id", String(40), nullable=False),
    Column("staff_id", String(40), nullable=True),  # who redeemed, when a staff session
    Index("ix_order_redemptions_merchant_order", "merchant_id", "order_id"),
)

# Holds on coupons while an online customer pays (POST /v1/reservations). The hold
# itself is on the coupon row (coupons.reservation_id / reserved_until), so every
# redeem path sees it in the read it makes anyway; this row is the hold's record.
reservations = Table(
    "reservations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("order", JSONDoc, nullable=False),  # the order as given (amount, lines)
    Column("store_id", ForeignKey("stores.id"), nullable=False),
    Column("store_code", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("codes", JSONDoc, nullable=False),
    Column("status", String(16), nullable=False),  # held | confirmed | released | expired
    Column("held_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("order_redemption_id", String(40), nullable=True),  # when confirmed
    Column("api_key_id", String(40), nullable=False),
    Index("ix_reservations_status_expires", "status", "expires_at"),
)

# Offers to pass a coupon to a friend (转赠). At most one open offer per coupon.
coupon_transfers = Table(
    "coupon_transfers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("coupon_id", ForeignKey("coupons.id"), nullable=False),
    Column("token", String(64), nullable=False, unique=True),
    Column("from_customer_id", ForeignKey("customers.id"), nullable=False),
    Column("to_customer_id", ForeignKey("customers.id"), nullable=True),
    Column("status", String(16), nullable=False),  # offered | accepted | cancelled | expired
    Column("offered_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("api_key_id", String(40), nullable=False),
    Index("ix_coupon_transfers_coupon", "coupon_id", "offered_at"),
)
Index(
    "uq_coupon_transfers_open",
    coupon_transfers.c.coupon_id,
    unique=True,
    sqlite_where=coupon_transfers.c.status == "offered",
    postgresql_where=coupon_transfers.c.status == "offered",
)

# Ed25519 keys that sign coupon tokens (what a coupon's QR code carries) so terminals
# verify them without a network. One ``active`` key per merchant signs; ``retired``
# keys stay published for verification until the coupons they signed have expired.
# ``private_key`` is stored encrypted with the hub's secret key (hub.secrets).
offline_signing_keys = Table(
    "offline_signing_keys",
    metadata,
    Column("id", String(40), primary_key=True),  # the key id (kid) tokens name
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("algorithm", String(16), nullable=False),  # Ed25519
    Column("public_key", String(64), nullable=False),  # raw 32 bytes, base64url
    Column("private_key", JSONDoc, nullable=False),  # encrypted (hub.secrets)
    Column("status", String(16), nullable=False),  # active | retired
    Column("created_at", UTCDateTime(), nullable=False),
    Column("retired_at", UTCDateTime(), nullable=True),
    Index("ix_offline_signing_keys_merchant", "merchant_id", "created_at"),
)
Index(
    "uq_offline_signing_keys_active",
    offline_signing_keys.c.merchant_id,
    unique=True,
    sqlite_where=offline_signing_keys.c.status == "active",
    postgresql_where=offline_signing_keys.c.status == "active",
)

# An offline redemption synced late whose coupon had been redeemed elsewhere meanwhile:
# recorded (never dropped, never counted as a redemption), alerted, emitted, for the
# merchant to settle. One per synced item: (idempotency_scope, idempotency_key) is the
# item's Idempotency-Key, so a second sync of the same item finds it and adds nothing.
offline_conflicts = Table(
    "offline_conflicts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("coupon_id", ForeignKey("coupons.id"), nullable=False),
    Column("store_id", ForeignKey("stores.id"), nullable=False),
    Column("store_code", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("terminal_id", String(64), nullable=True),
    Column("api_key_id", String(40), nullable=False),
    Column("idempotency_scope", String(80), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("order", JSONDoc, nullable=False),
    Column("discount", BigInteger, nullable=True),  # what the offline receipt granted
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("existing_redemption_id", String(40), nullable=True),  # the one that won
    Column("status", String(16), nullable=False),  # open | settled
    Column("settled_at", UTCDateTime(), nullable=True),
    Column("settlement", Text, nullable=True),
    UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_offline_conflicts_key"),
    Index("ix_offline_conflicts_merchant", "merchant_id", "recorded_at", "id"),
)

# Redemptions reversed, by when (reconciliation exports list reversals by their own
# time). Partial: a redeem inserts a NULL reversed_at, which this index never holds, so
# the hot path pays nothing for it.
Index(
    "ix_redemptions_reversed",
    redemptions.c.merchant_id,
    redemptions.c.reversed_at,
    sqlite_where=redemptions.c.reversed_at.isnot(None),
    postgresql_where=redemptions.c.reversed_at.isnot(None),
)
# Coupons by the end of their window (expiry reminders find the ones closing soon).
Index("ix_coupons_merchant_valid_until", coupons.c.merchant_id, coupons.c.valid_until)

# Orders reported to the hub (POST /v1/sales, with or without a coupon): what analytics
# needs for the average order without a coupon and for repeat purchases. A redemption's
# order is a coupon order whether or not it is reported here. One row per order id.
sales = Table(
    "sales",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("store_id", ForeignKey("stores.id"), nullable=False),
    Column("store_code", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=True),
    Column("amount", BigInteger, nullable=False),  # fen, what the customer paid
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("api_key_id", String(40), nullable=False),
    # a coupon was redeemed on this order (a redemption with its order id within a day
    # of it when reported): analytics counts the order through its redemption, not again
    Column("coupon_order", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("merchant_id", "order_id", name="uq_sales_merchant_order"),
    Index("ix_sales_merchant_time", "merchant_id", "occurred_at"),
)

# ---- analytics rollups: maintained off the redeem path by hub.services.rollup, an
# internal consumer of the outbox (events in seq order). ``day`` columns are the
# merchant's local calendar day. '' stands for "none" in key columns (a coupon issued
# with no channel, an event with no store) so every key column is NOT NULL.

# How far the consumer has read: every event with seq <= ``seq`` is applied (or was a
# gap older than the consumer's bound: a rolled-back transaction's seq).
analytics_progress = Table(
    "analytics_progress",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Events above the watermark already applied (a gap below them is still open: its
# transaction may yet commit). Rows at or below the watermark are deleted.
analytics_applied = Table(
    "analytics_applied",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
)

# Activity per local day, store, channel and template.
analytics_daily = Table(
    "analytics_daily",
    metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("store_code", String(64), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("template_id", String(40), primary_key=True),
    Column("issued", BigInteger, nullable=False, default=0),
    Column("claimed", BigInteger, nullable=False, default=0),
    Column("redeemed", BigInteger, nullable=False, default=0),
    Column("reversed", BigInteger, nullable=False, default=0),
    Column("redeemed_discount", BigInteger, nullable=False, default=0),
    Column("redeemed_order_amount", BigInteger, nullable=False, default=0),
    Column("reversed_discount", BigInteger, nullable=False, default=0),
    Column("reversed_order_amount", BigInteger, nullable=False, default=0),
)

# Cohorts: coupons by the local day they were issued (and their template and the channel
# they were issued through), and what became of them. ``store_code`` is '' on the rows
# that count issued and claimed coupons (a coupon is issued to no store) and the store
# that redeemed them on the rows that count redemptions.
analytics_cohorts = Table(
    "analytics_cohorts",
    metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("issue_day", Date, primary_key=True),
    Column("template_id", String(40), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("store_code", String(64), primary_key=True),
    Column("issued", BigInteger, nullable=False, default=0),
    Column("claimed", BigInteger, nullable=False, default=0),
    Column("redeemed", BigInteger, nullable=False, default=0),
)

# A cohort's redemptions by whole days from issue to redemption (redeemed within N
# days; median and p90 of the time to redemption), by the store that redeemed them.
analytics_lags = Table(
    "analytics_lags",
    metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("issue_day", Date, primary_key=True),
    Column("template_id", String(40), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("store_code", String(64), primary_key=True),
    Column("lag_days", Integer, primary_key=True, autoincrement=False),
    Column("redeemed", BigInteger, nullable=False, default=0),
)

def _monthly(daily: Table, name: str) -> Table:
    """The same counts per local *month* (the date column holds the month's first day):
    long ranges read whole months from it and only their cut edges from ``daily``."""
    return Table(name, metadata, *(Column(c.name, c.type, primary_key=c.primary_key,
                 nullable=c.nullable, autoincrement=False, default=c.default)
                 for c in daily.c))  # fmt: skip


analytics_monthly = _monthly(analytics_daily, "analytics_monthly")
analytics_cohorts_monthly = _monthly(analytics_cohorts, "analytics_cohorts_monthly")
analytics_lags_monthly = _monthly(analytics_lags, "analytics_lags_monthly")

# Per customer, local day, store and channel: orders and what they came to (the orders
# of a reported sale without a coupon at its store and channel; a redemption's at its
# own). The repeat purchase rollup below is kept from these rows.
analytics_customer_days = Table(
    "analytics_customer_days",
    metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("customer_id", String(40), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("store_code", String(64), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("orders", BigInteger, nullable=False, default=0),
    Column("order_amount", BigInteger, nullable=False, default=0),
    Column("coupon_orders", BigInteger, nullable=False, default=0),
    Column("coupon_order_amount", BigInteger, nullable=False, default=0),
)

# Reported orders without a coupon per local day, store and channel (the average order
# without a coupon).
analytics_sales = Table(
    "analytics_sales",
    metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("store_code", String(64), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("orders", BigInteger, nullable=False, default=0),
    Column("amount", BigInteger, nullable=False, default=0),
)

# Open claims: coupons with a holder and status issued, per the local date of their last
# usable moment (valid_until - 1 us); kept by the outbox consumer so ``expiring`` reads no
# coupons heap (an index with ``status`` would cost the redeem path its HOT updates).
analytics_open_claims = Table(
    "analytics_open_claims",
    metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("last_day", Date, primary_key=True),
    Column("template_id", String(40), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("claims", BigInteger, nullable=False, default=0),
)

# Repeat purchase: coupon customer-days (a customer with a net redemption at the store
# through the channel that local day) and how many of them the customer followed with
# another order (any store, any channel) on a later local day within 7, 14 and 30 days.
analytics_repeat = Table(
    "analytics_repeat",
    metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("store_code", String(64), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("coupon_days", BigInteger, nullable=False, default=0),
    Column("repeated_7", BigInteger, nullable=False, default=0),
    Column("repeated_14", BigInteger, nullable=False, default=0),
    Column("repeated_30", BigInteger, nullable=False, default=0),
)

# Expiry reminders (coupon.expiring): one row per coupon and reminder, made in the
# transaction that emits the event, so each reminder is sent once whatever the number
# of workers and restarts.
coupon_reminders = Table(
    "coupon_reminders",
    metadata,
    Column("coupon_id", ForeignKey("coupons.id"), primary_key=True),
    Column("days_before", Integer, primary_key=True, autoincrement=False),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=False),
)

# --- staff on a phone (issue 15): identities, single-use sign-in codes, shift sessions ----

# A store's staff member. An admin creates and disables them; each acts with the store
# role's rights for their store only, through a session (below).
staff = Table(
    "staff",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("store_id", ForeignKey("stores.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("external_id", String(128), nullable=True),  # the merchant's own id (HR number)
    Column("status", String(16), nullable=False),  # active | disabled
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled_at", UTCDateTime(), nullable=True),
    UniqueConstraint("merchant_id", "external_id", name="uq_staff_merchant_external"),
    Index("ix_staff_store", "store_id", "created_at"),
)

# A single-use sign-in code (8 characters, valid 10 minutes); only its SHA-256 is kept.
staff_sign_in_codes = Table(
    "staff_sign_in_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("staff_id", ForeignKey("staff.id"), nullable=False),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    Index("ix_staff_sign_in_codes_staff", "staff_id"),
)

# A shift session: what a sign-in code is exchanged for. The bearer token (hs_…) is
# never stored, only its SHA-256; it ends at expires_at (the shift's end), on sign-out
# or when the staff member is disabled (ended_at).
staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("staff_id", ForeignKey("staff.id"), nullable=False),
    Column("merchant_id", ForeignKey("merchants.id"), nullable=False),
    Column("store_id", ForeignKey("stores.id"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    Index("ix_staff_sessions_staff", "staff_id"),
)

"""insight: orders reported without a coupon (sales), analytics rollups (daily, and
monthly for long ranges) and their consumer's progress, expiry reminders sent, indexes
for reversals by time and coupons by the end of their window

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _counts(*names: str) -> list[sa.Column]:
    return [sa.Column(n, sa.BigInteger(), nullable=False) for n in names]


def _daily(name: str) -> None:
    op.create_table(
        name,
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("store_code", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        *_counts(
            "issued",
            "claimed",
            "redeemed",
            "reversed",
            "redeemed_discount",
            "redeemed_order_amount",
            "reversed_discount",
            "reversed_order_amount",
        ),
        sa.PrimaryKeyConstraint("merchant_id", "day", "store_code", "channel", "template_id"),
    )


def _cohorts(name: str) -> None:
    op.create_table(
        name,
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("issue_day", sa.Date(), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("store_code", sa.String(length=64), nullable=False),
        *_counts("issued", "claimed", "redeemed"),
        sa.PrimaryKeyConstraint("merchant_id", "issue_day", "template_id", "channel", "store_code"),
    )


def _lags(name: str) -> None:
    op.create_table(
        name,
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("issue_day", sa.Date(), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("store_code", sa.String(length=64), nullable=False),
        sa.Column("lag_days", sa.Integer(), autoincrement=False, nullable=False),
        *_counts("redeemed"),
        sa.PrimaryKeyConstraint(
            "merchant_id", "issue_day", "template_id", "channel", "store_code", "lag_days"
        ),
    )


def upgrade() -> None:
    op.create_index(
        "ix_redemptions_reversed",
        "redemptions",
        ["merchant_id", "reversed_at"],
        sqlite_where=sa.text("reversed_at IS NOT NULL"),
        postgresql_where=sa.text("reversed_at IS NOT NULL"),
    )
    op.create_index("ix_coupons_merchant_valid_until", "coupons", ["merchant_id", "valid_until"])
    op.create_table(
        "sales",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("store_id", sa.String(length=40), nullable=False),
        sa.Column("store_code", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("api_key_id", sa.String(length=40), nullable=False),
        sa.Column("coupon_order", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"]),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant_id", "order_id", name="uq_sales_merchant_order"),
    )
    op.create_index("ix_sales_merchant_time", "sales", ["merchant_id", "occurred_at"])
    op.create_table(
        "analytics_progress",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "analytics_applied",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    for daily, cohorts, lags in (
        ("analytics_daily", "analytics_cohorts", "analytics_lags"),
        ("analytics_monthly", "analytics_cohorts_monthly", "analytics_lags_monthly"),
    ):
        _daily(daily)
        _cohorts(cohorts)
        _lags(lags)
    op.create_table(
        "analytics_customer_days",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("store_code", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        *_counts("orders", "order_amount", "coupon_orders", "coupon_order_amount"),
        sa.PrimaryKeyConstraint("merchant_id", "customer_id", "day", "store_code", "channel"),
    )
    op.create_table(
        "analytics_sales",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("store_code", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        *_counts("orders", "amount"),
        sa.PrimaryKeyConstraint("merchant_id", "day", "store_code", "channel"),
    )
    op.create_table(
        "analytics_open_claims",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        *_counts("claims"),
        sa.PrimaryKeyConstraint("merchant_id", "last_day", "template_id", "channel"),
    )
    op.create_table(
        "analytics_repeat",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("store_code", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        *_counts("coupon_days", "repeated_7", "repeated_14", "repeated_30"),
        sa.PrimaryKeyConstraint("merchant_id", "day", "store_code", "channel"),
    )
    op.create_table(
        "coupon_reminders",
        sa.Column("coupon_id", sa.String(length=40), nullable=False),
        sa.Column("days_before", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["coupon_id"], ["coupons.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("coupon_id", "days_before"),
    )


def downgrade() -> None:
    for table in (
        "coupon_reminders",
        "analytics_repeat",
        "analytics_open_claims",
        "analytics_sales",
        "analytics_customer_days",
        "analytics_lags_monthly",
        "analytics_cohorts_monthly",
        "analytics_monthly",
        "analytics_lags",
        "analytics_cohorts",
        "analytics_daily",
        "analytics_applied",
        "analytics_progress",
        "sales",
    ):
        op.drop_table(table)
    op.drop_index("ix_coupons_merchant_valid_until", table_name="coupons")
    op.drop_index("ix_redemptions_reversed", table_name="redemptions")

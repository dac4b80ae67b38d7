"""guessing defence and repeat-attempt alerts: failed_attempts, throttle_blocks,
code_attempts, repeat_alerts; a partial index for reading alert.raised events

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ALERTS_ONLY = sa.text("type = 'alert.raised'")


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "failed_attempts",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_failed_attempts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_attempts")),
    )
    with op.batch_alter_table("failed_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_failed_attempts_scope", ["scope", "at"], unique=False)

    op.create_table(
        "throttle_blocks",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_throttle_blocks_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_throttle_blocks")),
    )

    op.create_table(
        "code_attempts",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("coupon_id", sa.String(length=40), nullable=False),
        sa.Column("store_code", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_code_attempts_coupon_id_coupons")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_code_attempts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_attempts")),
    )
    with op.batch_alter_table("code_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_code_attempts_coupon", ["coupon_id", "at"], unique=False)

    op.create_table(
        "repeat_alerts",
        sa.Column("coupon_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_repeat_alerts_coupon_id_coupons")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_repeat_alerts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("coupon_id", name=op.f("pk_repeat_alerts")),
    )

    # Partial: only alert rows are indexed, so the hot-path outbox inserts pay nothing.
    op.create_index(
        "ix_outbox_events_alerts",
        "outbox_events",
        ["merchant_id", "occurred_at", "id"],
        unique=False,
        sqlite_where=_ALERTS_ONLY,
        postgresql_where=_ALERTS_ONLY,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_events_alerts", table_name="outbox_events")
    op.drop_table("repeat_alerts")
    with op.batch_alter_table("code_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_code_attempts_coupon")
    op.drop_table("code_attempts")
    op.drop_table("throttle_blocks")
    with op.batch_alter_table("failed_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_failed_attempts_scope")
    op.drop_table("failed_attempts")

"""staff on a phone: staff members, single-use sign-in codes, shift sessions; who
redeemed, reversed and acted (redemptions, order redemptions, the audit log); guessing
scopes no merchant owns (wrong sign-in codes from an address)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "staff",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("store_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        _when("created_at"),
        _when("disabled_at", nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant_id", "external_id", name="uq_staff_merchant_external"),
    )
    op.create_index("ix_staff_store", "staff", ["store_id", "created_at"])
    op.create_table(
        "staff_sign_in_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _when("used_at", nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_index("ix_staff_sign_in_codes_staff", "staff_sign_in_codes", ["staff_id"])
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("store_id", sa.String(length=40), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _when("ended_at", nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_staff_sessions_token_hash"),
    )
    op.create_index("ix_staff_sessions_staff", "staff_sessions", ["staff_id"])
    op.add_column("redemptions", sa.Column("staff_id", sa.String(length=40), nullable=True))
    op.add_column(
        "redemptions", sa.Column("reversed_staff_id", sa.String(length=40), nullable=True)
    )
    op.create_index(
        "ix_redemptions_staff_time",
        "redemptions",
        ["staff_id", "occurred_at", "id"],
        sqlite_where=sa.text("staff_id IS NOT NULL"),
        postgresql_where=sa.text("staff_id IS NOT NULL"),
    )
    op.add_column(
        "order_redemptions", sa.Column("staff_id", sa.String(length=40), nullable=True)
    )
    op.add_column("audit_log", sa.Column("staff_id", sa.String(length=40), nullable=True))
    # wrong sign-in codes are counted per address before any merchant is known
    for table in ("failed_attempts", "throttle_blocks"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "merchant_id", existing_type=sa.String(length=40), nullable=True
            )


def downgrade() -> None:
    for table in ("failed_attempts", "throttle_blocks"):
        op.execute(sa.text(f"DELETE FROM {table} WHERE merchant_id IS NULL"))
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "merchant_id", existing_type=sa.String(length=40), nullable=False
            )
    op.drop_column("audit_log", "staff_id")
    op.drop_column("order_redemptions", "staff_id")
    op.drop_index("ix_redemptions_staff_time", table_name="redemptions")
    op.drop_column("redemptions", "reversed_staff_id")
    op.drop_column("redemptions", "staff_id")
    op.drop_index("ix_staff_sessions_staff", table_name="staff_sessions")
    op.drop_table("staff_sessions")
    op.drop_index("ix_staff_sign_in_codes_staff", table_name="staff_sign_in_codes")
    op.drop_table("staff_sign_in_codes")
    op.drop_index("ix_staff_store", table_name="staff")
    op.drop_table("staff")

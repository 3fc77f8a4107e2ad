"""Console mode state, backup policy, the client_order_id counter, journal acknowledgement time.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journal") as batch:
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "console_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("mode_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mode_reason", sa.Text(), nullable=True),
        sa.Column("forced_mode", sa.String(length=16), nullable=True),
        sa.Column("forced_by", sa.String(length=64), nullable=True),
        sa.Column("forced_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_console_state_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_state")),
    )
    op.create_table(
        "policy",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("allow_new_exposure", sa.Boolean(), nullable=False),
        sa.Column("killswitch", sa.Boolean(), nullable=False),
        sa.Column("stale_after_minutes", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_policy_singleton")),
        sa.CheckConstraint("stale_after_minutes > 0", name=op.f("ck_policy_stale_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy")),
    )
    op.create_table(
        "order_id_counter",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_order_id_counter_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_id_counter")),
    )


def downgrade() -> None:
    op.drop_table("order_id_counter")
    op.drop_table("policy")
    op.drop_table("console_state")
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("acknowledged_at")

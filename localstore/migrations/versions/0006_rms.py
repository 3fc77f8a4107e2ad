"""Risk rules (sync.rms): a client's MTM-loss limit from the BOD, the rules run once per day,
each client's MTM alert level and square-off mode.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("client_limits") as batch:
        batch.add_column(sa.Column("max_mtm_loss", sa.BigInteger(), nullable=True))
    op.create_table(
        "rms_runs",
        sa.Column("trading_date", sa.Date(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("trading_date", "rule", "scope", name=op.f("pk_rms_runs")),
    )
    op.create_table(
        "rms_client_state",
        sa.Column("trading_date", sa.Date(), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("alert_level", sa.Integer(), nullable=False),
        sa.Column("squareoff_mode", sa.Boolean(), nullable=False),
        sa.Column("mtm", sa.BigInteger(), nullable=True),
        sa.Column("max_mtm_loss", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("trading_date", "client_id", name=op.f("pk_rms_client_state")),
    )


def downgrade() -> None:
    op.drop_table("rms_client_state")
    op.drop_table("rms_runs")
    with op.batch_alter_table("client_limits") as batch:
        batch.drop_column("max_mtm_loss")

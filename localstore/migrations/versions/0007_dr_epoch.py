"""The DR tier: the highest site epoch this console has seen (backend_client.sites fences off a
site that says primary at a lower one).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("console_state") as batch:
        batch.add_column(sa.Column("highest_epoch", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("console_state") as batch:
        batch.drop_column("highest_epoch")

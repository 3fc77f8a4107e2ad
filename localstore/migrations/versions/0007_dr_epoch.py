"""The DR tier: the highest site epoch this console has seen (backend_client.sites fences off a
site that says primary at a lower one), and the site each journal entry was last sent to (a
lost answer there is not settled by another site's "not found": sync.replay).

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
    with op.batch_alter_table("journal") as batch:
        batch.add_column(sa.Column("sent_to", sa.String(length=2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("sent_to")
    with op.batch_alter_table("console_state") as batch:
        batch.drop_column("highest_epoch")

"""Index the journal by position, for the backup checks' pending-intent lookup.

Every backup PLACE reads the unfinished intents of its own position (client,
exchange, symbol, product) inside its write transaction; without this index that
read scanned every unfinished entry, so each action got slower as the journal grew.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_journal_position", "journal", ["client_id", "exchange", "symbol", "product"])


def downgrade() -> None:
    op.drop_index("ix_journal_position", table_name="journal")

"""Drop login_throttle: offline login no longer counts failures in the store.

Whoever could edit the store could delete or rewrite its row and reset the count
(issue 10).  Password attempts and the lockout are now kept in the console's trust
anchors, outside the store (localstore.credentials); a count left in this table is
not carried over (an upgrade is an online act: the online login that follows lifts
any lock anyway).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("login_throttle")


def downgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_allowed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_login_throttle")),
    )

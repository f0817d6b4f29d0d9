"""Audience: the last coalesced audience count of each call.

`calls.audience_count` and `calls.audience_at` hold the count the last
`call.audience_updated` carried and when it was logged, so every node keeps
to one such event per call per second and sends one only when the count
changed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(
            sa.Column("audience_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("audience_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("audience_at")
        batch.drop_column("audience_count")

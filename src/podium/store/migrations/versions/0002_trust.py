"""Trust: participants' presence, revoked tokens, calls by creator.

`participants.seen_at` is when a connection of the participant was last seen
by any node (participants without one for the grace period leave the call);
existing rows start from their `joined_at`. `revoked_tokens` holds revoked
token ids until the tokens expire. The index on `calls(created_by, created_at)`
serves the calls-per-hour limit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("participants", sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE participants SET seen_at = joined_at")
    with op.batch_alter_table("participants") as batch:
        batch.alter_column("seen_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_participants_seen_at", "participants", ["seen_at"])
    op.create_index("ix_calls_created_by_created_at", "calls", ["created_by", "created_at"])
    op.create_table(
        "revoked_tokens",
        sa.Column("token_id", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("token_id", name="pk_revoked_tokens"),
    )
    op.create_index("ix_revoked_tokens_revoked_at", "revoked_tokens", ["revoked_at"])
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_table("revoked_tokens")
    op.drop_index("ix_calls_created_by_created_at", "calls")
    op.drop_index("ix_participants_seen_at", "participants")
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("seen_at")

"""Initial schema: call types, calls, members, participants, blocks, requests, events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _call_cid() -> sa.Column[str]:
    return sa.Column("call_cid", sa.String(), nullable=False)


def _call_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["call_cid"], ["calls.cid"], name=f"fk_{table}_call_cid_calls", ondelete="CASCADE"
    )


def _utc(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "call_types",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("grants", sa.JSON(), nullable=False),
        sa.Column("requestable", sa.JSON(), nullable=False),
        sa.Column("backstage", sa.Boolean(), nullable=False),
        sa.Column("request_ttl_s", sa.Integer(), nullable=False),
        sa.Column("request_cooldown_s", sa.Integer(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_call_types"),
    )
    op.create_table(
        "calls",
        sa.Column("cid", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("phase", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        _utc("created_at"),
        _utc("updated_at"),
        _utc("ended_at", nullable=True),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cid", name="pk_calls"),
        sa.ForeignKeyConstraint(["type"], ["call_types.name"], name="fk_calls_type_call_types"),
    )
    op.create_index("ix_calls_phase_created_at", "calls", ["phase", "created_at"])
    op.create_index("ix_calls_created_at", "calls", ["created_at"])
    op.create_table(
        "members",
        _call_cid(),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("grants", sa.JSON(), nullable=False),
        sa.Column("revokes", sa.JSON(), nullable=False),
        _utc("created_at"),
        _utc("updated_at"),
        sa.PrimaryKeyConstraint("call_cid", "user_id", name="pk_members"),
        _call_fk("members"),
    )
    op.create_index("ix_members_user_id", "members", ["user_id"])
    op.create_table(
        "participants",
        _call_cid(),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("image", sa.String(), nullable=True),
        _utc("joined_at"),
        sa.PrimaryKeyConstraint("call_cid", "user_id", name="pk_participants"),
        _call_fk("participants"),
    )
    op.create_table(
        "blocks",
        _call_cid(),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("blocked_by", sa.String(), nullable=False),
        _utc("created_at"),
        sa.PrimaryKeyConstraint("call_cid", "user_id", name="pk_blocks"),
        _call_fk("blocks"),
    )
    op.create_table(
        "permission_requests",
        _call_cid(),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        _utc("created_at"),
        _utc("expires_at"),
        sa.Column("resolved_by", sa.String(), nullable=True),
        _utc("resolved_at", nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("call_cid", "id", name="pk_permission_requests"),
        _call_fk("permission_requests"),
    )
    op.create_index(
        "ix_permission_requests_state_expires_at",
        "permission_requests",
        ["state", "expires_at"],
    )
    op.create_index(
        "ix_permission_requests_call_cid_state", "permission_requests", ["call_cid", "state"]
    )
    op.create_index(
        "ix_permission_requests_call_cid_user_id", "permission_requests", ["call_cid", "user_id"]
    )
    op.create_table(
        "events",
        _call_cid(),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        _utc("created_at"),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("refresh", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("call_cid", "seq", name="pk_events"),
        _call_fk("events"),
    )


def downgrade() -> None:
    for table in (
        "events",
        "permission_requests",
        "blocks",
        "participants",
        "members",
        "calls",
        "call_types",
    ):
        op.drop_table(table)

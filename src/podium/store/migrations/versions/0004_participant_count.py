"""Participant count: how many have joined each call, kept by the database.

The audience count of a call of ten thousand listeners must not cost a scan
of ten thousand rows on every join. `calls.participant_count` counts the
call's rows of `participants`; triggers on that table keep it exact in the
same transaction as each insert and delete, whichever code path or node
makes them, so the audience is that count less the few stage participants.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BACKFILL = (
    "UPDATE calls SET participant_count = "
    "(SELECT count(*) FROM participants WHERE participants.call_cid = calls.cid)"
)
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER participants_count_insert AFTER INSERT ON participants BEGIN "
    "UPDATE calls SET participant_count = participant_count + 1 WHERE cid = NEW.call_cid; END",
    "CREATE TRIGGER participants_count_delete AFTER DELETE ON participants BEGIN "
    "UPDATE calls SET participant_count = participant_count - 1 WHERE cid = OLD.call_cid; END",
)
_POSTGRES_TRIGGER = (
    """
    CREATE FUNCTION podium_count_participants() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE calls SET participant_count = participant_count + 1 WHERE cid = NEW.call_cid;
            RETURN NEW;
        END IF;
        UPDATE calls SET participant_count = participant_count - 1 WHERE cid = OLD.call_cid;
        RETURN OLD;
    END
    $$
    """,
    "CREATE TRIGGER participants_count AFTER INSERT OR DELETE ON participants "
    "FOR EACH ROW EXECUTE FUNCTION podium_count_participants()",
)


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(
            sa.Column("participant_count", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(_BACKFILL)
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in _SQLITE_TRIGGERS if sqlite else _POSTGRES_TRIGGER:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER participants_count_insert")
        op.execute("DROP TRIGGER participants_count_delete")
    else:
        op.execute("DROP TRIGGER participants_count ON participants")
        op.execute("DROP FUNCTION podium_count_participants()")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("participant_count")

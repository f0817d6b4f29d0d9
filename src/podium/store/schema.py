"""Tables of the SQL store (SQLAlchemy Core) and how records map to their rows.

Capability sets are JSON lists of wire names so a row reads the same in both
databases; migrations in `migrations/versions` must create exactly these tables.
Columns are named after record fields, so most conversions only touch the
fields whose types differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.types import TypeDecorator

from podium.bus.events import Audience, CallEvent
from podium.core.call_types import CallType
from podium.core.capabilities import Capabilities, Capability, sorted_names
from podium.core.json_values import MAX_DEPTH, sanitized
from podium.core.policy import CallPhase
from podium.core.requests import PermissionRequest, RequestState
from podium.store.records import BlockRecord, CallRecord, MemberRecord, ParticipantRecord


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that only accepts aware values and returns UTC.

    SQLite drops the offset when storing and gives naive values back, so values
    are converted to UTC on the way in and tagged as UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store needs timezone-aware values")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _call_fk() -> ForeignKey:
    return ForeignKey("calls.cid", ondelete="CASCADE")


call_types = Table(
    "call_types",
    metadata,
    Column("name", String, primary_key=True),
    Column("grants", JSON, nullable=False),
    Column("requestable", JSON, nullable=False),
    Column("backstage", Boolean, nullable=False),
    Column("request_ttl_s", Integer, nullable=False),
    Column("request_cooldown_s", Integer, nullable=False),
    Column("builtin", Boolean, nullable=False),
)

calls = Table(
    "calls",
    metadata,
    Column("cid", String, primary_key=True),
    Column("type", String, ForeignKey("call_types.name"), nullable=False),
    Column("id", String, nullable=False),
    Column("phase", String, nullable=False),
    Column("created_by", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("custom", JSON, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("audience_count", Integer, nullable=False, server_default="0"),
    Column("audience_at", UtcDateTime, nullable=True),
    # Kept by triggers on `participants` (migration 0004); Podium never writes it.
    Column("participant_count", Integer, nullable=False, server_default="0"),
    Index(None, "phase", "created_at"),
    Index(None, "created_at"),
    Index(None, "created_by", "created_at"),
)

members = Table(
    "members",
    metadata,
    Column("call_cid", String, _call_fk(), nullable=False),
    Column("user_id", String, nullable=False),
    Column("role", String, nullable=False),
    Column("grants", JSON, nullable=False),
    Column("revokes", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("call_cid", "user_id"),
    Index(None, "user_id"),
)

participants = Table(
    "participants",
    metadata,
    Column("call_cid", String, _call_fk(), nullable=False),
    Column("user_id", String, nullable=False),
    Column("name", String, nullable=True),
    Column("image", String, nullable=True),
    Column("joined_at", UtcDateTime, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("call_cid", "user_id"),
    Index(None, "seen_at"),
)

blocks = Table(
    "blocks",
    metadata,
    Column("call_cid", String, _call_fk(), nullable=False),
    Column("user_id", String, nullable=False),
    Column("blocked_by", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("call_cid", "user_id"),
)

permission_requests = Table(
    "permission_requests",
    metadata,
    Column("call_cid", String, _call_fk(), nullable=False),
    Column("id", String, nullable=False),
    Column("user_id", String, nullable=False),
    Column("permissions", JSON, nullable=False),
    Column("state", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("resolved_by", String, nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("reason", String, nullable=True),
    PrimaryKeyConstraint("call_cid", "id"),
    Index(None, "call_cid", "state"),
    Index(None, "call_cid", "user_id"),
    Index(None, "state", "expires_at"),
)

events = Table(
    "events",
    metadata,
    Column("call_cid", String, _call_fk(), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("audience", JSON, nullable=False),
    Column("refresh", Boolean, nullable=False),
    PrimaryKeyConstraint("call_cid", "seq"),
)


revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("token_id", String, primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=False),
    Column("revoked_by", String, nullable=False),
    Index(None, "revoked_at"),
    Index(None, "expires_at"),
)


def record_values(record: Any, **converted: Any) -> dict[str, Any]:
    """A record's fields as column values, with `converted` replacing some."""
    return {f.name: getattr(record, f.name) for f in fields(record)} | converted


def _columns(row: Row[Any], **converted: Any) -> dict[str, Any]:
    return dict(row._mapping) | converted


def _caps(names: Iterable[str]) -> Capabilities:
    return frozenset(map(Capability, names))


def call_type_values(call_type: CallType) -> dict[str, Any]:
    return {
        "name": call_type.name,
        "grants": {role: sorted_names(caps) for role, caps in call_type.grants.items()},
        "requestable": sorted_names(call_type.requestable),
        "backstage": call_type.backstage,
        "request_ttl_s": call_type.request_ttl_s,
        "request_cooldown_s": call_type.request_cooldown_s,
        "builtin": call_type.builtin,
    }


def call_type_from_row(row: Row[Any]) -> CallType:
    return CallType(
        name=row.name,
        grants={role: _caps(names) for role, names in row.grants.items()},
        requestable=_caps(row.requestable),
        backstage=row.backstage,
        request_ttl_s=row.request_ttl_s,
        request_cooldown_s=row.request_cooldown_s,
        builtin=row.builtin,
    )


def call_values(call: CallRecord) -> dict[str, Any]:
    values = record_values(call, phase=call.phase.value)
    del values["participant_count"]  # the triggers' to keep
    return values


def call_from_row(row: Row[Any]) -> CallRecord:
    return CallRecord(**_columns(row, phase=CallPhase(row.phase)))


def member_values(member: MemberRecord) -> dict[str, Any]:
    grants, revokes = sorted_names(member.grants), sorted_names(member.revokes)
    return record_values(member, grants=grants, revokes=revokes)


def member_from_row(row: Row[Any]) -> MemberRecord:
    return MemberRecord(**_columns(row, grants=_caps(row.grants), revokes=_caps(row.revokes)))


def participant_from_row(row: Row[Any]) -> ParticipantRecord:
    return ParticipantRecord(**_columns(row))


def block_from_row(row: Row[Any]) -> BlockRecord:
    return BlockRecord(**_columns(row))


def request_values(request: PermissionRequest) -> dict[str, Any]:
    permissions = sorted_names(request.permissions)
    return record_values(request, permissions=permissions, state=request.state.value)


def request_from_row(row: Row[Any]) -> PermissionRequest:
    converted = _columns(row, permissions=_caps(row.permissions), state=RequestState(row.state))
    return PermissionRequest(**converted)


#: A logged payload holds a call's `custom` two levels down (`{"call": {"custom": …}}`),
#: so repairing it at this depth leaves a valid `custom` whole.
PAYLOAD_DEPTH = MAX_DEPTH + 2


def event_from_row(row: Row[Any]) -> CallEvent:
    """A logged event; a payload an older version stored unsafely is repaired, so it can be sent."""
    payload = sanitized(row.payload, PAYLOAD_DEPTH)
    return CallEvent(**_columns(row, payload=payload, audience=Audience.from_dict(row.audience)))

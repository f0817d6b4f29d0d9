"""One SQL transaction of the `Store`: every read and write, in SQLAlchemy Core.

The same statements run on SQLite and PostgreSQL; where the dialects differ
(upserts, "insert unless present") `_upsert` and `insert_missing` choose.
Nothing commits early: `SqlStore` opens and ends the transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    Row,
    Select,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from podium.bus.events import CallEvent, EventDraft
from podium.core.call_types import CallType
from podium.core.policy import CallPhase
from podium.core.requests import PermissionRequest, RequestState
from podium.store import schema
from podium.store.cache import CallTypeCache
from podium.store.connections import SqlConnection
from podium.store.records import (
    BlockRecord,
    CallRecord,
    MemberRecord,
    ParticipantRecord,
    RevokedToken,
)
from podium.store.schema import (
    blocks,
    call_types,
    calls,
    events,
    members,
    participants,
    permission_requests,
    revoked_tokens,
)

# Ids per `IN (...)` list: well under SQLite's and asyncpg's bound-parameter limits.
_IN_CHUNK: Final = 500


class SqlTransaction:
    """One database transaction: every method runs in it, nothing commits early."""

    def __init__(self, conn: SqlConnection, *, writable: bool, call_types: CallTypeCache) -> None:
        self._conn = conn
        self._writable = writable
        self._call_types = call_types

    async def _write(
        self, statement: Executable, params: Sequence[dict[str, Any]] | None = None
    ) -> CursorResult[Any]:
        if not self._writable:
            raise RuntimeError("write in a read transaction; use store.write()")
        return await self._conn.execute(statement, params)

    async def _delete(self, table: Table, where: ColumnElement[bool]) -> bool:
        return (await self._write(delete(table).where(where))).rowcount > 0

    async def _one(self, statement: Executable) -> Row[Any] | None:
        return (await self._conn.execute(statement)).first()

    async def _all(self, statement: Executable) -> Sequence[Row[Any]]:
        return (await self._conn.execute(statement)).all()

    # call types

    async def get_call_type(self, name: str) -> CallType | None:
        cached = self._call_types.get(name)
        if cached is not None:
            return cached
        row = await self._one(select(call_types).where(call_types.c.name == name))
        found = schema.call_type_from_row(row) if row else None
        if found is not None:
            self._call_types.put(found)
        return found

    async def list_call_types(self) -> list[CallType]:
        rows = await self._all(select(call_types).order_by(call_types.c.name))
        return [schema.call_type_from_row(row) for row in rows]

    async def put_call_type(self, call_type: CallType) -> None:
        self._call_types.forget(call_type.name)
        row = schema.call_type_values(call_type)
        await self._write(_upsert(self._conn, call_types, row, ["name"]), [row])

    # calls

    async def get_call(self, cid: str) -> CallRecord | None:
        row = await self._one(select(calls).where(calls.c.cid == cid))
        return schema.call_from_row(row) if row else None

    async def insert_call(self, call: CallRecord) -> None:
        await self._write(insert(calls).values(schema.call_values(call)))

    async def update_call(
        self,
        cid: str,
        *,
        updated_at: datetime,
        phase: CallPhase | None = None,
        custom: dict[str, Any] | None = None,
        ended_at: datetime | None = None,
        audience: tuple[int, datetime] | None = None,
    ) -> None:
        values: dict[str, Any] = {"updated_at": updated_at}
        if audience is not None:
            values["audience_count"], values["audience_at"] = audience
        if phase is not None:
            values["phase"] = phase.value
        if custom is not None:
            values["custom"] = custom
        if ended_at is not None:
            values["ended_at"] = ended_at
        result = await self._write(update(calls).where(calls.c.cid == cid).values(values))
        if result.rowcount == 0:
            raise LookupError(f"no call {cid!r}")

    async def calls_created_since(self, user_id: str, since: datetime) -> list[datetime]:
        statement = (
            select(calls.c.created_at)
            .where(calls.c.created_by == user_id, calls.c.created_at > since)
            .order_by(calls.c.created_at)
        )
        return [row.created_at for row in await self._all(statement)]

    async def list_calls(
        self,
        *,
        user_id: str,
        call_type: str | None = None,
        live: bool | None = None,
        limit: int = 100,
    ) -> list[CallRecord]:
        is_live = calls.c.phase == CallPhase.LIVE.value
        member_of = exists().where(members.c.call_cid == calls.c.cid, members.c.user_id == user_id)
        statement = select(calls).where(or_(is_live, member_of))
        if call_type is not None:
            statement = statement.where(calls.c.type == call_type)
        if live is not None:
            statement = statement.where(is_live if live else ~is_live)
        statement = statement.order_by(calls.c.created_at.desc(), calls.c.cid.desc()).limit(limit)
        return [schema.call_from_row(row) for row in await self._all(statement)]

    # members

    async def get_member(self, cid: str, user_id: str) -> MemberRecord | None:
        row = await self._one(select(members).where(_user_key(members, cid, user_id)))
        return schema.member_from_row(row) if row else None

    async def list_members(self, cid: str) -> list[MemberRecord]:
        rows = await self._all(_of_call(members, cid, members.c.created_at))
        return [schema.member_from_row(row) for row in rows]

    async def upsert_member(self, member: MemberRecord) -> None:
        row = schema.member_values(member)
        await self._write(_upsert(self._conn, members, row, ["call_cid", "user_id"]), [row])

    async def delete_member(self, cid: str, user_id: str) -> bool:
        return await self._delete(members, _user_key(members, cid, user_id))

    # participants

    async def get_participant(self, cid: str, user_id: str) -> ParticipantRecord | None:
        row = await self._one(select(participants).where(_user_key(participants, cid, user_id)))
        return schema.participant_from_row(row) if row else None

    async def list_participants(
        self, cid: str, *, only: Collection[str] | None = None, excluding: Collection[str] = ()
    ) -> list[ParticipantRecord]:
        statement = _participants_where(
            select(participants), cid, only=only, excluding=excluding
        ).order_by(participants.c.joined_at, participants.c.user_id)
        return [schema.participant_from_row(row) for row in await self._all(statement)]

    async def page_participants(
        self,
        cid: str,
        *,
        limit: int,
        after: str | None = None,
        prefix: str | None = None,
        only: Collection[str] | None = None,
        excluding: Collection[str] = (),
    ) -> list[ParticipantRecord]:
        statement = _participants_where(
            select(participants), cid, only=only, excluding=excluding
        ).order_by(participants.c.user_id)
        if after is not None:
            statement = statement.where(participants.c.user_id > after)
        if prefix:
            pattern = _like_prefix(prefix)
            statement = statement.where(
                or_(
                    func.lower(participants.c.name).like(pattern, escape="\\"),
                    func.lower(participants.c.user_id).like(pattern, escape="\\"),
                )
            )
        rows = await self._all(statement.limit(limit))
        return [schema.participant_from_row(row) for row in rows]

    async def count_participants(
        self, cid: str, *, only: Collection[str] | None = None, excluding: Collection[str] = ()
    ) -> int:
        statement = _participants_where(
            select(func.count()).select_from(participants), cid, only=only, excluding=excluding
        )
        row = await self._one(statement)
        return int(row[0]) if row else 0

    async def insert_participants(self, joining: Sequence[ParticipantRecord]) -> set[str]:
        """Add participants; returns the user ids added (not those who had joined already)."""
        if not joining:
            return set()
        rows = [schema.record_values(p) for p in joining]
        added = insert_missing(self._conn, participants).values(rows)
        result = await self._write(added.returning(participants.c.user_id))
        return set(result.scalars())

    async def delete_participant(self, cid: str, user_id: str) -> bool:
        return await self._delete(participants, _user_key(participants, cid, user_id))

    async def delete_participants(self, cid: str) -> list[str]:
        result = await self._write(
            delete(participants)
            .where(participants.c.call_cid == cid)
            .returning(participants.c.user_id)
        )
        return sorted(result.scalars())

    async def touch_participants(self, keys: Sequence[tuple[str, str]], at: datetime) -> None:
        # One call at a time, so the primary key finds the rows (a row-value IN scans).
        by_call: dict[str, list[str]] = {}
        for cid, user_id in sorted(set(keys)):
            by_call.setdefault(cid, []).append(user_id)
        for cid, user_ids in by_call.items():
            for start in range(0, len(user_ids), _IN_CHUNK):
                chunk = user_ids[start : start + _IN_CHUNK]
                await self._write(
                    update(participants)
                    .where(
                        participants.c.call_cid == cid,
                        participants.c.user_id.in_(chunk),
                        participants.c.seen_at < at,
                    )
                    .values(seen_at=at)
                )

    async def stale_participants(
        self, before: datetime, limit: int = 500
    ) -> list[ParticipantRecord]:
        rows = await self._all(
            select(participants)
            .where(participants.c.seen_at < before)
            .order_by(participants.c.seen_at)
            .limit(limit)
        )
        return [schema.participant_from_row(row) for row in rows]

    # blocks

    async def get_block(self, cid: str, user_id: str) -> BlockRecord | None:
        row = await self._one(select(blocks).where(_user_key(blocks, cid, user_id)))
        return schema.block_from_row(row) if row else None

    async def list_blocks(self, cid: str) -> list[BlockRecord]:
        rows = await self._all(_of_call(blocks, cid, blocks.c.created_at))
        return [schema.block_from_row(row) for row in rows]

    async def insert_block(self, block: BlockRecord) -> None:
        await self._write(insert(blocks).values(schema.record_values(block)))

    async def delete_block(self, cid: str, user_id: str) -> bool:
        return await self._delete(blocks, _user_key(blocks, cid, user_id))

    # permission requests

    async def insert_request(self, request: PermissionRequest) -> None:
        await self._write(insert(permission_requests).values(schema.request_values(request)))

    async def get_request(self, cid: str, request_id: str) -> PermissionRequest | None:
        table = permission_requests
        row = await self._one(
            select(table).where(table.c.call_cid == cid, table.c.id == request_id)
        )
        return schema.request_from_row(row) if row else None

    async def list_requests(
        self,
        cid: str,
        *,
        state: RequestState | None = None,
        user_id: str | None = None,
        limit: int = 500,
    ) -> list[PermissionRequest]:
        table = permission_requests
        statement = select(table).where(table.c.call_cid == cid)
        if state is not None:
            statement = statement.where(table.c.state == state.value)
        if user_id is not None:
            statement = statement.where(table.c.user_id == user_id)
        statement = statement.order_by(table.c.created_at, table.c.id).limit(limit)
        return [schema.request_from_row(row) for row in await self._all(statement)]

    async def request_activity(self, cid: str, user_id: str, since: datetime) -> list[datetime]:
        table = permission_requests
        mine = and_(table.c.call_cid == cid, table.c.user_id == user_id)
        asked = select(table.c.created_at.label("at")).where(mine, table.c.created_at > since)
        cancelled = select(table.c.resolved_at.label("at")).where(
            mine,
            table.c.state == RequestState.CANCELLED.value,
            table.c.resolved_by == user_id,
            table.c.resolved_at > since,
        )
        rows = await self._all(asked.union_all(cancelled))
        return sorted(row.at for row in rows)

    async def calls_with_overdue_requests(self, now: datetime, limit: int = 100) -> list[str]:
        table = permission_requests
        statement = (
            select(table.c.call_cid)
            .where(table.c.state == RequestState.PENDING.value, table.c.expires_at <= now)
            .distinct()
            .limit(limit)
        )
        return [row.call_cid for row in await self._all(statement)]

    async def resolve_request(self, request: PermissionRequest) -> bool:
        if request.is_pending:
            raise ValueError(f"request {request.id} is still pending; resolve it first")
        table = permission_requests
        result = await self._write(
            update(table)
            .where(
                table.c.call_cid == request.call_cid,
                table.c.id == request.id,
                table.c.state == RequestState.PENDING.value,
            )
            .values(
                state=request.state.value,
                resolved_by=request.resolved_by,
                resolved_at=request.resolved_at,
                reason=request.reason,
            )
        )
        return result.rowcount == 1

    # revoked tokens

    async def revoke_token(self, revoked: RevokedToken) -> None:
        row = schema.record_values(revoked)
        await self._write(insert_missing(self._conn, revoked_tokens).values(row))

    async def revocations_since(self, since: datetime) -> list[RevokedToken]:
        rows = await self._all(
            select(revoked_tokens)
            .where(revoked_tokens.c.revoked_at > since, revoked_tokens.c.expires_at > since)
            .order_by(revoked_tokens.c.revoked_at)
        )
        return [RevokedToken(**row._mapping) for row in rows]

    async def delete_expired_revocations(self, now: datetime) -> int:
        result = await self._write(delete(revoked_tokens).where(revoked_tokens.c.expires_at <= now))
        return result.rowcount

    # event log

    async def append_events(
        self, cid: str, drafts: Sequence[EventDraft], *, created_at: datetime
    ) -> list[CallEvent]:
        """One seq update and one multi-row insert, however many events."""
        if not drafts:
            return []
        result = await self._write(
            update(calls)
            .where(calls.c.cid == cid)
            .values(last_seq=calls.c.last_seq + len(drafts))
            .returning(calls.c.last_seq)
        )
        last = result.scalar_one_or_none()
        if last is None:
            raise LookupError(f"no call {cid!r}")
        first = last - len(drafts) + 1
        await self._write(
            insert(events),
            [
                {
                    "call_cid": cid,
                    "seq": first + i,
                    "type": d.type,
                    "created_at": created_at,
                    "payload": d.payload,
                    "audience": d.audience.to_dict(),
                    "refresh": d.refresh,
                }
                for i, d in enumerate(drafts)
            ],
        )
        at = created_at.astimezone(UTC)
        return [
            CallEvent(cid, first + i, d.type, at, d.payload, d.audience, d.refresh)
            for i, d in enumerate(drafts)
        ]

    async def events_since(self, cid: str, since: int, limit: int = 1000) -> list[CallEvent]:
        rows = await self._all(
            select(events)
            .where(events.c.call_cid == cid, events.c.seq > since)
            .order_by(events.c.seq)
            .limit(limit)
        )
        return [schema.event_from_row(row) for row in rows]

    async def last_seqs(self, cids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        unique = sorted(set(cids))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            rows = await self._all(
                select(calls.c.cid, calls.c.last_seq).where(calls.c.cid.in_(chunk))
            )
            found.update({row.cid: row.last_seq for row in rows})
        return found


_UPSERTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Executable] = {}


def _upsert(conn: SqlConnection, table: Table, names: Iterable[str], key: list[str]) -> Executable:
    """INSERT, or UPDATE every non-key column of the existing row; values are bound at execution.

    Built once per dialect, table and columns: constructing `excluded` and the
    statement's cache key cost more than the write itself on a join.
    """
    shape = (conn.dialect.name, table.name, tuple(names), tuple(key))
    statement = _UPSERTS.get(shape)
    if statement is None:
        insert = postgresql.insert if shape[0] == "postgresql" else sqlite.insert
        into = insert(table)
        statement = _UPSERTS[shape] = into.on_conflict_do_update(
            index_elements=key, set_={c: into.excluded[c] for c in shape[2] if c not in key}
        )
    return statement


def _user_key(table: Table, cid: str, user_id: str) -> ColumnElement[bool]:
    return and_(table.c.call_cid == cid, table.c.user_id == user_id)


def _participants_where(
    statement: Select[Any], cid: str, *, only: Collection[str] | None, excluding: Collection[str]
) -> Select[Any]:
    statement = statement.where(participants.c.call_cid == cid)
    if only is not None:
        statement = statement.where(participants.c.user_id.in_(sorted(only)))
    if excluding:
        statement = statement.where(participants.c.user_id.not_in(sorted(excluding)))
    return statement


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching what starts with `prefix` (lower-cased, wildcards escaped)."""
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _of_call(table: Table, cid: str, first: ColumnElement[Any]) -> Select[Any]:
    """A call's rows of a per-user table, ordered by `first` then user id."""
    return select(table).where(table.c.call_cid == cid).order_by(first, table.c.user_id)


def insert_missing(conn: SqlConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT that skips rows whose primary key is already stored."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()

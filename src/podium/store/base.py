"""The store interface.

All reads and writes go through a `Transaction`. Writes that change a call
open `store.write(cid)`: implementations serialise those per call (a row lock
on PostgreSQL, one writer at a time on SQLite) so that `seq` allocation and
"first answer wins" hold across processes. Everything written in the block
commits together when it exits without an exception, or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from podium.bus.events import CallEvent, EventDraft
from podium.core.call_types import CallType
from podium.core.policy import CallPhase
from podium.core.requests import PermissionRequest, RequestState
from podium.store.records import (
    BlockRecord,
    CallRecord,
    MemberRecord,
    ParticipantRecord,
    RevokedToken,
)


class Transaction(Protocol):
    # call types
    async def get_call_type(self, name: str) -> CallType | None: ...
    async def list_call_types(self) -> list[CallType]: ...
    async def put_call_type(self, call_type: CallType) -> None: ...

    # calls
    async def get_call(self, cid: str) -> CallRecord | None: ...
    async def insert_call(self, call: CallRecord) -> None: ...
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
        """`audience` is the (count, time) of a `call.audience_updated` being logged."""
        ...

    async def calls_created_since(self, user_id: str, since: datetime) -> list[datetime]:
        """When each call `user_id` created after `since` was created, oldest first."""
        ...

    async def list_calls(
        self,
        *,
        user_id: str,
        call_type: str | None = None,
        live: bool | None = None,
        limit: int = 100,
    ) -> list[CallRecord]:
        """Calls `user_id` is a member of, plus live calls; newest first.

        `live=True` keeps only live calls, `live=False` only the others.
        """
        ...

    # members
    async def get_member(self, cid: str, user_id: str) -> MemberRecord | None: ...
    async def list_members(self, cid: str) -> list[MemberRecord]: ...
    async def upsert_member(self, member: MemberRecord) -> None: ...
    async def delete_member(self, cid: str, user_id: str) -> bool: ...

    # participants
    async def get_participant(self, cid: str, user_id: str) -> ParticipantRecord | None: ...
    async def list_participants(
        self, cid: str, *, only: Collection[str] | None = None, excluding: Collection[str] = ()
    ) -> list[ParticipantRecord]:
        """The call's participants in join order (`only` and `excluding` filter user ids)."""
        ...

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
        """Up to `limit` participants in user id order, from the one after `after`.

        `prefix` keeps those whose name or user id starts with it (case-insensitive);
        `only` keeps those user ids, `excluding` drops those.
        """
        ...

    async def count_participants(
        self, cid: str, *, only: Collection[str] | None = None, excluding: Collection[str] = ()
    ) -> int:
        """How many participants the call has (`only` and `excluding` as in `page_participants`)."""
        ...

    async def insert_participants(self, joining: Sequence[ParticipantRecord]) -> set[str]:
        """The user ids added; those who had joined already are left as they were."""
        ...

    async def delete_participant(self, cid: str, user_id: str) -> bool: ...
    async def delete_participants(self, cid: str) -> list[str]:
        """Remove every participant of the call; returns their user ids."""
        ...

    async def touch_participants(self, keys: Sequence[tuple[str, str]], at: datetime) -> None:
        """Move `seen_at` of these (call cid, user id) participants forward to `at`."""
        ...

    async def stale_participants(
        self, before: datetime, limit: int = 500
    ) -> list[ParticipantRecord]:
        """Participants of any call not seen since `before`, longest unseen first."""
        ...

    # blocks
    async def get_block(self, cid: str, user_id: str) -> BlockRecord | None: ...
    async def list_blocks(self, cid: str) -> list[BlockRecord]: ...
    async def insert_block(self, block: BlockRecord) -> None: ...
    async def delete_block(self, cid: str, user_id: str) -> bool: ...

    # permission requests
    async def insert_request(self, request: PermissionRequest) -> None: ...
    async def get_request(self, cid: str, request_id: str) -> PermissionRequest | None: ...
    async def list_requests(
        self,
        cid: str,
        *,
        state: RequestState | None = None,
        user_id: str | None = None,
        limit: int = 500,
    ) -> list[PermissionRequest]:
        """Requests of a call in creation order (oldest first)."""
        ...

    async def request_activity(self, cid: str, user_id: str, since: datetime) -> list[datetime]:
        """When the user asked for, or cancelled, a request of the call after `since`."""
        ...

    async def calls_with_overdue_requests(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of calls holding pending requests whose `expires_at` has passed."""
        ...

    async def resolve_request(self, request: PermissionRequest) -> bool:
        """Write a resolved request if it is still pending in the store.

        Returns False, writing nothing, when another answer got there first.
        """
        ...

    # revoked tokens
    async def revoke_token(self, revoked: RevokedToken) -> None:
        """Record a revocation (a token revoked again keeps its first record)."""
        ...

    async def revocations_since(self, since: datetime) -> list[RevokedToken]:
        """Revocations recorded after `since` that have not expired, oldest first."""
        ...

    async def delete_expired_revocations(self, now: datetime) -> int:
        """Forget revocations of tokens that have expired; returns how many."""
        ...

    # event log
    async def append_events(
        self, cid: str, drafts: Sequence[EventDraft], *, created_at: datetime
    ) -> list[CallEvent]:
        """Append to the call's log in order, with the next `seq`s (last_seq + 1, ...).

        Raises LookupError when the call does not exist.
        """
        ...

    async def events_since(self, cid: str, since: int, limit: int = 1000) -> list[CallEvent]:
        """Events with `seq > since`, in `seq` order."""
        ...

    async def last_seqs(self, cids: Sequence[str]) -> dict[str, int]:
        """The last logged `seq` of each of these calls that exists (one query per 500)."""
        ...


class Store(Protocol):
    async def open(self) -> None:
        """Apply migrations and seed the built-in call types (existing ones are kept)."""

    async def close(self) -> None: ...

    def read(self) -> AbstractAsyncContextManager[Transaction]:
        """A read-only transaction."""
        ...

    def write(self, cid: str | None = None) -> AbstractAsyncContextManager[Transaction]:
        """A read-write transaction, serialised with other writers of call `cid`."""
        ...

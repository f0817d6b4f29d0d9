"""What every use case shares: the runtime, loading a call, authorising, emitting events.

Events are appended to the call's log inside the write transaction (so they
commit with the change they report) and published on the bus only after the
commit, so no node ever delivers an event that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, auto
from typing import Any

from podium.bus.base import EventBus
from podium.bus.events import Audience, CallEvent, EventDraft
from podium.config import Limits
from podium.core.call_types import CallType
from podium.core.capabilities import ALL_CAPABILITIES, Capabilities, Capability
from podium.core.errors import CallEnded, CallNotFound, PermissionDenied
from podium.core.policy import CallAccess, CallPhase, own_capabilities
from podium.protocol.events import EventType
from podium.services import metrics
from podium.services.identity import Identity
from podium.store.base import Store, Transaction
from podium.store.records import CallRecord, MemberRecord

Clock = Callable[[], datetime]
#: Events after which a call's audience count may differ.
_COUNT_CHANGES = frozenset(
    {EventType.PARTICIPANT_JOINED, EventType.PARTICIPANT_LEFT, EventType.PARTICIPANT_MOVED}
)
log = logging.getLogger("podium.services")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """The long-lived parts every service uses."""

    store: Store
    bus: EventBus
    clock: Clock = utcnow
    limits: Limits = field(default_factory=Limits)
    #: Calls whose audience count this node may have changed (`AudienceCounter` takes them).
    audience_changes: set[str] = field(default_factory=set)


class _Unread(Enum):
    """A `member` argument not given: the member record is read from the store."""

    MEMBER = auto()


@dataclass(frozen=True)
class Roster:
    """A call's member records and blocked users, as one transaction read them.

    Joining reads them once to authorise the caller and again shows them in
    the state it answers, since a join changes neither.
    """

    members: list[MemberRecord]
    blocked: frozenset[str]


@dataclass
class CallContext:
    """A call and its type, as read inside one transaction."""

    call: CallRecord
    call_type: CallType

    @property
    def cid(self) -> str:
        return self.call.cid

    async def capabilities(
        self,
        tx: Transaction,
        identity: Identity,
        *,
        member: MemberRecord | _Unread | None = _Unread.MEMBER,
    ) -> Capabilities:
        """What the caller holds: everything for a server token, else `user_capabilities`."""
        if identity.server:
            return ALL_CAPABILITIES
        return await self.user_capabilities(tx, identity.user_id, identity.role, member=member)

    async def user_capabilities(
        self,
        tx: Transaction,
        user_id: str,
        token_role: str | None = None,
        *,
        member: MemberRecord | _Unread | None = _Unread.MEMBER,
    ) -> Capabilities:
        """The capability formula of the services, in one place: what `user_id` holds now.

        `member` is the record to judge by when the caller has it (read already,
        or as it was before a change); by default it is read from the store.
        """
        if member is _Unread.MEMBER:
            member = await tx.get_member(self.cid, user_id)
        blocked = await tx.get_block(self.cid, user_id) is not None
        return own_capabilities(
            self.call_type,
            self.call.phase,
            member.permissions if member else None,
            token_role,
            blocked=blocked,
        )

    async def require(
        self, tx: Transaction, identity: Identity, capability: Capability
    ) -> Capabilities:
        """The actor's capabilities, or `permission_denied` naming the missing one."""
        return self.check(await self.capabilities(tx, identity), capability)

    def check(self, caps: Capabilities, capability: Capability) -> Capabilities:
        """`caps`, or `permission_denied` naming `capability` when it is not among them."""
        if capability not in caps:
            details: dict[str, Any] = {"capability": capability.value}
            if self.call.phase is CallPhase.ENDED:
                details["reason"] = "call_ended"
            raise PermissionDenied(f"missing capability {capability.value}", details)
        return caps

    def require_not_ended(self) -> None:
        if self.call.phase is CallPhase.ENDED:
            raise CallEnded(f"call {self.cid} has ended", {"call_cid": self.cid})

    async def roster(self, tx: Transaction) -> Roster:
        members = await tx.list_members(self.cid)
        blocks = await tx.list_blocks(self.cid)
        return Roster(members, frozenset(b.user_id for b in blocks))

    def access_of(self, roster: Roster) -> CallAccess:
        return CallAccess(
            call_type=self.call_type,
            phase=self.call.phase,
            members={m.user_id: m.permissions for m in roster.members},
            blocked=roster.blocked,
        )

    async def access(self, tx: Transaction) -> CallAccess:
        return self.access_of(await self.roster(tx))


async def load_call(tx: Transaction, cid: str) -> CallContext:
    call = await tx.get_call(cid)
    if call is None:
        raise CallNotFound(f"call {cid} not found", {"call_cid": cid})
    call_type = await tx.get_call_type(call.type)
    if call_type is None:
        raise CallNotFound(f"call type {call.type} of call {cid} not found", {"call_cid": cid})
    return CallContext(call, call_type)


@dataclass
class Changes:
    """Events of the current write transaction: logged together when it ends, then published."""

    tx: Transaction
    cid: str | None
    now: datetime
    drafts: list[EventDraft] = field(default_factory=list)
    events: list[CallEvent] = field(default_factory=list)

    def emit(
        self,
        type: str,
        payload: dict[str, Any],
        audience: Audience,
        *,
        refresh: bool = False,
    ) -> None:
        if self.cid is None:
            raise RuntimeError("events need a call: open writing(runtime, cid)")
        self.drafts.append(EventDraft(type, payload, audience, refresh))

    async def flush(self) -> None:
        """Append the drafts to the call's event log (one batch), in emit order.

        `writing` flushes when its block ends; flush earlier to read the new `seq`.
        """
        if self.cid is None or not self.drafts:
            return
        self.events += await self.tx.append_events(self.cid, self.drafts, created_at=self.now)
        self.drafts = []


@asynccontextmanager
async def writing(runtime: Runtime, cid: str | None) -> AsyncIterator[Changes]:
    """A write transaction on call `cid`; its events are published after commit."""
    async with runtime.store.write(cid) as tx:
        changes = Changes(tx, cid, runtime.clock())
        yield changes
        await changes.flush()
    if cid is not None and any(e.type in _COUNT_CHANGES for e in changes.events):
        runtime.audience_changes.add(cid)
    for event in changes.events:
        try:
            await runtime.bus.publish(event)
            metrics.EVENTS_PUBLISHED.labels(event.type).inc()
        except Exception:
            # Committed is committed: hubs fill the gap from the event log on the next event.
            log.exception("could not publish %s #%d", event.type, event.seq)

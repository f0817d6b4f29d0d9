"""Call lifecycle: call types, get-or-create, state, join/leave, live/backstage, end, members."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from podium.bus.events import Audience
from podium.core import roles
from podium.core.call_types import CallType
from podium.core.capabilities import Capability
from podium.core.errors import CallTypeNotFound, PermissionDenied, RateLimited
from podium.core.policy import CallPhase, initial_phase, own_capabilities
from podium.core.rates import retry_after_s
from podium.core.requests import RequestState
from podium.core.stage import tier_of
from podium.protocol.events import EventType
from podium.protocol.ids import call_cid
from podium.protocol.stage import Tier
from podium.services.audience import (
    count_audience,
    emit_moves,
    emit_presence,
    split_of,
    stage_of,
    tier_split,
    tiered_view,
)
from podium.services.context import Changes, Roster, Runtime, load_call, writing
from podium.services.grants import (
    after_capability_change,
    announce_move,
    end_pending_requests,
)
from podium.services.identity import Identity
from podium.services.views import call_view, member_view, state_view
from podium.store.base import Transaction
from podium.store.records import CallRecord, MemberRecord, ParticipantRecord

#: The window of `Limits.calls_per_hour`.
CREATION_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class MemberChange:
    user_id: str
    role: str


class CallsService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    # call types

    async def list_call_types(self) -> list[CallType]:
        async with self.rt.store.read() as tx:
            return await tx.list_call_types()

    async def get_call_type(self, name: str) -> CallType:
        async with self.rt.store.read() as tx:
            call_type = await tx.get_call_type(name)
        if call_type is None:
            raise CallTypeNotFound(f"call type {name} not found", {"type": name})
        return call_type

    async def put_call_type(self, identity: Identity, call_type: CallType) -> CallType:
        if not identity.server:
            raise PermissionDenied("only server tokens may change call types", {"server": True})
        async with self.rt.store.write() as tx:
            await tx.put_call_type(call_type)
        return call_type

    # calls

    async def get_or_create(
        self,
        identity: Identity,
        type_name: str,
        call_id: str,
        members: list[MemberChange],
        custom: dict[str, Any],
    ) -> tuple[dict[str, Any], bool]:
        """Returns (state, created)."""
        cid = call_cid(type_name, call_id)
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            if await tx.get_call(cid) is not None:
                ctx = await load_call(tx, cid)
                await ctx.require(tx, identity, Capability.READ_CALL)
                return await self._state_after(changes, identity), False
            call_type = await tx.get_call_type(type_name)
            if call_type is None:
                raise CallTypeNotFound(f"call type {type_name} not found", {"type": type_name})
            now = changes.now
            if not identity.server:
                caps = own_capabilities(call_type, initial_phase(call_type), None, identity.role)
                if Capability.CREATE_CALL not in caps:
                    raise PermissionDenied(
                        f"call {cid} does not exist, and calls of type {type_name} "
                        "may not be created with this token: ask the organiser to create it",
                        {"capability": "create-call"},
                    )
                await self._limit_creation(tx, identity.user_id, now)
            call = CallRecord(
                cid=cid,
                type=type_name,
                id=call_id,
                phase=initial_phase(call_type),
                created_by=identity.user_id,
                created_at=now,
                updated_at=now,
                custom=custom,
            )
            await tx.insert_call(call)
            roles_by_user = {m.user_id: m.role for m in members}
            if not identity.server:
                roles_by_user[identity.user_id] = roles.HOST
            for user_id, role in roles_by_user.items():
                await tx.upsert_member(
                    MemberRecord(cid, user_id, role, frozenset(), frozenset(), now, now)
                )
            changes.emit(EventType.CREATED, {"call": call_view(call)}, Audience.watchers())
            return await self._state_after(changes, identity), True

    async def _limit_creation(self, tx: Transaction, user_id: str, now: datetime) -> None:
        """429 once the user created `calls_per_hour` calls in the last hour."""
        limit = self.rt.limits.calls_per_hour
        times = await tx.calls_created_since(user_id, now - CREATION_WINDOW)
        wait = retry_after_s(times, limit, CREATION_WINDOW, now)
        if wait:
            raise RateLimited(
                f"at most {limit} new calls per hour; try again in {wait} s",
                {
                    "retry_after_s": wait,
                    "limit": limit,
                    "window_s": int(CREATION_WINDOW.total_seconds()),
                },
            )

    async def get_state(self, identity: Identity, cid: str) -> dict[str, Any]:
        async with self.rt.store.read() as tx:
            ctx = await load_call(tx, cid)
            await ctx.require(tx, identity, Capability.READ_CALL)
            return await self._state(tx, cid, identity)

    async def participants_page(
        self,
        identity: Identity,
        cid: str,
        *,
        tier: Tier | None,
        limit: int,
        after: str | None,
        prefix: str | None,
    ) -> dict[str, Any]:
        """A page of the call's participants in user id order, from the one after `after`.

        `tier` keeps only the stage or the audience (`core.stage`); `prefix`
        keeps those whose name or user id starts with it (case-insensitive).
        `next_cursor` is the user id to pass as `after` for the next page.
        """
        async with self.rt.store.read() as tx:
            ctx = await load_call(tx, cid)
            await ctx.require(tx, identity, Capability.READ_CALL)
            split = await split_of(tx, ctx)
            where = (
                {}
                if tier is None
                else (split.stage_filter if tier is Tier.STAGE else split.audience_filter)
            )
            found = await tx.page_participants(
                cid, limit=limit + 1, after=after, prefix=prefix, **where
            )
        page = [tiered_view(p, split.tier(p.user_id)) for p in found[:limit]]
        more = len(found) > limit
        return {"participants": page, "next_cursor": page[-1]["user_id"] if more else None}

    async def list_calls(
        self, identity: Identity, call_type: str | None, live: bool | None
    ) -> list[dict[str, Any]]:
        async with self.rt.store.read() as tx:
            calls = await tx.list_calls(user_id=identity.user_id, call_type=call_type, live=live)
            visible = []
            for call in calls:
                ctx = await load_call(tx, call.cid)
                if Capability.READ_CALL in await ctx.capabilities(tx, identity):
                    visible.append(call_view(call))
            return visible

    async def join(self, identity: Identity, cid: str) -> dict[str, Any]:
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            ctx.require_not_ended()
            needed = (
                Capability.JOIN_BACKSTAGE
                if ctx.call.phase is CallPhase.BACKSTAGE
                else Capability.JOIN_CALL
            )
            roster = await ctx.roster(tx)
            access = ctx.access_of(roster)
            ctx.check(identity.capabilities_in(access), needed)
            now = changes.now
            participant = ParticipantRecord(
                cid, identity.user_id, identity.name, identity.image, now, now
            )
            joined = await tx.insert_participant(participant)
            if joined:
                # The tier is judged by what is stored, not by a token's role.
                tier = tier_of(access.capabilities_of(identity.user_id))
                emit_presence(changes, EventType.PARTICIPANT_JOINED, participant, tier)
            else:
                # Joining again counts as being seen: presence starts its grace anew.
                await tx.touch_participants([(cid, identity.user_id)], now)
            # Joined earlier, the stored record is the one to show.
            own = participant if joined else None
            return await self._state_after(changes, identity, roster=roster, own=own)

    async def leave(self, identity: Identity, cid: str) -> dict[str, Any]:
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            # Leaving needs no capability, but the state it answers is read-call's.
            await ctx.require(tx, identity, Capability.READ_CALL)
            participant = await tx.get_participant(cid, identity.user_id)
            if participant is not None:
                await tx.delete_participant(cid, identity.user_id)
                tier = tier_of(await ctx.user_capabilities(tx, identity.user_id))
                emit_presence(changes, EventType.PARTICIPANT_LEFT, participant, tier)
            return await self._state_after(changes, identity)

    async def set_live(self, identity: Identity, cid: str, live: bool) -> dict[str, Any]:
        """go-live (`live=True`) or stop-live; repeating the current phase changes nothing."""
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            ctx.require_not_ended()
            await ctx.require(tx, identity, Capability.GO_LIVE)
            target = CallPhase.LIVE if live else CallPhase.BACKSTAGE
            if ctx.call.phase is not target:
                before = await split_of(tx, ctx)
                await tx.update_call(cid, phase=target, updated_at=changes.now)
                ctx = await load_call(tx, cid)
                changes.emit(
                    EventType.LIVE_STARTED if live else EventType.LIVE_STOPPED,
                    {"call": call_view(ctx.call)},
                    Audience.watchers(),
                    refresh=True,
                )
                await emit_moves(changes, cid, before, await split_of(tx, ctx), None)
            return await self._state_after(changes, identity)

    async def end(self, identity: Identity, cid: str) -> dict[str, Any]:
        """End the call for everyone: participants removed, pending requests cancelled."""
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            ctx.require_not_ended()
            await ctx.require(tx, identity, Capability.END_CALL)
            await end_pending_requests(changes, ctx, None, by=identity.user_id, reason="call ended")
            await tx.delete_participants(cid)
            await tx.update_call(
                cid, phase=CallPhase.ENDED, updated_at=changes.now, ended_at=changes.now
            )
            ctx = await load_call(tx, cid)
            changes.emit(
                EventType.ENDED, {"call": call_view(ctx.call)}, Audience.watchers(), refresh=True
            )
            return await self._state_after(changes, identity)

    async def update_members(
        self, identity: Identity, cid: str, update: list[MemberChange], remove: list[str]
    ) -> dict[str, Any]:
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            await ctx.require(tx, identity, Capability.UPDATE_CALL_MEMBER)
            now = changes.now
            for change in update:
                before = await tx.get_member(cid, change.user_id)
                member = MemberRecord(
                    cid,
                    change.user_id,
                    change.role,
                    before.grants if before else frozenset(),
                    before.revokes if before else frozenset(),
                    before.created_at if before else now,
                    now,
                )
                if before is not None and before.role == member.role:
                    continue
                await tx.upsert_member(member)
                changes.emit(
                    EventType.MEMBER_UPDATED if before else EventType.MEMBER_ADDED,
                    {"members": [member_view(member)]},
                    Audience.watchers(),
                    refresh=True,
                )
                await after_capability_change(
                    changes, ctx, change.user_id, before, member, by=identity.user_id
                )
                await announce_move(changes, ctx, change.user_id, before, member)
            for user_id in dict.fromkeys(remove):
                before = await tx.get_member(cid, user_id)
                if before is None or not await tx.delete_member(cid, user_id):
                    continue
                changes.emit(
                    EventType.MEMBER_REMOVED,
                    {"user_ids": [user_id]},
                    Audience.watchers(),
                    refresh=True,
                )
                await after_capability_change(
                    changes, ctx, user_id, before, None, by=identity.user_id
                )
                await announce_move(changes, ctx, user_id, before, None)
            return await self._state_after(changes, identity)

    async def _state_after(
        self,
        changes: Changes,
        identity: Identity,
        *,
        roster: Roster | None = None,
        own: ParticipantRecord | None = None,
    ) -> dict[str, Any]:
        """The state including the events of this write (their seq)."""
        await changes.flush()
        assert changes.cid is not None
        return await self._state(changes.tx, changes.cid, identity, roster=roster, own=own)

    async def _state(
        self,
        tx: Transaction,
        cid: str,
        identity: Identity,
        *,
        roster: Roster | None = None,
        own: ParticipantRecord | None = None,
    ) -> dict[str, Any]:
        """The state as this transaction now sees it (re-read: events bumped `seq`).

        The caller's capabilities come from the same member and block lists the
        state shows, so a state read costs a fixed number of queries whatever
        the call's size (the audience is counted, never listed). `roster` is
        those lists when this transaction read them and left them unchanged;
        `own` the caller's participant record when the caller has it.
        """
        ctx = await load_call(tx, cid)
        if roster is None:
            roster = await ctx.roster(tx)
        access = ctx.access_of(roster)
        caps = identity.capabilities_in(access)
        moderator = Capability.UPDATE_CALL_PERMISSIONS in caps
        pending = await tx.list_requests(
            ctx.cid,
            state=RequestState.PENDING,
            user_id=None if moderator else identity.user_id,
        )
        now = self.rt.clock()
        split = tier_split(access)
        return state_view(
            call=ctx.call,
            call_type=ctx.call_type,
            members=roster.members,
            stage=await stage_of(tx, ctx.cid, split, also=identity.user_id, own=own),
            audience_count=await count_audience(tx, ctx.call, split),
            blocked=roster.blocked,
            pending_requests=[r for r in pending if r.expires_at > now],
            own_capabilities=caps,
        )

"""Call lifecycle: call types, get-or-create, state, join/leave, live/backstage, end, members."""

from __future__ import annotations

from collections.abc import Mapping
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
    tier_split,
    tiered_view,
)
from podium.services.batching import KeyedBatcher
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
        self._joins: KeyedBatcher[Identity, dict[str, Any]] = KeyedBatcher(self._join_batch)

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
        """Join the call; joins that queue on the same call are committed together."""
        return await self._joins.submit(cid, identity)

    async def _join_batch(
        self, cid: str, identities: list[Identity]
    ) -> list[dict[str, Any] | Exception]:
        """Join every identity in one transaction; a caller not allowed in gets its error."""
        refusals: list[Exception | None] = []  # None: admitted
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
            admitted: list[Identity] = []
            for identity in identities:
                try:
                    ctx.check(identity.capabilities_in(access), needed)
                except PermissionDenied as exc:
                    refusals.append(exc)
                else:
                    refusals.append(None)
                    admitted.append(identity)
            if not admitted:
                return [refusal for refusal in refusals if refusal is not None]
            now = changes.now
            records: dict[str, ParticipantRecord] = {}
            for who in admitted:
                record = ParticipantRecord(cid, who.user_id, who.name, who.image, now, now)
                records.setdefault(who.user_id, record)
            added = await tx.insert_participants(list(records.values()))
            again = [(cid, user_id) for user_id in records if user_id not in added]
            if again:
                # Joining again counts as being seen: presence starts its grace anew.
                await tx.touch_participants(again, now)
            for user_id, participant in records.items():
                if user_id in added:
                    # The tier is judged by what is stored, not by a token's role.
                    tier = tier_of(access.capabilities_of(user_id))
                    emit_presence(changes, EventType.PARTICIPANT_JOINED, participant, tier)
            await changes.flush()
            # Joined earlier, the stored record is the one to show.
            own = {user_id: records[user_id] for user_id in added}
            states = iter(await self._states(tx, cid, admitted, roster=roster, own=own))
        return [next(states) if refusal is None else refusal for refusal in refusals]

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

    async def _state_after(self, changes: Changes, identity: Identity) -> dict[str, Any]:
        """The state including the events of this write (their seq)."""
        await changes.flush()
        assert changes.cid is not None
        return await self._state(changes.tx, changes.cid, identity)

    async def _state(self, tx: Transaction, cid: str, identity: Identity) -> dict[str, Any]:
        return (await self._states(tx, cid, [identity]))[0]

    async def _states(
        self,
        tx: Transaction,
        cid: str,
        identities: list[Identity],
        *,
        roster: Roster | None = None,
        own: Mapping[str, ParticipantRecord] | None = None,
    ) -> list[dict[str, Any]]:
        """The state as this transaction now sees it (re-read: events bumped `seq`), per caller.

        Each caller's capabilities come from the same member and block lists
        the state shows, so the states cost a fixed number of queries whatever
        the call's size (the audience is counted, never listed) and however
        many callers. `roster` is those lists when this transaction read them
        and left them unchanged; `own` participant records the caller has.
        """
        ctx = await load_call(tx, cid)
        if roster is None:
            roster = await ctx.roster(tx)
        access = ctx.access_of(roster)
        caps_of = [identity.capabilities_in(access) for identity in identities]
        moderators = [Capability.UPDATE_CALL_PERMISSIONS in caps for caps in caps_of]
        one_user = None if any(moderators) or len(identities) != 1 else identities[0].user_id
        now = self.rt.clock()
        pending = [
            r
            for r in await tx.list_requests(cid, state=RequestState.PENDING, user_id=one_user)
            if r.expires_at > now
        ]
        split = tier_split(access)
        stage = [
            tiered_view(p, Tier.STAGE)
            for p in await tx.list_participants(cid, **split.stage_filter)
        ]
        # Each caller sees its own record, even from the audience.
        known = dict(own or {})
        unread = {
            i.user_id
            for i in identities
            if split.tier(i.user_id) is Tier.AUDIENCE and i.user_id not in known
        }
        if unread:
            known |= {p.user_id: p for p in await tx.list_participants(cid, only=unread)}
        audience_count = await count_audience(tx, ctx.call, split)
        states = []
        for identity, caps, moderator in zip(identities, caps_of, moderators, strict=True):
            mine = known.get(identity.user_id)
            shown = stage
            if mine is not None and split.tier(identity.user_id) is Tier.AUDIENCE:
                shown = [*stage, tiered_view(mine, Tier.AUDIENCE)]
            states.append(
                state_view(
                    call=ctx.call,
                    call_type=ctx.call_type,
                    members=roster.members,
                    stage=shown,
                    audience_count=audience_count,
                    blocked=roster.blocked,
                    pending_requests=(
                        pending
                        if moderator
                        else [r for r in pending if r.user_id == identity.user_id]
                    ),
                    own_capabilities=caps,
                )
            )
        return states

"""Permission requests and direct grants/revokes (spec §1 lifecycle, §2 endpoints)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from podium.bus.events import Audience
from podium.core import roles
from podium.core.capabilities import Capabilities, Capability, sorted_names
from podium.core.errors import (
    PermissionDenied,
    RateLimited,
    RequestAlreadyResolved,
    RequestNotFound,
    UserBlocked,
    ValidationFailed,
)
from podium.core.policy import MemberGrants, with_granted, with_revoked
from podium.core.rates import retry_after_s
from podium.core.requests import (
    ExistingRequest,
    PermissionRequest,
    RequestState,
    Resolution,
    decide_request,
    is_expired,
)
from podium.protocol.events import EventType
from podium.services.context import (
    CallContext,
    Changes,
    Runtime,
    load_call,
    writing,
)
from podium.services.grants import (
    EXPIRED_REASON,
    MODERATORS,
    after_capability_change,
    announce_move,
    announce_resolution,
    store_resolution,
    write_resolution,
)
from podium.services.identity import Identity
from podium.services.views import member_view
from podium.store.records import MemberRecord

#: The window of `Limits.requests_per_minute`.
ACTIVITY_WINDOW = timedelta(minutes=1)


class PermissionsService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def request(
        self, identity: Identity, cid: str, asked: Capabilities
    ) -> tuple[PermissionRequest, bool]:
        """Ask for capabilities; returns (request, created). Asking again returns the same."""
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            ctx.require_not_ended()
            if await tx.get_block(cid, identity.user_id) is not None:
                raise PermissionDenied(
                    "you are blocked in this call", {"reason": "blocked", "call_cid": cid}
                )
            member = await tx.get_member(cid, identity.user_id)
            held = await ctx.capabilities(tx, identity, member=member)
            may_request = (
                member is not None or await tx.get_participant(cid, identity.user_id) is not None
            )
            pending = await self._unexpired(
                changes,
                await tx.list_requests(cid, state=RequestState.PENDING, user_id=identity.user_id),
            )
            rejected = await tx.list_requests(
                cid, state=RequestState.REJECTED, user_id=identity.user_id
            )
            decision = decide_request(
                call_type=ctx.call_type,
                asked=asked,
                held=held,
                may_request=may_request,
                pending=pending,
                rejected=rejected,
                now=changes.now,
            )
            if isinstance(decision, ExistingRequest):
                return decision.request, False
            await self._limit_activity(changes, identity.user_id)
            request = PermissionRequest(
                id=uuid.uuid4().hex,
                call_cid=cid,
                user_id=identity.user_id,
                permissions=decision.permissions,
                state=RequestState.PENDING,
                created_at=changes.now,
                expires_at=decision.expires_at,
            )
            await tx.insert_request(request)
            changes.emit(
                EventType.PERMISSION_REQUEST,
                {"request": request.to_dict(), "user": identity.public()},
                Audience.holders(MODERATORS),
            )
            return request, True

    async def list_requests(
        self, identity: Identity, cid: str, state: RequestState | None
    ) -> list[PermissionRequest]:
        """All requests for moderators; a user without `update-call-permissions` sees their own."""
        async with self.rt.store.read() as tx:
            ctx = await load_call(tx, cid)
            caps = await ctx.require(tx, identity, Capability.READ_CALL)
            user_id = None if MODERATORS in caps else identity.user_id
            return await tx.list_requests(cid, state=state, user_id=user_id)

    async def answer(
        self,
        identity: Identity,
        cid: str,
        request_id: str,
        resolution: Resolution,
        reason: str | None = None,
    ) -> PermissionRequest:
        """Accept or reject: first answer wins, the other gets `request_already_resolved`."""
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            await ctx.require(tx, identity, MODERATORS)
            request = await self._answerable(changes, cid, request_id)
            if request is not None and resolution is Resolution.ACCEPT:
                await _require_not_blocked(changes, request.user_id)
            resolved = request and await store_resolution(
                changes, request, resolution, by=identity.user_id, reason=reason
            )
            if resolved is not None and resolution is Resolution.ACCEPT:
                # The requester learns its new capabilities before the resolution,
                # so a client never sees "not awaiting, not allowed" in between.
                await self._change_member(
                    changes, ctx, resolved.user_id, grant=resolved.permissions, by=identity.user_id
                )
            if resolved is not None:
                announce_resolution(changes, resolved)
        return _answered(resolved, request_id)

    async def cancel(self, identity: Identity, cid: str, request_id: str) -> PermissionRequest:
        """The requester withdraws a pending request."""
        async with writing(self.rt, cid) as changes:
            await load_call(changes.tx, cid)
            found = await changes.tx.get_request(cid, request_id)
            if found is None or (found.user_id != identity.user_id and not identity.server):
                raise RequestNotFound(f"request {request_id} not found", {"request_id": request_id})
            if not identity.server:
                await self._limit_activity(changes, identity.user_id)
            request = await self._answerable(changes, cid, request_id)
            resolved = request and await write_resolution(
                changes, request, Resolution.CANCEL, by=identity.user_id, reason=None
            )
        return _answered(resolved, request_id)

    async def update_user_permissions(
        self,
        identity: Identity,
        cid: str,
        user_id: str,
        grant: Capabilities,
        revoke: Capabilities,
    ) -> list[str]:
        """Grant and revoke in one step; returns the user's capabilities afterwards."""
        both = grant & revoke
        if both:
            raise ValidationFailed(
                "a capability cannot be granted and revoked at once",
                {"permissions": sorted_names(both)},
            )
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            ctx.require_not_ended()
            await ctx.require(tx, identity, MODERATORS)
            if grant:
                await _require_not_blocked(changes, user_id)
            await self._change_member(
                changes, ctx, user_id, grant=grant, revoke=revoke, by=identity.user_id
            )
            return sorted_names(await ctx.user_capabilities(tx, user_id))

    async def expire_overdue(self) -> int:
        """Expire every pending request whose time is up; returns how many.

        Every node may run this: the per-call write lock and the conditional
        resolve make sure each request expires once.
        """
        async with self.rt.store.read() as tx:
            cids = await tx.calls_with_overdue_requests(self.rt.clock())
        expired = 0
        for cid in cids:
            async with writing(self.rt, cid) as changes:
                pending = await changes.tx.list_requests(cid, state=RequestState.PENDING)
                expired += len(pending) - len(await self._unexpired(changes, pending))
        return expired

    async def _limit_activity(self, changes: Changes, user_id: str) -> None:
        """429 once the user asked for or cancelled `requests_per_minute` requests in 60 s.

        Each one notifies every moderator: a loop of request and cancel must not
        flood them.
        """
        assert changes.cid is not None
        limit = self.rt.limits.requests_per_minute
        now = changes.now
        times = await changes.tx.request_activity(changes.cid, user_id, now - ACTIVITY_WINDOW)
        wait = retry_after_s(times, limit, ACTIVITY_WINDOW, now)
        if wait:
            raise RateLimited(
                f"at most {limit} permission requests and cancels a minute; try again in {wait} s",
                {"retry_after_s": wait, "limit": limit, "window_s": 60},
            )

    async def _unexpired(
        self, changes: Changes, pending: list[PermissionRequest]
    ) -> list[PermissionRequest]:
        """Expire the overdue ones among `pending` (telling everyone); return the rest."""
        live = []
        for request in pending:
            if is_expired(request, changes.now):
                await write_resolution(
                    changes, request, Resolution.EXPIRE, by=None, reason=EXPIRED_REASON
                )
            else:
                live.append(request)
        return live

    async def _answerable(
        self, changes: Changes, cid: str, request_id: str
    ) -> PermissionRequest | None:
        """The request if it is still pending; an overdue one is expired here (None).

        Expiring is written and committed even though the caller then answers
        409: the request really did expire, and everyone is told.
        """
        request = await changes.tx.get_request(cid, request_id)
        if request is None:
            raise RequestNotFound(f"request {request_id} not found", {"request_id": request_id})
        if not is_expired(request, changes.now):
            return request
        await write_resolution(changes, request, Resolution.EXPIRE, by=None, reason=EXPIRED_REASON)
        return None

    async def _change_member(
        self,
        changes: Changes,
        ctx: CallContext,
        user_id: str,
        *,
        grant: Capabilities = frozenset(),
        revoke: Capabilities = frozenset(),
        by: str,
    ) -> None:
        tx = changes.tx
        before = await tx.get_member(ctx.cid, user_id)
        permissions = before.permissions if before else None
        grants = with_revoked(with_granted(permissions or MemberGrants(roles.USER), grant), revoke)
        after = MemberRecord(
            ctx.cid,
            user_id,
            grants.role,
            grants.grants,
            grants.revokes,
            before.created_at if before else changes.now,
            changes.now,
        )
        if before is not None and before.permissions == after.permissions:
            return
        await tx.upsert_member(after)
        await after_capability_change(changes, ctx, user_id, before, after, by=by)
        changes.emit(
            EventType.MEMBER_UPDATED if before else EventType.MEMBER_ADDED,
            {"members": [member_view(after)]},
            Audience.watchers(),
            refresh=True,
        )
        await announce_move(changes, ctx, user_id, before, after)


async def _require_not_blocked(changes: Changes, user_id: str) -> None:
    assert changes.cid is not None
    if await changes.tx.get_block(changes.cid, user_id) is not None:
        raise UserBlocked(
            f"{user_id} is blocked in this call: unblock them first", {"user_id": user_id}
        )


def _answered(resolved: PermissionRequest | None, request_id: str) -> PermissionRequest:
    if resolved is None:
        raise RequestAlreadyResolved(
            f"request {request_id} is already resolved", {"request_id": request_id}
        )
    return resolved

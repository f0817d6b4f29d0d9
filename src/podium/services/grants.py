"""Consequences of a capability change, shared by accept, direct grants, roles and blocks.

Whenever a user's capabilities change, that user is told (`call.permissions_updated`)
and any pending request of theirs that is now fully held is resolved as accepted.
"""

from __future__ import annotations

from podium.bus.events import Audience
from podium.core.capabilities import Capabilities, Capability, sorted_names
from podium.core.requests import (
    PermissionRequest,
    RequestState,
    Resolution,
    is_expired,
    resolve,
    satisfied_requests,
)
from podium.core.stage import tier_of
from podium.protocol.events import EventType, PermissionsReason
from podium.services.audience import tiered_view
from podium.services.context import CallContext, Changes
from podium.store.records import MemberRecord

MODERATORS = Capability.UPDATE_CALL_PERMISSIONS
EXPIRED_REASON = "expired"


async def after_capability_change(
    changes: Changes,
    ctx: CallContext,
    user_id: str,
    before: MemberRecord | None,
    after: MemberRecord | None,
    *,
    by: str,
) -> None:
    """Tell the user if their capabilities changed, and accept what is now held."""
    tx = changes.tx
    old, new = [await ctx.user_capabilities(tx, user_id, member=m) for m in (before, after)]
    if old == new:
        return
    await settle_satisfied(changes, ctx, user_id, new, by=by)
    role_changed = (before.role if before else None) != (after.role if after else None)
    notify_capabilities(
        changes,
        user_id,
        new,
        reason=PermissionsReason.ROLE_CHANGED
        if role_changed
        else PermissionsReason.PERMISSIONS_CHANGED,
    )


async def announce_move(
    changes: Changes,
    ctx: CallContext,
    user_id: str,
    before: MemberRecord | None,
    after: MemberRecord | None,
) -> None:
    """`call.participant_moved` to every watcher if this member change moved a joined participant.

    Emitted after the member event, so a client applying events in order
    already knows the new grants when the participant changes tier.
    """
    tx = changes.tx
    old, new = [await ctx.user_capabilities(tx, user_id, member=m) for m in (before, after)]
    if tier_of(old) is tier_of(new):
        return
    participant = await tx.get_participant(ctx.cid, user_id)
    if participant is not None:
        changes.emit(
            EventType.PARTICIPANT_MOVED,
            {"participant": tiered_view(participant, tier_of(new))},
            Audience.watchers(),
        )


def notify_capabilities(changes: Changes, user_id: str, caps: Capabilities, *, reason: str) -> None:
    """`reason` says what changed them, e.g. so the SFU can tell a client "role_changed"."""
    changes.emit(
        EventType.PERMISSIONS_UPDATED,
        {"user_id": user_id, "own_capabilities": sorted_names(caps), "reason": reason},
        Audience.users(user_id),
        refresh=True,
    )


async def settle_satisfied(
    changes: Changes, ctx: CallContext, user_id: str, held: Capabilities, *, by: str
) -> None:
    pending = await changes.tx.list_requests(ctx.cid, state=RequestState.PENDING, user_id=user_id)
    for request in satisfied_requests(pending, held):
        await settle(changes, request, Resolution.ACCEPT, by=by, reason="granted")


async def end_pending_requests(
    changes: Changes, ctx: CallContext, user_id: str | None, *, by: str, reason: str
) -> None:
    """Cancel pending requests (of one user, or all) so no one is left awaiting."""
    pending = await changes.tx.list_requests(ctx.cid, state=RequestState.PENDING, user_id=user_id)
    for request in pending:
        await settle(changes, request, Resolution.CANCEL, by=by, reason=reason)


async def settle(
    changes: Changes, request: PermissionRequest, resolution: Resolution, *, by: str, reason: str
) -> None:
    """Resolve a request as a side effect; one already overdue is expired instead."""
    if is_expired(request, changes.now):
        await write_resolution(changes, request, Resolution.EXPIRE, by=None, reason=EXPIRED_REASON)
    else:
        await write_resolution(changes, request, resolution, by=by, reason=reason)


async def write_resolution(
    changes: Changes,
    request: PermissionRequest,
    resolution: Resolution,
    *,
    by: str | None,
    reason: str | None,
) -> PermissionRequest | None:
    """Resolve and store a request, and tell the requester and the moderators.

    Returns None when the store says another answer won (nothing is written).
    """
    resolved = await store_resolution(changes, request, resolution, by=by, reason=reason)
    if resolved is not None:
        announce_resolution(changes, resolved)
    return resolved


async def store_resolution(
    changes: Changes,
    request: PermissionRequest,
    resolution: Resolution,
    *,
    by: str | None,
    reason: str | None,
) -> PermissionRequest | None:
    resolved = resolve(request, resolution, by=by, now=changes.now, reason=reason)
    return resolved if await changes.tx.resolve_request(resolved) else None


def announce_resolution(changes: Changes, resolved: PermissionRequest) -> None:
    changes.emit(
        EventType.PERMISSION_REQUEST_RESOLVED,
        {"request": resolved.to_dict()},
        Audience.holders(MODERATORS, resolved.user_id),
    )

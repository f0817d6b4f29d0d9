"""HTTP endpoints of spec §2: parse, call one service method, shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from podium.api.deps import Caller, Svc
from podium.api.schemas import (
    CallIdPath,
    CallTypeIn,
    CallTypePath,
    GetOrCreateIn,
    MembersIn,
    MuteIn,
    PermissionsIn,
    RejectIn,
    RequestIdPath,
    RevokeTokenIn,
    UserIn,
    UserPermissionsIn,
)
from podium.core.call_types import CallType
from podium.core.requests import RequestState, Resolution
from podium.protocol.ids import ID_REGEX, call_cid
from podium.protocol.stage import Tier
from podium.services.calls import MemberChange
from podium.services.revocations import revocation_by_id, revocation_of
from podium.store.records import RevokedToken

#: Participants per page of `GET .../participants`: by default, and at most.
DEFAULT_PAGE = 50
MAX_PAGE = 200

router = APIRouter(prefix="/v1")
JSON = dict[str, Any]


@router.get("/call-types", tags=["call types"])
async def list_call_types(svc: Svc, _: Caller) -> JSON:
    return {"call_types": [ct.to_dict() for ct in await svc.calls.list_call_types()]}


@router.get("/call-types/{type}", tags=["call types"])
async def get_call_type(type: CallTypePath, svc: Svc, _: Caller) -> JSON:
    return (await svc.calls.get_call_type(type)).to_dict()


@router.put("/call-types/{type}", tags=["call types"])
async def put_call_type(type: CallTypePath, body: CallTypeIn, svc: Svc, who: Caller) -> JSON:
    """Create or replace a call type (server tokens only)."""
    call_type = CallType.from_dict(type, body.model_dump(mode="json"))
    return (await svc.calls.put_call_type(who, call_type)).to_dict()


@router.get("/calls", tags=["calls"])
async def list_calls(
    svc: Svc,
    who: Caller,
    type: Annotated[str | None, Query(pattern=ID_REGEX)] = None,
    live: bool | None = None,
) -> JSON:
    """Calls the caller is a member of, plus live calls it may read."""
    return {"calls": await svc.calls.list_calls(who, type, live)}


@router.post("/calls/{type}/{id}", tags=["calls"])
async def get_or_create_call(
    type: CallTypePath,
    id: CallIdPath,
    svc: Svc,
    who: Caller,
    response: Response,
    body: GetOrCreateIn | None = None,
) -> JSON:
    """Get the call, creating it (caller becomes host) if it does not exist: 201 then."""
    body = body or GetOrCreateIn()
    members = [MemberChange(m.user_id, m.role) for m in body.members]
    state, created = await svc.calls.get_or_create(who, type, id, members, body.custom)
    response.status_code = 201 if created else 200
    return state


@router.get("/calls/{type}/{id}", tags=["calls"])
async def get_call(type: CallTypePath, id: CallIdPath, svc: Svc, who: Caller) -> JSON:
    return await svc.calls.get_state(who, call_cid(type, id))


@router.get("/calls/{type}/{id}/participants", tags=["calls"])
async def list_participants(
    type: CallTypePath,
    id: CallIdPath,
    svc: Svc,
    who: Caller,
    tier: Tier | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(pattern=ID_REGEX)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> JSON:
    """Joined participants page by page, in user id order; `tier` keeps the stage or audience."""
    return await svc.calls.participants_page(
        who, call_cid(type, id), tier=tier, limit=limit, after=cursor, prefix=q
    )


@router.post("/calls/{type}/{id}/join", tags=["calls"])
async def join_call(type: CallTypePath, id: CallIdPath, svc: Svc, who: Caller) -> JSON:
    state = await svc.calls.join(who, call_cid(type, id))
    state["media"] = svc.media.connection_info(who.user_id)
    return state


@router.post("/calls/{type}/{id}/leave", tags=["calls"])
async def leave_call(type: CallTypePath, id: CallIdPath, svc: Svc, who: Caller) -> JSON:
    return await svc.calls.leave(who, call_cid(type, id))


@router.post("/calls/{type}/{id}/go-live", tags=["calls"])
async def go_live(type: CallTypePath, id: CallIdPath, svc: Svc, who: Caller) -> JSON:
    return await svc.calls.set_live(who, call_cid(type, id), live=True)


@router.post("/calls/{type}/{id}/stop-live", tags=["calls"])
async def stop_live(type: CallTypePath, id: CallIdPath, svc: Svc, who: Caller) -> JSON:
    return await svc.calls.set_live(who, call_cid(type, id), live=False)


@router.post("/calls/{type}/{id}/end", tags=["calls"])
async def end_call(type: CallTypePath, id: CallIdPath, svc: Svc, who: Caller) -> JSON:
    return await svc.calls.end(who, call_cid(type, id))


@router.post("/calls/{type}/{id}/members", tags=["calls"])
async def update_members(
    type: CallTypePath, id: CallIdPath, body: MembersIn, svc: Svc, who: Caller
) -> JSON:
    update = [MemberChange(m.user_id, m.role) for m in body.update]
    return await svc.calls.update_members(who, call_cid(type, id), update, body.remove)


@router.post("/calls/{type}/{id}/permission-requests", tags=["permission requests"])
async def request_permissions(
    type: CallTypePath,
    id: CallIdPath,
    body: PermissionsIn,
    svc: Svc,
    who: Caller,
    response: Response,
) -> JSON:
    """201 with a new pending request, or 200 with the pending one that already asks."""
    request, created = await svc.permissions.request(
        who, call_cid(type, id), frozenset(body.permissions)
    )
    response.status_code = 201 if created else 200
    return {"request": request.to_dict()}


@router.get("/calls/{type}/{id}/permission-requests", tags=["permission requests"])
async def list_permission_requests(
    type: CallTypePath,
    id: CallIdPath,
    svc: Svc,
    who: Caller,
    state: RequestState | None = None,
) -> JSON:
    requests = await svc.permissions.list_requests(who, call_cid(type, id), state)
    return {"requests": [r.to_dict() for r in requests]}


@router.post("/calls/{type}/{id}/permission-requests/{rid}/accept", tags=["permission requests"])
async def accept_request(
    type: CallTypePath, id: CallIdPath, rid: RequestIdPath, svc: Svc, who: Caller
) -> JSON:
    request = await svc.permissions.answer(who, call_cid(type, id), rid, Resolution.ACCEPT)
    return {"request": request.to_dict()}


@router.post("/calls/{type}/{id}/permission-requests/{rid}/reject", tags=["permission requests"])
async def reject_request(
    type: CallTypePath,
    id: CallIdPath,
    rid: RequestIdPath,
    svc: Svc,
    who: Caller,
    body: RejectIn | None = None,
) -> JSON:
    reason = body.reason if body else None
    request = await svc.permissions.answer(who, call_cid(type, id), rid, Resolution.REJECT, reason)
    return {"request": request.to_dict()}


@router.delete("/calls/{type}/{id}/permission-requests/{rid}", tags=["permission requests"])
async def cancel_request(
    type: CallTypePath, id: CallIdPath, rid: RequestIdPath, svc: Svc, who: Caller
) -> JSON:
    request = await svc.permissions.cancel(who, call_cid(type, id), rid)
    return {"request": request.to_dict()}


@router.post("/calls/{type}/{id}/user-permissions", tags=["moderation"])
async def update_user_permissions(
    type: CallTypePath, id: CallIdPath, body: UserPermissionsIn, svc: Svc, who: Caller
) -> JSON:
    caps = await svc.permissions.update_user_permissions(
        who, call_cid(type, id), body.user_id, frozenset(body.grant), frozenset(body.revoke)
    )
    return {"user_id": body.user_id, "own_capabilities": caps}


@router.post("/calls/{type}/{id}/mute", tags=["moderation"])
async def mute_users(
    type: CallTypePath, id: CallIdPath, body: MuteIn, svc: Svc, who: Caller
) -> JSON:
    kinds = body.kinds()
    await svc.moderation.mute(who, call_cid(type, id), body.user_ids, kinds)
    return {"user_ids": body.user_ids, "kinds": [k.value for k in kinds]}


@router.post("/calls/{type}/{id}/block", tags=["moderation"])
async def block_user(
    type: CallTypePath, id: CallIdPath, body: UserIn, svc: Svc, who: Caller
) -> JSON:
    await svc.moderation.block(who, call_cid(type, id), body.user_id)
    return {"user_id": body.user_id, "blocked": True}


@router.post("/calls/{type}/{id}/unblock", tags=["moderation"])
async def unblock_user(
    type: CallTypePath, id: CallIdPath, body: UserIn, svc: Svc, who: Caller
) -> JSON:
    await svc.moderation.unblock(who, call_cid(type, id), body.user_id)
    return {"user_id": body.user_id, "blocked": False}


@router.post("/tokens/revoke", tags=["tokens"])
async def revoke_token(body: RevokeTokenIn, svc: Svc, who: Caller) -> JSON:
    """Refuse a token from now until it expires, on every node (401 `token_revoked`).

    A user token may revoke the same user's tokens (`token`); a server token
    any token, also by `jti`. An expired token needs no revoking (`revoked: false`).
    """
    now = svc.calls.rt.clock()
    revoked: RevokedToken | None
    if body.jti is not None:
        revoked = revocation_by_id(
            body.jti, by=who, max_ttl_s=svc.settings.limits.token_ttl_s, now=now
        )
    else:
        assert body.token is not None
        revoked = revocation_of(svc.settings.secret, body.token, by=who, now=now)
    if revoked is None:
        return {"revoked": False, "reason": "expired"}
    await svc.revocations.revoke(revoked)
    return {
        "revoked": True,
        "token_id": revoked.token_id,
        "until": revoked.expires_at.isoformat(),
    }

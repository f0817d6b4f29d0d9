"""The authorization matrix: every endpoint, caller kind and call phase, on every built-in type.

The one table written by hand is `NEEDS`, the spec's "needs" column
(PRODUCT.md §2). Each case's expected answer is computed from the permission
core (`own_capabilities`, `decide_request`, `BUILTIN_CALL_TYPES`) and from the
order in which the services check (`ENDED_FIRST`), then compared with what a
real server answers. Every case gets its own call, set up with a server token.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from podium.api.routes import router
from podium.core import roles
from podium.core.call_types import BUILTIN_CALL_TYPES, CallType
from podium.core.capabilities import ALL_CAPABILITIES, Capabilities, Capability, sorted_names
from podium.core.errors import PodiumError
from podium.core.policy import CallPhase, MemberGrants, initial_phase, own_capabilities
from podium.core.requests import decide_request
from podium.tokens import mint_server_token, mint_user_token
from tests.api.helpers import Room, WsProbe, uid
from tests.server import SECRET, ServerProcess

JSON = dict[str, Any]
CONCURRENCY = 12
RUN_TIMEOUT_S = 120.0

# Caller kinds.
SERVER = "server"
HOST = "host"
SPEAKER = "speaker"
MEMBER = "member"
PARTICIPANT = "participant"  # a non-member who joined while the call was live
OUTSIDER = "outsider"
ADMIN = "admin"  # a non-member whose token carries role admin
BLOCKED = "blocked"  # a member who joined when it could, then was blocked
NO_TOKEN = "no-token"
BAD_SIGNATURE = "bad-signature"
EXPIRED_TOKEN = "expired-token"
#: The 401 each refused token gets, before anything about the call is looked at.
ANONYMOUS = {
    NO_TOKEN: "invalid_token",
    BAD_SIGNATURE: "invalid_token",
    EXPIRED_TOKEN: "token_expired",
}
CALLERS = (SERVER, HOST, SPEAKER, MEMBER, PARTICIPANT, OUTSIDER, ADMIN, BLOCKED, *ANONYMOUS)

# Users of every call who are not callers.
REQUESTER = "requester"
TARGET = "target"
NEWCOMER = "newcomer"
CALLER = "caller"  # `Op.request_of`: the caller's own request

#: The members each call is created with; every other user is a non-member.
MEMBER_ROLES = {
    HOST: roles.HOST,
    SPEAKER: roles.SPEAKER,
    MEMBER: roles.USER,
    BLOCKED: roles.USER,
    REQUESTER: roles.USER,
    TARGET: roles.USER,
}

# Needs that are not a single capability.
JOIN = "join-call, or join-backstage in backstage"
MEMBER_OR_PARTICIPANT = "member or participant"
THE_REQUESTER = "the requester"
OWN_OR_ALL = "update-call-permissions (others see only their own)"
JOINED = "joined participant"
ANY_TOKEN = "any token"
SERVER_ONLY = "server"

C = Capability
#: The spec's "needs" column, per operation.
NEEDS: dict[str, Capability | str] = {
    "list-call-types": ANY_TOKEN,
    "get-call-type": ANY_TOKEN,
    "put-call-type": SERVER_ONLY,
    "list-calls": ANY_TOKEN,
    "get-or-create": C.READ_CALL,  # the call exists
    "get": C.READ_CALL,
    "participants": C.READ_CALL,
    "join": JOIN,
    # The spec puts leave on join's row, but a participant must be able to leave in
    # any phase (after stop-live it holds neither); leave answers the call state.
    "leave": C.READ_CALL,
    "go-live": C.GO_LIVE,
    "stop-live": C.GO_LIVE,
    "end": C.END_CALL,
    "members": C.UPDATE_CALL_MEMBER,
    "request": MEMBER_OR_PARTICIPANT,
    "list-requests": OWN_OR_ALL,
    "accept": C.UPDATE_CALL_PERMISSIONS,
    "accept-blocked": C.UPDATE_CALL_PERMISSIONS,
    "reject": C.UPDATE_CALL_PERMISSIONS,
    "cancel": THE_REQUESTER,
    "cancel-own": THE_REQUESTER,
    "user-permissions": C.UPDATE_CALL_PERMISSIONS,
    "grant-blocked": C.UPDATE_CALL_PERMISSIONS,
    "mute": C.MUTE_USERS,
    "block": C.BLOCK_USERS,
    "unblock": C.BLOCK_USERS,
    "watch": C.READ_CALL,
    "media": JOINED,  # docs/api.md, "Media signalling"
    # docs/api.md, "Authentication": your own tokens; anyone's (or by jti) with a server token.
    "revoke-own": ANY_TOKEN,
    "revoke-other": SERVER_ONLY,
    "revoke-jti": SERVER_ONLY,
}

#: Operations whose service calls `require_not_ended()` before any other check
#: (calls.join/set_live/end, permissions.request/update_user_permissions,
#: moderation.mute, media._join): 409 `call_ended` even for a server token.
ENDED_FIRST = frozenset(
    {"join", "go-live", "stop-live", "end", "request", "user-permissions", "grant-blocked"}
    | {"mute", "media"}
)

#: HTTP status of each domain error code, for answers that come over the WebSocket.
STATUS_OF = {error.code: error.status for error in PodiumError.__subclasses__()}
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Op:
    """One operation as a client calls it; `route` is the path routes.py declares."""

    name: str
    method: str
    route: str
    body: Callable[[World], JSON] | None = None
    query: Callable[[World], dict[str, str]] | None = None
    #: Whose request the setup makes (and `{rid}` names).
    request_of: str | None = None
    #: The setup blocks the blocked user.
    blocks: bool = False
    #: The operation grants to the blocked user: 409 `user_blocked`.
    at_blocked: bool = False
    #: Whether the answer lists the case's call, or the setup's request.
    listed: Callable[[JSON, World], bool] | None = None
    on_call: bool = True
    fresh_type: bool = False


@dataclass(frozen=True)
class Case:
    op: Op
    caller: str
    call_type: CallType
    phase: CallPhase

    def __str__(self) -> str:
        where = f" {self.call_type.name}/{self.phase}" if self.op.on_call else ""
        return f"{self.op.name}{where} as {self.caller}"


@dataclass
class World:
    """The users and the call one case runs against."""

    case: Case
    users: dict[str, str]
    room: Room
    rid: str
    new_type: str

    def token(self, kind: str) -> str | None:
        if kind == SERVER:
            return mint_server_token(SECRET)
        if kind == NO_TOKEN:
            return None
        if kind == BAD_SIGNATURE:
            return mint_user_token(SECRET[::-1], self.users[kind])
        if kind == EXPIRED_TOKEN:
            return mint_user_token(SECRET, self.users[kind], ttl_s=-60)
        return mint_user_token(
            SECRET, self.users[kind], role=roles.ADMIN if kind == ADMIN else None
        )

    def headers(self, kind: str) -> dict[str, str]:
        token = self.token(kind)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def url(self, op: Op) -> str:
        type_name = self.new_type if op.fresh_type else self.room.type
        return op.route.format(type=type_name, id=self.room.id, rid=self.rid)


@dataclass(frozen=True)
class Outcome:
    """An answer reduced to what authorization decides."""

    status: int
    code: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    shows: bool | None = None
    capabilities: tuple[str, ...] | None = None

    def __str__(self) -> str:
        parts = [str(self.status), self.code or ""]
        if self.details:
            parts.append(json.dumps(dict(self.details), sort_keys=True))
        if self.shows is not None:
            parts.append("listed" if self.shows else "not listed")
        if self.capabilities is not None:
            parts.append(f"own_capabilities={list(self.capabilities)}")
        return " ".join(p for p in parts if p)

    def matches(self, got: Outcome) -> bool:
        return (
            got.status == self.status
            and got.code == self.code
            and all(got.details.get(k) == v for k, v in self.details.items())
            and got.shows == self.shows
            and got.capabilities == self.capabilities
        )


CALL = "/v1/calls/{type}/{id}"
REQUESTS = CALL + "/permission-requests"
REQUEST = REQUESTS + "/{rid}"
TOKENS = "/v1/tokens/revoke"


def _user(name: str) -> Callable[[World], JSON]:
    return lambda w: {"user_id": w.users[name]}


def _grant_to(name: str) -> Callable[[World], JSON]:
    return lambda w: {"user_id": w.users[name], "grant": [C.SCREENSHARE.value]}


def _request_body(w: World) -> JSON:
    return {"permissions": [asked(w.case.caller, w.case.call_type, w.case.phase)]}


def _lists_call(body: JSON, w: World) -> bool:
    return any(call.get("cid") == w.room.cid for call in body.get("calls", []))


def _lists_request(body: JSON, w: World) -> bool:
    return any(request.get("id") == w.rid for request in body.get("requests", []))


OPS = (
    Op("list-call-types", "GET", "/v1/call-types", on_call=False),
    Op("get-call-type", "GET", "/v1/call-types/{type}", on_call=False),
    Op(
        "put-call-type",
        "PUT",
        "/v1/call-types/{type}",
        body=lambda w: {"grants": {roles.USER: [C.READ_CALL.value]}},
        on_call=False,
        fresh_type=True,
    ),
    # The list holds the newest 100 calls: at most CONCURRENCY are made after a case's own.
    Op("list-calls", "GET", "/v1/calls", query=lambda w: {"type": w.room.type}, listed=_lists_call),
    Op("get-or-create", "POST", CALL, body=lambda w: {}),
    Op("get", "GET", CALL),
    Op("participants", "GET", CALL + "/participants"),
    Op("join", "POST", CALL + "/join"),
    Op("leave", "POST", CALL + "/leave"),
    Op("go-live", "POST", CALL + "/go-live"),
    Op("stop-live", "POST", CALL + "/stop-live"),
    Op("end", "POST", CALL + "/end"),
    Op(
        "members",
        "POST",
        CALL + "/members",
        body=lambda w: {"update": [{"user_id": w.users[NEWCOMER], "role": roles.USER}]},
    ),
    Op("request", "POST", REQUESTS, body=_request_body),
    Op("list-requests", "GET", REQUESTS, request_of=REQUESTER, listed=_lists_request),
    Op("accept", "POST", REQUEST + "/accept", request_of=REQUESTER),
    Op(
        "accept-blocked",
        "POST",
        REQUEST + "/accept",
        request_of=BLOCKED,
        blocks=True,
        at_blocked=True,
    ),
    Op(
        "reject", "POST", REQUEST + "/reject", body=lambda w: {"reason": "no"}, request_of=REQUESTER
    ),
    Op("cancel", "DELETE", REQUEST, request_of=REQUESTER),
    Op("cancel-own", "DELETE", REQUEST, request_of=CALLER),
    Op("user-permissions", "POST", CALL + "/user-permissions", body=_grant_to(TARGET)),
    Op(
        "grant-blocked",
        "POST",
        CALL + "/user-permissions",
        body=_grant_to(BLOCKED),
        blocks=True,
        at_blocked=True,
    ),
    Op("mute", "POST", CALL + "/mute", body=lambda w: {"user_ids": [w.users[TARGET]]}),
    Op("block", "POST", CALL + "/block", body=_user(TARGET)),
    Op("unblock", "POST", CALL + "/unblock", body=_user(BLOCKED), blocks=True),
    Op(
        "revoke-own",
        "POST",
        TOKENS,
        body=lambda w: {"token": w.token(w.case.caller) or "none"},
        on_call=False,
    ),
    Op(
        "revoke-other",
        "POST",
        TOKENS,
        body=lambda w: {"token": mint_user_token(SECRET, w.users[TARGET])},
        on_call=False,
    ),
    Op("revoke-jti", "POST", TOKENS, body=lambda w: {"jti": uuid.uuid4().hex}, on_call=False),
    Op("watch", "WS", "/v1/ws", body=lambda w: {"type": "watch", "call_cid": w.room.cid}),
    # Malformed on purpose: past the gate it is answered `sfu.error`, and no media starts.
    Op(
        "media",
        "WS",
        "/v1/ws",
        body=lambda w: {"type": "sfu.publish", "call_cid": w.room.cid, "source": "none"},
    ),
)


# What the core says.


def capabilities(kind: str, ct: CallType, phase: CallPhase, *, blocked: bool) -> Capabilities:
    """What `kind` holds in the call; server tokens may act on anything (spec §2)."""
    if kind == SERVER:
        return ALL_CAPABILITIES
    role = MEMBER_ROLES.get(kind)
    member = MemberGrants(role) if role else None
    token_role = roles.ADMIN if kind == ADMIN else None
    return own_capabilities(ct, phase, member, token_role, blocked=blocked)


def held(case: Case) -> Capabilities:
    return capabilities(case.caller, case.call_type, case.phase, blocked=case.caller == BLOCKED)


def participant(kind: str, phase: CallPhase) -> bool:
    """Ending a call removes its participants; blocking removes the blocked one."""
    return kind == PARTICIPANT and phase is not CallPhase.ENDED


def asked(kind: str, ct: CallType, phase: CallPhase) -> str:
    """What `kind` asks for: the first requestable capability it lacks, else send-audio."""
    lacking = sorted_names(ct.requestable - capabilities(kind, ct, phase, blocked=False))
    return lacking[0] if lacking else C.SEND_AUDIO.value


def request_outcome(kind: str, ct: CallType, phase: CallPhase, *, blocked: bool) -> Outcome:
    """What asking for `asked(...)` answers on a call that has not ended."""
    if blocked:
        return Outcome(403, "permission_denied", {"reason": "blocked"})
    try:
        decide_request(
            call_type=ct,
            asked=frozenset({Capability(asked(kind, ct, phase))}),
            held=capabilities(kind, ct, phase, blocked=False),
            may_request=kind in MEMBER_ROLES or participant(kind, phase),
            pending=(),
            rejected=(),
            now=NOW,
        )
    except PodiumError as refusal:
        return Outcome(refusal.status, refusal.code, refusal.details)
    return Outcome(201)


def joiner(case: Case) -> str | None:
    """The caller joins during setup when it is a participant, or is to be blocked."""
    return case.caller if case.caller in (PARTICIPANT, BLOCKED) else None


def went_live(case: Case) -> bool:
    backstage = case.call_type.backstage
    return backstage and (case.phase is CallPhase.LIVE or joiner(case) is not None)


def setup_phase(case: Case) -> CallPhase:
    """The phase the setup joins and requests in."""
    return CallPhase.LIVE if went_live(case) else initial_phase(case.call_type)


def requester(case: Case) -> str | None:
    return case.caller if case.op.request_of == CALLER else case.op.request_of


def request_state(case: Case) -> str | None:
    """The state of the setup's request when the case runs; None when it could not be made."""
    who = requester(case)
    if who is None:
        return None
    made = request_outcome(who, case.call_type, setup_phase(case), blocked=False)
    if made.status != 201:
        return None
    if case.phase is CallPhase.ENDED or who == BLOCKED:
        return "cancelled"  # docs/api.md: ending and blocking cancel pending requests
    return "pending"


def missing(case: Case, capability: Capability) -> Outcome:
    """403 naming the capability, and why when it is the call's end that took it away."""
    details = {"capability": capability.value}
    unended = capabilities(
        case.caller, case.call_type, CallPhase.LIVE, blocked=case.caller == BLOCKED
    )
    if case.phase is CallPhase.ENDED and capability in unended:
        details["reason"] = "call_ended"  # docs/api.md: "when the call's end removed it"
    return Outcome(403, "permission_denied", details)


def expected(case: Case) -> Outcome:
    """The answer the spec, the docs and the core's rules call for."""
    op, kind, ct, phase = case.op, case.caller, case.call_type, case.phase
    need = NEEDS[op.name]
    if kind in ANONYMOUS:
        if op.method == "WS":  # without a token the first frame must be `auth`
            return Outcome(4001, "validation_error" if kind == NO_TOKEN else ANONYMOUS[kind])
        return Outcome(401, ANONYMOUS[kind])
    if need == SERVER_ONLY:
        return (
            Outcome(200) if kind == SERVER else Outcome(403, "permission_denied", {"server": True})
        )
    if need == ANY_TOKEN and not op.on_call:
        return Outcome(200)
    caps = held(case)
    if need == ANY_TOKEN:
        member_or_live = kind in MEMBER_ROLES or phase is CallPhase.LIVE
        return Outcome(200, shows=C.READ_CALL in caps and member_or_live)
    if phase is CallPhase.ENDED and op.name in ENDED_FIRST:
        return Outcome(409, "call_ended")
    if need == MEMBER_OR_PARTICIPANT:
        return request_outcome(kind, ct, phase, blocked=kind == BLOCKED)
    if need == JOINED:
        return Outcome(200) if participant(kind, phase) else Outcome(403, "permission_denied")
    if need == THE_REQUESTER and kind != SERVER and op.request_of != CALLER:
        return Outcome(404, "request_not_found")
    if need == OWN_OR_ALL:
        if C.READ_CALL not in caps:
            return missing(case, C.READ_CALL)
        moderator = C.UPDATE_CALL_PERMISSIONS in caps
        return Outcome(200, shows=moderator and request_state(case) is not None)
    if need == JOIN:
        need = C.JOIN_BACKSTAGE if phase is CallPhase.BACKSTAGE else C.JOIN_CALL
    if isinstance(need, Capability) and need not in caps:
        return missing(case, need)
    return allowed(case, caps)


def allowed(case: Case, caps: Capabilities) -> Outcome:
    """The answer once the caller meets the need: what the target's state decides."""
    op = case.op
    if "{rid}" in op.route:
        state = request_state(case)
        if state is None:
            return Outcome(404, "request_not_found")
        if op.at_blocked:
            return Outcome(409, "user_blocked")
        if state != "pending":
            return Outcome(409, "request_already_resolved")
        return Outcome(200)
    if op.at_blocked:
        return Outcome(409, "user_blocked")
    if op.name in ("get", "get-or-create"):
        return Outcome(200, capabilities=tuple(sorted(c.value for c in caps)))
    return Outcome(200)


def cases(op: Op) -> Iterator[Case]:
    """Every caller, built-in type and phase of that type.

    A variant about one request (the caller's own, the blocked user's) runs only
    where that request can exist.
    """
    if not op.on_call:
        for kind in CALLERS:
            yield Case(op, kind, BUILTIN_CALL_TYPES["audio_room"], CallPhase.LIVE)
        return
    for ct in BUILTIN_CALL_TYPES.values():
        for phase in CallPhase:
            if phase is CallPhase.BACKSTAGE and not ct.backstage:
                continue
            for kind in CALLERS:
                case = Case(op, kind, ct, phase)
                if op.request_of in (CALLER, BLOCKED) and request_state(case) is None:
                    continue
                yield case


# What the server says.


class SetupFailed(Exception):
    """A setup step every case relies on was refused: the case says nothing."""


async def step(pending: Awaitable[httpx.Response], status: int = 200) -> JSON:
    response = await pending
    if response.status_code != status:
        request = response.request
        raise SetupFailed(
            f"{request.method} {request.url.path} -> {response.status_code} {response.text[:300]}"
        )
    body: JSON = response.json()
    return body


async def setup(http: httpx.AsyncClient, case: Case) -> World:
    """Create the case's call with a server token and bring it where the case needs it."""
    users = {name: uid(name) for name in (*CALLERS, REQUESTER, TARGET, NEWCOMER)}
    room = Room(case.call_type.name, uid("matrix"))
    world = World(case, users, room, rid=uid("no-request"), new_type=uid("type"))
    if not case.op.on_call:
        return world
    server = world.headers(SERVER)
    members = [{"user_id": users[kind], "role": role} for kind, role in MEMBER_ROLES.items()]
    await step(http.post(room.path(), json={"members": members}, headers=server), 201)
    if went_live(case):
        await step(http.post(room.path("/go-live"), headers=server))
    who = joiner(case)
    if who is not None:
        await step(http.post(room.path("/join"), headers=world.headers(who)))
    who = requester(case)
    if who is not None and request_state(case) is not None:
        body = {"permissions": [asked(who, case.call_type, setup_phase(case))]}
        path = room.path("/permission-requests")
        made = await step(http.post(path, json=body, headers=world.headers(who)), 201)
        world.rid = made["request"]["id"]
    if went_live(case) and case.phase is CallPhase.BACKSTAGE:
        await step(http.post(room.path("/stop-live"), headers=server))
    if case.phase is CallPhase.ENDED:
        await step(http.post(room.path("/end"), headers=server))
    if case.op.blocks or case.caller == BLOCKED:
        blocked = {"user_id": users[BLOCKED]}
        await step(http.post(room.path("/block"), json=blocked, headers=server))
    return world


async def ws_answer(url: str, token: str | None, frame: JSON) -> tuple[int, JSON]:
    """Send one frame; the answer as (status, body), 4001 when authentication closed it."""
    probe = await WsProbe.open(url, token)
    try:
        if token is not None:
            await probe.wait_for(lambda f: f.get("type") in ("connection.ok", "error"))
        if not probe.frames or probe.frames[0].get("type") == "connection.ok":
            await probe.send(frame)
        reply = await probe.wait_for(lambda f: f.get("type") in ("watch.ok", "sfu.error", "error"))
        if reply["type"] != "error":
            return 200, reply
        if "in_reply_to" not in reply:
            return await probe.wait_closed() or 0, reply
        return STATUS_OF.get(reply["error"]["code"], 0), reply
    finally:
        await probe.close()


async def answer(http: httpx.AsyncClient, server: ServerProcess, world: World) -> tuple[int, JSON]:
    case = world.case
    op = case.op
    token = world.token(case.caller)
    body = op.body(world) if op.body else None
    if op.method == "WS":
        assert body is not None
        return await ws_answer(server.ws_url, token, body)
    response = await http.request(
        op.method,
        world.url(op),
        json=body,
        params=op.query(world) if op.query else None,
        headers=world.headers(case.caller),
    )
    try:
        data = response.json()
    except ValueError:
        data = {"text": response.text[:300]}
    return response.status_code, data if isinstance(data, dict) else {"body": data}


def observed(want: Outcome, world: World, status: int, body: JSON) -> Outcome:
    """The answer reduced to what `want` says something about."""
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    details = error.get("details")
    caps = body.get("own_capabilities")
    listed = world.case.op.listed
    return Outcome(
        status,
        error.get("code"),
        details if isinstance(details, dict) else {},
        shows=listed(body, world) if want.shows is not None and listed else None,
        capabilities=tuple(sorted(caps))
        if want.capabilities is not None and isinstance(caps, list)
        else None,
    )


async def check(http: httpx.AsyncClient, server: ServerProcess, case: Case) -> str | None:
    """None when the server answers as expected, else what differs (naming the case)."""
    want = expected(case)
    try:
        world = await setup(http, case)
        status, body = await answer(http, server, world)
    except SetupFailed as exc:
        return f"{case}: setup failed: {exc}"
    except (httpx.HTTPError, AssertionError, OSError, TimeoutError) as exc:
        return f"{case}: {type(exc).__name__}: {exc}"
    got = observed(want, world, status, body)
    if want.matches(got):
        return None
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else body.get("text")
    return f"{case}: expected {want}, got {got}" + (f" ({message})" if message else "")


@pytest.fixture(scope="module")
def matrix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the whole matrix; cases keep apart by unique call and user ids."""
    workdir = tmp_path_factory.mktemp("matrix-server")
    proc = ServerProcess(workdir, f"sqlite:///{workdir / 'podium.db'}").start()
    try:
        yield proc
    finally:
        proc.stop()


def test_matrix_covers_every_route() -> None:
    """A new operation in routes.py must get a row here before it ships."""
    declared = {
        (method, route.path)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    covered = {(op.method, op.route) for op in OPS if op.method != "WS"}
    assert declared == covered
    assert set(NEEDS) == {op.name for op in OPS}


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
async def test_authorization_matrix(matrix_server: ServerProcess, op: Op) -> None:
    """Every case of one operation, concurrently; all mismatches are reported at once."""
    todo = list(cases(op))
    limit = asyncio.Semaphore(CONCURRENCY)

    async with httpx.AsyncClient(
        base_url=matrix_server.url,
        timeout=httpx.Timeout(15.0),
        limits=httpx.Limits(max_connections=CONCURRENCY),
    ) as http:

        async def run(case: Case) -> str | None:
            async with limit:
                return await check(http, matrix_server, case)

        results = await asyncio.wait_for(asyncio.gather(*map(run, todo)), RUN_TIMEOUT_S)
    mismatches = [result for result in results if result]
    assert not mismatches, f"{len(mismatches)} of {len(todo)} cases differ:\n" + "\n".join(
        mismatches
    )

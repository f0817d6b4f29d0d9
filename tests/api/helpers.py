"""Shared helpers of the API tests: calls over real HTTP, WebSocket probes, error checks.

Every wait here is bounded in time; nothing loops forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

JSON = dict[str, Any]
ERROR_STATUSES = {400, 401, 403, 404, 405, 409, 413, 422, 429}
WAIT_S = 5.0


class ClientFactory(Protocol):
    def __call__(
        self, user_id: str | None = None, *, role: str | None = None, token: str | None = None
    ) -> httpx.AsyncClient: ...


class WsFactory(Protocol):
    async def __call__(self, token: str | None, *, auth_message: bool = False) -> WsProbe: ...


def uid(prefix: str = "t") -> str:
    """A unique id of `[A-Za-z0-9_-]`, so tests sharing a server never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def expect_error(response: httpx.Response, status: int, code: str) -> JSON:
    """Assert the spec's error body `{"error": {"code", "message", "details"}}`; return details."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    return dict(error["details"])


def assert_error_shape(response: httpx.Response) -> None:
    """Any 4xx: the error body shape, whatever the code."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    code = error["code"]
    assert isinstance(code, str) and code and code == code.lower() and " " not in code, code
    assert isinstance(error["message"], str), error
    assert isinstance(error["details"], dict), error


def ok(response: httpx.Response, status: int = 200) -> JSON:
    assert response.status_code == status, (response.status_code, response.text)
    body: JSON = response.json()
    return body


@dataclass(frozen=True)
class Room:
    """One call, addressed as the API addresses it."""

    type: str
    id: str

    @property
    def cid(self) -> str:
        return f"{self.type}:{self.id}"

    def path(self, suffix: str = "") -> str:
        return f"/v1/calls/{self.type}/{self.id}{suffix}"


STATE_KEYS = {
    "call",
    "settings",
    "members",
    "participants",
    "blocked_user_ids",
    "own_capabilities",
    "pending_requests",
}
REQUEST_KEYS = {"id", "call_cid", "user_id", "permissions", "state", "created_at", "expires_at"}
RESOLVED_KEYS = REQUEST_KEYS | {"resolved_by", "resolved_at", "reason"}


def assert_state(state: JSON, room: Room) -> None:
    """The call state object (spec §2): always holds `own_capabilities`."""
    assert set(state) >= STATE_KEYS, sorted(state)
    assert state["call"]["cid"] == room.cid
    assert state["call"]["type"] == room.type
    assert state["call"]["id"] == room.id
    assert isinstance(state["own_capabilities"], list)
    assert all(isinstance(c, str) for c in state["own_capabilities"])


def assert_request(request: JSON, room: Room, user_id: str, state: str) -> None:
    """A permission request as spec §2 shapes it."""
    keys = REQUEST_KEYS if state == "pending" else RESOLVED_KEYS
    assert keys <= set(request), sorted(request)
    assert isinstance(request["id"], str) and request["id"]
    assert request["call_cid"] == room.cid
    assert request["user_id"] == user_id
    assert request["state"] == state
    assert isinstance(request["permissions"], list)


def members_by_id(state: JSON) -> dict[str, JSON]:
    return {m["user_id"]: m for m in state["members"]}


def participant_ids(state: JSON) -> set[str]:
    return {p["user_id"] for p in state["participants"]}


async def create(
    client: httpx.AsyncClient,
    type_: str,
    call_id: str | None = None,
    *,
    body: JSON | None = None,
) -> tuple[Room, JSON]:
    room = Room(type_, call_id or uid("call"))
    if body is None:
        response = await client.post(room.path())
    else:
        response = await client.post(room.path(), json=body)
    return room, ok(response, 201)


async def live_audio_room(
    clients: ClientFactory, host: str, listeners: Sequence[str] = ()
) -> tuple[Room, httpx.AsyncClient, dict[str, httpx.AsyncClient]]:
    """An audio_room created by `host`, live, with every listener joined."""
    host_client = clients(host)
    room, _ = await create(host_client, "audio_room")
    ok(await host_client.post(room.path("/go-live")))
    by_user = {}
    for user in listeners:
        by_user[user] = clients(user)
        ok(await by_user[user].post(room.path("/join")))
    return room, host_client, by_user


ALL_CAPS = [
    "read-call",
    "create-call",
    "join-call",
    "join-backstage",
    "send-audio",
    "send-video",
    "screenshare",
    "update-call-permissions",
    "update-call-member",
    "mute-users",
    "go-live",
    "update-call",
    "end-call",
    "block-users",
]
"""Every capability of spec §1, written out (tests do not take them from the code)."""


async def put_call_type(server_client: httpx.AsyncClient, name: str, **fields: Any) -> JSON:
    """Create a custom call type (server token) shaped like audio_room unless told otherwise."""
    body: JSON = {
        "grants": {
            "user": ["read-call", "create-call", "join-call"],
            "speaker": ["read-call", "create-call", "join-call", "send-audio"],
            "host": ALL_CAPS,
            "admin": ALL_CAPS,
        },
        "requestable": ["send-audio", "send-video", "screenshare"],
        "backstage": False,
    }
    body.update(fields)
    return ok(await server_client.put(f"/v1/call-types/{name}", json=body))


async def ask(client: httpx.AsyncClient, room: Room, *caps: str, status: int = 201) -> JSON:
    """Request capabilities; returns the request object."""
    body = ok(
        await client.post(room.path("/permission-requests"), json={"permissions": list(caps)}),
        status,
    )
    assert set(body) == {"request"}, body
    request: JSON = body["request"]
    return request


async def caps_of(client: httpx.AsyncClient, room: Room) -> set[str]:
    state = ok(await client.get(room.path()))
    return set(state["own_capabilities"])


async def requests_of(
    client: httpx.AsyncClient, room: Room, state: str | None = None
) -> list[JSON]:
    params = {"state": state} if state else None
    body = ok(await client.get(room.path("/permission-requests"), params=params))
    assert set(body) == {"requests"}, body
    found: list[JSON] = body["requests"]
    return found


class WsProbe:
    """A real WebSocket client that records every frame the server sends, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[JSON] = []
        self.closed = False
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str | None, *, auth_message: bool = False) -> WsProbe:
        target = url if token is None or auth_message else f"{url}?token={quote(token, safe='')}"
        ws = await connect(target, open_timeout=WAIT_S, close_timeout=2, ping_interval=None)
        probe = cls(ws)
        if auth_message and token is not None:
            await probe.send({"type": "auth", "token": token})
        return probe

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                try:
                    frame = json.loads(message)
                except ValueError:
                    frame = {"type": "<not json>", "raw": str(message)}
                self.frames.append(frame)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._changed.set()

    async def send(self, frame: JSON | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def wait_for(
        self, predicate: Callable[[JSON], bool], *, start: int = 0, within: float = WAIT_S
    ) -> JSON:
        """The first frame from index `start` on that matches; fails after `within` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self._changed.clear()
            for frame in self.frames[start:]:
                if predicate(frame):
                    return frame
            if self.closed:
                raise AssertionError(f"connection closed before a matching frame: {self.frames}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {within} s: {self.frames}")
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout: on 3.11 wait_for can lose a cancellation that races the event.
                async with asyncio.timeout(remaining):
                    await self._changed.wait()

    async def wait_type(
        self, type_: str, *, start: int = 0, within: float = WAIT_S, **fields: Any
    ) -> JSON:
        def matches(frame: JSON) -> bool:
            return frame.get("type") == type_ and all(frame.get(k) == v for k, v in fields.items())

        return await self.wait_for(matches, start=start, within=within)

    async def wait_closed(self, within: float = WAIT_S) -> int | None:
        await asyncio.wait_for(asyncio.shield(self._reader), within)
        return self.ws.close_code

    async def connected(self) -> JSON:
        return await self.wait_type("connection.ok")

    async def watch(self, cid: str, since: int | None = None, *, audience: bool = False) -> JSON:
        start = len(self.frames)
        frame: JSON = {"type": "watch", "call_cid": cid}
        if since is not None:
            frame["since"] = since
        if audience:
            frame["audience"] = True
        await self.send(frame)
        return await self.wait_for(
            lambda f: f.get("type") in ("watch.ok", "error") and f.get("call_cid") == cid,
            start=start,
        )

    def events(self, cid: str, type_: str | None = None) -> list[JSON]:
        """Call events (frames with a seq) of `cid` received so far, optionally of one type."""
        return [
            f
            for f in self.frames
            if f.get("call_cid") == cid
            and "seq" in f
            and str(f.get("type", "")).startswith("call.")
            and (type_ is None or f["type"] == type_)
        ]

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, ConnectionClosed, OSError):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def counted_out(frames: Iterable[JSON]) -> list[JSON]:
    """Frames without `call.audience_updated`, whose place depends on when a second ends."""
    return [f for f in frames if f.get("type") != "call.audience_updated"]


async def barrier(host: httpx.AsyncClient, room: Room, probes: Sequence[WsProbe]) -> None:
    """Make an event every watcher receives and wait for it on every probe.

    Events of a call reach each connection in `seq` order, so once a probe holds
    the barrier it holds every earlier event meant for it.
    """
    marker = uid("barrier")
    ok(await host.post(room.path("/mute"), json={"user_ids": [marker], "audio": True}))
    for probe in probes:
        await probe.wait_type("call.user_muted", user_id=marker)

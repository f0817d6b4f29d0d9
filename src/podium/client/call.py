"""`Call`: one call of a `Client`: HTTP actions, event handlers, media and the live `CallState`.

Every action that returns the call state object (get, join, go-live, ...)
applies it to `call.state` before returning it. Events of watched calls are
applied to `call.state` first, then handed to the handlers registered with
`on()`, so a handler always sees a state that already includes its event.
Media (`publish`, remote tracks, `media.*` events) is in `podium.client.media`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from aiortc.mediastreams import MediaStreamTrack

from podium.client.errors import PodiumError
from podium.client.http import JSON, path_segment
from podium.client.media import MediaError, MediaSession, RemoteKey, Selection, ice_servers
from podium.client.permission import PermissionHandle
from podium.client.state import (
    CallState,
    add_pending,
    apply_event,
    apply_snapshot,
    check_capabilities,
    check_capability,
    drop_pending,
)
from podium.protocol.events import EventType, LeftReason
from podium.protocol.ids import ID_PATTERN
from podium.protocol.stage import Tier

if TYPE_CHECKING:
    from podium.client.client import Client

log = logging.getLogger("podium.client")

Event: TypeAlias = dict[str, Any]
Handler: TypeAlias = Callable[[Event], object]
"""Called with each event; if it returns an awaitable (a coroutine handler) that runs as a task."""
Unsubscribe: TypeAlias = Callable[[], None]
RequestRef: TypeAlias = Mapping[str, Any] | str
"""A permission request: the dict the API returned (with its `id`) or the id itself."""
Members: TypeAlias = Mapping[str, str] | Iterable[Mapping[str, str]]
"""`{user_id: role}`, or `[{"user_id": ..., "role": ...}]` as on the wire."""

#: The `tier` values `participants_page` takes.
TIERS = frozenset(t.value for t in Tier)
REQUEST_STATES = frozenset({"pending", "accepted", "rejected", "cancelled", "expired"})
ALL_EVENTS = "*"


def check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValueError(f"{what} must be 1-64 chars of [A-Za-z0-9_-], got {value!r}")
    return value


PHASE_EVENTS = frozenset({EventType.LIVE_STARTED, EventType.LIVE_STOPPED, EventType.ENDED})
#: `reason` of the `call.participant_left` the server sends when presence timed out.
#: Reads of the call after a phase change, until one is not older than the state.
PHASE_REREADS = 3


class Call:
    """A call `type:id`; get one with `client.call(type, id)` (one object per call)."""

    def __init__(self, client: Client, type: str, id: str) -> None:
        self.client = client
        self.type = check_id(type, "call type")
        self.id = check_id(id, "call id")
        self.cid = f"{type}:{id}"
        self.state = CallState(cid=self.cid)
        self._path = f"/v1/calls/{path_segment(type)}/{path_segment(id)}"
        self._handlers: dict[str, list[Handler]] = {}
        self._resolved: set[str] = set()
        self._media_info: JSON | None = None
        self._media: MediaSession | None = None
        #: Whether `join()` was called and `leave()` not since: presence is restored then.
        self._joined = False
        #: The seq of the last call event the handlers saw (from the first snapshot on).
        #: A re-read may reflect events whose frames are still on their way; their
        #: handlers run when they arrive, so this moves with frames, never with reads.
        self._handled_seq: int | None = None

    def __repr__(self) -> str:
        return f"Call({self.cid!r}, phase={self.state.phase!r}, seq={self.state.seq})"

    @property
    def user_id(self) -> str | None:
        """The user this client acts as (None for server tokens)."""
        return self.client.user_id

    # call lifecycle

    async def get_or_create(
        self, members: Members | None = None, custom: Mapping[str, Any] | None = None
    ) -> CallState:
        """Get the call, creating it (you become its host) if it does not exist."""
        body: JSON = {}
        if members is not None:
            body["members"] = _members(members)
        if custom is not None:
            body["custom"] = dict(custom)
        return self._snapshot(await self._post("", body))

    async def get(self) -> CallState:
        """Fetch the call state (your pending requests too, or all of them for moderators)."""
        return self._snapshot(await self.client.http.request("GET", self._path))

    async def join(self) -> CallState:
        """Become a participant, then watch the call's events over the client's connection.

        If the server later removes you for being disconnected too long (its
        `call.participant_left` with reason `disconnected`, seen live or in the
        replay after a reconnect), the SDK joins again by itself.
        """
        data = await self._post("/join")
        self._joined = True
        media = data.get("media")
        self._media_info = dict(media) if isinstance(media, dict) else {}
        state = self._snapshot(data)
        await self.watch()
        return state

    async def leave(self) -> CallState:
        """Close the media session (if any), then stop being a participant."""
        self._joined = False
        await self.close_media()
        return self._snapshot(await self._post("/leave"))

    async def go_live(self) -> CallState:
        """Leave backstage (needs `go-live`)."""
        return self._snapshot(await self._post("/go-live"))

    async def stop_live(self) -> CallState:
        """Return to backstage (needs `go-live`)."""
        return self._snapshot(await self._post("/stop-live"))

    async def end(self) -> CallState:
        """End the call for everyone (needs `end-call`)."""
        return self._snapshot(await self._post("/end"))

    async def update_members(
        self, update: Members | None = None, remove: Iterable[str] | None = None
    ) -> CallState:
        """Add members or change their role, and remove members (needs `update-call-member`)."""
        body: JSON = {
            "update": _members(update or {}),
            "remove": [check_id(u, "user id") for u in _strings(remove or (), "remove")],
        }
        return self._snapshot(await self._post("/members", body))

    # permission requests

    async def request_permissions(self, permissions: Iterable[str]) -> JSON:
        """Ask for capabilities; returns the new request, or the pending one asking the same."""
        body = {"permissions": check_capabilities(permissions)}
        request = _request(await self._post("/permission-requests", body))
        if request.get("id") not in self._resolved:
            add_pending(self.state, request)
        return request

    async def participants_page(
        self,
        *,
        tier: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        q: str | None = None,
    ) -> JSON:
        """One page of the call's participants (`{"participants": [...], "next_cursor"}`).

        `tier` is `"stage"` or `"audience"` (both when None); pass the page's
        `next_cursor` as `cursor` for the next one (None after the last); `q`
        keeps names or user ids starting with it. The call state is not
        touched: a large audience is read this way, page by page.
        """
        if tier is not None and tier not in TIERS:
            raise ValueError(f"tier must be one of {sorted(TIERS)}, got {tier!r}")
        params = {
            name: str(value)
            for name, value in (("tier", tier), ("limit", limit), ("cursor", cursor), ("q", q))
            if value is not None
        }
        return await self.client.http.request(
            "GET", self._path + "/participants", params=params or None
        )

    async def list_requests(self, state: str | None = None) -> list[JSON]:
        """Requests of this call (moderators see everyone's, others their own)."""
        if state is not None and state not in REQUEST_STATES:
            raise ValueError(f"state must be one of {sorted(REQUEST_STATES)}, got {state!r}")
        params = {"state": state} if state is not None else None
        data = await self.client.http.request(
            "GET", self._path + "/permission-requests", params=params
        )
        requests = data.get("requests")
        return [r for r in requests if isinstance(r, dict)] if isinstance(requests, list) else []

    async def accept(self, request: RequestRef) -> JSON:
        """Accept a pending request: its capabilities are granted to the requester."""
        return self._resolved_request(
            await self._post(f"/permission-requests/{_request_id(request)}/accept")
        )

    async def reject(self, request: RequestRef, reason: str | None = None) -> JSON:
        """Reject a pending request; the requester is told (with `reason`)."""
        body = {"reason": reason} if reason is not None else None
        return self._resolved_request(
            await self._post(f"/permission-requests/{_request_id(request)}/reject", body)
        )

    async def cancel(self, request: RequestRef) -> JSON:
        """Withdraw your own pending request."""
        data = await self.client.http.request(
            "DELETE", f"{self._path}/permission-requests/{_request_id(request)}"
        )
        return self._resolved_request(data)

    # moderation

    async def grant_permissions(self, user_id: str, permissions: Iterable[str]) -> list[str]:
        """Grant capabilities to a user; returns that user's capabilities afterwards."""
        return await self._user_permissions(user_id, grant=check_capabilities(permissions))

    async def revoke_permissions(self, user_id: str, permissions: Iterable[str]) -> list[str]:
        """Revoke capabilities of a user; returns that user's capabilities afterwards."""
        return await self._user_permissions(user_id, revoke=check_capabilities(permissions))

    async def mute(
        self,
        user_ids: Iterable[str],
        *,
        audio: bool = False,
        video: bool = False,
        screenshare: bool = False,
    ) -> JSON:
        """Force-mute users' media; naming no kind mutes every kind. Returns the server's answer."""
        body = {
            "user_ids": [check_id(u, "user id") for u in _strings(user_ids, "user_ids")],
            "audio": audio,
            "video": video,
            "screenshare": screenshare,
        }
        return await self._post("/mute", body)

    async def block(self, user_id: str) -> None:
        """Remove a user from the call and keep them out until unblocked."""
        await self._post("/block", {"user_id": check_id(user_id, "user id")})

    async def unblock(self, user_id: str) -> None:
        await self._post("/unblock", {"user_id": check_id(user_id, "user id")})

    # media

    @property
    def media(self) -> MediaSession | None:
        """The open media session, if any."""
        media = self._media
        return media if media is not None and not media.closed else None

    @property
    def published(self) -> dict[str, MediaStreamTrack]:
        """Your sources being sent (`microphone`, `camera`, `screen`) and their tracks."""
        media = self.media
        return dict(media.published) if media is not None else {}

    @property
    def remote_tracks(self) -> dict[RemoteKey, MediaStreamTrack]:
        """`(user_id, source)` → track, for every remote track you receive."""
        media = self.media
        return dict(media.remote_tracks) if media is not None else {}

    async def connect_media(self, subscribe: Selection = "all") -> MediaSession:
        """Open the media session (once) and receive the tracks of `subscribe`.

        Needs a `join()` by this object first (its answer names the ICE
        servers). `publish()` opens it too, subscribed to everyone.
        """
        if self._media_info is None:
            raise MediaError(f"join {self.cid} with this Call before using media")
        media = self.media
        if media is None:
            media = self._media = MediaSession(
                self,
                ice_servers=ice_servers(self._media_info),
                loopback_only=self.client.media_loopback,
                timeout_s=self.client.timeout_s,
                subscribe=subscribe,
            )
        await media.start()
        return media

    async def publish(self, source: str, track: MediaStreamTrack) -> None:
        """Send an aiortc track as `source`: `microphone` (audio), `camera` or `screen` (video).

        Raises `PublishDeniedError` (with `capability` and `reason`) when the
        SFU refuses, `ValueError` for an unknown source or a track of the wrong kind.
        """
        media = self.media
        if media is None:
            media = await self.connect_media()
        await media.publish(source, track)

    async def unpublish(self, source: str) -> None:
        """Stop sending `source`; the track keeps running (stop it yourself)."""
        media = self.media
        if media is not None:
            await media.unpublish(source)

    async def subscribe(self, user_ids: Selection) -> None:
        """Receive the tracks of these users (`"all"`: everyone else) instead of the current set."""
        media = self.media
        if media is None:
            await self.connect_media(user_ids)
        else:
            await media.subscribe(user_ids)

    async def close_media(self) -> None:
        """End the media session: published tracks are stopped, remote tracks removed."""
        media, self._media = self._media, None
        if media is not None:
            await media.close()

    # local state

    def has_permission(self, capability: str) -> bool:
        """You hold `capability` in this call (from `state.own_capabilities`)."""
        return check_capability(capability) in self.state.own_capabilities

    def permission(self, capability: str) -> PermissionHandle:
        """A handle answering has / can request / awaiting for `capability`, and requesting it."""
        return PermissionHandle(self, capability)

    # events

    def on(self, event_type: str, handler: Handler) -> Unsubscribe:
        """Call `handler(event)` for each event of `event_type` (`"*"`: every call event).

        `"error"` receives error frames about this call (e.g. a re-watch refused
        after a reconnect); `"media.*"` events come from the media session (see
        `podium.client.media`). A coroutine handler runs as a task. Events
        arrive only while the call is watched (`join()` or `watch()`). Returns
        a function that removes the handler.
        """
        if not isinstance(event_type, str) or not event_type:
            raise ValueError("event_type must be an event name or '*'")
        handlers = self._handlers.setdefault(event_type, [])
        handlers.append(handler)

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    async def watch(self, *, audience: bool = False) -> int:
        """Receive this call's events; fetches the state first if it was never loaded.

        Events after `state.seq` are replayed, so nothing between the snapshot
        and the watch is missed. Returns the seq the connection is at.
        `audience=True` (needs `update-call-permissions`) also delivers each
        audience join and leave to the handlers; `state.participants` still
        holds the stage only, and `state.audience_count` counts the rest.
        """
        if not self.state.loaded:
            await self.get()
        since = self.state.seq if self.state.seq >= 0 else None
        return await self.client.events.watch(self.cid, since, audience=audience)

    async def unwatch(self) -> None:
        await self.client.events.unwatch(self.cid)

    @property
    def watching(self) -> bool:
        return self.cid in self.client.events.watched

    def handle_frame(self, frame: Event) -> None:
        """Apply one frame from the event connection to `state`, then run the handlers.

        A call event at or below the first snapshot's seq or a frame already
        handled reaches no handler, as in podium.js: handlers see each change once.
        A frame whose change an HTTP answer brought first (the answer overtook it)
        leaves the state as it is and still reaches the handlers.
        """
        kind = frame.get("type")
        if not isinstance(kind, str):
            return
        if kind == EventType.PERMISSION_REQUEST_RESOLVED:
            request = frame.get("request")
            if isinstance(request, dict) and isinstance(request.get("id"), str):
                self._resolved.add(request["id"])
        media = self.media
        if media is not None and kind.startswith("sfu."):
            media.handle(frame)
        elif media is not None and kind == "error" and _answers_media(frame):
            media.handle_error(frame)
        fresh = False
        if kind.startswith("call."):
            if not self._first_arrival(frame):
                return
            fresh = apply_event(self.state, frame, self.user_id)
            targets = [*self._handlers.get(kind, ()), *self._handlers.get(ALL_EVENTS, ())]
        else:
            targets = list(self._handlers.get(kind, ()))
        if kind == EventType.PARTICIPANT_LEFT and self._dropped_for_absence(frame):
            self.client.spawn(self._rejoin(), "re-join after a disconnection")
        if kind in PHASE_EVENTS and fresh:
            self.client.spawn(self._refresh_then_run(frame, targets), f"{kind} refresh")
        else:
            self._run(frame, targets)

    def _first_arrival(self, frame: Event) -> bool:
        """Whether the handlers have not seen this call event yet (and now will)."""
        seq = frame.get("seq")
        if not isinstance(seq, int):
            return True
        if self._handled_seq is not None and seq <= self._handled_seq:
            return False
        self._handled_seq = seq
        return True

    def _dropped_for_absence(self, frame: Event) -> bool:
        participant = frame.get("participant")
        return (
            self._joined
            and frame.get("reason") == LeftReason.DISCONNECTED
            and isinstance(participant, dict)
            and participant.get("user_id") == self.user_id
        )

    async def _rejoin(self) -> None:
        try:
            self._apply(await self._post("/join"))
        except PodiumError as exc:
            log.warning("could not join %s again after a disconnection: %s", self.cid, exc)

    def emit(self, event: Event) -> None:
        """Hand an event made by the SDK itself (`media.*`) to the handlers of its type."""
        self._run(event, list(self._handlers.get(str(event.get("type")), ())))

    async def _refresh_then_run(self, frame: Event, targets: list[Handler]) -> None:
        """A phase change alters capabilities the event does not carry: re-read them first.

        A read answered before a later event arrived is older than the state and
        ignored, so it is read again, `PHASE_REREADS` times at most.
        """
        try:
            for _ in range(PHASE_REREADS):
                if self._apply(await self.client.http.request("GET", self._path)):
                    break
        except PodiumError:
            log.warning("could not refresh %s after %s", self.cid, frame.get("type"))
        self._run(frame, targets)

    def _run(self, frame: Event, targets: list[Handler]) -> None:
        kind = frame.get("type")
        for handler in targets:
            try:
                result = handler(frame)
            except Exception:
                log.exception("handler for %s on %s failed", kind, self.cid)
                continue
            if inspect.isawaitable(result):
                self.client.spawn(result, f"{kind} handler")

    # helpers

    async def _post(self, suffix: str, body: Mapping[str, Any] | None = None) -> JSON:
        return await self.client.http.request("POST", self._path + suffix, json=body)

    def _snapshot(self, data: JSON) -> CallState:
        self._apply(data)
        return self.state

    def _apply(self, data: JSON) -> bool:
        """Apply a call state object; False if it was older than the state (and so ignored)."""
        applied = apply_snapshot(self.state, data)
        if self._handled_seq is None and self.state.loaded:
            self._handled_seq = self.state.seq
        for request_id in list(self.state.pending_requests):
            if request_id in self._resolved:
                del self.state.pending_requests[request_id]
        return applied

    def _resolved_request(self, data: JSON) -> JSON:
        request = _request(data)
        if isinstance(request.get("id"), str) and request.get("state") != "pending":
            self._resolved.add(request["id"])
        drop_pending(self.state, request)
        return request

    async def _user_permissions(
        self, user_id: str, *, grant: list[str] | None = None, revoke: list[str] | None = None
    ) -> list[str]:
        body = {
            "user_id": check_id(user_id, "user id"),
            "grant": grant or [],
            "revoke": revoke or [],
        }
        data = await self._post("/user-permissions", body)
        caps = data.get("own_capabilities")
        return [c for c in caps if isinstance(c, str)] if isinstance(caps, list) else []


def _request(data: JSON) -> JSON:
    request = data.get("request")
    return dict(request) if isinstance(request, dict) else {}


def _request_id(request: RequestRef) -> str:
    rid = request if isinstance(request, str) else request.get("id")
    if not isinstance(rid, str):
        raise ValueError("a request is its id or a dict with an 'id'")
    return path_segment(check_id(rid, "request id"))


def _strings(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list of user ids, not a single string")
    return list(values)


def _members(members: Members) -> list[dict[str, str]]:
    if isinstance(members, Mapping):
        if set(members) == {"user_id", "role"}:
            raise TypeError("pass {user_id: role} or a list of {'user_id', 'role'} dicts")
        pairs = list(members.items())
    else:
        pairs = [(m["user_id"], m["role"]) for m in members]
    return [{"user_id": check_id(u, "user id"), "role": role} for u, role in pairs]


def _answers_media(frame: Event) -> bool:
    """An `error` frame refusing one of our `sfu.*` frames (not a watch)."""
    return str(frame.get("in_reply_to", "")).startswith("sfu.")

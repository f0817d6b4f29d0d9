"""Media for the SDK: publish aiortc tracks and receive everyone else's through Podium's SFU.

A call's media session is one `RTCPeerConnection`, signalled with `sfu.*`
frames over the client's WebSocket (every frame carries `call_cid`). It opens
with `await call.connect_media()` or on the first `await call.publish(...)`:

    await call.join()
    call.on("media.track_added", lambda e: print(e["user_id"], e["source"], e["track"]))
    await call.publish("microphone", my_audio_track)

Layout: the client's offer has three `sendrecv` m-lines, audio / video / video,
which the SFU reads as `microphone` / `camera` / `screen` and also uses to send
remote tracks back; further remote tracks arrive in offers from the server,
which the session answers. Publishing puts a track on its m-line without
renegotiating (an SDK-owned track per m-line relays the published one, so a
track can be swapped or stopped at any time).

Events for `call.on(...)` (each a dict with `type` and `call_cid`):

- `media.track_added` `{user_id, source, track}`: a remote track (an aiortc
  `MediaStreamTrack`; read its frames with `await track.recv()`).
- `media.track_removed` `{user_id, source, track}`: no longer forwarded to you.
- `media.source_stopped` `{source, reason, track}`: one of your published
  sources stopped; the SDK has already stopped the track. `reason` is the
  server's (`revoked`, `muted`, `blocked`, `role_changed`, `call_ended`,
  `left`), or `ended` when the track ended by itself.
- `media.source_resumed` `{source}`: the capability is back; publish again.
- `media.closed` `{reason}`: the media session is over (`left` when you
  closed it, the server's reason, or `connection_failed`, `lost`, or
  `replaced` when another connection of the same user took it over).

Decoded frames of a remote track queue up until read: subscribe only to the
users you will read (`call.subscribe([...])`), or read every track you get.
`PODIUM_MEDIA_LOOPBACK=1` (or `Client(..., media_loopback=True)`) makes the
peer connection gather only 127.0.0.1 candidates, for tests on one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from aiortc import RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from av.audio.frame import AudioFrame
from av.frame import Frame
from av.packet import Packet
from av.stream import Stream

from podium.client.errors import PodiumAPIError, PodiumError
from podium.protocol.events import StopReason
from podium.protocol.media import SOURCE_CAPABILITY as PROTOCOL_SOURCE_CAPABILITY
from podium.protocol.media import SOURCE_TRACK_KIND
from podium.rtc import peer_connection

if TYPE_CHECKING:
    from podium.client.call import Call

log = logging.getLogger("podium.client.media")

SOURCES: Final[Mapping[str, str]] = {s.value: k.value for s, k in SOURCE_TRACK_KIND.items()}
"""Each source a participant publishes, and the kind of track it takes (in m-line order)."""
SOURCE_CAPABILITY: Final[Mapping[str, str]] = {
    s.value: c.value for s, c in PROTOCOL_SOURCE_CAPABILITY.items()
}
#: A `sfu.stop_source` with one of these reasons means the server ended the whole session.
SESSION_ENDING: Final = frozenset({StopReason.LEFT, StopReason.BLOCKED, StopReason.CALL_ENDED})

Selection: TypeAlias = Iterable[str] | Literal["all"]
"""Whose tracks to receive: `"all"` (everyone else in the call) or some user ids."""
Media: TypeAlias = "Frame | Packet[Stream]"
"""What a track's `recv()` gives: a decoded frame, or an encoded packet."""
RemoteKey: TypeAlias = tuple[str, str]
"""`(user_id, source)` of a remote track."""


class MediaError(PodiumError):
    """The media session failed (negotiation, connection, or an `sfu.error`)."""


class PublishDeniedError(MediaError):
    """The SFU refused `sfu.publish`: `capability` is not held (`reason`: how it went)."""

    def __init__(self, source: str, capability: str, reason: str) -> None:
        super().__init__(f"publishing {source} needs {capability} ({reason})")
        self.source = source
        self.capability = capability
        self.reason = reason


def check_source(source: str, track: MediaStreamTrack) -> str:
    """`source` if it is known and `track` is of its kind, else a `ValueError` saying why."""
    kind = SOURCES.get(source)
    if kind is None:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if track.kind != kind:
        raise ValueError(f"{source} takes an {kind} track, got a {track.kind!r} track")
    return source


def ice_servers(media: object) -> list[RTCIceServer]:
    """The `ice_servers` of a join answer's `media` object, as aiortc wants them."""
    servers = media.get("ice_servers") if isinstance(media, dict) else None
    out: list[RTCIceServer] = []
    for server in servers if isinstance(servers, list) else ():
        urls = server.get("urls") if isinstance(server, dict) else None
        if isinstance(urls, str) or (isinstance(urls, list) and urls):
            username, credential = server.get("username"), server.get("credential")
            out.append(
                RTCIceServer(
                    urls=urls,
                    username=username if isinstance(username, str) else None,
                    credential=credential if isinstance(credential, str) else None,
                )
            )
    return out


class _Outlet(MediaStreamTrack):
    """The sender's track of one m-line for the whole session: relays the published track.

    aiortc's sender keeps awaiting `recv()` of its track; a track stopped while
    awaited (a `MediaPlayer`'s) can leave that await hanging for good. Relaying
    lets the session detach a track at any moment: `recv()` then stops waiting
    for it and sends nothing until another is attached. Timestamps continue
    across tracks (an encoder must never see them go back), and a gap leaves a
    matching jump, as a pause does.
    """

    def __init__(self, kind: str, on_ended: Callable[[MediaStreamTrack], None]) -> None:
        super().__init__()
        self.kind = kind
        self._source: MediaStreamTrack | None = None
        self._changed = asyncio.Event()
        self._on_ended = on_ended
        self._epoch: float | None = None
        self._end = Fraction(0)
        self._offset: int | None = None

    @property
    def source(self) -> MediaStreamTrack | None:
        return self._source

    def attach(self, track: MediaStreamTrack | None) -> None:
        self._source = track
        self._offset = None
        self._changed.set()

    async def recv(self) -> Media:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            source = self._source
            self._changed.clear()
            if source is None:
                await self._changed.wait()
                continue
            frame = await self._next(source)
            if frame is not None:
                return self._retime(frame)

    async def _next(self, source: MediaStreamTrack) -> Media | None:
        receiving = asyncio.ensure_future(source.recv())
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({receiving, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            receiving.cancel()
        if self._source is not source or receiving.cancelled():
            return None  # detached meanwhile: drop what the old track gave
        error = receiving.exception()
        if isinstance(error, MediaStreamError):
            self._source = None
            self._on_ended(source)
            return None
        if error is not None:
            raise error
        return receiving.result()

    def _retime(self, frame: Media) -> Media:
        if not isinstance(frame, Frame) or frame.pts is None or frame.time_base is None:
            return frame
        now = time.monotonic()
        if self._epoch is None:
            self._epoch = now
        # A new track, or one whose timestamps went back (a file played again).
        if self._offset is None or (frame.pts + self._offset) * frame.time_base < self._end:
            start = max(Fraction(now - self._epoch), self._end)
            self._offset = math.ceil(start / frame.time_base) - frame.pts
        frame.pts += self._offset
        duration = frame.samples if isinstance(frame, AudioFrame) else 1
        self._end = (frame.pts + duration) * frame.time_base
        return frame


class MediaSession:
    """One call's peer connection with the SFU: what you publish and what you receive.

    Made by `Call.connect_media()`; use the `Call` methods (`publish`,
    `unpublish`, `subscribe`, `close_media`) rather than this object.
    """

    def __init__(
        self,
        call: Call,
        *,
        ice_servers: list[RTCIceServer],
        loopback_only: bool,
        timeout_s: float,
        subscribe: Selection = "all",
    ) -> None:
        self.call = call
        self.timeout_s = timeout_s
        self.pc: RTCPeerConnection = peer_connection(ice_servers, loopback_only=loopback_only)
        self.published: dict[str, MediaStreamTrack] = {}
        """Your sources being sent, and their tracks."""
        self.remote_tracks: dict[RemoteKey, MediaStreamTrack] = {}
        """`(user_id, source)` → remote track, for every track forwarded to you."""
        self.closed = False
        self._selection = _selection(subscribe)
        self._outlets = {
            source: _Outlet(kind, self._on_ended(source)) for source, kind in SOURCES.items()
        }
        for outlet in self._outlets.values():
            self.pc.addTransceiver(outlet, direction="sendrecv")
        self._track_list: list[dict[str, Any]] = []
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._started = False
        self._answered: asyncio.Future[None] | None = None
        self._connected = asyncio.Event()
        self._publishing: dict[str, deque[asyncio.Future[None]]] = {s: deque() for s in SOURCES}
        self._locks = {source: asyncio.Lock() for source in SOURCES}
        self._waits: set[asyncio.Future[None]] = set()
        self.pc.on("connectionstatechange", self._on_connection_state)

    def __repr__(self) -> str:
        return (
            f"MediaSession({self.call.cid!r}, state={self.pc.connectionState!r}, "
            f"published={sorted(self.published)}, remote={sorted(self.remote_tracks)})"
        )

    # actions

    async def start(self) -> None:
        """Offer, get the SFU's answer, subscribe, and wait until media can flow."""
        async with self._start_lock:
            if self._started:
                return
            self._check_open()
            self._started = True
            try:
                self._pump = asyncio.get_running_loop().create_task(
                    self._run(), name=f"podium-media-{self.call.cid}"
                )
                self._answered = self._future()
                await self.pc.setLocalDescription(await self.pc.createOffer())
                await self._send({"type": "sfu.offer", "sdp": self.pc.localDescription.sdp})
                await self._wait(self._answered, "the SFU's sfu.answer")
                await self._send({"type": "sfu.subscribe", "user_ids": self._selection})
                await self._wait_connected()
            except BaseException:
                await self.close("connection_failed")
                raise

    async def publish(self, source: str, track: MediaStreamTrack) -> None:
        """Send `track` as `source` once the SFU accepts (`PublishDeniedError` if it refuses)."""
        check_source(source, track)
        await self.start()
        async with self._locks[source]:
            self._check_open()
            accepted = self._future()
            self._publishing[source].append(accepted)
            await self._send({"type": "sfu.publish", "source": source})
            await self._wait(accepted, f"sfu.publish_ok for {source}")
            self._check_open()
            self._outlets[source].attach(track)
            self.published[source] = track

    async def unpublish(self, source: str) -> None:
        """Stop sending `source` (the track is left running: it is yours)."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        async with self._locks[source]:
            self._outlets[source].attach(None)
            self.published.pop(source, None)
            if self._started and not self.closed:
                await self._send({"type": "sfu.unpublish", "source": source})

    async def subscribe(self, user_ids: Selection) -> None:
        """Receive the tracks of `user_ids` (`"all"`: everyone else) instead of the current set."""
        self._selection = _selection(user_ids)
        if self._started and not self.closed:
            await self._send({"type": "sfu.subscribe", "user_ids": self._selection})

    async def close(self, reason: str = "left", *, tell_server: bool = True) -> None:
        """End the session: `sfu.leave`, stop published tracks, close the peer connection."""
        if self.closed:
            return
        self.closed = True
        if tell_server and self._started:
            with contextlib.suppress(PodiumError):
                await self._send({"type": "sfu.leave"})
        for source in list(self.published):
            self._stop_source(source, reason)
        for outlet in self._outlets.values():
            outlet.attach(None)
        self._fail(MediaError(f"media session of {self.call.cid} closed ({reason})"))
        self._track_list = []
        self._reconcile()
        pump = self._pump
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), self.timeout_s)
        self._emit("media.closed", reason=reason)

    # frames from the server

    def handle(self, frame: dict[str, Any]) -> None:
        """One `sfu.*` frame for this call (from `Call.handle_frame`)."""
        if self.closed:
            return
        kind = frame.get("type")
        source = frame.get("source")
        if kind in ("sfu.offer", "sfu.answer", "sfu.candidate", "sfu.tracks"):
            self._inbox.put_nowait(frame)  # in order: a track's mid exists once negotiated
        elif kind == "sfu.publish_ok" and isinstance(source, str):
            self._settle(source, None)
        elif kind == "sfu.publish_denied" and isinstance(source, str):
            error = PublishDeniedError(
                source, str(frame.get("capability")), str(frame.get("reason"))
            )
            self._settle(source, error)
        elif kind == "sfu.stop_source" and isinstance(source, str):
            reason = str(frame.get("reason"))
            self._stop_source(source, reason)
            if reason in SESSION_ENDING:
                self.call.client.spawn(self.close(reason, tell_server=False), "media close")
        elif kind == "sfu.source_resumed" and isinstance(source, str):
            self._emit("media.source_resumed", source=source)
        elif kind == "sfu.error":
            code, message = frame.get("code"), frame.get("message")
            if code == "offer_required":  # the server holds no session for us any more
                self.call.client.spawn(self.close("lost", tell_server=False), "media close")
            elif code == "replaced":  # another connection of this user took the session over
                self.call.client.spawn(self.close("replaced", tell_server=False), "media close")
            else:
                log.warning("%s: sfu.error %s: %s", self.call.cid, code, message)
                self._fail(MediaError(f"sfu.error {code}: {message}"))

    def handle_error(self, frame: dict[str, Any]) -> None:
        """An `error` frame about this call: a media frame was refused, so fail what waits."""
        self._fail(PodiumAPIError.from_frame(frame))

    async def _run(self) -> None:
        while True:
            frame = await self._inbox.get()
            try:
                await self._negotiate(frame)
            except Exception as exc:
                log.warning("%s: media negotiation failed: %r", self.call.cid, exc)
                self.call.client.spawn(self.close("connection_failed"), "media close")
                return

    async def _negotiate(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "sfu.tracks":
            tracks = frame.get("tracks")
            self._track_list = [t for t in tracks if isinstance(t, dict)] if tracks else []
        elif kind == "sfu.answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(_sdp(frame), "answer"))
            if self._answered is not None and not self._answered.done():
                self._answered.set_result(None)
        elif kind == "sfu.offer":
            await self.pc.setRemoteDescription(RTCSessionDescription(_sdp(frame), "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self._send({"type": "sfu.answer", "sdp": self.pc.localDescription.sdp})
        elif kind == "sfu.candidate":
            line = frame.get("candidate")
            if isinstance(line, str) and line:
                candidate = candidate_from_sdp(line.removeprefix("candidate:"))
                candidate.sdpMid = frame.get("sdp_mid")
                candidate.sdpMLineIndex = frame.get("sdp_mline_index")
                await self.pc.addIceCandidate(candidate)
        self._reconcile()

    # remote tracks

    def _reconcile(self) -> None:
        """Map the announced tracks to receivers by mid; emit what was removed, then added."""
        by_mid = {t.mid: t for t in self.pc.getTransceivers() if t.mid is not None}
        current: dict[RemoteKey, MediaStreamTrack] = {}
        for entry in self._track_list:
            user_id, source, mid = entry.get("user_id"), entry.get("source"), entry.get("mid")
            transceiver = by_mid.get(mid) if isinstance(mid, str) else None
            track: MediaStreamTrack | None = (
                None if transceiver is None else transceiver.receiver.track
            )
            if isinstance(user_id, str) and isinstance(source, str) and track is not None:
                current[user_id, source] = track
        previous, self.remote_tracks = self.remote_tracks, current
        for key, track in previous.items():
            if current.get(key) is not track:
                self._emit("media.track_removed", user_id=key[0], source=key[1], track=track)
        for key, track in current.items():
            if previous.get(key) is not track:
                self._emit("media.track_added", user_id=key[0], source=key[1], track=track)

    # publishing

    def _settle(self, source: str, error: PublishDeniedError | None) -> None:
        waiting = self._publishing.get(source)
        while waiting:
            future = waiting.popleft()
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
                return

    def _stop_source(self, source: str, reason: str) -> None:
        """The server stopped `source` (forwarding already has): stop sending and the track."""
        outlet = self._outlets.get(source)
        if outlet is None:
            return
        outlet.attach(None)
        track = self.published.pop(source, None)
        if track is not None:
            track.stop()
        self._emit("media.source_stopped", source=source, reason=reason, track=track)

    def _on_ended(self, source: str) -> Callable[[MediaStreamTrack], None]:
        """When a track published as `source` ends by itself: tell the SFU and the handlers."""

        def ended(track: MediaStreamTrack) -> None:
            if self.published.get(source) is not track:
                return
            del self.published[source]
            # Spawned before the handlers run, so it takes the source's lock before
            # any publish they start: the SFU never sees that publish undone.
            self.call.client.spawn(self._unpublish_idle(source), "sfu.unpublish")
            self._emit("media.source_stopped", source=source, reason="ended", track=track)

        return ended

    async def _unpublish_idle(self, source: str) -> None:
        async with self._locks[source]:
            if source not in self.published and not self.closed:
                await self._send({"type": "sfu.unpublish", "source": source})

    # plumbing

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.call.client.events.send({**frame, "call_cid": self.call.cid})

    def _future(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waits.add(future)
        future.add_done_callback(self._waits.discard)
        return future

    async def _wait(self, future: asyncio.Future[None], what: str) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            future.cancel()
            raise MediaError(f"no {what} within {self.timeout_s} s") from None

    async def _wait_connected(self) -> None:
        waiter = asyncio.ensure_future(self._connected.wait())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=self.timeout_s)
        finally:
            waiter.cancel()
        self._check_open()
        if not done:
            raise MediaError(f"no media connection within {self.timeout_s} s")
        if self.pc.connectionState != "connected":
            raise MediaError(f"media connection not established ({self.pc.connectionState})")

    def _fail(self, error: Exception) -> None:
        for future in list(self._waits):
            if not future.done():
                future.set_exception(error)
        self._connected.set()  # wakes `_wait_connected`, which then sees `closed`

    def _check_open(self) -> None:
        if self.closed:
            raise MediaError(f"the media session of {self.call.cid} is closed")

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self._connected.set()
        elif state == "failed" and not self.closed:
            await self.close("connection_failed")

    def _emit(self, kind: str, **fields: Any) -> None:
        self.call.emit({"type": kind, "call_cid": self.call.cid, **fields})


def _selection(user_ids: Selection) -> str | list[str]:
    if user_ids == "all":
        return "all"
    if isinstance(user_ids, str):
        raise TypeError('pass "all" or a list of user ids, not a single user id')
    return list(dict.fromkeys(user_ids))


def _sdp(frame: Mapping[str, Any]) -> str:
    sdp = frame.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise ValueError(f"{frame.get('type')} without an sdp")
    return sdp

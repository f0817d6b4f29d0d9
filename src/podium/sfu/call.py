"""The media side of one call: `ParticipantSession`s driven against real peer connections.

`SfuCall` feeds every input (client messages, enforcement, transport events)
into the participant's session and carries out the returned actions in order,
so a `CloseGate` always runs before the `Send` of the matching
`sfu.stop_source`. Published RTP is tapped undecoded from the publisher's
receivers into the call's `Router`; each subscriber gets a `RawSender` per
forwarded track.

Subscriber slots: every m-line in a client's offer that lets the server send
(`recvonly` or `sendrecv`) gets an `IdleTrack` and a `RawSender` in the answer.
A forwarded track takes a free slot of its kind; with none free, a sendonly
transceiver is added and the session is told `negotiation_needed()`, so the
server offers and the client answers (`sfu.answer`).

Sources are read from m-lines the client sends on, in order: audio is the
microphone; the first video the camera, the second the screen.

Not done here: keyframe requests (`RequestKeyframe` and subscribers' PLI/FIR)
are not sent upstream, as the adapter has no PLI helper yet, and subscribers'
NACKs are not answered from the forwarder's cache.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription, candidate_from_sdp

from podium.core.capabilities import Capability
from podium.sfu.adapter import (
    IdleTrack,
    RawSender,
    negotiated_codecs,
    peer_connection,
    tap_receiver,
)
from podium.sfu.forwarder import Router, SinkParams
from podium.sfu.messages import StopReason, Track
from podium.sfu.rtp import RtpHeaderView
from podium.sfu.session import (
    Action,
    AddCandidate,
    ApplyAnswer,
    Close,
    CloseGate,
    ForwardTracks,
    Negotiate,
    OpenGate,
    ParticipantSession,
    RequestKeyframe,
    Send,
)
from podium.sfu.sources import MediaKind, Source

logger = logging.getLogger(__name__)

SendMessage = Callable[[str, dict[str, object]], Awaitable[None] | None]

#: How long a new subscriber slot may take to be negotiated before it is given up.
SLOT_READY_TIMEOUT_S = 30.0
_SENDS = frozenset({"sendonly", "sendrecv"})
_RECEIVES = frozenset({"recvonly", "sendrecv"})


class _RawSink:
    """A `Sink` writing to a subscriber's `RawSender`; `send_rtp` never blocks."""

    def __init__(self, raw: RawSender, tasks: set[asyncio.Task[bool]]) -> None:
        self.raw = raw
        self.tasks = tasks

    def send_rtp(self, data: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self.raw.send(RtpHeaderView(bytearray(data))))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


@dataclass(eq=False)
class _Slot:
    """One server → client stream of a subscriber, and the remote track it carries."""

    kind: str
    raw: RawSender
    track: Track | None = None


@dataclass(eq=False)
class _Participant:
    session: ParticipantSession
    pc: RTCPeerConnection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    receivers: dict[Source, RTCRtpReceiver] = field(default_factory=dict)
    slots: list[_Slot] = field(default_factory=list)
    renegotiate: bool = False
    tasks: set[asyncio.Task[bool]] = field(default_factory=set)
    attach_tasks: set[asyncio.Task[None]] = field(default_factory=set)


class SfuCall:
    """One call's participants, their peer connections, and the call's `Router`."""

    def __init__(
        self,
        call_cid: str,
        *,
        ice_servers: list[RTCIceServer] | None = None,
        loopback_only: bool = False,
        send: SendMessage,
    ) -> None:
        self.call_cid = call_cid
        self.router = Router()
        self._ice_servers = list(ice_servers or [])
        self._loopback_only = loopback_only
        self._send = send
        self._participants: dict[str, _Participant] = {}
        self._tracks: dict[tuple[str, Source], Track] = {}
        self._tracks_dirty = False
        self.dropped_unpublished = 0

    @property
    def participants(self) -> frozenset[str]:
        return frozenset(self._participants)

    # Inputs.

    async def join(self, user_id: str, caps: frozenset[Capability]) -> None:
        """Create the participant's session and peer connection; it then sends `sfu.offer`."""
        if user_id in self._participants:
            raise ValueError(f"{user_id!r} already joined call {self.call_cid!r}")
        pc = peer_connection(self._ice_servers, loopback_only=self._loopback_only)
        participant = _Participant(ParticipantSession(user_id, caps), pc)
        self._participants[user_id] = participant

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                await self._input(user_id, lambda s: s.transport_connected())
            elif pc.connectionState in ("failed", "closed"):
                await self._input(user_id, lambda s: s.transport_closed())

        await self._input(user_id, lambda s: s.tracks_changed(self._tracks.values()))

    async def handle(self, user_id: str, wire: dict[str, object]) -> None:
        """One decoded client message (`sfu.offer`, `sfu.publish`, ...)."""
        await self._input(user_id, lambda s: s.receive_wire(wire))

    async def capabilities_changed(
        self, user_id: str, caps: frozenset[Capability], reason: str = StopReason.REVOKED
    ) -> None:
        """Gates of lost sources are closed when this returns; the client is told after."""
        await self._input(user_id, lambda s: s.capabilities_changed(caps, reason))

    async def muted(self, user_id: str, sources: frozenset[Source]) -> None:
        await self._input(user_id, lambda s: s.muted(sources))

    async def leave(self, user_id: str) -> None:
        await self._input(user_id, lambda s: s.close(StopReason.LEFT))

    async def end(self) -> None:
        """The call ended: every participant is told and disconnected."""
        for user_id in list(self._participants):
            await self._input(user_id, lambda s: s.close(StopReason.CALL_ENDED))

    def stats(self) -> dict[str, int]:
        """Totals, and per forwarder as `<user>/<source>.<counter>`, for `/metrics`."""
        totals = {
            "packets_forwarded": 0,
            "bytes_forwarded": 0,
            "dropped_at_gate": 0,
            "dropped_malformed": 0,
        }
        out: dict[str, int] = {}
        for user_id in self._participants:
            for source, forwarder in self.router.forwarders_of(user_id).items():
                for name in totals:
                    value = int(getattr(forwarder, name))
                    totals[name] += value
                    out[f"{user_id}/{source.value}.{name}"] = value
        out.update(totals)
        out["dropped_unpublished"] = self.dropped_unpublished
        out["participants"] = len(self._participants)
        return out

    # Running the session.

    async def _input(self, user_id: str, feed: Callable[[ParticipantSession], None]) -> None:
        participant = self._participants.get(user_id)
        if participant is None:
            return
        async with participant.lock:
            feed(participant.session)
            await self._drain(participant)
        await self._announce_tracks()

    async def _drain(self, participant: _Participant) -> None:
        while True:
            actions = participant.session.actions()
            if not actions:
                if not participant.renegotiate:
                    return
                participant.renegotiate = False
                participant.session.negotiation_needed()
                continue
            for action in actions:
                try:
                    await self._execute(participant, action)
                except Exception:
                    logger.exception("%s: %s failed", participant.session.user_id, action)
                    if isinstance(action, Negotiate | ApplyAnswer):
                        # A stuck negotiation never recovers: end this participant's session.
                        participant.session.close(StopReason.LEFT)

    async def _execute(self, participant: _Participant, action: Action) -> None:
        user_id = participant.session.user_id
        match action:
            case Send(message):
                result = self._send(user_id, message.to_wire())
                if inspect.isawaitable(result):
                    await result
            case OpenGate(source):
                self.router.publish(user_id, source).open_gate()
                if (user_id, source) not in self._tracks:
                    self._tracks[user_id, source] = Track(
                        user_id, source, f"{user_id}-{source.value}"
                    )
                    self._tracks_dirty = True
            case CloseGate(source):
                forwarder = self.router.forwarder(user_id, source)
                if forwarder is not None:
                    forwarder.close_gate()
            case RequestKeyframe():
                logger.debug("%s: keyframe request not sent (no PLI helper yet)", user_id)
            case Negotiate(offer):
                await self._negotiate(participant, offer)
            case ApplyAnswer(sdp):
                await participant.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
            case AddCandidate(candidate):
                await self._add_candidate(
                    participant, candidate.candidate, candidate.sdp_mid, candidate.sdp_mline_index
                )
            case ForwardTracks(tracks):
                self._forward(participant, tracks)
            case Close():
                await self._close(participant)

    async def _negotiate(self, participant: _Participant, offer: str | None) -> None:
        pc = participant.pc
        if offer is None:
            await pc.setLocalDescription(await pc.createOffer())
        else:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            directions = {m.rtp.muxId: m.direction for m in SessionDescription.parse(offer).media}
            for transceiver in pc.getTransceivers():
                direction = directions.get(transceiver.mid or "")
                try:
                    if direction in _SENDS:
                        self._tap(participant, transceiver)
                    if direction in _RECEIVES and transceiver.sender.track is None:
                        raw = RawSender(transceiver.sender)
                        transceiver.sender.replaceTrack(IdleTrack(transceiver.kind))
                        transceiver.direction = "sendrecv"
                        participant.slots.append(_Slot(transceiver.kind, raw))
                except RuntimeError:
                    # Already started without our hooks (a direction changed on renegotiation).
                    logger.warning(
                        "%s: m-line %s left unused", participant.session.user_id, transceiver.mid
                    )
            await pc.setLocalDescription(await pc.createAnswer())
        participant.session.local_description(pc.localDescription.sdp)

    @staticmethod
    async def _add_candidate(
        participant: _Participant, line: str, mid: str | None, index: int | None
    ) -> None:
        if not line:
            return  # end of candidates: aiortc needs nothing
        candidate = candidate_from_sdp(line.removeprefix("candidate:"))
        candidate.sdpMid = mid
        candidate.sdpMLineIndex = index
        await participant.pc.addIceCandidate(candidate)

    # Publishing.

    def _tap(self, participant: _Participant, transceiver: RTCRtpTransceiver) -> None:
        receiver = transceiver.receiver
        if receiver in participant.receivers.values():
            return
        if transceiver.kind == MediaKind.AUDIO:
            candidates = [Source.MICROPHONE]
        else:
            candidates = [Source.CAMERA, Source.SCREEN]
        free = [s for s in candidates if s not in participant.receivers]
        if not free:
            logger.warning(
                "%s: no source left for a %s m-line", participant.session.user_id, transceiver.kind
            )
            return
        source = free[0]
        user_id = participant.session.user_id
        primary: list[int] = []

        def on_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
            forwarder = self.router.forwarder(user_id, source)
            if forwarder is None:
                self.dropped_unpublished += 1
                return
            if not primary:
                primary.append(_primary_codec(receiver)[0])
            if packet.payload_type != primary[0]:
                return  # RTX or an unexpected codec: not forwarded
            forwarder.on_rtp(bytearray(packet.serialize()), time.monotonic())

        tap_receiver(receiver, on_packet)
        participant.receivers[source] = receiver

    # Subscribing.

    def _forward(self, participant: _Participant, tracks: tuple[Track, ...]) -> None:
        subscriber = participant.session.user_id
        wanted = set(tracks)
        for used in participant.slots:
            if used.track is not None and used.track not in wanted:
                self.router.unsubscribe(subscriber, used.track.user_id, used.track.source)
                used.track = None
        held = {s.track for s in participant.slots}
        for track in tracks:
            if track in held:
                continue
            kind = track.source.kind.value
            slot = next((s for s in participant.slots if s.track is None and s.kind == kind), None)
            if slot is None:
                transceiver = participant.pc.addTransceiver(IdleTrack(kind), direction="sendonly")
                slot = _Slot(kind, RawSender(transceiver.sender))
                participant.slots.append(slot)
                participant.renegotiate = True
            slot.track = track
            task = asyncio.get_running_loop().create_task(self._attach(participant, slot, track))
            participant.attach_tasks.add(task)
            task.add_done_callback(participant.attach_tasks.discard)

    async def _attach(self, participant: _Participant, slot: _Slot, track: Track) -> None:
        """Once the slot is negotiated, feed it from the publisher's forwarder."""
        deadline = time.monotonic() + SLOT_READY_TIMEOUT_S
        try:
            await asyncio.wait_for(slot.raw.ready.wait(), SLOT_READY_TIMEOUT_S)
            while True:
                publisher = self._participants.get(track.user_id)
                receiver = None if publisher is None else publisher.receivers.get(track.source)
                if slot.track != track or receiver is None:
                    return
                try:
                    params = _sink_params(receiver, slot.raw)
                    break
                except LookupError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        except (TimeoutError, LookupError):
            logger.warning("%s: could not forward %s", participant.session.user_id, track)
            return
        sink = _RawSink(slot.raw, participant.tasks)
        self.router.subscribe(
            participant.session.user_id, track.user_id, track.source, sink, params
        )

    # Leaving.

    async def _close(self, participant: _Participant) -> None:
        user_id = participant.session.user_id
        self._participants.pop(user_id, None)
        self.router.remove_participant(user_id)
        for key in [k for k in self._tracks if k[0] == user_id]:
            del self._tracks[key]
            self._tracks_dirty = True
        for task in participant.attach_tasks | participant.tasks:
            task.cancel()
        await participant.pc.close()

    async def _announce_tracks(self) -> None:
        if not self._tracks_dirty:
            return
        self._tracks_dirty = False
        tracks = tuple(self._tracks.values())
        for user_id in list(self._participants):
            await self._input(user_id, lambda s: s.tracks_changed(tracks))


def _primary_codec(receiver: RTCRtpReceiver) -> tuple[int, str, int]:
    """The payload type, MIME type and clock rate the publisher sends on (not RTX)."""
    for codec in negotiated_codecs(receiver).codecs:
        if not codec.mimeType.lower().endswith("/rtx") and codec.payloadType is not None:
            return codec.payloadType, codec.mimeType, codec.clockRate
    raise LookupError("no media codec negotiated")


def _sink_params(receiver: RTCRtpReceiver, raw: RawSender) -> SinkParams:
    _, mime, clock_rate = _primary_codec(receiver)
    incoming = negotiated_codecs(receiver).header_extensions
    outgoing = negotiated_codecs(raw.sender).header_extensions
    return SinkParams(
        ssrc=raw.ssrc,
        payload_type=negotiated_codecs(raw.sender).payload_type(mime),
        extension_ids={i: outgoing[uri] for uri, i in incoming.items() if uri in outgoing},
        clock_rate=clock_rate,
    )

"""The media side of one call: `ParticipantSession`s driven against real peer connections.

`SfuCall` feeds every input (client messages, enforcement, transport events)
into the participant's session and carries out the returned actions in order,
so a `CloseGate` always runs before the `Send` of the matching
`sfu.stop_source`. Published RTP is tapped undecoded, as the original bytes
(header extensions included), from the publisher's receivers into the call's
`Router`; each subscriber gets a `RawSender` per forwarded track, which the
forwarder writes to synchronously (no task per packet).

Subscriber slots: every m-line in a client's offer that lets the server send
(`recvonly` or `sendrecv`) gets an `IdleTrack` and a `RawSender` in the answer.
A forwarded track takes a free slot of its kind; with none free, a sendonly
transceiver is added and the session is told `negotiation_needed()`, so the
server offers and the client answers (`sfu.answer`). Each slot's mid is
reported to the session (`track_mids`), which tells the client in `sfu.tracks`.

Numbering: every SDP the server sends (answers, and its own offers) keeps
the header extension ids and payload types already used with that client
(`podium.sfu.sdp`). aiortc numbers its offers from its own defaults; Chromium
refuses an offer that moves an extension id, and would follow changed payload
types that the publisher's started receivers and taps do not.

Sources are read from m-lines the client sends on, in order: audio is the
microphone; the first video the camera, the second the screen.

Feedback: keyframe requests (the session's `RequestKeyframe` when a video gate
opens, a new video subscriber, subscribers' PLI and FIR) go to the publisher
as PLIs, merged and rate limited per source by the forwarder (held-back ones
leave on a timer). Subscribers' NACKs are answered from the forwarder's
per-subscriber cache. Publishers' RTX packets are unwrapped and forwarded, so
a packet lost on the way in and recovered by aiortc's NACK reaches every
subscriber too. REMB towards publishers comes from aiortc's receivers (their
own estimate); subscribers' REMBs are not aggregated into it.

Not done here: NACKs the cache cannot answer are not passed on to the
publisher (aiortc's receiver already NACKs losses on the publisher's leg).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from struct import Struct

from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.sdp import SessionDescription, candidate_from_sdp

from podium.core.capabilities import Capability
from podium.protocol.errors import SfuErrorCode
from podium.protocol.events import StopReason
from podium.rtc import peer_connection
from podium.sfu.forwarder import Router
from podium.sfu.messages import Error, Track
from podium.sfu.negotiation import (
    adopt_answer,
    negotiated_codecs,
    primary_codec,
    renumbered,
    sink_params,
)
from podium.sfu.receive import install_media_demux, send_pli, tap_receiver
from podium.sfu.rtcp import Fir, Nack, Pli, Rtcp
from podium.sfu.rtp import unwrap_rtx
from podium.sfu.sdp import Numbering
from podium.sfu.send import IdleTrack, RawSender
from podium.sfu.session import (
    DEFAULT_LIMITS,
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
    SignallingLimits,
)
from podium.sfu.sources import Source, TrackKind

logger = logging.getLogger(__name__)

SendMessage = Callable[[str, dict[str, object]], Awaitable[None] | None]

#: How long a new subscriber slot may take to be negotiated before it is given up.
SLOT_READY_TIMEOUT_S = 30.0
_SENDS = frozenset({"sendonly", "sendrecv"})
_RECEIVES = frozenset({"recvonly", "sendrecv"})
_U32 = Struct("!I")
#: `Forwarder` counters that `SfuCall.stats()` adds up.
_FORWARDER_COUNTERS = (
    "packets_forwarded",
    "bytes_forwarded",
    "dropped_at_gate",
    "dropped_malformed",
)


@dataclass(eq=False)
class _Slot:
    """One server → client stream of a subscriber, and the remote track it carries."""

    kind: str
    transceiver: RTCRtpTransceiver
    raw: RawSender
    track: Track | None = None

    @property
    def mid(self) -> str | None:
        """The m-line's mid once an offer/answer exchange completed with it, else None."""
        transceiver = self.transceiver
        return transceiver.mid if transceiver.currentDirection is not None else None


@dataclass(eq=False)
class _Inbound:
    """A publisher's receiver for one source, and the media SSRC its packets last carried."""

    receiver: RTCRtpReceiver
    media_ssrc: int | None = None


@dataclass(eq=False)
class _Participant:
    session: ParticipantSession
    pc: RTCPeerConnection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inbound: dict[Source, _Inbound] = field(default_factory=dict)
    slots: list[_Slot] = field(default_factory=list)
    renegotiate: bool = False
    #: Header extension ids and payload types used so far with this client.
    numbering: Numbering = field(default_factory=Numbering)
    #: Slot attachments and PLIs in flight: cancelled when the participant goes.
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class SfuCall:
    """One call's participants, their peer connections, and the call's `Router`."""

    def __init__(
        self,
        call_cid: str,
        *,
        ice_servers: list[RTCIceServer] | None = None,
        loopback_only: bool = False,
        limits: SignallingLimits = DEFAULT_LIMITS,
        send: SendMessage,
    ) -> None:
        install_media_demux()
        self.call_cid = call_cid
        self._limits = limits
        self.router = Router()
        self._ice_servers = list(ice_servers or [])
        self._loopback_only = loopback_only
        self._send = send
        self._participants: dict[str, _Participant] = {}
        self._tracks: dict[tuple[str, Source], Track] = {}
        self._tracks_dirty = False
        self._keyframe_timers: dict[tuple[str, Source], asyncio.TimerHandle] = {}
        self.dropped_unpublished = 0
        #: Forwarder counters of participants who left, so `stats()` totals never go down.
        self._gone: dict[str, int] = dict.fromkeys(_FORWARDER_COUNTERS, 0)
        #: PLIs sent to publishers, and packets resent to subscribers from the NACK caches.
        self.keyframe_requests = 0
        self.nacks_answered = 0

    @property
    def participants(self) -> frozenset[str]:
        return frozenset(self._participants)

    @property
    def publishers(self) -> frozenset[str]:
        """Participants with a source accepted: the ones whose capabilities gate media."""
        return frozenset(u for u, p in self._participants.items() if p.session.publishing)

    # Inputs.

    async def join(self, user_id: str, caps: frozenset[Capability]) -> None:
        """Create the participant's session and peer connection; it then sends `sfu.offer`."""
        if user_id in self._participants:
            raise ValueError(f"{user_id!r} already joined call {self.call_cid!r}")
        pc = peer_connection(self._ice_servers, loopback_only=self._loopback_only)
        participant = _Participant(ParticipantSession(user_id, caps, self._limits), pc)
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
        """Totals, and per forwarder as `<user>/<source>.<counter>`, for `/metrics`.

        Totals are over the call's life (participants who left included).
        `publishers` counts participants with an open gate, `subscribers` those
        with at least one sink.
        """
        totals = dict(self._gone)
        out: dict[str, int] = {}
        publishers = 0
        subscribers: set[str] = set()
        for user_id in self._participants:
            forwarders = self.router.forwarders_of(user_id)
            publishers += any(f.gate_open for f in forwarders.values())
            for source, forwarder in forwarders.items():
                subscribers.update(forwarder.sink_keys)
                for name in totals:
                    value = int(getattr(forwarder, name))
                    totals[name] += value
                    out[f"{user_id}/{source.value}.{name}"] = value
        out.update(totals)
        out["dropped_unpublished"] = self.dropped_unpublished
        out["keyframe_requests"] = self.keyframe_requests
        out["nacks_answered"] = self.nacks_answered
        out["publishers"] = publishers
        out["subscribers"] = len(subscribers & self._participants.keys())
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
            case RequestKeyframe(source):
                self._request_keyframe(user_id, source)
            case Negotiate(offer):
                await self._negotiate(participant, offer)
                self._report_mids(participant)
            case ApplyAnswer(sdp):
                participant.numbering.learn(sdp)
                await participant.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
                adopt_answer(participant.pc)
                self._report_mids(participant)
            case AddCandidate(candidate):
                try:
                    await self._add_candidate(
                        participant,
                        candidate.candidate,
                        candidate.sdp_mid,
                        candidate.sdp_mline_index,
                    )
                except (AssertionError, ValueError, IndexError, KeyError) as exc:
                    # aioice asserts on shapes the parser let through: the client is told.
                    error = Error(SfuErrorCode.INVALID_MESSAGE, f"sfu.candidate refused: {exc!r}")
                    await self._execute(participant, Send(error))
            case ForwardTracks(tracks):
                self._forward(participant, tracks)
                self._report_mids(participant)
            case Close():
                await self._close(participant)

    async def _negotiate(self, participant: _Participant, offer: str | None) -> None:
        pc = participant.pc
        numbering = participant.numbering
        if offer is None:
            await pc.setLocalDescription(renumbered(pc, await pc.createOffer(), numbering))
        else:
            numbering.learn(offer)
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            directions = {m.rtp.muxId: m.direction for m in SessionDescription.parse(offer).media}
            for transceiver in pc.getTransceivers():
                direction = directions.get(transceiver.mid or "")
                try:
                    if direction in _SENDS:
                        self._tap(participant, transceiver)
                    if direction in _RECEIVES and transceiver.sender.track is None:
                        self._add_slot(participant, transceiver)
                        transceiver.sender.replaceTrack(IdleTrack(transceiver.kind))
                        transceiver.direction = "sendrecv"
                except RuntimeError:
                    # Already started without our hooks (a direction changed on renegotiation).
                    logger.warning(
                        "%s: m-line %s left unused", participant.session.user_id, transceiver.mid
                    )
            await pc.setLocalDescription(renumbered(pc, await pc.createAnswer(), numbering))
        local = pc.localDescription.sdp
        numbering.learn(local)
        participant.session.local_description(local)

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
        if any(i.receiver is receiver for i in participant.inbound.values()):
            return
        if transceiver.kind == TrackKind.AUDIO:
            candidates = [Source.MICROPHONE]
        else:
            candidates = [Source.CAMERA, Source.SCREEN]
        free = [s for s in candidates if s not in participant.inbound]
        if not free:
            logger.warning(
                "%s: no source left for a %s m-line", participant.session.user_id, transceiver.kind
            )
            return
        source = free[0]
        user_id = participant.session.user_id
        inbound = _Inbound(receiver)
        router = self.router
        # (media payload type, the RTX payload types retransmitting it), once negotiated.
        codecs: list[tuple[int, frozenset[int]]] = []

        def on_packet(data: bytes, arrival_time_ms: int) -> None:
            forwarder = router.forwarder(user_id, source)
            if forwarder is None:
                self.dropped_unpublished += 1
                return
            if not codecs:
                primary = primary_codec(receiver)[0]
                rtx = negotiated_codecs(receiver).rtx_payload_types()
                codecs.append((primary, frozenset(p for p, apt in rtx.items() if apt == primary)))
            primary, rtx_types = codecs[0]
            payload_type = data[1] & 0x7F
            if payload_type == primary:
                inbound.media_ssrc = _U32.unpack_from(data, 8)[0]
                packet = bytearray(data)
            elif payload_type in rtx_types:
                try:
                    unwrapped = unwrap_rtx(data, primary, inbound.media_ssrc)
                except ValueError:
                    forwarder.dropped_malformed += 1
                    return
                if unwrapped is None:
                    return  # padding only: a bandwidth probe, nothing to forward
                packet = unwrapped
            else:
                return  # an unexpected codec: not forwarded
            forwarder.on_rtp(packet, time.monotonic())

        tap_receiver(receiver, on_packet)
        participant.inbound[source] = inbound

    # Keyframes.

    def _request_keyframe(self, publisher_id: str, source: Source) -> None:
        """Someone needs a keyframe of this source: a PLI now, or when the rate limit allows."""
        forwarder = self.router.forwarder(publisher_id, source)
        if forwarder is None or not forwarder.is_video:
            return
        if forwarder.request_keyframe(asyncio.get_running_loop().time()):
            self._send_pli(publisher_id, source)
        else:
            self._schedule_keyframe_request(publisher_id, source)

    def _schedule_keyframe_request(self, publisher_id: str, source: Source) -> None:
        key = (publisher_id, source)
        forwarder = self.router.forwarder(publisher_id, source)
        if key in self._keyframe_timers or forwarder is None:
            return
        due = forwarder.next_keyframe_request_at()
        if due is not None:
            loop = asyncio.get_running_loop()
            self._keyframe_timers[key] = loop.call_at(
                due, self._keyframe_request_due, publisher_id, source, due
            )

    def _keyframe_request_due(self, publisher_id: str, source: Source, due: float) -> None:
        self._keyframe_timers.pop((publisher_id, source), None)
        forwarder = self.router.forwarder(publisher_id, source)
        if forwarder is None:
            return
        # `call_at` may run a hair early; the limiter must see the time it asked for.
        now = max(asyncio.get_running_loop().time(), due)
        if forwarder.pending_keyframe_requests(now):
            self._send_pli(publisher_id, source)
        self._schedule_keyframe_request(publisher_id, source)

    def _send_pli(self, publisher_id: str, source: Source) -> None:
        publisher = self._participants.get(publisher_id)
        inbound = None if publisher is None else publisher.inbound.get(source)
        if publisher is None or inbound is None:
            return
        ssrc = inbound.media_ssrc
        if ssrc is None:
            try:
                ssrc = next(iter(negotiated_codecs(inbound.receiver).ssrcs), None)
            except LookupError:
                ssrc = None
        if ssrc is None:
            logger.debug("%s: no %s SSRC known yet for a PLI", publisher_id, source)
            return
        publisher.spawn(send_pli(inbound.receiver, ssrc))
        self.keyframe_requests += 1

    def _cancel_keyframe_requests(self, publisher_id: str) -> None:
        for key in [k for k in self._keyframe_timers if k[0] == publisher_id]:
            self._keyframe_timers.pop(key).cancel()

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
                slot = self._add_slot(participant, transceiver)
                participant.renegotiate = True
            slot.track = track
            participant.spawn(self._attach(participant, slot, track))

    def _add_slot(self, participant: _Participant, transceiver: RTCRtpTransceiver) -> _Slot:
        slot = _Slot(transceiver.kind, transceiver, RawSender(transceiver.sender))
        slot.raw.on_feedback = lambda feedback: self._on_feedback(participant, slot, feedback)
        participant.slots.append(slot)
        return slot

    def _report_mids(self, participant: _Participant) -> None:
        participant.session.track_mids(
            {slot.track: slot.mid for slot in participant.slots if slot.track is not None}
        )

    async def _attach(self, participant: _Participant, slot: _Slot, track: Track) -> None:
        """Once the slot is negotiated, feed it from the publisher's forwarder."""
        deadline = time.monotonic() + SLOT_READY_TIMEOUT_S
        try:
            await asyncio.wait_for(slot.raw.ready.wait(), SLOT_READY_TIMEOUT_S)
            while True:
                publisher = self._participants.get(track.user_id)
                inbound = None if publisher is None else publisher.inbound.get(track.source)
                if slot.track != track or inbound is None:
                    return
                try:
                    params = sink_params(inbound.receiver, slot.raw.sender, slot.raw.ssrc)
                    break
                except LookupError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        except (TimeoutError, LookupError):
            logger.warning("%s: could not forward %s", participant.session.user_id, track)
            return
        if self.router.subscribe(
            participant.session.user_id,
            track.user_id,
            track.source,
            slot.raw,
            params,
            start=slot.raw.continuation(params.clock_rate),
        ):
            # A new video sink waits for a keyframe: ask for one rather than wait for it.
            self._request_keyframe(track.user_id, track.source)

    def _on_feedback(self, participant: _Participant, slot: _Slot, feedback: list[Rtcp]) -> None:
        """RTCP from a subscriber about one of its slots: NACKs answered, PLI/FIR passed up."""
        track = slot.track
        subscriber = participant.session.user_id
        forwarder = None if track is None else self.router.forwarder(track.user_id, track.source)
        if track is None or forwarder is None or subscriber not in forwarder.sink_keys:
            return
        keyframe = False
        for item in feedback:
            if isinstance(item, Nack):
                for data in forwarder.on_nack(subscriber, item.lost):
                    self.nacks_answered += slot.raw.resend(data)
            elif isinstance(item, Pli | Fir):
                keyframe = True
        if keyframe:
            self._request_keyframe(track.user_id, track.source)

    # Leaving.

    async def _close(self, participant: _Participant) -> None:
        user_id = participant.session.user_id
        self._participants.pop(user_id, None)
        for forwarder in self.router.forwarders_of(user_id).values():
            for name in _FORWARDER_COUNTERS:
                self._gone[name] += int(getattr(forwarder, name))
        self.router.remove_participant(user_id)
        self._cancel_keyframe_requests(user_id)
        for key in [k for k in self._tracks if k[0] == user_id]:
            del self._tracks[key]
            self._tracks_dirty = True
        for task in list(participant.tasks):
            task.cancel()
        await participant.pc.close()

    async def _announce_tracks(self) -> None:
        if not self._tracks_dirty:
            return
        self._tracks_dirty = False
        tracks = tuple(self._tracks.values())
        for user_id in list(self._participants):
            await self._input(user_id, lambda s: s.tracks_changed(tracks))

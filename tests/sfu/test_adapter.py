"""The aiortc adapter: hooks, raw undecoded taps, synchronous sending, renumbering (127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import aioice
import aiortc
import pylibsrtp
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RtpPacket
from av import AudioFrame

from podium.sfu import adapter
from podium.sfu.rtcp import Pli, Rtcp
from podium.sfu.rtp import RtpHeaderView
from podium.sfu.sdp import Numbering
from tests.sfu.test_sdp import (
    ABS_SEND_TIME,
    AUDIO_LEVEL,
    CHROMIUM_OFFER,
    MID,
    codecs,
    extensions,
)

T = TypeVar("T")
WAIT_S = 5.0


def test_hooks_present() -> None:
    assert aiortc.__version__ == adapter.PINNED_AIORTC_VERSION, (
        f"aiortc {aiortc.__version__} is installed but podium.sfu.adapter is written against "
        f"{adapter.PINNED_AIORTC_VERSION}: re-check every hook in adapter.REQUIRED_HOOKS"
    )
    adapter.check_hooks()


def test_check_hooks_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=r"aiortc==1\.16\.0, .*installed: aiortc 9\.9\.9"):
        adapter.check_hooks()
    monkeypatch.undo()
    monkeypatch.setattr(aioice, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=r"aioice==0\.13\.0 .*aioice 9\.9\.9"):
        adapter.check_hooks()
    monkeypatch.undo()
    monkeypatch.setattr(pylibsrtp, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=r"pylibsrtp==1\.0\.0 .*pylibsrtp 9\.9\.9"):
        adapter.check_hooks()
    monkeypatch.undo()
    monkeypatch.delattr(RTCRtpReceiver, "_handle_rtp_packet")
    with pytest.raises(RuntimeError, match=r"RTCRtpReceiver\._handle_rtp_packet"):
        adapter.check_hooks()


def test_negotiated_payload_type_lookup() -> None:
    params = RTCRtpParameters(
        codecs=[RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)]
    )
    negotiated = adapter._negotiated(params)
    assert negotiated.payload_type("AUDIO/OPUS") == 111
    with pytest.raises(LookupError):
        negotiated.payload_type("video/VP8")


async def _bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, WAIT_S)


async def _signal(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await _bounded(offerer.setLocalDescription(await offerer.createOffer()))
    await _bounded(answerer.setRemoteDescription(offerer.localDescription))
    await _bounded(answerer.setLocalDescription(await answerer.createAnswer()))
    await _bounded(offerer.setRemoteDescription(answerer.localDescription))
    for description in (offerer.localDescription, answerer.localDescription):
        candidates = [line for line in description.sdp.splitlines() if "candidate:" in line]
        assert candidates, "no ICE candidates"
        assert all(" 127.0.0.1 " in line for line in candidates), candidates


def _receiver_of(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpReceiver:
    return next(r for r in pc.getReceivers() if r.track is track)


def _decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith("-decoder") and t.is_alive()]


class _Tap:
    """Taps the SFU's incoming receiver; keeps the packets and forwards them via a hook."""

    def __init__(self, sfu: RTCPeerConnection, wanted: int) -> None:
        self.packets: list[bytes] = []
        self.enough = asyncio.Event()
        self.receiver: RTCRtpReceiver | None = None
        self.forward: Callable[[bytes], None] | None = None
        self.wanted = wanted

        @sfu.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.receiver = _receiver_of(sfu, track)
            adapter.tap_receiver(self.receiver, self.on_packet)

    def on_packet(self, packet: bytes, arrival_time_ms: int) -> None:
        assert arrival_time_ms > 0 and type(packet) is bytes
        self.packets.append(packet)
        if len(self.packets) > self.wanted:
            self.enough.set()
        if self.forward is not None:
            self.forward(packet)


async def _close(*pcs: RTCPeerConnection) -> None:
    for pc in pcs:
        await _bounded(pc.close())


async def test_tap_receiver_gets_opus_without_decoding() -> None:
    publisher = adapter.peer_connection(loopback_only=True)
    sfu = adapter.peer_connection(loopback_only=True)
    try:
        publisher.addTrack(AudioStreamTrack())
        tap = _Tap(sfu, wanted=20)
        await _signal(publisher, sfu)
        await _bounded(tap.enough.wait())

        assert tap.receiver is not None
        negotiated = adapter.negotiated_codecs(tap.receiver)
        opus = negotiated.payload_type("audio/opus")
        views = [RtpHeaderView(bytearray(p)) for p in tap.packets]
        assert {v.payload_type for v in views} == {opus}
        # The original bytes: aiortc's mid and audio level extensions are still there.
        ids = {e.id for v in views for e in v.extension_elements()}
        assert ids == set(negotiated.header_extensions.values())
        assert not adapter.decoder_running(tap.receiver)
        assert _decoder_threads() == []
    finally:
        await _close(publisher, sfu)


async def test_tap_runs_in_the_datagram_callback_and_skips_frame_assembly() -> None:
    """Once connected, RTP is handled as the datagram arrives, not by the DTLS receive task.

    The tapped receiver still counts every packet for its receiver reports but
    never fills aiortc's jitter buffer (only the stopped decoder would read it).
    """
    publisher = adapter.peer_connection(loopback_only=True)
    sfu = adapter.peer_connection(loopback_only=True)
    tasks: list[asyncio.Task[object] | None] = []
    try:
        publisher.addTrack(AudioStreamTrack())
        tap = _Tap(sfu, wanted=30)
        inner = tap.on_packet

        def on_packet(packet: bytes, arrival_time_ms: int) -> None:
            tasks.append(asyncio.current_task())
            inner(packet, arrival_time_ms)

        tap.on_packet = on_packet  # type: ignore[method-assign]
        await _signal(publisher, sfu)
        await _bounded(tap.enough.wait())
        assert tasks[-20:] == [None] * 20

        assert tap.receiver is not None
        stats = await tap.receiver.getStats()
        [inbound] = [s for s in stats.values() if s.type == "inbound-rtp"]
        assert inbound.packetsReceived >= len(tap.packets) - 1
        [transport] = [s for s in stats.values() if s.type == "transport"]
        assert transport.packetsReceived >= len(tap.packets)
        assert tap.receiver._RTCRtpReceiver__jitter_buffer._origin is None  # type: ignore[attr-defined]
    finally:
        await _close(publisher, sfu)


async def test_a_handler_that_waits_keeps_packets_in_order() -> None:
    """Every fourth packet's handling waits: a task finishes it, later packets queue behind."""
    publisher = adapter.peer_connection(loopback_only=True)
    sfu = adapter.peer_connection(loopback_only=True)
    handled: list[int] = []
    waited: list[int] = []
    try:
        publisher.addTrack(AudioStreamTrack())
        tap = _Tap(sfu, wanted=1000)

        @sfu.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            receiver = _receiver_of(sfu, track)
            tapped = receiver._handle_rtp_packet

            async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
                await tapped(packet, arrival_time_ms)
                if packet.sequence_number % 4 == 0:
                    waited.append(packet.sequence_number)
                    await asyncio.sleep(0.03)
                handled.append(packet.sequence_number)

            setattr(receiver, "_handle_rtp_packet", handle)  # noqa: B010

        await _signal(publisher, sfu)
        await _until(lambda: len(waited) >= 10)
        assert handled == [(handled[0] + i) % (1 << 16) for i in range(len(handled))]
        tapped_numbers = [RtpHeaderView(bytearray(p)).sequence_number for p in tap.packets]
        assert tapped_numbers[: len(handled)] == handled
    finally:
        await _close(publisher, sfu)


async def test_drive_runs_a_coroutine_to_its_end_or_hands_it_over() -> None:
    async def ready() -> None:
        log.append("ready")

    async def waits(future: asyncio.Future[int]) -> None:
        log.append("before")
        try:
            log.append(await future)
        except ValueError as exc:
            log.append(str(exc))
        log.append("after")

    log: list[object] = []
    assert adapter.drive(ready()) is None
    assert log == ["ready"]

    loop = asyncio.get_running_loop()
    for outcome in (7, ValueError("refused")):
        log.clear()
        future: asyncio.Future[int] = loop.create_future()
        resume = adapter.drive(waits(future))
        assert resume is not None and log == ["before"]
        task = asyncio.ensure_future(_awaiting(resume))
        await asyncio.sleep(0)
        if isinstance(outcome, int):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)
        await _bounded(task)
        assert log == ["before", str(outcome) if isinstance(outcome, Exception) else 7, "after"]

    log.clear()
    future = loop.create_future()
    resume = adapter.drive(waits(future))
    assert resume is not None
    task = asyncio.ensure_future(_awaiting(resume))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await _bounded(task)
    assert future.cancelled() and log == ["before"]


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


async def test_raw_sender_forwards_without_decoding() -> None:
    publisher = adapter.peer_connection(loopback_only=True)
    sfu_in = adapter.peer_connection(loopback_only=True)
    sfu_out = adapter.peer_connection(loopback_only=True)
    subscriber = adapter.peer_connection(loopback_only=True)
    tap = _Tap(sfu_in, wanted=0)
    try:
        publisher_rtcp: list[Rtcp] = []
        # As an observer only: the publisher's own track keeps sending.
        adapter.RawSender(publisher.addTrack(AudioStreamTrack()), publisher_rtcp.extend, remb=True)
        await _signal(publisher, sfu_in)

        feedback: list[Rtcp] = []
        raw = adapter.RawSender(sfu_out.addTrack(adapter.IdleTrack("audio")), feedback.extend)
        tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        subscriber.on("track", tracks.put_nowait)
        await _signal(sfu_out, subscriber)
        track = await _bounded(tracks.get())
        await _bounded(raw.ready.wait())

        out = adapter.negotiated_codecs(raw.sender)
        pt = out.payload_type("audio/opus")

        sent: list[bytes] = []

        def forward(packet: bytes) -> None:
            view = RtpHeaderView(bytearray(packet))
            view.payload_type = pt
            view.ssrc = raw.ssrc
            sent.append(bytes(view.buf))
            _send(raw, sent[-1])

        tap.forward = forward
        for _ in range(5):
            frame = await _bounded(track.recv())
            assert isinstance(frame, AudioFrame)
            assert frame.sample_rate == 48000

        # aiortc's counters follow the packets sent around it.
        stats = await raw.sender.getStats()
        outbound = [s for s in stats.values() if s.type == "outbound-rtp"]
        assert outbound and outbound[0].packetsSent > 0 and outbound[0].bytesSent > 0
        transport = [s for s in stats.values() if s.type == "transport"]
        assert transport[0].packetsSent >= outbound[0].packetsSent
        sub_receiver = _receiver_of(subscriber, track)
        inbound = [s for s in (await sub_receiver.getStats()).values() if s.type == "inbound-rtp"]
        assert inbound[0].packetsReceived > 0
        assert raw.resend(tap.packets[-1])  # a NACK answer
        assert raw.dropped == 0

        # Counts reach aiortc at most COUNTER_FLUSH_S late: exact after the next flush.
        tap.forward = None
        await asyncio.sleep(2 * adapter.COUNTER_FLUSH_S)
        _send(raw, sent[-1])
        [outbound] = [s for s in (await raw.sender.getStats()).values() if s.type == "outbound-rtp"]
        assert outbound.packetsSent == len(sent) + 1
        payloads = [len(p) - RtpHeaderView(bytearray(p)).payload_offset for p in sent]
        assert outbound.bytesSent == sum(payloads) + payloads[-1]

        # Packets left on a duplicate of the ICE socket, connected to the subscriber.
        transport = raw.sender.transport
        connected = getattr(transport, adapter._CONNECTED_ATTR)
        assert isinstance(connected, adapter._ConnectedSocket)
        assert connected._socket.fileno() != -1

        # A PLI from the subscriber reaches the RawSender's feedback callback.
        await sub_receiver._send_rtcp_pli(raw.ssrc)
        await _until(lambda: any(isinstance(f, Pli) for f in feedback))
        assert any(isinstance(f, Pli) and f.media_ssrc == raw.ssrc for f in feedback)

        # And the SFU's PLI for a tapped receiver reaches the publisher.
        assert tap.receiver is not None and not adapter.decoder_running(tap.receiver)
        media_ssrc = RtpHeaderView(bytearray(tap.packets[-1])).ssrc
        await _bounded(adapter.send_pli(tap.receiver, media_ssrc))
        await _until(lambda: any(isinstance(f, Pli) for f in publisher_rtcp))
        assert [f.media_ssrc for f in publisher_rtcp if isinstance(f, Pli)] == [media_ssrc]
        # Closing the connection closes the duplicate too.
        await _close(sfu_out)
        assert connected._socket.fileno() == -1
    finally:
        tap.forward = None
        await _close(publisher, sfu_in, sfu_out, subscriber)


async def test_raw_sender_drops_until_connected() -> None:
    pc = adapter.peer_connection(loopback_only=True)
    try:
        raw = adapter.RawSender(pc.addTrack(adapter.IdleTrack("audio")))
        _send(raw, b"\x80" + bytes(11))
        assert not raw.resend(bytes(12))
        assert raw.dropped == 1
    finally:
        await _close(pc)


def _send(raw: adapter.RawSender, packet: bytes) -> None:
    """What a forwarder does: the packet into the sender's buffer, then `send`."""
    raw.buffer[: len(packet)] = packet
    raw.send(len(packet), len(packet) - RtpHeaderView(bytearray(packet)).payload_offset)


class _FakeDtls:
    """What `_datagram_sender` uses of a DTLS transport: its state and statechange listeners."""

    def __init__(self) -> None:
        self._state = State.CONNECTED
        self.listeners: list[Callable[[], None]] = []

    def on(self, event: str, listener: Callable[[], None]) -> None:
        assert event == "statechange"
        self.listeners.append(listener)

    def close(self) -> None:
        self._state = State.CLOSED
        for listener in self.listeners:
            listener()


def _fake_pair(candidate_type: str, own: socket.socket, remote: tuple[str, int]) -> Any:
    sent: list[bytes] = []
    datagrams = SimpleNamespace(
        get_extra_info=lambda name: own if name == "socket" else None,
        sendto=lambda data, addr: sent.append(bytes(data)),
        sent=sent,
    )
    return _Pair(SimpleNamespace(transport=datagrams), candidate_type, remote)


class _Pair:
    """What `_datagram_sender` reads of an aioice `CandidatePair` (weakly referable, like it)."""

    def __init__(self, protocol: Any, candidate_type: str, remote: tuple[str, int]) -> None:
        self.protocol = protocol
        self.local_candidate = SimpleNamespace(type=candidate_type)
        self.remote_addr = remote


def test_datagrams_go_out_on_a_connected_duplicate_closed_with_the_transport() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as own,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
    ):
        own.bind(("127.0.0.1", 0))
        own.setblocking(False)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        transport = _FakeDtls()
        pair = _fake_pair("host", own, peer.getsockname())
        send = adapter._datagram_sender(cast(Any, transport), pair)
        assert send(memoryview(b"rtp")) and peer.recv(100) == b"rtp"
        assert adapter._datagram_sender(cast(Any, transport), pair) == send  # one per transport
        # The original socket (aioice's) still sends anywhere, but hears only the peer now.
        own.sendto(b"stun", peer.getsockname())
        assert peer.recv(100) == b"stun"
        stranger.sendto(b"late check", own.getsockname())
        peer.sendto(b"from peer", own.getsockname())
        time.sleep(0.05)
        assert own.recv(100) == b"from peer"
        # A peer gone: the kernel refuses, the datagram is dropped, nothing raises.
        peer.close()
        outcomes = [send(b"rtp") for _ in range(3)]
        assert False in outcomes
        connected = getattr(transport, adapter._CONNECTED_ATTR)
        transport.close()
        assert connected._socket.fileno() == -1
        assert own.fileno() != -1  # aioice's socket is untouched


def test_relayed_pairs_are_sent_through_the_event_loop() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as own:
        own.bind(("127.0.0.1", 0))
        pair = _fake_pair("relay", own, ("127.0.0.1", 9))
        transport = _FakeDtls()
        send = adapter._datagram_sender(cast(Any, transport), pair)
        assert send(b"rtp")
        assert pair.protocol.transport.sent == [b"rtp"]
        assert getattr(transport, adapter._CONNECTED_ATTR, None) is None


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def _numbers(transceiver: RTCRtpTransceiver) -> tuple[list[int | None], dict[str, int]]:
    """The payload types and header extension ids aiortc will start the transceiver with."""
    return (
        [c.payloadType for c in transceiver._codecs],
        {e.uri: e.id for e in transceiver._headerExtensions},
    )


async def test_renumbered_offer_and_aiortcs_own_state_use_the_clients_numbers() -> None:
    server = adapter.peer_connection(loopback_only=True)
    client = adapter.peer_connection(loopback_only=True)
    try:
        audio = server.addTransceiver(adapter.IdleTrack("audio"), direction="sendonly")
        video = server.addTransceiver(adapter.IdleTrack("video"), direction="sendonly")
        numbering = Numbering()
        numbering.learn(CHROMIUM_OFFER)
        offer = adapter.renumbered(server, await server.createOffer(), numbering)
        chromium_audio = ([111, 9, 0, 8], {MID: 4, AUDIO_LEVEL: 1})
        chromium_video = ([96, 97, 102, 103, 108, 109], {MID: 4, ABS_SEND_TIME: 2})
        assert (_numbers(audio), _numbers(video)) == (chromium_audio, chromium_video)
        await _bounded(server.setLocalDescription(offer))
        assert extensions(server.localDescription.sdp) == [chromium_audio[1], chromium_video[1]]
        assert [list(t) for t in codecs(server.localDescription.sdp)] == [
            chromium_audio[0],
            chromium_video[0],
        ]

        # aiortc as the client echoes the offer's numbers; the server keeps them.
        await _bounded(client.setRemoteDescription(server.localDescription))
        await _bounded(client.setLocalDescription(await client.createAnswer()))
        await _bounded(server.setRemoteDescription(client.localDescription))
        adapter.adopt_answer(server)
        assert (_numbers(audio), _numbers(video)) == (chromium_audio, chromium_video)
    finally:
        await _close(server, client)


@pytest.mark.parametrize("conforming", [True, False])
async def test_adopt_answer_keeps_a_payload_type_aiortc_would_not(conforming: bool) -> None:
    """A client numbering Opus 63: aiortc answers 96 (non-conforming), Chromium would echo 63."""
    server = adapter.peer_connection(loopback_only=True)
    client = adapter.peer_connection(loopback_only=True)
    try:
        audio = server.addTransceiver(adapter.IdleTrack("audio"), direction="sendonly")
        numbering = Numbering()
        numbering.learn("m=audio 9 UDP/TLS/RTP/SAVPF 63\na=rtpmap:63 opus/48000/2\n")
        offer = adapter.renumbered(server, await server.createOffer(), numbering)
        await _bounded(server.setLocalDescription(offer))
        assert _numbers(audio)[0] == [63, 9, 0, 8]

        await _bounded(client.setRemoteDescription(server.localDescription))
        await _bounded(client.setLocalDescription(await client.createAnswer()))
        answer = client.localDescription.sdp
        assert "a=rtpmap:96 opus/48000/2" in answer  # aiortc keeps its own below 96
        if conforming:
            answer = answer.replace("SAVPF 96 ", "SAVPF 63 ").replace("rtpmap:96 ", "rtpmap:63 ")
        await _bounded(server.setRemoteDescription(RTCSessionDescription(answer, "answer")))
        assert _numbers(audio)[0] == [96, 9, 0, 8]  # what aiortc makes of either answer
        adapter.adopt_answer(server)
        assert _numbers(audio)[0] == ([63, 9, 0, 8] if conforming else [96, 9, 0, 8])
    finally:
        await _close(server, client)

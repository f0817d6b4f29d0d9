"""The receive path: raw undecoded taps, handled in the datagram callback (127.0.0.1)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from aiortc.rtp import RtpPacket

from podium.rtc import peer_connection
from podium.sfu.call import SfuCall
from podium.sfu.negotiation import negotiated_codecs
from podium.sfu.receive import decoder_running, drive, install_media_demux, tap_receiver
from podium.sfu.rtp import RtpHeaderView

T = TypeVar("T")
WAIT_S = 5.0


async def bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, WAIT_S)


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await bounded(offerer.setLocalDescription(await offerer.createOffer()))
    await bounded(answerer.setRemoteDescription(offerer.localDescription))
    await bounded(answerer.setLocalDescription(await answerer.createAnswer()))
    await bounded(offerer.setRemoteDescription(answerer.localDescription))
    for description in (offerer.localDescription, answerer.localDescription):
        candidates = [line for line in description.sdp.splitlines() if "candidate:" in line]
        assert candidates, "no ICE candidates"
        assert all(" 127.0.0.1 " in line for line in candidates), candidates


def receiver_of(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpReceiver:
    return next(r for r in pc.getReceivers() if r.track is track)


def _decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith("-decoder") and t.is_alive()]


class Tap:
    """Taps the SFU's incoming receiver; keeps the packets and forwards them via a hook."""

    def __init__(self, sfu: RTCPeerConnection, wanted: int) -> None:
        self.packets: list[bytes] = []
        self.enough = asyncio.Event()
        self.receiver: RTCRtpReceiver | None = None
        self.forward: Callable[[bytes], None] | None = None
        self.wanted = wanted

        @sfu.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.receiver = receiver_of(sfu, track)
            tap_receiver(self.receiver, self.on_packet)

    def on_packet(self, packet: bytes, arrival_time_ms: int) -> None:
        assert arrival_time_ms > 0 and type(packet) is bytes
        self.packets.append(packet)
        if len(self.packets) > self.wanted:
            self.enough.set()
        if self.forward is not None:
            self.forward(packet)


async def close_all(*pcs: RTCPeerConnection) -> None:
    for pc in pcs:
        await bounded(pc.close())


async def test_tap_receiver_gets_opus_without_decoding() -> None:
    publisher = peer_connection(loopback_only=True)
    sfu = peer_connection(loopback_only=True)
    try:
        publisher.addTrack(AudioStreamTrack())
        tap = Tap(sfu, wanted=20)
        await negotiate(publisher, sfu)
        await bounded(tap.enough.wait())

        assert tap.receiver is not None
        negotiated = negotiated_codecs(tap.receiver)
        opus = negotiated.payload_type("audio/opus")
        views = [RtpHeaderView(bytearray(p)) for p in tap.packets]
        assert {v.payload_type for v in views} == {opus}
        # The original bytes: aiortc's mid and audio level extensions are still there.
        ids = {e.id for v in views for e in v.extension_elements()}
        assert ids == set(negotiated.header_extensions.values())
        assert not decoder_running(tap.receiver)
        assert _decoder_threads() == []
    finally:
        await close_all(publisher, sfu)


async def test_tap_runs_in_the_datagram_callback_and_skips_frame_assembly() -> None:
    """Once connected, RTP is handled as the datagram arrives, not by the DTLS receive task.

    The tapped receiver still counts every packet for its receiver reports but
    never fills aiortc's jitter buffer (only the stopped decoder would read it).
    """
    publisher = peer_connection(loopback_only=True)
    sfu = peer_connection(loopback_only=True)
    tasks: list[asyncio.Task[object] | None] = []
    try:
        publisher.addTrack(AudioStreamTrack())
        tap = Tap(sfu, wanted=30)
        inner = tap.on_packet

        def on_packet(packet: bytes, arrival_time_ms: int) -> None:
            tasks.append(asyncio.current_task())
            inner(packet, arrival_time_ms)

        tap.on_packet = on_packet  # type: ignore[method-assign]
        await negotiate(publisher, sfu)
        await bounded(tap.enough.wait())
        assert tasks[-20:] == [None] * 20

        assert tap.receiver is not None
        stats = await tap.receiver.getStats()
        [inbound] = [s for s in stats.values() if s.type == "inbound-rtp"]
        assert inbound.packetsReceived >= len(tap.packets) - 1
        [transport] = [s for s in stats.values() if s.type == "transport"]
        assert transport.packetsReceived >= len(tap.packets)
        assert tap.receiver._RTCRtpReceiver__jitter_buffer._origin is None  # type: ignore[attr-defined]
    finally:
        await close_all(publisher, sfu)


async def test_a_handler_that_waits_keeps_packets_in_order() -> None:
    """Every fourth packet's handling waits: a task finishes it, later packets queue behind."""
    publisher = peer_connection(loopback_only=True)
    sfu = peer_connection(loopback_only=True)
    handled: list[int] = []
    waited: list[int] = []
    try:
        publisher.addTrack(AudioStreamTrack())
        tap = Tap(sfu, wanted=1000)

        @sfu.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            receiver = receiver_of(sfu, track)
            tapped = receiver._handle_rtp_packet

            async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
                await tapped(packet, arrival_time_ms)
                if packet.sequence_number % 4 == 0:
                    waited.append(packet.sequence_number)
                    await asyncio.sleep(0.03)
                handled.append(packet.sequence_number)

            setattr(receiver, "_handle_rtp_packet", handle)  # noqa: B010

        await negotiate(publisher, sfu)
        await until(lambda: len(waited) >= 10)
        assert handled == [(handled[0] + i) % (1 << 16) for i in range(len(handled))]
        tapped_numbers = [RtpHeaderView(bytearray(p)).sequence_number for p in tap.packets]
        assert tapped_numbers[: len(handled)] == handled
    finally:
        await close_all(publisher, sfu)


def test_the_sfu_installs_the_media_demux_once() -> None:
    """The one process-wide patch: applied by `SfuCall` (never by `podium.rtc`), only once."""
    SfuCall("default:demux", send=lambda user_id, message: None)
    demux = aioice.ice.StunProtocol.datagram_received
    assert getattr(demux, "_podium_media_demux", False)
    install_media_demux()
    assert aioice.ice.StunProtocol.datagram_received is demux


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
    assert drive(ready()) is None
    assert log == ["ready"]

    loop = asyncio.get_running_loop()
    for outcome in (7, ValueError("refused")):
        log.clear()
        future: asyncio.Future[int] = loop.create_future()
        resume = drive(waits(future))
        assert resume is not None and log == ["before"]
        task = asyncio.ensure_future(_awaiting(resume))
        await asyncio.sleep(0)
        if isinstance(outcome, int):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)
        await bounded(task)
        assert log == ["before", str(outcome) if isinstance(outcome, Exception) else 7, "after"]

    log.clear()
    future = loop.create_future()
    resume = drive(waits(future))
    assert resume is not None
    task = asyncio.ensure_future(_awaiting(resume))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await bounded(task)
    assert future.cancelled() and log == ["before"]


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")

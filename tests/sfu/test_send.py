"""The send path: synchronous sending through a RawSender, connected sockets (127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from aiortc.rtcdtlstransport import State
from av import AudioFrame

from podium.rtc import peer_connection
from podium.sfu.negotiation import negotiated_codecs
from podium.sfu.receive import decoder_running, send_pli
from podium.sfu.rtcp import Pli, Rtcp
from podium.sfu.rtp import RtpHeaderView
from podium.sfu.send import (
    _CONNECTED_ATTR,
    COUNTER_FLUSH_S,
    IdleTrack,
    RawSender,
    _ConnectedSocket,
    _datagram_sender,
)
from tests.sfu.test_receive import Tap, bounded, close_all, negotiate, receiver_of, until


async def test_raw_sender_forwards_without_decoding() -> None:
    publisher = peer_connection(loopback_only=True)
    sfu_in = peer_connection(loopback_only=True)
    sfu_out = peer_connection(loopback_only=True)
    subscriber = peer_connection(loopback_only=True)
    tap = Tap(sfu_in, wanted=0)
    try:
        publisher_rtcp: list[Rtcp] = []
        # As an observer only: the publisher's own track keeps sending.
        RawSender(publisher.addTrack(AudioStreamTrack()), publisher_rtcp.extend, remb=True)
        await negotiate(publisher, sfu_in)

        feedback: list[Rtcp] = []
        raw = RawSender(sfu_out.addTrack(IdleTrack("audio")), feedback.extend)
        tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        subscriber.on("track", tracks.put_nowait)
        await negotiate(sfu_out, subscriber)
        track = await bounded(tracks.get())
        await bounded(raw.ready.wait())

        out = negotiated_codecs(raw.sender)
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
            frame = await bounded(track.recv())
            assert isinstance(frame, AudioFrame)
            assert frame.sample_rate == 48000

        # aiortc's counters follow the packets sent around it.
        stats = await raw.sender.getStats()
        outbound = [s for s in stats.values() if s.type == "outbound-rtp"]
        assert outbound and outbound[0].packetsSent > 0 and outbound[0].bytesSent > 0
        transport = [s for s in stats.values() if s.type == "transport"]
        assert transport[0].packetsSent >= outbound[0].packetsSent
        sub_receiver = receiver_of(subscriber, track)
        inbound = [s for s in (await sub_receiver.getStats()).values() if s.type == "inbound-rtp"]
        assert inbound[0].packetsReceived > 0
        assert raw.resend(tap.packets[-1])  # a NACK answer
        assert raw.dropped == 0

        # Counts reach aiortc at most COUNTER_FLUSH_S late: exact after the next flush.
        tap.forward = None
        await asyncio.sleep(2 * COUNTER_FLUSH_S)
        _send(raw, sent[-1])
        [outbound] = [s for s in (await raw.sender.getStats()).values() if s.type == "outbound-rtp"]
        assert outbound.packetsSent == len(sent) + 1
        payloads = [len(p) - RtpHeaderView(bytearray(p)).payload_offset for p in sent]
        assert outbound.bytesSent == sum(payloads) + payloads[-1]

        # Packets left on a duplicate of the ICE socket, connected to the subscriber.
        transport = raw.sender.transport
        connected = getattr(transport, _CONNECTED_ATTR)
        assert isinstance(connected, _ConnectedSocket)
        assert connected._socket.fileno() != -1

        # A PLI from the subscriber reaches the RawSender's feedback callback.
        await sub_receiver._send_rtcp_pli(raw.ssrc)
        await until(lambda: any(isinstance(f, Pli) for f in feedback))
        assert any(isinstance(f, Pli) and f.media_ssrc == raw.ssrc for f in feedback)

        # And the SFU's PLI for a tapped receiver reaches the publisher.
        assert tap.receiver is not None and not decoder_running(tap.receiver)
        media_ssrc = RtpHeaderView(bytearray(tap.packets[-1])).ssrc
        await bounded(send_pli(tap.receiver, media_ssrc))
        await until(lambda: any(isinstance(f, Pli) for f in publisher_rtcp))
        assert [f.media_ssrc for f in publisher_rtcp if isinstance(f, Pli)] == [media_ssrc]
        # Closing the connection closes the duplicate too.
        await close_all(sfu_out)
        assert connected._socket.fileno() == -1
    finally:
        tap.forward = None
        await close_all(publisher, sfu_in, sfu_out, subscriber)


async def test_raw_sender_drops_until_connected() -> None:
    pc = peer_connection(loopback_only=True)
    try:
        raw = RawSender(pc.addTrack(IdleTrack("audio")))
        _send(raw, b"\x80" + bytes(11))
        assert not raw.resend(bytes(12))
        assert raw.dropped == 1
    finally:
        await close_all(pc)


def _send(raw: RawSender, packet: bytes) -> None:
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
        send = _datagram_sender(cast(Any, transport), pair)
        assert send(memoryview(b"rtp")) and peer.recv(100) == b"rtp"
        assert _datagram_sender(cast(Any, transport), pair) == send  # one per transport
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
        connected = getattr(transport, _CONNECTED_ATTR)
        transport.close()
        assert connected._socket.fileno() == -1
        assert own.fileno() != -1  # aioice's socket is untouched


def test_relayed_pairs_are_sent_through_the_event_loop() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as own:
        own.bind(("127.0.0.1", 0))
        pair = _fake_pair("relay", own, ("127.0.0.1", 9))
        transport = _FakeDtls()
        send = _datagram_sender(cast(Any, transport), pair)
        assert send(b"rtp")
        assert pair.protocol.transport.sent == [b"rtp"]
        assert getattr(transport, _CONNECTED_ATTR, None) is None

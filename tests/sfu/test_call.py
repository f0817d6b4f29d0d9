"""`podium.sfu.call`: a real publisher and subscriber through `SfuCall` (127.0.0.1 only).

Both clients are aiortc peer connections speaking the `sfu.*` messages through
`SfuCall.handle` and the call's `send` callback. The publisher sends a 440 Hz
tone; the subscriber decodes it. Revoking `send-audio` closes the gate before
the publisher is told.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import math
import time
from array import array
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import pytest
from aiortc import RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame

from podium.core.capabilities import Capabilities, Capability
from podium.rtc import peer_connection
from podium.sfu.call import SfuCall
from podium.sfu.receive import tap_receiver
from podium.sfu.rtcp import Pli, Remb, Rtcp
from podium.sfu.rtp import RtpHeaderView
from podium.sfu.send import RawSender
from podium.sfu.sources import Source
from podium.sfu.vp8 import is_vp8_keyframe
from tests.sfu.test_sdp import AUDIO_LEVEL, MID, codecs, extensions

T = TypeVar("T")
WAIT_S = 5.0
RATE = 48000
SAMPLES = 960  # 20 ms
TONE_HZ = 440.0

WIDTH, HEIGHT, FPS = 320, 240, 30

LISTENER: Capabilities = frozenset({Capability.JOIN_CALL})
SPEAKER: Capabilities = LISTENER | {Capability.SEND_AUDIO}
PRESENTER: Capabilities = SPEAKER | {Capability.SEND_VIDEO}


async def bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, WAIT_S)


async def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class Tone(AudioStreamTrack):
    """A mono 440 Hz sine at 48 kHz, in real time."""

    def __init__(self) -> None:
        super().__init__()
        self._first: float | None = None
        self._pts = 0

    async def recv(self) -> Frame:
        if self._first is None:
            self._first = time.time()
        else:
            self._pts += SAMPLES
            await asyncio.sleep(max(0.0, self._first + self._pts / RATE - time.time()))
        samples = array(
            "h",
            (
                round(10000 * math.sin(2 * math.pi * TONE_HZ * (self._pts + i) / RATE))
                for i in range(SAMPLES)
            ),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.pts = self._pts
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class Client:
    """A test participant: its own loopback peer connection, speaking `sfu.*` via the call.

    With `tap`, every received RTP packet is also kept as the bytes that arrived
    (after SRTP), with its arrival time, by kind; the tracks still decode.
    """

    def __init__(self, call: SfuCall, user_id: str, *, tap: bool = False) -> None:
        self.call = call
        self.user_id = user_id
        self.pc = peer_connection(loopback_only=True)
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.messages: list[dict[str, Any]] = []
        self.tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        self.packets: dict[str, list[tuple[float, bytes]]] = {"audio": [], "video": []}
        self.receivers: dict[str, RTCRtpReceiver] = {}

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            receiver = next(r for r in self.pc.getReceivers() if r.track is track)
            self.receivers[track.kind] = receiver
            if tap:
                packets = self.packets[track.kind]
                tap_receiver(
                    receiver, lambda data, _: packets.append((time.monotonic(), data)), decode=True
                )
            self.tracks.put_nowait(track)

        self.answered = asyncio.Event()
        self._pump = asyncio.get_running_loop().create_task(self._run())

    async def send(self, message: dict[str, Any]) -> None:
        await bounded(self.call.handle(self.user_id, message))

    async def _run(self) -> None:
        # Separate from `send` callbacks: answering re-enters the call.
        while True:
            message = await self.inbox.get()
            self.messages.append(message)
            if message["type"] == "sfu.answer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
                self.answered.set()
            elif message["type"] == "sfu.offer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.send({"type": "sfu.answer", "sdp": self.pc.localDescription.sdp})

    async def connect(self, munge: Callable[[str], str] = str) -> None:
        """Offer (as `munge` rewrites the SDP), apply the answer, wait until connected."""
        await bounded(self.pc.setLocalDescription(await self.pc.createOffer()))
        await self.send({"type": "sfu.offer", "sdp": munge(self.pc.localDescription.sdp)})
        await bounded(self.answered.wait())
        candidates = [
            line for line in self.pc.remoteDescription.sdp.splitlines() if "candidate:" in line
        ]
        assert candidates and all(" 127.0.0.1 " in line for line in candidates), candidates
        await eventually(lambda: self.pc.connectionState == "connected")

    async def expect(self, kind: str) -> dict[str, Any]:
        await eventually(lambda: any(m["type"] == kind for m in self.messages))
        return next(m for m in self.messages if m["type"] == kind)

    def received(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def mid_of(self, kind: str) -> str | None:
        """The mid of the m-line whose receiver got the remote track of `kind`."""
        receiver = self.receivers[kind]
        return next(t.mid for t in self.pc.getTransceivers() if t.receiver is receiver)

    async def close(self) -> None:
        self._pump.cancel()
        await bounded(self.pc.close())


class Harness:
    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.call = SfuCall("default:test", loopback_only=True, send=self.deliver)
        #: Whether the microphone gate was open when each `sfu.stop_source` was sent.
        self.gate_open_at_stop: list[bool] = []

    def deliver(self, user_id: str, message: dict[str, Any]) -> None:
        if message["type"] == "sfu.stop_source":
            forwarder = self.call.router.forwarder(user_id, Source(message["source"]))
            self.gate_open_at_stop.append(forwarder is not None and forwarder.gate_open)
        self.clients[user_id].inbox.put_nowait(message)

    async def client(self, user_id: str, caps: Capabilities, *, tap: bool = False) -> Client:
        await bounded(self.call.join(user_id, caps))
        self.clients[user_id] = client = Client(self.call, user_id, tap=tap)
        return client

    async def close(self) -> None:
        await bounded(self.call.end())
        for client in self.clients.values():
            await client.close()


class MovingBar(VideoStreamTrack):
    """320x240 at 30 fps: a white bar crossing a grey picture, so every frame differs."""

    def __init__(self) -> None:
        super().__init__()
        self._frames = [self._draw(x) for x in range(0, WIDTH, 16)]

    @staticmethod
    def _draw(x: int) -> VideoFrame:
        frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
        luma, *chroma = frame.planes
        row = bytes([80] * x + [235] * 16 + [80] * (luma.line_size - x - 16))
        luma.update(row * (luma.buffer_size // luma.line_size))
        for plane in chroma:
            plane.update(bytes([128]) * plane.buffer_size)
        return frame

    async def recv(self) -> Frame:
        pts, time_base = await self.next_timestamp()
        frame = self._frames[pts // 3000 % len(self._frames)]
        frame.pts, frame.time_base = pts, time_base
        return frame


def rtcp_observer(sender: Any) -> list[Rtcp]:
    """The RTCP feedback that reaches a client's own sender (its track keeps sending)."""
    feedback: list[Rtcp] = []
    RawSender(sender, feedback.extend, remb=True)
    return feedback


def views(packets: list[tuple[float, bytes]]) -> list[RtpHeaderView]:
    return [RtpHeaderView(bytearray(data)) for _, data in packets]


def munge_extension_ids(sdp: str) -> str:
    """Offer other header extension ids than aiortc's, so the SFU must renumber."""
    return sdp.replace(
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:6 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    ).replace(
        "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    )


async def receive_video(track: MediaStreamTrack, seconds: float) -> tuple[int, float, float]:
    """(frames, frames per second of the source's clock, of the wall clock) over `seconds`."""
    first = await bounded(track.recv())
    assert first.pts is not None
    started = time.monotonic()
    frames, last_pts = 0, first.pts
    while time.monotonic() - started < seconds:
        frame = await bounded(track.recv())
        assert isinstance(frame, VideoFrame) and frame.pts is not None and frame.time_base
        assert (frame.width, frame.height) == (WIDTH, HEIGHT)
        frames, last_pts = frames + 1, frame.pts
    assert first.time_base is not None
    source_seconds = float((last_pts - first.pts) * first.time_base)
    return frames, frames / source_seconds, frames / (time.monotonic() - started)


def tone_frequency(frames: list[AudioFrame]) -> float:
    """Estimate the frequency of the first channel from upward zero crossings (no numpy)."""
    samples: list[int] = []
    for frame in frames:
        assert frame.format.name == "s16" and frame.sample_rate == RATE
        channels = len(frame.layout.channels)
        # The plane's buffer is padded beyond the frame's samples.
        interleaved = array("h", bytes(frame.planes[0]))[: frame.samples * channels]
        samples.extend(interleaved[::channels])
    assert max(abs(s) for s in samples) > 2000, "silence, not the tone"
    crossings = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    return crossings * RATE / len(samples)


async def receive_tone(track: MediaStreamTrack) -> None:
    frames = []
    for _ in range(40):
        frame = await bounded(track.recv())
        assert isinstance(frame, AudioFrame)
        frames.append(frame)
    # The first frames are the decoder settling in.
    assert abs(tone_frequency(frames[10:]) - TONE_HZ) < 20


async def test_tone_is_forwarded_and_revoking_send_audio_stops_it() -> None:
    harness = Harness()
    try:
        alice = await harness.client("alice", SPEAKER)
        alice.pc.addTransceiver(Tone(), direction="sendonly")
        await alice.connect()
        await alice.send({"type": "sfu.publish", "source": "microphone"})
        assert await alice.expect("sfu.publish_ok") == {
            "type": "sfu.publish_ok",
            "source": "microphone",
        }

        bob = await harness.client("bob", LISTENER)
        bob.pc.addTransceiver("audio", direction="recvonly")
        await bob.connect()
        await bob.send({"type": "sfu.subscribe", "user_ids": "all"})
        tracks = await bob.expect("sfu.tracks")
        assert [(t["user_id"], t["source"]) for t in tracks["tracks"]] == [("alice", "microphone")]

        await receive_tone(await bounded(bob.tracks.get()))
        stats = harness.call.stats()
        assert stats["packets_forwarded"] > 0
        assert stats["alice/microphone.packets_forwarded"] == stats["packets_forwarded"]

        await bounded(harness.call.capabilities_changed("alice", LISTENER, "revoked"))
        before = harness.call.stats()
        await asyncio.sleep(0.3)
        after = harness.call.stats()
        assert after["packets_forwarded"] == before["packets_forwarded"]
        assert after["dropped_at_gate"] > before["dropped_at_gate"], "publisher still sends"
        assert await alice.expect("sfu.stop_source") == {
            "type": "sfu.stop_source",
            "source": "microphone",
            "reason": "revoked",
        }
        assert harness.gate_open_at_stop == [False]
    finally:
        await harness.close()


async def test_publisher_without_send_audio_is_denied_and_nothing_is_forwarded() -> None:
    harness = Harness()
    try:
        bob = await harness.client("bob", LISTENER)
        bob.pc.addTransceiver("audio", direction="recvonly")
        await bob.connect()
        await bob.send({"type": "sfu.subscribe", "user_ids": "all"})

        carol = await harness.client("carol", LISTENER)
        carol.pc.addTransceiver(Tone(), direction="sendonly")
        await carol.connect()
        await carol.send({"type": "sfu.publish", "source": "microphone"})
        assert await carol.expect("sfu.publish_denied") == {
            "type": "sfu.publish_denied",
            "source": "microphone",
            "capability": "send-audio",
            "reason": "not_granted",
        }
        await eventually(lambda: harness.call.stats()["dropped_unpublished"] > 10)
        stats = harness.call.stats()
        assert stats["packets_forwarded"] == 0
        assert harness.call.router.forwarder("carol", Source.MICROPHONE) is None
        assert harness.call.stats()["participants"] == 2
    finally:
        await harness.close()


async def test_server_offers_a_new_stream_when_the_subscriber_has_no_free_slot() -> None:
    harness = Harness()
    try:
        # Bob's offer has only a video m-line: alice's audio needs a server offer.
        bob = await harness.client("bob", LISTENER)
        bob.pc.addTransceiver("video", direction="recvonly")
        await bob.connect()
        await bob.send({"type": "sfu.subscribe", "user_ids": ["alice"]})

        alice = await harness.client("alice", SPEAKER)
        alice.pc.addTransceiver(Tone(), direction="sendonly")
        await alice.connect()
        await alice.send({"type": "sfu.publish", "source": "microphone"})
        await alice.expect("sfu.publish_ok")

        await bob.expect("sfu.offer")
        track = await bounded(bob.tracks.get())
        if track.kind == "video":  # the slot bob's own offer made, which nothing uses
            track = await bounded(bob.tracks.get())
        assert track.kind == "audio"
        await receive_tone(track)

        # The new m-line's mid is unknown until bob answered; then sfu.tracks names it.
        await eventually(lambda: len(bob.received("sfu.tracks")) == 3)
        listed = [m["tracks"] for m in bob.received("sfu.tracks")]
        mic = ("alice", "microphone")
        assert listed[0] == []
        assert [(t["user_id"], t["source"], t["mid"]) for t in listed[1]] == [(*mic, None)]
        assert [(t["user_id"], t["source"], t["mid"]) for t in listed[2]] == [
            (*mic, bob.mid_of("audio"))
        ]
    finally:
        await harness.close()


def chromium_numbers(sdp: str) -> str:
    """aiortc's audio offer numbered as Chromium numbers its own: Opus 111, mid 4, audio level 1."""
    return (
        sdp.replace("a=extmap:1 " + MID, "a=extmap:4 " + MID)
        .replace("a=extmap:2 " + AUDIO_LEVEL, "a=extmap:1 " + AUDIO_LEVEL)
        .replace("UDP/TLS/RTP/SAVPF 96 ", "UDP/TLS/RTP/SAVPF 111 ")
        .replace("a=rtpmap:96 opus", "a=rtpmap:111 opus")
    )


async def test_the_servers_offer_keeps_the_numbers_the_client_chose() -> None:
    harness = Harness()
    try:
        alice = await harness.client("alice", SPEAKER)
        alice.pc.addTransceiver(Tone(), direction="sendonly")
        alice.pc.addTransceiver("audio", direction="recvonly")
        await alice.connect()
        await alice.send({"type": "sfu.publish", "source": "microphone"})
        await alice.send({"type": "sfu.subscribe", "user_ids": "all"})

        # Bob numbers as Chromium does and only sends: alice's tone needs a server offer.
        bob = await harness.client("bob", SPEAKER)
        bob.pc.addTransceiver(Tone(), direction="sendonly")
        await bob.connect(chromium_numbers)
        await bob.send({"type": "sfu.publish", "source": "microphone"})
        await bob.expect("sfu.publish_ok")
        await bob.send({"type": "sfu.subscribe", "user_ids": "all"})

        offer = (await bob.expect("sfu.offer"))["sdp"]
        assert extensions(offer) == [{MID: 4, AUDIO_LEVEL: 1}] * 2
        assert [list(table) for table in codecs(offer)] == [[111, 9, 0, 8]] * 2
        await receive_tone(await bounded(bob.tracks.get()))

        # Bob's own microphone carries on through the renegotiation, to alice.
        key = "bob/microphone.packets_forwarded"
        before = harness.call.stats()[key]
        await eventually(lambda: harness.call.stats()[key] > before + 20)
        assert harness.call.stats()["bob/microphone.dropped_malformed"] == 0
    finally:
        await harness.close()


def plis(feedback: list[Rtcp]) -> int:
    return sum(isinstance(f, Pli) for f in feedback)


async def publish_audio_and_video(harness: Harness) -> tuple[Client, list[Rtcp]]:
    """Alice publishes a tone and a moving bar; returns her and the RTCP her camera gets."""
    alice = await harness.client("alice", PRESENTER)
    alice.pc.addTransceiver(Tone(), direction="sendonly")
    camera = alice.pc.addTransceiver(MovingBar(), direction="sendonly")
    feedback = rtcp_observer(camera.sender)
    await alice.connect()
    for source in ("microphone", "camera"):
        await alice.send({"type": "sfu.publish", "source": source})
    await eventually(lambda: len(alice.received("sfu.publish_ok")) == 2)
    return alice, feedback


async def subscribe(
    harness: Harness, user_id: str, *, tap: bool = False, munge: Callable[[str], str] = str
) -> tuple[Client, dict[str, MediaStreamTrack]]:
    """A listener receiving everyone, with an audio and a video m-line of its own."""
    client = await harness.client(user_id, LISTENER, tap=tap)
    client.pc.addTransceiver("audio", direction="recvonly")
    client.pc.addTransceiver("video", direction="recvonly")
    await client.connect(munge)
    await client.send({"type": "sfu.subscribe", "user_ids": "all"})
    tracks = [await bounded(client.tracks.get()) for _ in range(2)]
    return client, {t.kind: t for t in tracks}


async def test_video_reaches_two_subscribers_and_resumes_at_a_keyframe_without_a_gap() -> None:
    harness = Harness()
    try:
        alice, alice_rtcp = await publish_audio_and_video(harness)
        bob, bob_tracks = await subscribe(harness, "bob", tap=True)
        carol, carol_tracks = await subscribe(harness, "carol")
        for client in (bob, carol):
            listed = (await client.expect("sfu.tracks"))["tracks"]
            assert {(t["user_id"], t["source"], t["mid"]) for t in listed} == {
                ("alice", "microphone", client.mid_of("audio")),
                ("alice", "camera", client.mid_of("video")),
            }

        # Both decode the full picture at (about) the source's frame rate.
        decoded = await asyncio.gather(
            *(receive_video(tracks["video"], 2.0) for tracks in (bob_tracks, carol_tracks))
        )
        for frames, source_fps, wall_fps in decoded:
            assert frames > 0 and source_fps > 0.8 * FPS and wall_fps > 0.5 * FPS, decoded
        stats = harness.call.stats()
        assert (stats["publishers"], stats["subscribers"], stats["participants"]) == (1, 2, 3)
        assert stats["keyframe_requests"] >= 1 and plis(alice_rtcp) >= 1

        # Revoking send-video closes the camera's gate before alice is told.
        await bounded(harness.call.capabilities_changed("alice", SPEAKER, "revoked"))
        assert harness.gate_open_at_stop == [False]
        assert (await alice.expect("sfu.stop_source"))["source"] == "camera"
        await asyncio.sleep(0.3)
        paused = harness.call.stats()
        await asyncio.sleep(0.4)
        still = harness.call.stats()
        assert still["alice/camera.packets_forwarded"] == paused["alice/camera.packets_forwarded"]
        assert still["alice/camera.dropped_at_gate"] > paused["alice/camera.dropped_at_gate"]
        assert (
            still["alice/microphone.packets_forwarded"]
            > paused["alice/microphone.packets_forwarded"]
        )

        # Granted again and published again: a PLI goes up, video resumes at a keyframe.
        asked = plis(alice_rtcp)
        await bounded(harness.call.capabilities_changed("alice", PRESENTER))
        await alice.expect("sfu.source_resumed")
        await alice.send({"type": "sfu.publish", "source": "camera"})
        forwarded = still["alice/camera.packets_forwarded"]
        await eventually(
            lambda: harness.call.stats()["alice/camera.packets_forwarded"] > forwarded + 40
        )
        assert plis(alice_rtcp) > asked

        arrivals = [at for at, _ in bob.packets["video"]]
        resumed = max(range(1, len(arrivals)), key=lambda i: arrivals[i] - arrivals[i - 1])
        assert arrivals[resumed] - arrivals[resumed - 1] > 0.5, "no pause seen"
        before, after = views(bob.packets["video"][resumed - 1 : resumed + 1])
        assert (after.sequence_number - before.sequence_number) % 65536 == 1
        assert is_vp8_keyframe(after.buf, after.payload_offset, after.payload_end)
    finally:
        await harness.close()


async def test_extensions_nacks_keyframe_requests_and_remb_cross_the_sfu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness = Harness()
    try:
        _, alice_rtcp = await publish_audio_and_video(harness)
        bob, _ = await subscribe(harness, "bob", tap=True, munge=munge_extension_ids)
        await eventually(lambda: len(bob.packets["video"]) > 30 and len(bob.packets["audio"]) > 10)

        # Renumbered to bob's ids (audio level 6, abs-send-time 5); alice's mid is dropped.
        for kind, ext_id, length in (("audio", 6, 1), ("video", 5, 3)):
            elements = {
                (e.id, e.length) for v in views(bob.packets[kind]) for e in v.extension_elements()
            }
            assert elements == {(ext_id, length)}, kind

        # aiortc's receiver at the SFU keeps sending alice bandwidth estimates.
        await eventually(lambda: any(isinstance(f, Remb) for f in alice_rtcp))

        # A packet lost on the way to bob: bob's NACK is answered from the cache.
        camera = harness.call.router.forwarder("alice", Source.CAMERA)
        raw = None if camera is None else camera.sink("bob")
        assert isinstance(raw, RawSender)
        lost: list[int] = []
        send = raw.send

        def lose_one(length: int, payload_size: int) -> None:
            if lost:
                send(length, payload_size)
            else:
                lost.append(RtpHeaderView(bytearray(raw.buffer[:length])).sequence_number)

        monkeypatch.setattr(raw, "send", lose_one)
        await eventually(
            lambda: (
                bool(lost) and lost[0] in {v.sequence_number for v in views(bob.packets["video"])}
            )
        )
        assert harness.call.stats()["nacks_answered"] >= 1

        # Bob's PLI reaches alice (after the rate limit's interval since the last one).
        await asyncio.sleep(0.6)
        asked, requests = plis(alice_rtcp), harness.call.stats()["keyframe_requests"]
        await bob.receivers["video"]._send_rtcp_pli(raw.ssrc)
        await eventually(lambda: plis(alice_rtcp) > asked)
        assert harness.call.stats()["keyframe_requests"] == requests + 1
    finally:
        await harness.close()


async def test_a_freed_slot_carries_the_next_track_with_continuous_numbering() -> None:
    harness = Harness()
    try:
        bob = await harness.client("bob", LISTENER, tap=True)
        bob.pc.addTransceiver("audio", direction="recvonly")
        await bob.connect()
        await bob.send({"type": "sfu.subscribe", "user_ids": "all"})

        for speaker in ("alice", "carol"):
            client = await harness.client(speaker, SPEAKER)
            client.pc.addTransceiver(Tone(), direction="sendonly")
            await client.connect()
            await client.send({"type": "sfu.publish", "source": "microphone"})
            heard = len(bob.packets["audio"]) + 25
            await eventually(partial(lambda n: len(bob.packets["audio"]) > n, heard))
            if speaker == "alice":
                forwarded = harness.call.stats()["packets_forwarded"]
                await bounded(harness.call.leave("alice"))
                # Totals cover the call's life: alice's packets still count once she left.
                assert harness.call.stats()["packets_forwarded"] >= forwarded > 0
                await asyncio.sleep(0.3)

        # One m-line throughout: no server offer, and sfu.tracks names the same mid.
        assert not bob.received("sfu.offer")
        listed = [
            [(t["user_id"], t["mid"]) for t in m["tracks"]] for m in bob.received("sfu.tracks")
        ]
        mid = bob.mid_of("audio")
        assert listed == [[], [("alice", mid)], [], [("carol", mid)]]
        # Carol's packets continue alice's numbering on the same SSRC (and pass SRTP).
        arrivals = [at for at, _ in bob.packets["audio"]]
        switched = max(range(1, len(arrivals)), key=lambda i: arrivals[i] - arrivals[i - 1])
        before, after = views(bob.packets["audio"][switched - 1 : switched + 1])
        assert before.ssrc == after.ssrc
        assert (after.sequence_number - before.sequence_number) % 65536 == 1
        assert (after.timestamp - before.timestamp) % 2**32 > 0.2 * RATE
    finally:
        await harness.close()

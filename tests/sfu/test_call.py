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
from typing import Any, TypeVar

from aiortc import RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from av import AudioFrame
from av.frame import Frame

from podium.core.capabilities import Capabilities, Capability
from podium.sfu import adapter
from podium.sfu.call import SfuCall
from podium.sfu.sources import Source

T = TypeVar("T")
WAIT_S = 5.0
RATE = 48000
SAMPLES = 960  # 20 ms
TONE_HZ = 440.0

LISTENER: Capabilities = frozenset({Capability.JOIN_CALL})
SPEAKER: Capabilities = LISTENER | {Capability.SEND_AUDIO}


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
    """A test participant: its own loopback peer connection, speaking `sfu.*` via the call."""

    def __init__(self, call: SfuCall, user_id: str) -> None:
        self.call = call
        self.user_id = user_id
        self.pc = adapter.peer_connection(loopback_only=True)
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.messages: list[dict[str, Any]] = []
        self.tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        self.pc.on("track", self.tracks.put_nowait)
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

    async def connect(self) -> None:
        await bounded(self.pc.setLocalDescription(await self.pc.createOffer()))
        await self.send({"type": "sfu.offer", "sdp": self.pc.localDescription.sdp})
        await bounded(self.answered.wait())
        candidates = [
            line for line in self.pc.remoteDescription.sdp.splitlines() if "candidate:" in line
        ]
        assert candidates and all(" 127.0.0.1 " in line for line in candidates), candidates
        await eventually(lambda: self.pc.connectionState == "connected")

    async def expect(self, kind: str) -> dict[str, Any]:
        await eventually(lambda: any(m["type"] == kind for m in self.messages))
        return next(m for m in self.messages if m["type"] == kind)

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

    async def client(self, user_id: str, caps: Capabilities) -> Client:
        await bounded(self.call.join(user_id, caps))
        self.clients[user_id] = client = Client(self.call, user_id)
        return client

    async def close(self) -> None:
        await bounded(self.call.end())
        for client in self.clients.values():
            await client.close()


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
    finally:
        await harness.close()

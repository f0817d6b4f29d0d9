"""Podium's SFU against Debian's Janus, side by side in one run: forwarding cost and revoke latency.

    python bench/sfu.py [--subscribers 4,8,16,32] [--runs K] [--seconds S] [--revokes R]
                        [--no-janus] [--janus-event-loops L] [--output PATH]

One publisher sends audio and video (640x480 VP8 at 30 fps, ~1 Mbps, and an Opus
tone), N subscribers count the packets they receive without decoding
(`podium.sfu.receive.tap_receiver`). The publisher's media is encoded once at start
and replayed at its real pace, so its bitrate is fixed by construction (Janus sends
no bandwidth feedback with room `bitrate = 0`, Podium's aiortc does) and both SFUs
forward exactly the same input.

Per run, for Podium (a real `podium serve`, `PODIUM_MEDIA_LOOPBACK=1`, fresh SQLite)
and for Janus (videoroom plugin, one room, HTTP transport only, `event_loops = 1`:
one shared media thread, its most frugal setting here; 0 is Janus's default of a
thread per handle), in alternating order from run to run:

1. the publisher connects and publishes; subscribers are added up to each N of
   `--subscribers` in turn; once every one of them receives audio and video and
   `--warmup` seconds have passed, a `--seconds` window is measured: packets received
   by all subscribers (forwarded packets) and the server process's CPU time
   (utime + stime from /proc), so forwarded packets per server CPU-second;
2. (Podium) `--revokes` times: the host revokes the publisher's `send-audio` over
   HTTP; the latency is from just before that request is sent to the arrival, at
   the subscribers, of the last audio packet (the subscribers wait until no audio
   came for `--quiet-ms`). Then the host grants it back, the publisher publishes
   again on `sfu.source_resumed`, and the next revoke waits until audio flows.
   The publisher keeps sending after `sfu.stop_source`, as a client ignoring it
   would: what is timed is the server's own enforcement.

The publisher and the subscribers are separate processes (`python bench/sfu.py
client`, JSON lines on stdin/stdout); their CPU use, the server's and the rest of
the machine's are reported for every window, since all share the machine's cores.
Run as root, everything runs in a private network namespace holding only `lo`
(the script re-executes itself under `unshare --net`), so no packet can leave
127.0.0.1. The median over runs is printed and written as JSON
(`bench/results/sfu.json`, per-run figures included).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import fractions
import json
import math
import os
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import httpx
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RtpPacket
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import (
    LOOPBACK,
    SECRET,
    PodiumServer,
    Subprocess,
    machine_info,
    median,
    percentile,
    process_cpu_seconds,
    run_async,
    system_busy_seconds,
)
from podium.rtc import peer_connection
from podium.sfu.receive import tap_receiver
from podium.tokens import mint_server_token, mint_user_token

T = TypeVar("T")

SCRIPT = Path(__file__).resolve()
JANUS_TEMPLATES = SCRIPT.parent / "janus"
DEFAULT_OUTPUT = SCRIPT.parent / "results" / "sfu.json"
NETNS_ENV = "PODIUM_BENCH_NETNS"

CALL_TYPE = "default"
HOST, PUBLISHER = "host", "publisher"
REVOKED = "send-audio"
JANUS_ROOM = 1234

VIDEO_WIDTH, VIDEO_HEIGHT, VIDEO_FPS = 640, 480, 30
VIDEO_BITRATE = 1_000_000
KEYFRAME_INTERVAL_FRAMES = 30
AUDIO_RATE, AUDIO_FRAME_SAMPLES, AUDIO_TONE_HZ = 48_000, 960, 440

WAIT_S = 20.0
"""Bound on every single wait (a connection, an HTTP call, a reply from a client process)."""
FLOW_TIMEOUT_S = 20.0
RESUME_TIMEOUT_S = 5.0
QUIET_TIMEOUT_S = 5.0
REVOKE_PAUSE_S = 0.1

TARGET_FWD_PACKETS_PER_CPU_S = 25_000.0
TARGET_JANUS_RATIO = 1 / 3
TARGET_REVOKE_P99_MS = 50.0

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def now() -> float:
    """CLOCK_MONOTONIC: one clock for every process on the machine."""
    return time.monotonic()


# Loopback only: a private network namespace when root.


def interfaces() -> list[str]:
    """Network interfaces of this process's network namespace."""
    try:
        lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    except OSError:
        return []
    return [line.split(":", 1)[0].strip() for line in lines if ":" in line]


def enter_private_netns(argv: Sequence[str]) -> str:
    """Re-execute under `unshare --net` when root; inside, bring `lo` up. Says where we run."""
    if os.environ.get(NETNS_ENV) == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=False, capture_output=True)
        names = interfaces()
        if names == ["lo"]:
            return "private network namespace (only lo)"
        return f"network namespace with {', '.join(names)}: unshare did not isolate"
    if interfaces() == ["lo"]:
        return "network namespace with only lo"
    if os.geteuid() != 0:
        return "host network namespace (not root: no unshare); every socket is on 127.0.0.1"
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return "host network namespace (unshare or ip not found); every socket is on 127.0.0.1"
    probe = subprocess.run(
        [unshare, "--net", sys.executable, "-c", ""], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        reason = probe.stderr.strip() or f"exit {probe.returncode}"
        return f"host network namespace (unshare --net failed: {reason}); sockets on 127.0.0.1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[NETNS_ENV] = "1"
    os.execv(unshare, [unshare, "--net", "--", sys.executable, str(SCRIPT), *argv])


# The publisher's media, encoded once and replayed at its real pace.


def encode_video() -> list[bytes]:
    """Two seconds of 640x480 VP8 at ~1 Mbps, a keyframe every second, loopable.

    Noise keeps the encoder at its target rate; the first two seconds (while its
    rate control settles) are thrown away, so the loop starts on a keyframe.
    """
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = VIDEO_WIDTH, VIDEO_HEIGHT, "yuv420p"
    codec.bit_rate = VIDEO_BITRATE
    codec.time_base = fractions.Fraction(1, VIDEO_FPS)
    codec.gop_size = KEYFRAME_INTERVAL_FRAMES
    codec.thread_count = 1
    rate = str(VIDEO_BITRATE)
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "-6",
        "lag-in-frames": "0",
        "minrate": rate,
        "maxrate": rate,
        "bufsize": rate,
        "undershoot-pct": "100",
        "overshoot-pct": "15",
        "max-intra-rate": "300",
    }
    rng = random.Random(2024)
    luma = bytes(112 + b // 8 for b in range(256))
    chroma = bytes([128]) * (VIDEO_WIDTH * VIDEO_HEIGHT // 4)
    frames: list[bytes] = []
    loop = 2 * VIDEO_FPS
    for i in range(2 * loop):
        frame = av.VideoFrame(VIDEO_WIDTH, VIDEO_HEIGHT, "yuv420p")
        frame.planes[0].update(rng.randbytes(VIDEO_WIDTH * VIDEO_HEIGHT).translate(luma))
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts, frame.time_base = i, fractions.Fraction(1, VIDEO_FPS)
        if i % KEYFRAME_INTERVAL_FRAMES == 0:
            frame.pict_type = av.video.frame.PictureType.I
        frames += [bytes(packet) for packet in codec.encode(frame)]
    if len(frames) != 2 * loop:
        raise RuntimeError(f"VP8 encoder gave {len(frames)} frames for {2 * loop}")
    return frames[loop:]


def encode_audio() -> list[bytes]:
    """One second of a 440 Hz Opus tone in 20 ms packets (440 whole periods: loopable)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = AUDIO_RATE, "stereo", "s16"
    codec.bit_rate = 64_000
    per_second = AUDIO_RATE // AUDIO_FRAME_SAMPLES
    packets: list[bytes] = []
    for i in range(2 * per_second):
        samples = array.array("h")
        for n in range(i * AUDIO_FRAME_SAMPLES, (i + 1) * AUDIO_FRAME_SAMPLES):
            value = int(8000 * math.sin(2 * math.pi * AUDIO_TONE_HZ * n / AUDIO_RATE))
            samples.extend((value, value))
        frame = av.AudioFrame(format="s16", layout="stereo", samples=AUDIO_FRAME_SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = i * AUDIO_FRAME_SAMPLES, fractions.Fraction(1, AUDIO_RATE)
        packets += [bytes(packet) for packet in codec.encode(frame)]
    if len(packets) < 2 * per_second - 2:
        raise RuntimeError(f"Opus encoder gave {len(packets)} packets")
    return packets[-per_second:]


class LoopTrack(MediaStreamTrack):
    """Encoded packets in a loop, each at its due time: aiortc packetises them as they are."""

    def __init__(self, kind: str, payloads: list[bytes], rate: int, step: int) -> None:
        super().__init__()
        self.kind = kind
        self._payloads = payloads
        self._time_base = fractions.Fraction(1, rate)
        self._step = step
        self._period = step / rate
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self._start is None:
            self._start = now()
        delay = self._start + self._index * self._period - now()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._payloads[self._index % len(self._payloads)])
        packet.pts, packet.time_base = self._index * self._step, self._time_base
        self._index += 1
        return packet


def prefer_codec(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Offer only the codec the replayed packets are in (and RTX for video)."""
    codecs = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    wanted = {mime_type.lower(), f"{transceiver.kind}/rtx"}
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() in wanted])


def write_media(path: Path) -> dict[str, Any]:
    """Encode the publisher's media once, for every phase of every run; describe it.

    libvpx's realtime mode adapts to the time it gets, so encoding in each phase
    could give each server different bytes.
    """
    packets = {"audio": encode_audio(), "video": encode_video()}
    encoded = {kind: [base64.b64encode(p).decode() for p in ps] for kind, ps in packets.items()}
    path.write_text(json.dumps(encoded))
    video, audio = packets["video"], packets["audio"]
    return {
        "video": f"{VIDEO_WIDTH}x{VIDEO_HEIGHT} VP8 at {VIDEO_FPS} fps, a keyframe every "
        f"{KEYFRAME_INTERVAL_FRAMES} frames, {len(video)}-frame loop",
        "video_bitrate": sum(map(len, video)) * 8 * VIDEO_FPS / len(video),
        "audio": f"Opus {AUDIO_TONE_HZ} Hz tone, {AUDIO_FRAME_SAMPLES * 1000 // AUDIO_RATE} ms "
        f"packets, {len(audio)}-packet loop",
    }


def add_publisher_tracks(pc: RTCPeerConnection, media: str) -> None:
    encoded = json.loads(Path(media).read_text())
    audio_packets, video_packets = (
        [base64.b64decode(p) for p in encoded[kind]] for kind in ("audio", "video")
    )
    audio = LoopTrack("audio", audio_packets, AUDIO_RATE, AUDIO_FRAME_SAMPLES)
    video = LoopTrack("video", video_packets, VIDEO_FPS, 1)
    prefer_codec(pc.addTransceiver(audio, direction="sendonly"), "audio/opus")
    prefer_codec(pc.addTransceiver(video, direction="sendonly"), "video/VP8")


# Client processes: the publisher and the subscribers.


async def bounded(awaitable: Awaitable[T], within_s: float = WAIT_S) -> T:
    return await asyncio.wait_for(awaitable, within_s)


async def until(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = now() + within_s
    while not predicate():
        if now() > deadline:
            raise TimeoutError(f"{what}: not within {within_s:g} s")
        await asyncio.sleep(0.02)


async def connected(pc: RTCPeerConnection, within_s: float = WAIT_S) -> None:
    await until(lambda: pc.connectionState == "connected", within_s, "peer connection")


def loopback_candidates_only(sdp: str) -> str:
    """Drop every candidate that is not on 127.0.0.1 (there should be none)."""
    lines = [
        line
        for line in sdp.splitlines()
        if not (line.startswith("a=candidate:") and " 127.0.0.1 " not in line)
    ]
    if not any(line.startswith("a=candidate:") for line in lines):
        raise RuntimeError("the server offered no 127.0.0.1 candidate")
    return "\r\n".join(lines) + "\r\n"


class Counted:
    """One subscriber's packet counts and last arrival times, per media kind."""

    __slots__ = ("counts", "last")

    def __init__(self) -> None:
        self.counts = {"audio": 0, "video": 0}
        self.last = {"audio": 0.0, "video": 0.0}

    def tap(self, receiver: RTCRtpReceiver, kind: str) -> None:
        counts, last = self.counts, self.last

        def on_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
            counts[kind] += 1
            last[kind] = now()

        tap_receiver(receiver, on_packet)

    def flowing(self) -> bool:
        return self.counts["audio"] > 0 and self.counts["video"] > 0


class PodiumSignalling:
    """One participant's WebSocket to `podium serve`, carrying `sfu.*` for one peer connection."""

    def __init__(self, ws_url: str, token: str, cid: str) -> None:
        self.url = f"{ws_url}?token={token}"
        self.cid = cid
        self.pc = peer_connection(loopback_only=True)
        self.ws: ClientConnection | None = None
        self.answer: asyncio.Future[str] | None = None
        self.published: set[str] = set()
        self.stops: list[float] = []
        self.resumed = 0
        self.errors: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await bounded(connect(self.url, open_timeout=WAIT_S, ping_interval=None))
        first = json.loads(await bounded(self.ws.recv()))
        if first.get("type") != "connection.ok":
            raise RuntimeError(f"expected connection.ok, got {first}")
        self._reader = asyncio.create_task(self._read())

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps({**message, "call_cid": self.cid}))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                self._on_frame(json.loads(raw))

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "health.check" and self.ws is not None:  # else closed as idle after 30 s
            self._spawn(self.ws.send(json.dumps({"type": "pong"})))
        elif kind == "sfu.answer" and self.answer is not None and not self.answer.done():
            self.answer.set_result(frame["sdp"])
        elif kind == "sfu.offer":
            self._spawn(self._answer_offer(frame["sdp"]))
        elif kind == "sfu.publish_ok":
            self.published.add(frame["source"])
        elif kind == "sfu.stop_source":
            self.stops.append(now())
            self.published.discard(frame["source"])
        elif kind == "sfu.source_resumed":
            self.resumed += 1
            self._spawn(self.send({"type": "sfu.publish", "source": frame["source"]}))
        elif kind in ("error", "sfu.error", "sfu.publish_denied"):
            self.errors.append(json.dumps(frame))

    async def _answer_offer(self, sdp: str) -> None:
        offer = loopback_candidates_only(sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.send({"type": "sfu.answer", "sdp": self.pc.localDescription.sdp})

    async def negotiate(self) -> None:
        """Offer, apply the server's answer (127.0.0.1 candidates only), wait until connected."""
        self.answer = asyncio.get_running_loop().create_future()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send({"type": "sfu.offer", "sdp": self.pc.localDescription.sdp})
        sdp = await bounded(self.answer)
        await self.pc.setRemoteDescription(
            RTCSessionDescription(loopback_candidates_only(sdp), "answer")
        )
        await connected(self.pc)

    async def close(self) -> None:
        for task in [*self._tasks, *([self._reader] if self._reader else [])]:
            task.cancel()
        with contextlib.suppress(Exception):
            await bounded(self.pc.close(), 5)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await bounded(self.ws.close(), 5)


class JanusSession:
    """A Janus API session over HTTP: long-poll for events, keep-alive every 20 s."""

    KEEPALIVE_S = 20.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(WAIT_S, read=45.0))
        self.session_id: int | None = None
        self.events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": uuid.uuid4().hex}
        response = await bounded(self.http.post(f"{self.url}{path}", json=body))
        reply: dict[str, Any] = response.json()
        if reply.get("janus") == "error":
            raise RuntimeError(f"janus: {reply.get('error')}")
        return reply

    async def create(self) -> JanusSession:
        reply = await self._post("", {"janus": "create"})
        self.session_id = int(reply["data"]["id"])
        self._tasks = [asyncio.create_task(self._poll()), asyncio.create_task(self._keepalive())]
        return self

    async def attach(self) -> int:
        reply = await self._post(
            f"/{self.session_id}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )
        handle = int(reply["data"]["id"])
        self.events[handle] = asyncio.Queue()
        return handle

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> None:
        message: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        await self._post(f"/{self.session_id}/{handle}", message)

    async def end_of_candidates(self, handle: int) -> None:
        await self._post(
            f"/{self.session_id}/{handle}", {"janus": "trickle", "candidate": {"completed": True}}
        )

    async def event_with_jsep(self, handle: int) -> dict[str, Any]:
        """The handle's next plugin event that carries SDP; a plugin error raises."""
        deadline = now() + WAIT_S
        while True:
            event = await bounded(self.events[handle].get(), max(0.1, deadline - now()))
            data = event.get("plugindata", {}).get("data", {})
            if "error" in data:
                raise RuntimeError(f"janus videoroom: {data['error']}")
            if "jsep" in event:
                return event

    async def _poll(self) -> None:
        while True:
            try:
                response = await self.http.get(f"{self.url}/{self.session_id}?maxev=10")
                reply = response.json()
            except (httpx.HTTPError, ValueError):
                await asyncio.sleep(0.2)
                continue
            for event in reply if isinstance(reply, list) else [reply]:
                queue = self.events.get(int(event.get("sender", 0)))
                if queue is not None:
                    queue.put_nowait(event)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.KEEPALIVE_S)
            with contextlib.suppress(httpx.HTTPError, RuntimeError, TimeoutError):
                await self._post(f"/{self.session_id}", {"janus": "keepalive"})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()


class ClientApp:
    """What a client process does on the orchestrator's commands (one JSON object a line)."""

    def __init__(self) -> None:
        self.publisher: PodiumSignalling | None = None
        self.publisher_pc: RTCPeerConnection | None = None
        self.subscribers: list[Counted] = []
        self.signalling: list[PodiumSignalling] = []
        self.pcs: list[RTCPeerConnection] = []
        self.janus: list[JanusSession] = []

    async def handle(self, command: str, params: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self, f"cmd_{command}", None)
        if method is None:
            raise ValueError(f"unknown command {command!r}")
        result: dict[str, Any] = await method(**params)
        return result

    # Publishing.

    async def cmd_podium_publish(
        self, ws_url: str, cid: str, token: str, media: str
    ) -> dict[str, Any]:
        signalling = PodiumSignalling(ws_url, token, cid)
        self.publisher = signalling
        await signalling.open()
        add_publisher_tracks(signalling.pc, media)
        await signalling.negotiate()
        for source in ("microphone", "camera"):
            await signalling.send({"type": "sfu.publish", "source": source})
        await until(lambda: len(signalling.published) == 2, WAIT_S, "sfu.publish_ok")
        return {}

    async def cmd_janus_publish(self, url: str, room: int, media: str) -> dict[str, Any]:
        session = await JanusSession(url).create()
        self.janus.append(session)
        handle = await session.attach()
        pc = peer_connection(loopback_only=True)
        self.publisher_pc = pc
        add_publisher_tracks(pc, media)
        await pc.setLocalDescription(await pc.createOffer())
        join = {"request": "joinandconfigure", "room": room, "ptype": "publisher"}
        offer = {"type": "offer", "sdp": pc.localDescription.sdp}
        await session.message(handle, {**join, "display": PUBLISHER}, offer)
        event = await session.event_with_jsep(handle)
        answer = loopback_candidates_only(event["jsep"]["sdp"])
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await session.end_of_candidates(handle)
        await connected(pc)
        return {"feed": event["plugindata"]["data"]["id"]}

    async def cmd_publisher_status(self) -> dict[str, Any]:
        publisher = self.publisher
        if publisher is None:
            return {}
        return {
            "last_stop_at": publisher.stops[-1] if publisher.stops else None,
            "stops": len(publisher.stops),
            "resumed": publisher.resumed,
            "published": sorted(publisher.published),
            "errors": publisher.errors[-5:],
        }

    # Subscribing.

    async def cmd_podium_subscribe(
        self, ws_url: str, cid: str, tokens: list[str]
    ) -> dict[str, Any]:
        async def one(token: str) -> Counted:
            signalling = PodiumSignalling(ws_url, token, cid)
            self.signalling.append(signalling)
            await signalling.open()
            counted = Counted()
            for kind in ("audio", "video"):
                transceiver = signalling.pc.addTransceiver(kind, direction="recvonly")
                counted.tap(transceiver.receiver, kind)
            await signalling.negotiate()
            await signalling.send({"type": "sfu.subscribe", "user_ids": "all"})
            return counted

        return await self._add(one(t) for t in tokens)

    async def cmd_janus_subscribe(
        self, url: str, room: int, feed: int, count: int
    ) -> dict[str, Any]:
        if not self.janus:
            self.janus.append(await JanusSession(url).create())
        session = self.janus[0]

        async def one() -> Counted:
            handle = await session.attach()
            join = {"request": "join", "room": room, "ptype": "subscriber"}
            await session.message(handle, {**join, "streams": [{"feed": feed}]})
            event = await session.event_with_jsep(handle)
            pc = peer_connection(loopback_only=True)
            self.pcs.append(pc)
            offer = loopback_candidates_only(event["jsep"]["sdp"])
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            counted = Counted()
            for transceiver in pc.getTransceivers():
                if transceiver.kind in ("audio", "video"):
                    counted.tap(transceiver.receiver, transceiver.kind)
            await pc.setLocalDescription(await pc.createAnswer())
            answer = {"type": "answer", "sdp": pc.localDescription.sdp}
            await session.message(handle, {"request": "start", "room": room}, answer)
            await session.end_of_candidates(handle)
            await connected(pc)
            return counted

        return await self._add(one() for _ in range(count))

    async def _add(self, subscribers: Iterable[Awaitable[Counted]]) -> dict[str, Any]:
        started = now()
        added = list(await bounded(asyncio.gather(*subscribers), 2 * WAIT_S))
        self.subscribers += added
        try:
            await until(lambda: all(s.flowing() for s in added), FLOW_TIMEOUT_S, "audio and video")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; packets received: {[s.counts for s in added]}") from None
        return {"subscribers": len(self.subscribers), "seconds": now() - started}

    async def cmd_counts(self) -> dict[str, Any]:
        return {
            "at": now(),
            "audio": sum(s.counts["audio"] for s in self.subscribers),
            "video": sum(s.counts["video"] for s in self.subscribers),
            "subscribers": len(self.subscribers),
        }

    async def cmd_quiet(self, kind: str, quiet_s: float, timeout_s: float) -> dict[str, Any]:
        """Wait until no subscriber got a `kind` packet for `quiet_s`; the last arrival time."""
        deadline = now() + timeout_s
        while True:
            last = max((s.last[kind] for s in self.subscribers), default=0.0)
            idle = now() - last
            if idle >= quiet_s:
                return {"last": last, "quiet": True}
            if now() > deadline:
                return {"last": last, "quiet": False}
            await asyncio.sleep(min(quiet_s - idle, 0.05))

    async def cmd_resumed(self, kind: str, timeout_s: float) -> dict[str, Any]:
        """Wait until every subscriber got a `kind` packet after this command arrived."""
        before = [s.counts[kind] for s in self.subscribers]
        started = now()
        try:
            await until(
                lambda: all(
                    s.counts[kind] > b for s, b in zip(self.subscribers, before, strict=True)
                ),
                timeout_s,
                f"{kind} again",
            )
        except TimeoutError:
            return {"resumed": False, "seconds": now() - started}
        return {"resumed": True, "seconds": now() - started}

    async def cmd_close(self) -> dict[str, Any]:
        closing: list[Awaitable[Any]] = [s.close() for s in self.signalling]
        closing += [pc.close() for pc in self.pcs]
        if self.publisher is not None:
            closing.append(self.publisher.close())
        if self.publisher_pc is not None:
            closing.append(self.publisher_pc.close())
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 10)
        for session in self.janus:
            await session.close()
        return {}


async def client_main() -> None:
    """Serve commands from stdin; replies go to the real stdout, everything else to stderr."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    app = ClientApp()
    while line := await reader.readline():
        request = json.loads(line)
        reply: dict[str, Any] = {"id": request["id"]}
        try:
            reply.update(ok=True, **await app.handle(request["cmd"], request.get("params", {})))
        except Exception as exc:
            reply.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        channel.write(json.dumps(reply) + "\n")
        if request["cmd"] == "close":
            return


# The orchestrator's side.


class ClientError(RuntimeError):
    pass


@dataclass(eq=False)
class ClientProc:
    """A `bench/sfu.py client` process, driven by one request at a time."""

    workdir: Path
    name: str
    proc: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = None
    _next_id: int = 0

    async def start(self) -> ClientProc:
        self._log = (self.workdir / f"client-{self.name}.log").open("ab")  # closed in stop()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "client",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            cwd=self.workdir,
            limit=1 << 20,
        )
        return self

    async def request(
        self, command: str, *, reply_within_s: float = 4 * WAIT_S, **params: Any
    ) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self._next_id += 1
        line = json.dumps({"id": self._next_id, "cmd": command, "params": params}) + "\n"
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        deadline = now() + reply_within_s
        while True:  # replies to requests that timed out earlier are skipped
            raw = await asyncio.wait_for(self.proc.stdout.readline(), deadline - now())
            if not raw:
                raise ClientError(f"client {self.name} exited: {self.log_tail()}")
            reply: dict[str, Any] = json.loads(raw)
            if reply.get("id") == self._next_id:
                break
        if not reply.pop("ok"):
            raise ClientError(f"client {self.name}: {command}: {reply.get('error')}")
        return reply

    def cpu_seconds(self) -> float | None:
        return None if self.proc is None else process_cpu_seconds(self.proc.pid)

    def log_tail(self, chars: int = 2000) -> str:
        path = self.workdir / f"client-{self.name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.request("close", reply_within_s=15)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await asyncio.wait_for(self.proc.wait(), 5)
        if self._log is not None:
            self._log.close()
            self._log = None


class JanusUnavailable(RuntimeError):
    pass


def janus_library_dir() -> Path:
    """Where Debian (or a local build) put Janus's plugins and transports."""
    for pattern in (
        "usr/lib/*/janus",
        "usr/lib/janus",
        "usr/local/lib/janus",
        "opt/janus/lib/janus",
    ):
        for candidate in sorted(Path("/").glob(pattern)):
            if (candidate / "plugins" / "libjanus_videoroom.so").exists():
                return candidate
    raise JanusUnavailable("libjanus_videoroom.so not found (is the janus package installed?)")


@dataclass
class JanusServer(Subprocess):
    """Janus with only the videoroom plugin and the HTTP transport on 127.0.0.1.

    Janus never gathers candidates on loopback interfaces: `getifaddrs_shim.c`,
    compiled here and preloaded, reports 127.0.0.1 without the loopback flag and
    hides every other address.
    """

    name: str = "janus"
    event_loops: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/janus"

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        binary = shutil.which("janus")
        if binary is None:
            raise JanusUnavailable("janus is not installed (make bench installs Debian's)")
        compiler = shutil.which("gcc") or shutil.which("cc")
        if compiler is None:
            raise JanusUnavailable("no C compiler to build the getifaddrs shim")
        library = janus_library_dir()
        root = self.workdir / "janus"
        folders = {
            name: root / name for name in ("conf", "plugins", "transports", "events", "loggers")
        }
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        (folders["plugins"] / "libjanus_videoroom.so").symlink_to(
            library / "plugins" / "libjanus_videoroom.so"
        )
        (folders["transports"] / "libjanus_http.so").symlink_to(
            library / "transports" / "libjanus_http.so"
        )
        values = {
            "configs_folder": str(folders["conf"]),
            "plugins_folder": str(folders["plugins"]),
            "transports_folder": str(folders["transports"]),
            "events_folder": str(folders["events"]),
            "loggers_folder": str(folders["loggers"]),
            "event_loops": f"\tevent_loops = {self.event_loops}" if self.event_loops else "",
            "port": str(self.port),
            "room": str(JANUS_ROOM),
        }
        for name in ("janus.jcfg", "janus.transport.http.jcfg", "janus.plugin.videoroom.jcfg"):
            template = string.Template((JANUS_TEMPLATES / name).read_text())
            (folders["conf"] / name).write_text(template.substitute(values))
        shim, source = root / "getifaddrs_shim.so", JANUS_TEMPLATES / "getifaddrs_shim.c"
        build = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", str(shim), str(source), "-ldl"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if build.returncode != 0:
            raise JanusUnavailable(f"building the getifaddrs shim failed: {build.stderr[-500:]}")
        env = {**os.environ, "LD_PRELOAD": str(shim)}
        conf = folders["conf"]
        return [binary, "-C", str(conf / "janus.jcfg"), "-F", str(conf)], env

    async def start(self, timeout_s: float = 30.0) -> JanusServer:
        args, env = self._prepare()
        self._spawn(args, env)
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as http:

            async def answering() -> bool:
                try:
                    return (await http.get(f"{self.url}/info")).status_code == 200
                except httpx.HTTPError:
                    return False

            try:
                await self._wait_ready(answering, timeout_s)
            except RuntimeError as exc:
                raise JanusUnavailable(str(exc)) from exc
        return self


@dataclass
class Sample:
    """Counters read together at one moment of a measured window."""

    wall: float
    server: float | None
    clients: float | None
    system: float | None
    audio: int
    video: int


@dataclass(eq=False)
class Side:
    """One SFU under test: its server process, publisher and subscriber client processes."""

    name: str
    server_cpu: Callable[[], float | None]
    publisher: ClientProc
    subscriber_procs: list[ClientProc]
    metrics: Callable[[], Awaitable[int | None]] | None = None

    def client_cpu(self) -> float | None:
        total = time.process_time()
        for proc in [self.publisher, *self.subscriber_procs]:
            value = proc.cpu_seconds()
            if value is None:
                return None
            total += value
        return total

    async def sample(self) -> Sample:
        counts = await asyncio.gather(*(p.request("counts") for p in self.subscriber_procs))
        return Sample(
            wall=now(),
            server=self.server_cpu(),
            clients=self.client_cpu(),
            system=system_busy_seconds(),
            audio=sum(c["audio"] for c in counts),
            video=sum(c["video"] for c in counts),
        )


def delta(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else end - start


async def measure_window(side: Side, n: int, seconds: float) -> dict[str, Any]:
    """Forwarded packets and CPU over one steady-state window with `n` subscribers."""
    reported_before = await side.metrics() if side.metrics else None
    start = await side.sample()
    await asyncio.sleep(seconds)
    end = await side.sample()
    reported_after = await side.metrics() if side.metrics else None
    wall = end.wall - start.wall
    packets = (end.audio - start.audio) + (end.video - start.video)
    server = delta(end.server, start.server)
    clients = delta(end.clients, start.clients)
    system = delta(end.system, start.system)
    other = None
    if system is not None and server is not None and clients is not None:
        other = max(0.0, system - server - clients)
    reported = delta(
        None if reported_after is None else float(reported_after),
        None if reported_before is None else float(reported_before),
    )
    return {
        "subscribers": n,
        "seconds": wall,
        "packets": packets,
        "audio_packets": end.audio - start.audio,
        "video_packets": end.video - start.video,
        "packets_per_s": packets / wall,
        "packets_per_s_per_subscriber": packets / wall / n,
        "server_cpu_s": server,
        "server_cpu_pct": None if server is None else 100 * server / wall,
        "cpu_pct_per_subscriber": None if server is None else 100 * server / wall / n,
        "fwd_packets_per_cpu_s": packets / server if server else None,
        "client_cpu_cores": None if clients is None else clients / wall,
        "other_cpu_cores": None if other is None else other / wall,
        "server_reported_packets": reported,
    }


def linear_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope and intercept; None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    return slope, mean_y - slope * mean_x


def cost_model(windows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Marginal server CPU per subscriber and per forwarded packet, and the fixed part."""
    rows = [w for w in windows if w.get("server_cpu_pct") is not None]
    per_sub = linear_fit([(w["subscribers"], w["server_cpu_pct"]) for w in rows])
    per_packet = linear_fit([(w["packets_per_s"], w["server_cpu_pct"] / 100) for w in rows])
    return {
        "marginal_cpu_pct_per_subscriber": per_sub[0] if per_sub else None,
        "fixed_cpu_pct": per_sub[1] if per_sub else None,
        "marginal_us_per_packet": per_packet[0] * 1e6 if per_packet else None,
    }


def distribute(count: int, procs: int) -> list[int]:
    """`count` subscribers spread over `procs` client processes, round robin."""
    return [count // procs + (1 if i < count % procs else 0) for i in range(procs)]


async def ramp(
    side: Side,
    args: argparse.Namespace,
    add: Callable[[ClientProc, int, int], Awaitable[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Add subscribers up to each N in turn and measure a window at each."""
    windows = []
    placed = [0] * len(side.subscriber_procs)
    for n in args.subscribers:
        wanted = distribute(n, len(side.subscriber_procs))
        started = now()
        await asyncio.gather(
            *(
                add(proc, placed[i], wanted[i] - placed[i])
                for i, proc in enumerate(side.subscriber_procs)
                if wanted[i] > placed[i]
            )
        )
        placed = wanted
        err.print(
            f"  {side.name}: {n} subscribers receive audio and video ({now() - started:.1f} s)"
        )
        await asyncio.sleep(args.warmup)
        window = await measure_window(side, n, args.seconds)
        err.print(
            f"  {side.name} N={n}: {window['packets_per_s']:,.0f} packets/s forwarded, "
            f"server {_fmt(window['server_cpu_pct'])}% of a core, "
            f"{_fmt(window['fwd_packets_per_cpu_s'])} packets per CPU-second"
        )
        windows.append(window)
    return windows


async def start_clients(workdir: Path, procs: int) -> tuple[ClientProc, list[ClientProc]]:
    publisher = await ClientProc(workdir, "publisher").start()
    subscribers = [await ClientProc(workdir, f"subscribers-{i}").start() for i in range(procs)]
    return publisher, subscribers


async def stop_clients(procs: Iterable[ClientProc]) -> None:
    await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)


def check(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


SFU_METRIC = "podium_sfu_packets_forwarded_total"


def metric_total(text: str, name: str) -> int | None:
    """The sum of a Prometheus metric's samples (all labels); None if it is not exported."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{")
    ]
    return int(sum(values)) if values else None


async def revoke_loop(
    http: httpx.AsyncClient, base: str, host: dict[str, str], side: Side, args: argparse.Namespace
) -> dict[str, Any]:
    """Revoke `send-audio` over HTTP, time the last forwarded audio packet, grant, resume."""
    latencies: list[float] = []
    raw: list[float] = []
    http_ms: list[float] = []
    told_ms: list[float] = []
    failures: list[str] = []
    none_after = 0
    subs = side.subscriber_procs
    url = f"{base}/user-permissions"
    rng = random.Random()
    for i in range(args.revokes):
        t0 = now()
        check(
            await http.post(url, json={"user_id": PUBLISHER, "revoke": [REVOKED]}, headers=host),
            200,
        )
        http_ms.append((now() - t0) * 1000)
        quiet = await asyncio.gather(
            *(
                p.request(
                    "quiet", kind="audio", quiet_s=args.quiet_ms / 1000, timeout_s=QUIET_TIMEOUT_S
                )
                for p in subs
            )
        )
        if not all(q["quiet"] for q in quiet):
            failures.append(f"revoke {i + 1}: audio still forwarded {QUIET_TIMEOUT_S:g} s later")
        else:
            latency = (max(q["last"] for q in quiet) - t0) * 1000
            none_after += latency <= 0
            raw.append(latency)
            latencies.append(max(0.0, latency))
        status = await side.publisher.request("publisher_status")
        if status.get("last_stop_at") is not None and status["last_stop_at"] >= t0:
            told_ms.append((status["last_stop_at"] - t0) * 1000)
        check(
            await http.post(url, json={"user_id": PUBLISHER, "grant": [REVOKED]}, headers=host), 200
        )
        resumed = await asyncio.gather(
            *(p.request("resumed", kind="audio", timeout_s=RESUME_TIMEOUT_S) for p in subs)
        )
        if not all(r["resumed"] for r in resumed):
            failures.append(f"revoke {i + 1}: audio did not resume within {RESUME_TIMEOUT_S:g} s")
            break
        if (i + 1) % 10 == 0 or i + 1 == args.revokes:
            err.print(
                f"  podium: {i + 1}/{args.revokes} revokes, p50 "
                f"{_fmt(percentile(latencies, 50))} ms, max {_fmt(max(latencies, default=None))} ms"
            )
        # A random pause: revokes must not lock to the phase of the 20 ms audio packets.
        await asyncio.sleep(rng.uniform(REVOKE_PAUSE_S, 2 * REVOKE_PAUSE_S))
    return {
        "revoke_latencies_ms": latencies,
        "revoke_signed_ms": raw,
        "revoke_http_ms": http_ms,
        "revoke_told_ms": told_ms,
        "revoke_failures": failures,
        "revoke_none_after_call": none_after,
    }


async def podium_phase(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="podium-sfu-bench-") as tmp:
        workdir = Path(tmp)
        server = await PodiumServer(workdir, extra_env={"PODIUM_MEDIA_LOOPBACK": "1"}).start()
        procs: list[ClientProc] = []
        http = httpx.AsyncClient(timeout=WAIT_S, trust_env=False)
        try:
            call_id = f"sfu-{uuid.uuid4().hex[:12]}"
            cid = f"{CALL_TYPE}:{call_id}"
            base = f"{server.url}/v1/calls/{CALL_TYPE}/{call_id}"

            def auth(user: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {mint_user_token(SECRET, user, name=user)}"}

            check(await http.post(base, json={}, headers=auth(HOST)), 201)
            check(await http.post(f"{base}/join", headers=auth(PUBLISHER)), 200)
            publisher, subscriber_procs = await start_clients(workdir, args.client_procs)
            procs += [publisher, *subscriber_procs]
            started = now()
            await publisher.request(
                "podium_publish",
                ws_url=server.ws_url,
                cid=cid,
                token=mint_user_token(SECRET, PUBLISHER, name=PUBLISHER),
                media=str(args.media),
            )
            err.print(f"  podium: publisher connected and publishing ({now() - started:.1f} s)")

            async def scrape() -> int | None:
                try:
                    operator = {"Authorization": f"Bearer {mint_server_token(SECRET)}"}
                    scraped = await http.get(f"{server.url}/metrics", headers=operator)
                    return metric_total(scraped.text, SFU_METRIC)
                except httpx.HTTPError:
                    return None

            side = Side("podium", server.cpu_seconds, publisher, subscriber_procs, scrape)

            async def add(proc: ClientProc, first: int, count: int) -> dict[str, Any]:
                users = [f"sub-{proc.name}-{first + k}" for k in range(count)]
                for user in users:
                    check(await http.post(f"{base}/join", headers=auth(user)), 200)
                tokens = [mint_user_token(SECRET, user, name=user) for user in users]
                return await proc.request(
                    "podium_subscribe", ws_url=server.ws_url, cid=cid, tokens=tokens
                )

            result: dict[str, Any] = {"windows": await ramp(side, args, add)}
            if args.revokes:
                result.update(await revoke_loop(http, base, auth(HOST), side, args))
            return result
        except Exception:
            await stop_clients(procs)
            server.stop()
            err.print(f"podium serve log:\n{server.log_tail()}")
            for proc in procs:
                err.print(f"client {proc.name} log:\n{proc.log_tail()}")
            raise
        finally:
            await stop_clients(procs)
            await http.aclose()
            server.stop()


async def janus_phase(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="janus-sfu-bench-") as tmp:
        workdir = Path(tmp)
        janus = JanusServer(workdir, event_loops=args.janus_event_loops)
        await janus.start()
        procs: list[ClientProc] = []
        try:
            publisher, subscriber_procs = await start_clients(workdir, args.client_procs)
            procs += [publisher, *subscriber_procs]
            started = now()
            published = await publisher.request(
                "janus_publish", url=janus.url, room=JANUS_ROOM, media=str(args.media)
            )
            feed = published["feed"]
            err.print(f"  janus: publisher connected and publishing ({now() - started:.1f} s)")
            side = Side("janus", janus.cpu_seconds, publisher, subscriber_procs)

            async def add(proc: ClientProc, first: int, count: int) -> dict[str, Any]:
                return await proc.request(
                    "janus_subscribe", url=janus.url, room=JANUS_ROOM, feed=feed, count=count
                )

            return {"windows": await ramp(side, args, add)}
        except ClientError as exc:
            raise JanusUnavailable(f"{exc}; janus log: {janus.log_tail(1500)}") from exc
        finally:
            await stop_clients(procs)
            janus.stop()


async def run_once(args: argparse.Namespace, run: int, janus_reason: list[str]) -> dict[str, Any]:
    """One run: Podium and Janus, in alternating order from run to run."""
    result: dict[str, Any] = {"run": run}
    order = ["podium", "janus"] if run % 2 else ["janus", "podium"]
    for name in order:
        if name == "podium":
            err.print(f"run {run}/{args.runs}: podium")
            podium = await podium_phase(args)
            result["podium"] = podium["windows"]
            result.update({k: v for k, v in podium.items() if k != "windows"})
        elif not janus_reason:
            err.print(f"run {run}/{args.runs}: janus")
            try:
                result["janus"] = (await janus_phase(args))["windows"]
            except (JanusUnavailable, OSError, TimeoutError) as exc:
                janus_reason.append(f"{type(exc).__name__}: {exc}")
                err.print(f"[yellow]janus could not run: {janus_reason[0]}[/yellow]")
    return result


# Summary and reporting.

WINDOW_KEYS = (
    "packets_per_s",
    "packets_per_s_per_subscriber",
    "server_cpu_pct",
    "cpu_pct_per_subscriber",
    "fwd_packets_per_cpu_s",
    "client_cpu_cores",
    "other_cpu_cores",
    "server_reported_packets",
    "packets",
)


def per_n(runs: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Median over runs of each window figure, per N."""
    rows = []
    for n in sorted({w["subscribers"] for r in runs for w in r.get(name, [])}):
        windows = [w for r in runs for w in r.get(name, []) if w["subscribers"] == n]
        row: dict[str, Any] = {"subscribers": n, "runs": len(windows)}
        for key in WINDOW_KEYS:
            row[key] = median(w.get(key) for w in windows)
            values = [w[key] for w in windows if w.get(key) is not None]
            if key == "fwd_packets_per_cpu_s" and len(values) > 1:
                row["fwd_packets_per_cpu_s_range"] = [min(values), max(values)]
        rows.append(row)
    return rows


DEFINITIONS = {
    "fwd_packets_per_cpu_s": "at the largest N: RTP packets received by all subscribers in the "
    "window / CPU seconds (utime + stime) of the server process in the same window; median "
    "over runs",
    "cpu_per_subscriber_pct": "marginal server CPU per extra subscriber, % of one core: "
    "least-squares slope of server CPU % over N (every run's windows); at a single N, "
    "server CPU % / N",
    "fixed_cpu_pct": "intercept of that fit: the server's CPU with the publisher and no subscriber",
    "marginal_us_per_packet": "slope of server CPU seconds per second over forwarded packets "
    "per second",
    "revoke_p50_ms, revoke_p99_ms": "from just before the host's HTTP revoke of send-audio is "
    "sent to the arrival (tapped at the subscribers, before aiortc's jitter buffer) of the last "
    "audio packet at any subscriber, found by waiting until no audio arrived for quiet_ms; "
    "0 when no audio packet arrived after the request was sent; pooled over all runs",
    "revoke_told_ms": "from the same moment to the publisher's sfu.stop_source",
    "server_reported_packets": f"the server's own `{SFU_METRIC}` over the window, "
    "when /metrics exports it (null otherwise)",
    "client_cpu_cores, other_cpu_cores": "CPU cores used in the window by the benchmark's own "
    "processes (publisher, subscribers, orchestrator) and by every other process",
    "input": "the publisher replays pre-encoded media at its real pace: 640x480 VP8 at 30 fps, "
    "~1 Mbps, a keyframe every second, and a 440 Hz Opus tone in 20 ms packets; no encoder runs "
    "while measuring and bandwidth feedback changes nothing",
}


def summarize(
    args: argparse.Namespace, runs: list[dict[str, Any]], janus_reason: str | None, network: str
) -> dict[str, Any]:
    podium_rows, janus_rows = per_n(runs, "podium"), per_n(runs, "janus")
    podium_windows = [w for r in runs for w in r.get("podium", [])]
    janus_windows = [w for r in runs for w in r.get("janus", [])]
    podium_cost, janus_cost = cost_model(podium_windows), cost_model(janus_windows)
    top = podium_rows[-1] if podium_rows else {}
    janus_top = janus_rows[-1] if janus_rows else {}
    fwd = top.get("fwd_packets_per_cpu_s")
    janus_fwd = janus_top.get("fwd_packets_per_cpu_s")
    ratios = [
        r["podium"][-1]["fwd_packets_per_cpu_s"] / r["janus"][-1]["fwd_packets_per_cpu_s"]
        for r in runs
        if r.get("podium")
        and r.get("janus")
        and r["podium"][-1].get("fwd_packets_per_cpu_s")
        and r["janus"][-1].get("fwd_packets_per_cpu_s")
    ]
    ratio = median(ratios)
    cpu_per_sub = podium_cost["marginal_cpu_pct_per_subscriber"]
    if cpu_per_sub is None:
        cpu_per_sub = top.get("cpu_pct_per_subscriber")
    latencies = [x for r in runs for x in r.get("revoke_latencies_ms", [])]
    p99 = percentile(latencies, 99)
    failures = [f for r in runs for f in r.get("revoke_failures", [])]
    machine = machine_info()
    if args.no_janus:
        janus_reason = "--no-janus"
    return {
        "fwd_packets_per_cpu_s": fwd,
        "janus_fwd_packets_per_cpu_s": janus_fwd,
        "podium_over_janus": ratio,
        "cpu_per_subscriber_pct": cpu_per_sub,
        "fixed_cpu_pct": podium_cost["fixed_cpu_pct"],
        "marginal_us_per_packet": podium_cost["marginal_us_per_packet"],
        "janus_cpu_per_subscriber_pct": janus_cost["marginal_cpu_pct_per_subscriber"],
        "janus_fixed_cpu_pct": janus_cost["fixed_cpu_pct"],
        "janus_marginal_us_per_packet": janus_cost["marginal_us_per_packet"],
        "revoke_p50_ms": percentile(latencies, 50),
        "revoke_p99_ms": p99,
        "revoke_max_ms": max(latencies, default=None),
        "revokes": len(latencies),
        "revoke_failures": len(failures),
        "revoke_none_after_call": sum(r.get("revoke_none_after_call", 0) for r in runs),
        "server_reported_over_counted": (
            top["server_reported_packets"] / top["packets"]
            if top.get("server_reported_packets") and top.get("packets")
            else None
        ),
        "revoke_http_p50_ms": percentile(
            [x for r in runs for x in r.get("revoke_http_ms", [])], 50
        ),
        "revoke_told_p50_ms": percentile(
            [x for r in runs for x in r.get("revoke_told_ms", [])], 50
        ),
        "per_n": {"podium": podium_rows, "janus": janus_rows},
        "janus_reason": janus_reason,
        "janus": {
            "ran": bool(janus_rows),
            "reason": janus_reason,
            "event_loops": args.janus_event_loops or "default (one per handle)",
        },
        "runs": len(runs),
        "subscribers": args.subscribers,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "quiet_ms": args.quiet_ms,
        "client_procs": args.client_procs,
        "network": network,
        "cpu_count": machine["cpu_count"],
        "python_version": machine["python_version"],
        "machine": machine,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "aggregate": "median across runs (revoke latencies pooled across runs)",
        "definitions": DEFINITIONS,
        "targets": {
            "fwd_packets_per_cpu_s_min": TARGET_FWD_PACKETS_PER_CPU_S,
            "janus_ratio_min": TARGET_JANUS_RATIO,
            "revoke_p99_ms_max": TARGET_REVOKE_P99_MS,
            "fwd_packets_per_cpu_s_met": fwd is not None and fwd >= TARGET_FWD_PACKETS_PER_CPU_S,
            "janus_ratio_met": None if ratio is None else ratio >= TARGET_JANUS_RATIO,
            "revoke_p99_met": None if p99 is None else not failures and p99 <= TARGET_REVOKE_P99_MS,
        },
        "errors": failures[:10],
        "per_run": runs,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("[green]met[/green]" if met else "[red]MISSED[/red]")


def print_table(summary: dict[str, Any]) -> None:
    table = Table(
        title=(
            f"SFU forwarding: 1 publisher (640x480 VP8 ~1 Mbps + Opus), "
            f"{summary['seconds']:g} s windows, median of {summary['runs']} run(s)"
        )
    )
    for column in (
        "server",
        "N",
        "packets/s",
        "per sub/s",
        "server CPU %",
        "CPU %/sub",
        "packets per CPU-s",
        "client cores",
        "other cores",
    ):
        table.add_column(column, justify="right" if column != "server" else "left")
    for name, rows in summary["per_n"].items():
        for row in rows:
            table.add_row(
                name,
                str(row["subscribers"]),
                _fmt(row["packets_per_s"]),
                _fmt(row["packets_per_s_per_subscriber"]),
                _fmt(row["server_cpu_pct"]),
                _fmt(row["cpu_pct_per_subscriber"]),
                _fmt(row["fwd_packets_per_cpu_s"]),
                _fmt(row["client_cpu_cores"]),
                _fmt(row["other_cpu_cores"]),
            )
    out.print(table)
    janus = summary["janus"]
    if not janus["ran"]:
        out.print(f"[yellow]janus not measured: {janus['reason']}[/yellow]")
    out.print(
        f"marginal cost per subscriber: podium {_fmt(summary['cpu_per_subscriber_pct'])}% "
        f"of a core ({_fmt(summary['marginal_us_per_packet'])} µs/packet, fixed "
        f"{_fmt(summary['fixed_cpu_pct'])}%), janus "
        f"{_fmt(summary['janus_cpu_per_subscriber_pct'])}% "
        f"({_fmt(summary['janus_marginal_us_per_packet'])} µs/packet, fixed "
        f"{_fmt(summary['janus_fixed_cpu_pct'])}%)"
    )
    out.print(
        f"revoke → last forwarded packet over {summary['revokes']} revokes: "
        f"p50 {_fmt(summary['revoke_p50_ms'])} ms, p99 {_fmt(summary['revoke_p99_ms'])} ms, "
        f"max {_fmt(summary['revoke_max_ms'])} ms (HTTP answer p50 "
        f"{_fmt(summary['revoke_http_p50_ms'])} ms, publisher told p50 "
        f"{_fmt(summary['revoke_told_p50_ms'])} ms; {summary['revoke_failures']} failed; "
        f"no packet after the call in {summary['revoke_none_after_call']})"
    )
    reported = summary["server_reported_over_counted"]
    if reported is not None:
        out.print(f"podium's own {SFU_METRIC} / packets the subscribers counted: {reported:.3f}")
    targets = summary["targets"]
    out.print(
        f"targets: ≥ {targets['fwd_packets_per_cpu_s_min']:,.0f} packets per CPU-second "
        f"({_fmt(summary['fwd_packets_per_cpu_s'])}): "
        f"{_verdict(targets['fwd_packets_per_cpu_s_met'])}; "
        f"≥ 1/3 of janus ({_fmt(summary['podium_over_janus'])}x): "
        f"{_verdict(targets['janus_ratio_met'])}; "
        f"revoke p99 ≤ {targets['revoke_p99_ms_max']:g} ms: {_verdict(targets['revoke_p99_met'])}"
    )
    out.print(f"network: {summary['network']}")
    for message in summary["errors"]:
        err.print(f"[yellow]{message}[/yellow]")


def parse_subscribers(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("subscriber counts must be at least 1")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sfu.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--subscribers", type=parse_subscribers, default=[4, 8, 16, 32], help="N values (4,8,16,32)"
    )
    parser.add_argument("--runs", type=int, default=2, help="runs, median reported (2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per N (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (2)")
    parser.add_argument("--revokes", type=int, default=50, help="revokes per run (50)")
    parser.add_argument("--quiet-ms", type=float, default=300.0, help="silence ending a revoke")
    parser.add_argument("--client-procs", type=int, default=1, help="subscriber processes (1)")
    parser.add_argument("--no-janus", action="store_true", help="measure Podium only")
    parser.add_argument(
        "--janus-event-loops",
        type=int,
        default=1,
        help="Janus event_loops (1: one shared media thread; 0: Janus's default, one per handle)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results path")
    args = parser.parse_args(argv)
    for name in ("runs", "client_procs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seconds <= 0 or args.warmup < 0 or args.revokes < 0 or args.quiet_ms <= 0:
        parser.error(
            "--seconds and --quiet-ms must be positive, --warmup and --revokes not negative"
        )
    return args


async def run_all(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str | None]:
    janus_reason: list[str] = ["--no-janus"] if args.no_janus else []
    runs = [await run_once(args, run, janus_reason) for run in range(1, args.runs + 1)]
    return runs, janus_reason[0] if janus_reason else None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:
        run_async(client_main())
        return {}
    args = parse_args(argv)
    network = enter_private_netns(argv)
    err.print(f"network: {network}")
    with tempfile.TemporaryDirectory(prefix="sfu-bench-media-") as tmp:
        args.media = Path(tmp) / "media.json"
        started = now()
        media = write_media(args.media)
        err.print(f"publisher media encoded ({now() - started:.1f} s): {media['video']}")
        runs, janus_reason = run_async(run_all(args))
    summary = summarize(args, runs, janus_reason, network)
    summary["input"] = media
    print_table(summary)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    out.print(f"wrote {args.output}")
    return summary


if __name__ == "__main__":
    main()

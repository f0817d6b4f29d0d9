"""Real HTTP, WebSocket and media clients for end-to-end tests against `podium serve` processes.

Every wait is bounded in time; every loop in count.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from podium import rtc
from tests.server import ServerProcess
from tests.sfu.test_call import Tone, bounded, receive_tone

WAIT_S = 10.0

Frame = dict[str, Any]


class Api:
    """One user's HTTP client against one server process."""

    def __init__(self, server: ServerProcess, user_id: str, role: str | None = None) -> None:
        self.server = server
        self.user_id = user_id
        self.token = server.token(user_id, role=role)
        self.http = httpx.AsyncClient(
            base_url=server.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=httpx.Timeout(15.0),
            trust_env=False,  # never through a proxy: only 127.0.0.1
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self, method: str, path: str, body: Any = None, expect: int | tuple[int, ...] = 200
    ) -> Any:
        response = await self.http.request(method, f"/v1{path}", json=body)
        allowed = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in allowed, (
            f"{method} {path} as {self.user_id}: {response.status_code} {response.text}"
        )
        return response.json()


class Watcher:
    """A WebSocket connection that records every frame it receives, in order."""

    def __init__(self, server: ServerProcess, user_id: str, role: str | None = None) -> None:
        self.server = server
        self.user_id = user_id
        self.token = server.token(user_id, role=role)
        self.frames: list[Frame] = []
        self.closed = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def label(self) -> str:
        return f"{self.user_id}@{self.server.port}"

    async def open(self) -> Watcher:
        url = f"{self.server.ws_url}?token={quote(self.token)}"
        self._ws = await asyncio.wait_for(connect(url, open_timeout=WAIT_S, proxy=None), WAIT_S)
        first = json.loads(await asyncio.wait_for(self._ws.recv(), WAIT_S))
        assert first["type"] == "connection.ok", first
        assert first["user_id"] == self.user_id
        self._reader = asyncio.create_task(self._read(), name=f"watcher-{self.label}")
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for text in self._ws:
                frame = json.loads(text)
                if frame.get("type") == "health.check":
                    await self._ws.send(json.dumps({"type": "pong"}))
                    continue
                self.frames.append(frame)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._changed.set()

    async def watch(self, cid: str, since: int | None = None) -> Frame:
        """Send `watch`; returns `watch.ok` (replayed events, if any, arrive before it)."""
        assert self._ws is not None
        message: Frame = {"type": "watch", "call_cid": cid}
        if since is not None:
            message["since"] = since
        start = len(self.frames)
        await self._ws.send(json.dumps(message))
        return await self.wait_for(
            lambda f: f["type"] in ("watch.ok", "error") and f.get("call_cid") == cid, start=start
        )

    async def wait_for(
        self, predicate: Callable[[Frame], bool], *, start: int = 0, within_s: float = WAIT_S
    ) -> Frame:
        """The first frame (from index `start`) matching `predicate`, waiting at most `within_s`."""
        deadline = time.monotonic() + within_s
        seen = start
        while True:
            for frame in self.frames[seen:]:
                if predicate(frame):
                    return frame
            seen = len(self.frames)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed.is_set():
                raise AssertionError(
                    f"{self.label}: no matching frame in {within_s} s; got {self.types()}"
                )
            self._changed.clear()
            await _changed_within(self._changed, remaining)

    async def wait_seqs(self, cid: str, expected: set[int], within_s: float = WAIT_S) -> None:
        """Wait (bounded) until every seq in `expected` has arrived for `cid`."""
        deadline = time.monotonic() + within_s
        while not expected <= set(self.seqs(cid)) and time.monotonic() < deadline:
            self._changed.clear()
            await _changed_within(self._changed, max(0.0, deadline - time.monotonic()))
            if self.closed.is_set():
                break

    def events(self, cid: str) -> list[Frame]:
        return [f for f in self.frames if f.get("call_cid") == cid and "seq" in f and _is_event(f)]

    def seqs(self, cid: str) -> list[int]:
        return [f["seq"] for f in self.events(cid)]

    def last_seq(self, cid: str) -> int:
        seqs = self.seqs(cid)
        return seqs[-1] if seqs else 0

    def types(self) -> list[str]:
        return [f"{f['type']}#{f.get('seq', '-')}" for f in self.frames]

    async def wait_closed(self) -> None:
        """Wait (bounded) for the server side to go away."""
        await asyncio.wait_for(self.closed.wait(), WAIT_S)

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


async def _changed_within(changed: asyncio.Event, seconds: float) -> None:
    """Wait for `changed` at most `seconds`.

    `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` loses a
    cancellation that arrives as the event is set, and a cancelled
    `MediaClient` pump then kept waiting for its next frame.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await changed.wait()


def _is_event(frame: Frame) -> bool:
    return str(frame.get("type", "")).startswith("call.")


async def replay(
    server: ServerProcess, user_id: str, cid: str, role: str | None = None
) -> list[Frame]:
    """Every event of `cid` that `user_id` may see, from a fresh `watch` with `since=0`."""
    watcher = await Watcher(server, user_id, role).open()
    try:
        ok = await watcher.watch(cid, since=0)
        assert ok["type"] == "watch.ok", ok
        return watcher.events(cid)
    finally:
        await watcher.close()


def assert_strictly_increasing(label: str, seqs: list[int]) -> None:
    bad = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
    assert not bad, f"{label}: seq not strictly increasing at {bad[:5]} in {seqs}"


class MediaClient:
    """An aiortc peer connection signalling with `sfu.*` frames over a `Watcher`'s WebSocket."""

    def __init__(self, ws: Watcher, cid: str) -> None:
        self.ws = ws
        self.cid = cid
        self.pc = rtc.peer_connection(loopback_only=True)
        self.tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        self.pc.on("track", self.tracks.put_nowait)
        self.answered = asyncio.Event()
        self._seen = 0
        self._pump = asyncio.get_running_loop().create_task(self._run())

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws._ws is not None
        await self.ws._ws.send(json.dumps({**message, "call_cid": self.cid}))

    def _negotiation(self, frame: Frame) -> bool:
        return frame["type"] in ("sfu.offer", "sfu.answer") and frame.get("call_cid") == self.cid

    async def _run(self) -> None:
        while True:
            frame = await self.ws.wait_for(self._negotiation, start=self._seen, within_s=3600)
            self._seen = next(
                i + 1 for i in range(self._seen, len(self.ws.frames)) if self.ws.frames[i] is frame
            )
            if frame["type"] == "sfu.answer":
                await self.pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "answer"))
                self.answered.set()
            else:
                await self.pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "offer"))
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
        deadline = time.monotonic() + 10
        while self.pc.connectionState != "connected":
            assert time.monotonic() < deadline, f"not connected: {self.pc.connectionState}"
            await asyncio.sleep(0.02)

    async def expect(self, kind: str) -> Frame:
        return await self.ws.wait_for(lambda f: f["type"] == kind and f.get("call_cid") == self.cid)

    async def close(self) -> None:
        self._pump.cancel()
        await bounded(asyncio.gather(self._pump, return_exceptions=True))
        await bounded(self.pc.close())


async def publishing(ws: Watcher, cid: str, held: list[MediaClient]) -> MediaClient:
    """A media session on `ws` publishing a `Tone` as its microphone (added to `held` to close)."""
    client = MediaClient(ws, cid)
    held.append(client)
    client.pc.addTransceiver(Tone(), direction="sendonly")
    await client.connect()
    await client.send({"type": "sfu.publish", "source": "microphone"})
    await client.expect("sfu.publish_ok")
    return client


async def hearing_everyone(ws: Watcher, cid: str, held: list[MediaClient]) -> MediaClient:
    """A receive-only media session on `ws` subscribed to everyone, once it hears a tone."""
    client = MediaClient(ws, cid)
    held.append(client)
    client.pc.addTransceiver("audio", direction="recvonly")
    await client.connect()
    await client.send({"type": "sfu.subscribe", "user_ids": "all"})
    await receive_tone(await bounded(client.tracks.get()))
    return client


async def inbound_packets(pc: Any) -> int:
    report = await bounded(pc.getStats())
    return sum(s.packetsReceived for s in report.values() if s.type == "inbound-rtp")

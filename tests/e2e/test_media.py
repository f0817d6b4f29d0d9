"""Media through `podium serve`: `sfu.*` over the WebSocket, enforced by the permission API.

A real server process (its SFU offering only 127.0.0.1 candidates), real HTTP
and WebSocket clients, and aiortc peer connections on 127.0.0.1. A listener
granted `send-audio` publishes a tone that the host decodes; revoking the
capability over HTTP stops the forwarding and tells the publisher to stop.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from podium.sfu import adapter
from tests.e2e.clients import Api, Frame, Watcher
from tests.server import ServerProcess
from tests.sfu.test_call import Tone, bounded, receive_tone

HOST, SPEAKER, LISTENER = "hana", "sami", "lina"


class MediaClient:
    """An aiortc peer connection signalling with `sfu.*` frames over a `Watcher`'s WebSocket."""

    def __init__(self, ws: Watcher, cid: str) -> None:
        self.ws = ws
        self.cid = cid
        self.pc = adapter.peer_connection(loopback_only=True)
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
        await asyncio.gather(self._pump, return_exceptions=True)
        await bounded(self.pc.close())


async def inbound_packets(pc: Any) -> int:
    report = await bounded(pc.getStats())
    return sum(s.packetsReceived for s in report.values() if s.type == "inbound-rtp")


async def test_revoking_send_audio_over_http_stops_forwarding(
    tmp_path: Path, sqlite_url: str
) -> None:
    call_id = f"media-{uuid.uuid4().hex[:12]}"
    cid = f"audio_room:{call_id}"
    path = f"/calls/audio_room/{call_id}"
    server = ServerProcess(
        tmp_path, sqlite_url, dev=True, extra_env={"PODIUM_MEDIA_LOOPBACK": "1"}
    ).start()
    apis: list[Api] = []
    sockets: list[Watcher] = []
    clients: list[MediaClient] = []
    try:
        host, speaker, listener = Api(server, HOST), Api(server, SPEAKER), Api(server, LISTENER)
        apis += [host, speaker, listener]
        await host.call("POST", path, {}, expect=201)
        await host.call("POST", f"{path}/go-live")
        assert (await host.call("POST", f"{path}/join"))["media"] == {"ice_servers": []}
        joined = await speaker.call("POST", f"{path}/join")
        assert joined["media"]["ice_servers"] == []
        assert "send-audio" not in joined["own_capabilities"]
        asked = await speaker.call(
            "POST", f"{path}/permission-requests", {"permissions": ["send-audio"]}, expect=201
        )
        await host.call("POST", f"{path}/permission-requests/{asked['request']['id']}/accept")

        host_ws, speaker_ws, listener_ws = (
            await Watcher(server, HOST).open(),
            await Watcher(server, SPEAKER).open(),
            await Watcher(server, LISTENER).open(),
        )
        sockets += [host_ws, speaker_ws, listener_ws]

        # Not a participant yet: refused before any media session exists.
        assert listener_ws._ws is not None
        await listener_ws._ws.send(json.dumps({"type": "sfu.offer", "sdp": "v=0", "call_cid": cid}))
        refused = await listener_ws.wait_for(lambda f: f["type"] == "error")
        assert refused["call_cid"] == cid
        assert refused["error"]["code"] == "permission_denied"

        publisher = MediaClient(speaker_ws, cid)
        clients.append(publisher)
        publisher.pc.addTransceiver(Tone(), direction="sendonly")
        await publisher.connect()
        await publisher.send({"type": "sfu.publish", "source": "microphone"})
        assert (await publisher.expect("sfu.publish_ok"))["source"] == "microphone"

        subscriber = MediaClient(host_ws, cid)
        clients.append(subscriber)
        subscriber.pc.addTransceiver("audio", direction="recvonly")
        await subscriber.connect()
        await subscriber.send({"type": "sfu.subscribe", "user_ids": "all"})
        tracks = await subscriber.ws.wait_for(
            lambda f: f["type"] == "sfu.tracks" and bool(f["tracks"]) and f["call_cid"] == cid
        )
        assert [(t["user_id"], t["source"]) for t in tracks["tracks"]] == [(SPEAKER, "microphone")]
        track = await bounded(subscriber.tracks.get())
        await receive_tone(track)

        # A joined listener without send-audio may connect but not publish.
        await listener.call("POST", f"{path}/join")
        denied = MediaClient(listener_ws, cid)
        clients.append(denied)
        denied.pc.addTransceiver(Tone(), direction="sendonly")
        await denied.connect()
        await denied.send({"type": "sfu.publish", "source": "microphone"})
        assert await denied.expect("sfu.publish_denied") == {
            "type": "sfu.publish_denied",
            "source": "microphone",
            "capability": "send-audio",
            "reason": "not_granted",
            "call_cid": cid,
        }

        revoked = await host.call(
            "POST", f"{path}/user-permissions", {"user_id": SPEAKER, "revoke": ["send-audio"]}
        )
        assert "send-audio" not in revoked["own_capabilities"]
        stop = await publisher.expect("sfu.stop_source")
        assert stop == {
            "type": "sfu.stop_source",
            "source": "microphone",
            "reason": "revoked",
            "call_cid": cid,
        }
        await asyncio.sleep(0.3)  # packets already on their way
        before = await inbound_packets(subscriber.pc)
        await asyncio.sleep(0.5)
        assert await inbound_packets(subscriber.pc) == before, "still forwarded after revoke"
        # Decoded frames already queued drain first; then nothing more arrives.
        for _ in range(200):
            try:
                await asyncio.wait_for(track.recv(), 1.0)
            except TimeoutError:
                break
        else:
            raise AssertionError("frames keep arriving after the revoke")
    finally:
        for client in clients:
            await client.close()
        for ws in sockets:
            await ws.close()
        for api in apis:
            await api.aclose()
        server.stop()

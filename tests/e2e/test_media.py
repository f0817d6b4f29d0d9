"""Media through `podium serve`: `sfu.*` over the WebSocket, enforced by the permission API.

A real server process (its SFU offering only 127.0.0.1 candidates), real HTTP
and WebSocket clients, and aiortc peer connections on 127.0.0.1. A listener
granted `send-audio` publishes a tone that the host decodes; revoking the
capability over HTTP stops the forwarding and tells the publisher to stop.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from tests.e2e.clients import Api, MediaClient, Watcher, inbound_packets
from tests.server import ServerProcess
from tests.sfu.test_call import Tone, bounded, receive_tone

HOST, SPEAKER, LISTENER = "hana", "sami", "lina"


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

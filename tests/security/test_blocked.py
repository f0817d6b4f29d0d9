"""Blocked means nothing: a blocked member cannot request, be granted, watch or signal media.

One real `podium serve` process, real HTTP, WebSocket and aiortc clients on
127.0.0.1. A speaker who is a member of an audio room publishes, files a
request and watches the call; the host blocks them. From then on:

- their media stops at once (`sfu.stop_source` reason `blocked`) and the host
  receives no more of it;
- the request they filed before is cancelled, and accepting it is refused;
- a new request is 403 (`reason: blocked`); a direct grant is 409
  `user_blocked`; a role change leaves them with no capability at all;
- the WebSocket they had open receives no more of the call's events, and a
  new `watch` is refused; `sfu.offer` and `join` are refused.

Unblocking gives back exactly what the member record holds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.clients import (
    Api,
    Frame,
    MediaClient,
    Watcher,
    hearing_everyone,
    inbound_packets,
    publishing,
)
from tests.server import ServerProcess

HOST, SPEAKER, LISTENER = "hana", "bea", "lou"
#: How long the test listens for frames or packets that must not come.
QUIET_S = 1.5

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


def error_code(response_body: Frame) -> str:
    return str(response_body["error"]["code"])


async def test_a_blocked_member_can_request_nothing_be_granted_nothing_and_see_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url, extra_env={"PODIUM_MEDIA_LOOPBACK": "1"}).start()
    call_id = f"blocked-{uuid.uuid4().hex[:12]}"
    cid, path = f"audio_room:{call_id}", f"/calls/audio_room/{call_id}"
    host, speaker, listener = Api(server, HOST), Api(server, SPEAKER), Api(server, LISTENER)
    sockets: list[Watcher] = []
    clients: list[MediaClient] = []
    try:
        await host.call("POST", path, {"members": [{"user_id": SPEAKER, "role": "speaker"}]}, 201)
        await host.call("POST", f"{path}/go-live")
        for api in (host, speaker, listener):
            await api.call("POST", f"{path}/join")
        host_ws, speaker_ws = (
            await Watcher(server, HOST).open(),
            await Watcher(server, SPEAKER).open(),
        )
        sockets += [host_ws, speaker_ws]
        for ws in sockets:
            assert (await ws.watch(cid))["type"] == "watch.ok"

        publisher = await publishing(speaker_ws, cid, clients)
        subscriber = await hearing_everyone(host_ws, cid, clients)
        filed = (
            await speaker.call(
                "POST", f"{path}/permission-requests", {"permissions": ["send-video"]}, 201
            )
        )["request"]

        mark = len(speaker_ws.frames)
        await host.call("POST", f"{path}/block", {"user_id": SPEAKER})

        # Media: stopped at once, and nothing more reaches the host.
        stopped = await speaker_ws.wait_for(
            lambda f: f["type"] == "sfu.stop_source" and f.get("call_cid") == cid, start=mark
        )
        assert stopped["reason"] == "blocked"
        await asyncio.sleep(0.5)  # packets already in flight
        before = await inbound_packets(subscriber.pc)
        await asyncio.sleep(QUIET_S)
        assert await inbound_packets(subscriber.pc) == before

        # Requests: the one filed before is cancelled and cannot be accepted; no new one.
        answer = await host.http.post(f"/v1{path}/permission-requests/{filed['id']}/accept")
        assert answer.status_code == 409, answer.text
        listed = await host.call("GET", f"{path}/permission-requests")
        assert {r["id"]: r["state"] for r in listed["requests"]}[filed["id"]] == ("cancelled")
        again = await speaker.http.post(
            f"/v1{path}/permission-requests", json={"permissions": ["send-video"]}
        )
        assert again.status_code == 403, again.text
        assert again.json()["error"]["details"]["reason"] == "blocked"

        # Grants: refused outright; a role change records the role but gives nothing.
        grant = await host.http.post(
            f"/v1{path}/user-permissions",
            json={"user_id": SPEAKER, "grant": ["send-video"]},
        )
        assert grant.status_code == 409, grant.text
        assert error_code(grant.json()) == "user_blocked"
        await host.call(
            "POST", f"{path}/members", {"update": [{"user_id": SPEAKER, "role": "host"}]}
        )
        read = await speaker.http.get(f"/v1{path}")
        assert read.status_code == 403, read.text
        join = await speaker.http.post(f"/v1{path}/join")
        assert join.status_code == 403, join.text
        assert error_code(join.json()) == "permission_denied"

        # Watching: the open socket hears no more of the call; a new watch is refused.
        mark = len(speaker_ws.frames)
        await listener.call("POST", f"{path}/leave")
        await host_ws.wait_for(
            lambda f: f["type"] == "call.participant_left" and f.get("call_cid") == cid
        )
        await asyncio.sleep(QUIET_S)
        leaked = [f for f in speaker_ws.frames[mark:] if str(f["type"]).startswith("call.")]
        assert leaked == [], leaked
        refused = await speaker_ws.watch(cid)
        assert refused["type"] == "error", refused
        assert refused["error"]["code"] == "permission_denied"

        # Media signalling: a fresh offer is refused, and the SFU keeps nothing for it.
        mark = len(speaker_ws.frames)
        await publisher.send({"type": "sfu.offer", "sdp": publisher.pc.localDescription.sdp})
        offered = await speaker_ws.wait_for(
            lambda f: f["type"] in ("error", "sfu.error", "sfu.answer"), start=mark
        )
        assert offered["type"] == "error", offered
        assert offered["error"]["code"] == "permission_denied"

        # Unblocking gives back what the member record says (now: host), nothing stale.
        await host.call("POST", f"{path}/unblock", {"user_id": SPEAKER})
        joined = await speaker.call("POST", f"{path}/join")
        assert "update-call-permissions" in joined["own_capabilities"]
        assert not [
            r
            for r in joined.get("pending_requests", [])
            if r["user_id"] == SPEAKER and r["state"] == "pending"
        ]
    finally:
        for client in clients:
            await client.close()
        for ws in sockets:
            await ws.close()
        for api in (host, speaker, listener):
            await api.aclose()
        server.stop()


async def test_a_blocked_user_who_never_joined_cannot_watch_or_signal(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url).start()
    call_id = f"blocked-{uuid.uuid4().hex[:12]}"
    cid, path = f"default:{call_id}", f"/calls/default/{call_id}"
    host, outsider = Api(server, HOST), Api(server, "oscar")
    ws = None
    try:
        await host.call("POST", path, {}, 201)
        await host.call("POST", f"{path}/block", {"user_id": "oscar"})
        ws = await Watcher(server, "oscar").open()
        refused = await ws.watch(cid)
        assert refused["type"] == "error" and refused["error"]["code"] == "permission_denied"
        mark = len(ws.frames)
        assert ws._ws is not None
        started = time.monotonic()
        await ws._ws.send('{"type": "sfu.offer", "call_cid": "' + cid + '", "sdp": "v=0"}')
        answer = await ws.wait_for(lambda f: f["type"] in ("error", "sfu.error"), start=mark)
        assert answer["type"] == "error" and answer["error"]["code"] == "permission_denied"
        assert time.monotonic() - started < 5
        # get-or-create of the existing call would read it: refused as well
        existing = await outsider.http.post(f"/v1{path}", json={})
        assert existing.status_code == 403, existing.text
        join = await outsider.http.post(f"/v1{path}/join")
        assert join.status_code == 403, join.text
    finally:
        if ws is not None:
            await ws.close()
        await host.aclose()
        await outsider.aclose()
        server.stop()

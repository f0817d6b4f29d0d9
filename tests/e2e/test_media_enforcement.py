"""The SFU inside `podium serve` follows roles and participants, and reports on `/metrics`.

Real server processes, real HTTP/WebSocket clients, aiortc peer connections on
127.0.0.1 (`MediaClient` from `clients`). Covers what the revoke test in `test_media`
does not: a role change stops a source with reason `role_changed`, a call's
media session is dropped once its last participant left while `/metrics`
counters keep their totals, `join` hands out the configured ICE servers
with per-user TURN credentials, and a user's media session belongs to one of
their connections until another one offers.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path

import pytest

from podium.services.ice import turn_credentials
from tests.e2e.clients import (
    Api,
    MediaClient,
    Watcher,
    hearing_everyone,
    inbound_packets,
    publishing,
)
from tests.server import ServerProcess

HOST, SPEAKER = "hana", "sami"


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


async def scrape(api: Api) -> str:
    """`/metrics` of `api`'s server, read with a server token."""
    headers = {"Authorization": f"Bearer {api.server.server_token()}"}
    response = await api.http.get("/metrics", headers=headers)
    assert response.status_code == 200
    return response.text


async def test_role_change_stops_the_source_and_idle_calls_are_dropped(
    tmp_path: Path, sqlite_url: str
) -> None:
    call_id = f"roles-{uuid.uuid4().hex[:12]}"
    cid = f"audio_room:{call_id}"
    path = f"/calls/audio_room/{call_id}"
    server = ServerProcess(
        tmp_path,
        sqlite_url,
        dev=True,
        extra_env={"PODIUM_MEDIA_LOOPBACK": "1", "PODIUM_METRICS_CALL_LABELS": "1"},
    ).start()
    host, speaker = Api(server, HOST), Api(server, SPEAKER)
    sockets: list[Watcher] = []
    clients: list[MediaClient] = []
    try:
        await host.call("POST", path, {"members": [{"user_id": SPEAKER, "role": "speaker"}]}, 201)
        await host.call("POST", f"{path}/go-live")
        await host.call("POST", f"{path}/join")
        joined = await speaker.call("POST", f"{path}/join")
        assert "send-audio" in joined["own_capabilities"]
        host_ws, speaker_ws = (
            await Watcher(server, HOST).open(),
            await Watcher(server, SPEAKER).open(),
        )
        sockets += [host_ws, speaker_ws]

        publisher = await publishing(speaker_ws, cid, clients)
        subscriber = await hearing_everyone(host_ws, cid, clients)

        flowing = await scrape(host)
        assert metric(flowing, "podium_sfu_packets_forwarded_total") > 0
        assert metric(flowing, "podium_sfu_bytes_forwarded_total") > 0
        assert metric(flowing, "podium_sfu_publishers", f'{{call_cid="{cid}"}}') == 1
        assert metric(flowing, "podium_sfu_subscribers", f'{{call_cid="{cid}"}}') == 1
        assert metric(flowing, "podium_sfu_participants", f'{{call_cid="{cid}"}}') == 2
        assert metric(flowing, "podium_sfu_calls") == 1

        # Demoted to a plain user: send-audio goes with the role.
        await host.call(
            "POST", f"{path}/members", {"update": [{"user_id": SPEAKER, "role": "user"}]}
        )
        stop = await publisher.expect("sfu.stop_source")
        assert (stop["source"], stop["reason"]) == ("microphone", "role_changed")
        await asyncio.sleep(0.3)  # packets already on their way
        before = await inbound_packets(subscriber.pc)
        await asyncio.sleep(0.5)
        assert await inbound_packets(subscriber.pc) == before, "still forwarded after demotion"
        stopped = await scrape(host)
        assert metric(stopped, "podium_sfu_packets_dropped_at_gate_total") > 0
        assert metric(stopped, "podium_sfu_publishers", f'{{call_cid="{cid}"}}') == 0
        forwarded = metric(stopped, "podium_sfu_packets_forwarded_total")

        # Both leave: the call's media session goes, its totals stay.
        await speaker.call("POST", f"{path}/leave")
        await host.call("POST", f"{path}/leave")
        deadline = time.monotonic() + 10
        while metric(idle := await scrape(host), "podium_sfu_calls") != 0:
            assert time.monotonic() < deadline, "media session of an empty call kept"
            await asyncio.sleep(0.1)
        assert f'call_cid="{cid}"' not in idle
        assert metric(idle, "podium_sfu_packets_forwarded_total") >= forwarded
    finally:
        for client in clients:
            await client.close()
        for ws in sockets:
            await ws.close()
        await host.aclose()
        await speaker.aclose()
        server.stop()


async def test_join_hands_out_ice_servers_with_turn_credentials(
    tmp_path: Path, sqlite_url: str
) -> None:
    servers = [
        {"urls": "stun:127.0.0.1:3478"},
        {"urls": ["turn:127.0.0.1:3478?transport=udp"]},
        {"urls": "turns:127.0.0.1:5349", "username": "fixed", "credential": "pw"},
    ]
    server = ServerProcess(
        tmp_path,
        sqlite_url,
        dev=True,
        extra_env={
            "PODIUM_ICE_SERVERS": json.dumps(servers),
            "PODIUM_TURN_SECRET": "turn-shared-secret",
            "PODIUM_TURN_TTL": "600",
        },
    ).start()
    host = Api(server, HOST)
    try:
        path = f"/calls/default/ice-{uuid.uuid4().hex[:12]}"
        await host.call("POST", path, {}, 201)
        started = int(time.time())
        media = (await host.call("POST", f"{path}/join"))["media"]
        stun, turn, fixed = media["ice_servers"]
        assert stun == {"urls": ["stun:127.0.0.1:3478"]}
        assert fixed == {"urls": ["turns:127.0.0.1:5349"], "username": "fixed", "credential": "pw"}
        assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
        expiry, user = turn["username"].split(":")
        assert user == HOST
        assert started + 600 <= int(expiry) <= int(time.time()) + 600
        assert turn["credential"] == turn_credentials("turn-shared-secret", HOST, int(expiry))[1]
    finally:
        await host.aclose()
        server.stop()


def test_bad_ice_configuration_stops_the_server_with_a_clear_message(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(
        tmp_path,
        sqlite_url,
        dev=True,
        extra_env={"PODIUM_ICE_SERVERS": json.dumps([{"urls": "turn:127.0.0.1:3478"}])},
    )
    with pytest.raises(RuntimeError, match="server exited with 2") as failed:
        server.start(timeout_s=10)
    assert "set PODIUM_TURN_SECRET" in str(failed.value)
    assert "Traceback" not in str(failed.value)


async def test_another_connection_of_the_user_takes_the_media_session_over(
    media_server: ServerProcess,
) -> None:
    """Two tabs of one user: frames go to the owner only; an offer from the other moves it."""
    call_id = f"tabs-{uuid.uuid4().hex[:12]}"
    cid = f"development:{call_id}"
    path = f"/calls/development/{call_id}"
    host = Api(media_server, HOST)
    sockets: list[Watcher] = []
    clients: list[MediaClient] = []
    try:
        await host.call("POST", path, {}, 201)
        await host.call("POST", f"{path}/join")
        first, second = (
            await Watcher(media_server, HOST).open(),
            await Watcher(media_server, HOST).open(),
        )
        sockets += [first, second]
        owner = await publishing(first, cid, clients)
        assert not [f for f in second.frames if str(f["type"]).startswith("sfu.")]

        # The other tab may not act on the session, only take it over with an offer.
        assert second._ws is not None
        await second._ws.send(
            json.dumps({"type": "sfu.publish", "source": "microphone", "call_cid": cid})
        )
        refused = await second.wait_for(lambda f: f["type"] == "error")
        assert refused["in_reply_to"] == "sfu.publish"
        assert refused["error"]["code"] == "permission_denied"

        taker = MediaClient(second, cid)
        clients.append(taker)
        taker.pc.addTransceiver("audio", direction="recvonly")
        await taker.connect()
        stop = await owner.expect("sfu.stop_source")
        assert (stop["source"], stop["reason"]) == ("microphone", "left")
        replaced = await owner.expect("sfu.error")
        assert replaced["code"] == "replaced"
        answers = [f for f in first.frames if f["type"] == "sfu.answer"]
        assert len(answers) == 1, "the old connection got the new connection's answer"

        # Closing the connection that no longer owns the session leaves it alone.
        await first.close()
        sockets.remove(first)
        await asyncio.sleep(0.3)
        await taker.send({"type": "sfu.subscribe", "user_ids": "all"})
        tracks = await taker.expect("sfu.tracks")
        assert tracks["tracks"] == []
    finally:
        for client in clients:
            await client.close()
        for ws in sockets:
            await ws.close()
        await host.aclose()

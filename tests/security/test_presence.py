"""Presence follows connections: a participant nobody sees for the grace period leaves.

Real `podium serve` processes with a 2 s grace (`PODIUM_PRESENCE_GRACE_S`; 30 s
by default). A participant whose last WebSocket closed leaves with
`call.participant_left` `{"reason": "disconnected"}`; one still connected stays;
after a crash and restart the participants who did not come back leave; a
connection on another node keeps a participant present; and the Python SDK
joins again by itself when it finds it was dropped while disconnected.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from podium.client import Client
from tests.e2e.clients import Api, Frame, Watcher
from tests.server import ServerProcess

GRACE_S = 2.0
#: The grace, the sweep interval and a margin for a loaded machine.
LEAVES_WITHIN_S = GRACE_S + 3.0
ENV = {"PODIUM_PRESENCE_GRACE_S": str(GRACE_S)}

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


def left(cid: str, user_id: str) -> Callable[[Frame], bool]:
    def matches(frame: Frame) -> bool:
        return (
            frame["type"] == "call.participant_left"
            and frame.get("call_cid") == cid
            and frame["participant"]["user_id"] == user_id
        )

    return matches


async def participants(api: Api, path: str) -> set[str]:
    state = await api.call("GET", path)
    return {p["user_id"] for p in state["participants"]}


def new_call() -> tuple[str, str]:
    call_id = f"presence-{uuid.uuid4().hex[:10]}"
    return f"default:{call_id}", f"/calls/default/{call_id}"


async def test_a_participant_without_connections_leaves_and_a_connected_one_stays(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url, extra_env=ENV).start()
    cid, path = new_call()
    host, gone, stays = Api(server, "host"), Api(server, "gone"), Api(server, "stays")
    sockets = [await Watcher(server, u).open() for u in ("host", "gone", "stays")]
    try:
        await host.call("POST", path, {}, expect=201)
        for api in (host, gone, stays):
            await api.call("POST", f"{path}/join")
        for ws in sockets:
            assert (await ws.watch(cid))["type"] == "watch.ok"
        host_ws, gone_ws, _ = sockets
        closed_at = time.monotonic()
        await gone_ws.close()
        frame = await host_ws.wait_for(left(cid, "gone"), within_s=LEAVES_WITHIN_S)
        waited = time.monotonic() - closed_at
        assert frame["reason"] == "disconnected"
        assert waited >= GRACE_S - 0.2, f"left after {waited:.1f} s, before the grace"
        # Connected for three graces and more: still there.
        await asyncio.sleep(GRACE_S * 2)
        assert await participants(host, path) == {"host", "stays"}
        assert not [f for f in host_ws.frames if left(cid, "stays")(f) or left(cid, "host")(f)]
        # Joining again is always possible.
        await gone.call("POST", f"{path}/join")
        assert "gone" in await participants(host, path)
    finally:
        for ws in sockets:
            await ws.close()
        for api in (host, gone, stays):
            await api.aclose()
        server.stop()


async def test_after_a_crash_those_who_do_not_come_back_leave(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url, extra_env=ENV).start()
    cid, path = new_call()
    apis = {u: Api(server, u) for u in ("host", "back", "away")}
    try:
        await apis["host"].call("POST", path, {}, expect=201)
        for api in apis.values():
            await api.call("POST", f"{path}/join")
        server.kill()
        await asyncio.sleep(GRACE_S + 0.5)  # longer than the grace, while the server is down
        server.start()
        host_ws, back_ws = Watcher(server, "host"), Watcher(server, "back")
        for ws in (host_ws, back_ws):
            await ws.open()
            assert (await ws.watch(cid))["type"] == "watch.ok"
        try:
            frame = await host_ws.wait_for(left(cid, "away"), within_s=GRACE_S + LEAVES_WITHIN_S)
            assert frame["reason"] == "disconnected"
            assert await participants(apis["host"], path) == {"host", "back"}
        finally:
            await host_ws.close()
            await back_ws.close()
    finally:
        for api in apis.values():
            await api.aclose()
        server.stop()


async def test_a_connection_on_another_node_keeps_the_participant(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    node_a = ServerProcess(tmp_path, pg_url, redis_url=redis_url, extra_env=ENV).start()
    node_b = ServerProcess(tmp_path, pg_url, redis_url=redis_url, extra_env=ENV).start()
    cid, path = new_call()
    host, roamer = Api(node_a, "host"), Api(node_a, "roamer")
    host_ws, roamer_ws = Watcher(node_a, "host"), Watcher(node_b, "roamer")
    try:
        await host.call("POST", path, {}, expect=201)
        await host.call("POST", f"{path}/join")
        await roamer.call("POST", f"{path}/join")
        for ws in (host_ws, roamer_ws):
            await ws.open()
            assert (await ws.watch(cid))["type"] == "watch.ok"
        await asyncio.sleep(GRACE_S * 3)
        assert await participants(host, path) == {"host", "roamer"}
        await roamer_ws.close()
        frame = await host_ws.wait_for(left(cid, "roamer"), within_s=LEAVES_WITHIN_S)
        assert frame["reason"] == "disconnected"
    finally:
        for ws in (host_ws, roamer_ws):
            await ws.close()
        for api in (host, roamer):
            await api.aclose()
        node_b.stop()
        node_a.stop()


async def test_the_sdk_joins_again_when_it_was_dropped_while_disconnected(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url, extra_env=ENV).start()
    cid, path = new_call()
    host, host_ws = Api(server, "host"), Watcher(server, "host")
    try:
        await host.call("POST", path, {}, expect=201)
        await host_ws.open()
        assert (await host_ws.watch(cid))["type"] == "watch.ok"
        # Reconnecting only after 4-6 s: longer than the grace.
        token = server.token("sdk", name="Sdk")
        async with Client(server.url, token, backoff_initial_s=5.0, backoff_max_s=5.0) as client:
            call = client.call("default", cid.split(":", 1)[1])
            await call.join()
            websocket = client.events.websocket
            assert websocket is not None
            await websocket.close()
            dropped = await host_ws.wait_for(left(cid, "sdk"), within_s=LEAVES_WITHIN_S)
            assert dropped["reason"] == "disconnected"
            start = host_ws.frames.index(dropped)
            back = await host_ws.wait_for(
                lambda f: (
                    f["type"] == "call.participant_joined" and f["participant"]["user_id"] == "sdk"
                ),
                start=start,
                within_s=15,
            )
            assert back["call_cid"] == cid
            assert "sdk" in await participants(host, path)
            deadline = time.monotonic() + 5
            while "sdk" not in call.state.participants:
                assert time.monotonic() < deadline, "the SDK's state does not show it back"
                await asyncio.sleep(0.05)
    finally:
        await host_ws.close()
        await host.aclose()
        server.stop()

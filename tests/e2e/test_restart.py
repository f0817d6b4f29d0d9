"""A server killed mid-flow (SIGKILL) loses nothing: requests, grants, revokes, the event log.

Runs on SQLite and on PostgreSQL. The second server is a new process on the same
database; clients reconnect and resume with `since`.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.e2e.clients import (
    Api,
    Watcher,
    assert_strictly_increasing,
    replay,
)
from tests.server import ServerProcess

HOST, LISTENER = "hana", "lior"


async def test_pending_request_grants_and_log_survive_sigkill(
    tmp_path: Path, database_url: str
) -> None:
    call_id = f"restart-{uuid.uuid4().hex[:12]}"
    cid = f"audio_room:{call_id}"
    path = f"/calls/audio_room/{call_id}"

    servers: list[ServerProcess] = []
    opened: list[Watcher] = []
    apis: list[Api] = []
    try:
        first = ServerProcess(tmp_path, database_url).start()
        servers.append(first)
        host, listener = Api(first, HOST), Api(first, LISTENER)
        apis += [host, listener]
        created = await host.call("POST", path, {}, expect=201)
        assert created["call"]["backstage"] is True
        host_ws = await Watcher(first, HOST).open()
        opened.append(host_ws)
        assert (await host_ws.watch(cid, since=0))["type"] == "watch.ok"
        await host.call("POST", f"{path}/go-live")

        listener_ws = await Watcher(first, LISTENER).open()
        opened.append(listener_ws)
        assert (await listener_ws.watch(cid, since=0))["type"] == "watch.ok"
        joined = await listener.call("POST", f"{path}/join")
        assert "send-audio" not in joined["own_capabilities"]
        asked = await listener.call(
            "POST", f"{path}/permission-requests", {"permissions": ["send-audio"]}, expect=201
        )
        request_id = asked["request"]["id"]
        assert asked["request"]["state"] == "pending"
        await host_ws.wait_for(
            lambda f: f["type"] == "call.permission_request" and f["request"]["id"] == request_id
        )

        # A grant and a revoke made before the crash (separate requests, separate events).
        after_grant = await host.call(
            "POST", f"{path}/user-permissions", {"user_id": LISTENER, "grant": ["send-video"]}
        )
        assert "send-video" in after_grant["own_capabilities"]
        after_revoke = await host.call(
            "POST", f"{path}/user-permissions", {"user_id": LISTENER, "revoke": ["create-call"]}
        )
        assert "create-call" not in after_revoke["own_capabilities"]
        expected_caps = set(after_revoke["own_capabilities"])
        await listener_ws.wait_for(
            lambda f: (
                f["type"] == "call.permissions_updated"
                and "create-call" not in f["own_capabilities"]
            )
        )
        # The revoke's member_updated is the last event both may see: wait for it on
        # both sockets, or the cursors taken below may be one event short.
        for ws in (host_ws, listener_ws):
            await ws.wait_for(
                lambda f: (
                    f["type"] == "call.member_updated"
                    and "create-call" in f["members"][0]["revokes"]
                )
            )
        host_before = host_ws.events(cid)
        listener_before = listener_ws.events(cid)
        host_last, listener_last = host_ws.last_seq(cid), listener_ws.last_seq(cid)
        assert host_last > 0 and listener_last > 0

        first.kill()
        for ws in opened:
            await ws.wait_closed()
        await _close_all(opened, apis)

        second = ServerProcess(tmp_path, database_url).start()
        servers.append(second)
        host, listener = Api(second, HOST), Api(second, LISTENER)
        apis += [host, listener]

        # Something happens before the host is back: it must be replayed to it.
        other = await listener.call(
            "POST", f"{path}/permission-requests", {"permissions": ["screenshare"]}, expect=201
        )
        other_id = other["request"]["id"]

        host_ws = await Watcher(second, HOST).open()
        opened.append(host_ws)
        assert (await host_ws.watch(cid, since=host_last))["type"] == "watch.ok"
        replayed = host_ws.events(cid)
        assert [f["type"] for f in replayed] == ["call.permission_request"]
        assert replayed[0]["request"]["id"] == other_id
        assert replayed[0]["seq"] > host_last

        state = await host.call("GET", path)
        assert state["call"]["live"] is True
        pending = {r["id"]: r for r in state["pending_requests"]}
        assert set(pending) == {request_id, other_id}
        assert pending[request_id]["permissions"] == ["send-audio"]
        assert pending[request_id]["user_id"] == LISTENER
        listed = await host.call("GET", f"{path}/permission-requests?state=pending")
        assert {r["id"] for r in listed["requests"]} == {request_id, other_id}

        # Grants and revokes made before the crash are still in force.
        mine = await listener.call("GET", path)
        assert set(mine["own_capabilities"]) == expected_caps
        assert "send-video" in mine["own_capabilities"]
        assert "create-call" not in mine["own_capabilities"]
        assert "send-audio" not in mine["own_capabilities"]
        assert {r["id"] for r in mine["pending_requests"]} == {request_id, other_id}
        member = next(m for m in mine["members"] if m["user_id"] == LISTENER)
        assert "send-video" in member["grants"]
        assert "create-call" in member["revokes"]

        # The listener resumes live before the answer, a second connection after it.
        listener_ws = await Watcher(second, LISTENER).open()
        opened.append(listener_ws)
        assert (await listener_ws.watch(cid, since=listener_last))["type"] == "watch.ok"

        accepted = await host.call("POST", f"{path}/permission-requests/{request_id}/accept")
        assert accepted["request"]["state"] == "accepted"
        assert accepted["request"]["resolved_by"] == HOST

        for ws in (listener_ws, host_ws):
            resolved = await ws.wait_for(
                lambda f: (
                    f["type"] == "call.permission_request_resolved"
                    and f["request"]["id"] == request_id
                )
            )
            assert resolved["request"]["state"] == "accepted"
            assert resolved["request"]["resolved_by"] == HOST
        updated = await listener_ws.wait_for(
            lambda f: (
                f["type"] == "call.permissions_updated" and "send-audio" in f["own_capabilities"]
            )
        )
        assert updated["user_id"] == LISTENER
        assert set(updated["own_capabilities"]) == expected_caps | {"send-audio"}

        late_ws = await Watcher(second, LISTENER).open()
        opened.append(late_ws)
        assert (await late_ws.watch(cid, since=listener_last))["type"] == "watch.ok"
        late_types = [
            f["type"] for f in late_ws.events(cid) if f["type"] != "call.audience_updated"
        ]
        assert late_types == [
            "call.permissions_updated",
            "call.member_updated",
            "call.permission_request_resolved",
        ], late_types
        assert late_ws.events(cid) == listener_ws.events(cid)

        mine = await listener.call("GET", path)
        assert set(mine["own_capabilities"]) == expected_caps | {"send-audio"}
        assert [r["id"] for r in mine["pending_requests"]] == [other_id]

        # The log survived: full replays cover what each saw, in order, without gaps.
        last_seq = (await host.call("GET", path))["seq"]
        host_all = await replay(second, HOST, cid)
        listener_all = await replay(second, LISTENER, cid)
        host_seqs = [f["seq"] for f in host_all]
        listener_seqs = [f["seq"] for f in listener_all]
        assert_strictly_increasing("host replay", host_seqs)
        assert_strictly_increasing("listener replay", listener_seqs)
        assert host_all[: len(host_before)] == host_before
        assert listener_all[: len(listener_before)] == listener_before
        assert sorted(set(host_seqs) | set(listener_seqs)) == list(range(1, last_seq + 1))
        # What the host may not see is exactly what was addressed to the listener alone.
        # (and the listener's own join: the audience's joins are not sent to everyone)
        hidden = [f for f in listener_all if f["seq"] not in set(host_seqs)]
        assert hidden[0]["type"] == "call.participant_joined"
        assert hidden[0]["participant"]["user_id"] == LISTENER
        assert all(f["type"] == "call.permissions_updated" for f in hidden[1:])
        assert [f["type"] for f in host_all if f["type"] != "call.audience_updated"] == [
            "call.created",
            "call.live_started",
            "call.permission_request",
            "call.member_added",  # grant send-video (before the kill)
            "call.participant_moved",  # send-video puts the listener on stage
            "call.member_updated",  # revoke create-call (before the kill)
            "call.permission_request",
            "call.member_updated",  # accept grants send-audio
            "call.permission_request_resolved",
        ]
        assert host_before + host_ws.events(cid) == host_all
    finally:
        await _close_all(opened, apis)
        for server in servers:
            server.stop()


async def _close_all(watchers: list[Watcher], apis: list[Api]) -> None:
    for ws in watchers:
        await ws.close()
    for api in apis:
        await api.aclose()
    watchers.clear()
    apis.clear()

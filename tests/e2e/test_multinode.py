"""Two `podium serve` processes sharing one PostgreSQL database and one Redis.

Whichever node an action goes through, every client on either node receives each
event it may see exactly once, in `seq` order. The Redis channel is shared with
any other test running at the same time; call ids are unique, so their events
only pass through.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.clients import (
    Api,
    Frame,
    Watcher,
    assert_strictly_increasing,
    replay,
)
from tests.server import ServerProcess

HOST = "host"
LISTENERS = ["l0", "l1", "l2", "l3"]
ROUNDS = 40
BURSTS = 6


@dataclass
class Cluster:
    a: ServerProcess
    b: ServerProcess

    @property
    def nodes(self) -> tuple[ServerProcess, ServerProcess]:
        return self.a, self.b


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Cluster]:
    a = ServerProcess(tmp_path, pg_url, redis_url=redis_url).start()
    try:
        b = ServerProcess(tmp_path, pg_url, redis_url=redis_url).start()
        try:
            yield Cluster(a, b)
        finally:
            b.stop()
    finally:
        a.stop()


def _is_request(request_id: str) -> Callable[[Frame], bool]:
    return lambda f: f["type"] == "call.permission_request" and f["request"]["id"] == request_id


async def test_request_on_one_node_reaches_moderator_on_the_other(cluster: Cluster) -> None:
    call_id = f"mn-{uuid.uuid4().hex[:12]}"
    cid, path = f"audio_room:{call_id}", f"/calls/audio_room/{call_id}"
    host_b, listener_a = Api(cluster.b, HOST), Api(cluster.a, "lena")
    host_ws = await Watcher(cluster.b, HOST).open()
    listener_ws = await Watcher(cluster.a, "lena").open()
    try:
        await host_b.call("POST", path, {}, expect=201)
        await host_b.call("POST", f"{path}/go-live")
        assert (await host_ws.watch(cid, since=0))["type"] == "watch.ok"
        assert (await listener_ws.watch(cid, since=0))["type"] == "watch.ok"
        await listener_a.call("POST", f"{path}/join")

        asked = await listener_a.call(
            "POST", f"{path}/permission-requests", {"permissions": ["send-audio"]}, expect=201
        )
        request_id = asked["request"]["id"]
        seen = await host_ws.wait_for(_is_request(request_id))
        assert seen["user"]["id"] == "lena"
        assert seen["request"]["permissions"] == ["send-audio"]

        await host_b.call("POST", f"{path}/permission-requests/{request_id}/accept")
        updated = await listener_ws.wait_for(lambda f: f["type"] == "call.permissions_updated")
        assert updated["user_id"] == "lena"
        assert "send-audio" in updated["own_capabilities"]
        resolved = await listener_ws.wait_for(
            lambda f: f["type"] == "call.permission_request_resolved"
        )
        assert resolved["request"]["state"] == "accepted"
        assert resolved["request"]["resolved_by"] == HOST
        assert updated["seq"] < resolved["seq"]  # capabilities first, then the resolution
        # The listener never hears of the request itself (only moderators do).
        assert "call.permission_request" not in [f["type"] for f in listener_ws.events(cid)]
        for ws in (host_ws, listener_ws):
            assert_strictly_increasing(ws.label, ws.seqs(cid))
    finally:
        for ws in (host_ws, listener_ws):
            await ws.close()
        for api in (host_b, listener_a):
            await api.aclose()


async def test_no_event_lost_or_duplicated_across_nodes_under_load(cluster: Cluster) -> None:
    call_id = f"mn-stress-{uuid.uuid4().hex[:12]}"
    cid, path = f"audio_room:{call_id}", f"/calls/audio_room/{call_id}"
    nodes = cluster.nodes
    hosts = [Api(node, HOST) for node in nodes]
    listeners = {user: [Api(node, user) for node in nodes] for user in LISTENERS}
    apis = [*hosts, *(api for pair in listeners.values() for api in pair)]
    watchers: dict[str, list[Watcher]] = {HOST: [], **{u: [] for u in LISTENERS}}
    try:
        await hosts[0].call("POST", path, {}, expect=201)
        # The host watches on both nodes; l0, l1 on one node each; l2, l3 on both.
        placement = {HOST: [0, 1], "l0": [0], "l1": [1], "l2": [0, 1], "l3": [1, 0]}
        for user, where in placement.items():
            for index in where:
                ws = await Watcher(nodes[index], user).open()
                watchers[user].append(ws)
                assert (await ws.watch(cid, since=0))["type"] == "watch.ok"
        await hosts[1].call("POST", f"{path}/go-live")
        for i, user in enumerate(LISTENERS):
            await listeners[user][i % 2].call("POST", f"{path}/join")

        # Rounds alternating the node each step goes through, waiting for cross-node delivery.
        for r in range(ROUNDS):
            user = LISTENERS[r % len(LISTENERS)]
            via, other = r % 2, (r + 1) % 2
            asked = await listeners[user][via].call(
                "POST", f"{path}/permission-requests", {"permissions": ["send-audio"]}, expect=201
            )
            request_id = asked["request"]["id"]
            await watchers[HOST][other].wait_for(_is_request(request_id))
            accepted = await hosts[other].call(
                "POST", f"{path}/permission-requests/{request_id}/accept"
            )
            assert accepted["request"]["state"] == "accepted"
            for ws in watchers[user]:
                await ws.wait_for(
                    lambda f, rid=request_id: (
                        f["type"] == "call.permission_request_resolved"
                        and f["request"]["id"] == rid
                    )
                )
            revoked = await hosts[via].call(
                "POST", f"{path}/user-permissions", {"user_id": user, "revoke": ["send-audio"]}
            )
            assert "send-audio" not in revoked["own_capabilities"]

        # Bursts: every listener asks at once through both nodes, the host answers each
        # through both nodes at once, then revokes at once (and mutes, a watcher event).
        for burst in range(BURSTS):
            asked_all = await asyncio.gather(
                *(
                    listeners[user][(i + burst) % 2].call(
                        "POST",
                        f"{path}/permission-requests",
                        {"permissions": ["send-audio"]},
                        expect=201,
                    )
                    for i, user in enumerate(LISTENERS)
                )
            )
            ids = [a["request"]["id"] for a in asked_all]
            # Each request is answered through both nodes at once: exactly one answer wins.
            answers = await asyncio.gather(
                *(
                    host.call("POST", f"{path}/permission-requests/{rid}/accept", expect=(200, 409))
                    for rid in ids
                    for host in hosts
                )
            )
            for rid, pair in zip(ids, zip(answers[::2], answers[1::2], strict=True), strict=True):
                won = [a for a in pair if "request" in a]
                lost = [a for a in pair if "error" in a]
                assert len(won) == 1 and len(lost) == 1, (rid, pair)
                assert won[0]["request"]["state"] == "accepted"
                assert lost[0]["error"]["code"] == "request_already_resolved"
            await asyncio.gather(
                *(
                    hosts[(i + burst) % 2].call(
                        "POST",
                        f"{path}/user-permissions",
                        {"user_id": user, "revoke": ["send-audio"]},
                    )
                    for i, user in enumerate(LISTENERS)
                ),
                *(
                    hosts[i % 2].call("POST", f"{path}/mute", {"user_ids": [user]})
                    for i, user in enumerate(LISTENERS)
                ),
            )

        # A final event every watcher may see: once it has arrived on a connection,
        # its node has handled every earlier event of the call. (First the last
        # coalesced audience count, which may follow the revokes by up to ~1.2 s.)
        await asyncio.sleep(1.5)
        await hosts[0].call("POST", f"{path}/mute", {"user_ids": [HOST]})
        last_seq = (await hosts[1].call("GET", path))["seq"]
        for conns in watchers.values():
            for ws in conns:
                await ws.wait_seqs(cid, {last_seq}, within_s=15)
                assert ws.last_seq(cid) == last_seq, f"{ws.label} stopped at {ws.types()[-5:]}"

        visible: dict[str, list[Frame]] = {}
        for user in watchers:
            from_a, from_b = await asyncio.gather(
                replay(nodes[0], user, cid), replay(nodes[1], user, cid)
            )
            assert from_a == from_b, f"replays of {user} differ between nodes"
            visible[user] = from_a
            assert_strictly_increasing(f"{user} replay", [f["seq"] for f in from_a])

        everything = set().union(*({f["seq"] for f in v} for v in visible.values()))
        assert everything == set(range(1, last_seq + 1)), "some events reached no one"
        for user, conns in watchers.items():
            for ws in conns:
                got = ws.events(cid)
                seqs = [f["seq"] for f in got]
                assert_strictly_increasing(ws.label, seqs)
                assert len(seqs) == len(set(seqs)), f"{ws.label} got duplicates"
                expected = {f["seq"] for f in visible[user]}
                missing, extra = expected - set(seqs), set(seqs) - expected
                assert not missing, f"{ws.label} lost {sorted(missing)}"
                assert not extra, f"{ws.label} got events it may not see: {sorted(extra)}"
                assert got == visible[user]

        host_types = [f["type"] for f in visible[HOST]]
        total_requests = ROUNDS + BURSTS * len(LISTENERS)
        assert host_types.count("call.permission_request") == total_requests
        assert host_types.count("call.permission_request_resolved") == total_requests
        assert "call.permissions_updated" not in host_types
        for user in LISTENERS:
            types = [f["type"] for f in visible[user]]
            assert "call.permission_request" not in types
            mine = ROUNDS // len(LISTENERS) + BURSTS
            assert types.count("call.permission_request_resolved") == mine
            assert types.count("call.permissions_updated") == 2 * mine
            updates = [f for f in visible[user] if f["type"] == "call.permissions_updated"]
            assert all(f["user_id"] == user for f in updates)
    finally:
        for conns in watchers.values():
            for ws in conns:
                await ws.close()
        for api in apis:
            await api.aclose()


async def test_audience_counts_are_coalesced_and_exact_across_nodes(cluster: Cluster) -> None:
    """Joins and leaves through both nodes at once: one count a second at most, the right one."""
    call_id = f"mn-aud-{uuid.uuid4().hex[:12]}"
    cid, path = f"audio_room:{call_id}", f"/calls/audio_room/{call_id}"
    nodes = cluster.nodes
    host, host_b = Api(nodes[0], HOST), Api(nodes[1], HOST)
    users = [f"aud{i}" for i in range(30)]
    apis = {u: Api(nodes[i % 2], u) for i, u in enumerate(users)}
    watchers = [await Watcher(nodes[0], HOST).open(), await Watcher(nodes[1], "aud0").open()]
    try:
        await host.call("POST", path, {}, expect=201)
        await host.call("POST", f"{path}/go-live")
        for ws in watchers:
            assert (await ws.watch(cid, since=0))["type"] == "watch.ok"
        await asyncio.gather(*(apis[u].call("POST", f"{path}/join") for u in users))
        await asyncio.gather(*(apis[u].call("POST", f"{path}/leave") for u in users[20:]))
        for ws in watchers:
            await ws.wait_for(
                lambda f: f["type"] == "call.audience_updated" and f["audience_count"] == 20,
                within_s=10,
            )
        await asyncio.sleep(1.5)
        counts = [
            [f for f in ws.events(cid) if f["type"] == "call.audience_updated"] for ws in watchers
        ]
        assert counts[0] == counts[1], "both nodes delivered the same counts"
        assert counts[0][-1]["audience_count"] == 20
        times = [datetime.fromisoformat(f["created_at"]) for f in counts[0]]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert all(gap >= 0.99 for gap in gaps), gaps
        # no listener heard another's join: the one on node B heard only its own
        joined = [f for f in watchers[1].events(cid) if f["type"] == "call.participant_joined"]
        assert [f["participant"]["user_id"] for f in joined] == ["aud0"]
        assert (await host_b.call("GET", path))["audience_count"] == 20
    finally:
        for ws in watchers:
            await ws.close()
        for api in (host, host_b, *apis.values()):
            await api.aclose()

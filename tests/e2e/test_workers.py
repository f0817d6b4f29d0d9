"""`podium serve --workers 2` on PostgreSQL and Redis: one server, two processes.

A real supervisor process and its two workers sharing the port (SO_REUSEPORT);
each answers with `X-Podium-Worker`, which tells where a WebSocket (its
handshake response) or an HTTP request (each on a fresh connection, so the
kernel picks the worker again) landed. Events reach every watcher on both
workers once, in order; media flows between a publisher and a subscriber on
different workers, the non-media worker relaying `sfu.*` to the SFU of worker
0; a killed worker is restarted and serves again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.clients import (
    Api,
    MediaClient,
    Watcher,
    assert_strictly_increasing,
    hearing_everyone,
    inbound_packets,
    publishing,
    replay,
)
from tests.server import ServerProcess, free_port

HOST, SPEAKERS, LISTENERS = "host", ["s0", "s1"], ["l0", "l1", "l2"]
ROUNDS = 12
#: Fresh connections tried before concluding the kernel never picks a worker.
ATTEMPTS = 60
HEADER = "X-Podium-Worker"


@pytest.fixture
def server(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path, pg_url, redis_url=redis_url, workers=2, extra_env={"PODIUM_MEDIA_LOOPBACK": "1"}
    ).start()
    try:
        _wait_for_workers(proc, {0, 1})
        yield proc
    finally:
        proc.stop()


def _wait_for_workers(server: ServerProcess, expected: set[int], within_s: float = 30) -> None:
    """Until `/healthz` has been answered by every worker in `expected` (fresh connections)."""
    seen: set[int] = set()
    deadline = time.monotonic() + within_s
    while not expected <= seen:
        assert time.monotonic() < deadline, f"only workers {seen} answered: {server.log()}"
        try:
            response = httpx.get(f"{server.url}/healthz", timeout=2, trust_env=False)
            seen.add(int(response.headers[HEADER]))
        except httpx.HTTPError:
            time.sleep(0.1)


def worker_of(ws: Watcher) -> int:
    assert ws._ws is not None and ws._ws.response is not None
    return int(ws._ws.response.headers[HEADER])


async def watcher_on(server: ServerProcess, user: str, worker: int) -> Watcher:
    """A WebSocket of `user` that the kernel gave to `worker` (others opened on the way close)."""
    for _ in range(ATTEMPTS):
        ws = await Watcher(server, user).open()
        if worker_of(ws) == worker:
            return ws
        await ws.close()
    raise AssertionError(f"no WebSocket reached worker {worker} in {ATTEMPTS} tries")


class FreshApi(Api):
    """An `Api` opening a new connection per request, so each may land on either worker."""

    def __init__(self, server: ServerProcess, user_id: str) -> None:
        super().__init__(server, user_id)
        self.http.headers["Connection"] = "close"
        self.workers: list[int] = []

    async def call(
        self, method: str, path: str, body: Any = None, expect: int | tuple[int, ...] = 200
    ) -> Any:
        response = await self.http.request(method, f"/v1{path}", json=body)
        allowed = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in allowed, f"{method} {path}: {response.text}"
        self.workers.append(int(response.headers[HEADER]))
        return response.json()


@pytest.fixture
async def apis(server: ServerProcess) -> AsyncIterator[dict[str, FreshApi]]:
    users = [HOST, *SPEAKERS, *LISTENERS]
    made = {user: FreshApi(server, user) for user in users}
    try:
        yield made
    finally:
        for api in made.values():
            await api.aclose()


async def test_every_watcher_on_both_workers_gets_each_event_once_in_order(
    server: ServerProcess, apis: dict[str, FreshApi]
) -> None:
    call_id = f"wk-{uuid.uuid4().hex[:12]}"
    cid, path = f"audio_room:{call_id}", f"/calls/audio_room/{call_id}"
    host = apis[HOST]
    members = [{"user_id": s, "role": "speaker"} for s in SPEAKERS]
    await host.call("POST", path, {"members": members}, expect=201)
    watchers: list[Watcher] = []
    try:
        # The host and every listener watch from both workers.
        for user in (HOST, *LISTENERS):
            for worker in (0, 1):
                ws = await watcher_on(server, user, worker)
                watchers.append(ws)
                assert (await ws.watch(cid, since=0))["type"] == "watch.ok"
        await host.call("POST", f"{path}/go-live")
        for user in (HOST, *SPEAKERS, *LISTENERS):
            await apis[user].call("POST", f"{path}/join")
        for r in range(ROUNDS):
            user = LISTENERS[r % len(LISTENERS)]
            asked = await apis[user].call(
                "POST", f"{path}/permission-requests", {"permissions": ["send-audio"]}, expect=201
            )
            request_id = asked["request"]["id"]
            await host.call("POST", f"{path}/permission-requests/{request_id}/accept")
            revoked = await host.call(
                "POST", f"{path}/user-permissions", {"user_id": user, "revoke": ["send-audio"]}
            )
            assert "send-audio" not in revoked["own_capabilities"]
        # A last event every watcher may see: once it arrived, so did everything before it.
        await host.call("POST", f"{path}/mute", {"user_ids": [HOST]})
        last_seq = (await host.call("GET", path))["seq"]
        for ws in watchers:
            await ws.wait_seqs(cid, {last_seq}, within_s=20)

        handled = [w for api in apis.values() for w in api.workers]
        assert {0, 1} <= set(handled), f"every change went through one worker: {handled}"
        visible = {user: await replay(server, user, cid) for user in (HOST, *LISTENERS)}
        everything = set().union(*({f["seq"] for f in v} for v in visible.values()))
        assert everything == set(range(1, last_seq + 1)), "some events reached no one"
        for ws in watchers:
            got = [(f["seq"], f["type"]) for f in ws.events(cid)]
            label = f"{ws.label} on worker {worker_of(ws)}"
            assert_strictly_increasing(label, [seq for seq, _ in got])
            assert got == [(f["seq"], f["type"]) for f in visible[ws.user_id]], label
        host_types = [f["type"] for f in visible[HOST]]
        assert host_types.count("call.permission_request") == ROUNDS
        assert host_types.count("call.permission_request_resolved") == ROUNDS
    finally:
        for ws in watchers:
            await ws.close()


async def _media_across(
    server: ServerProcess, apis: dict[str, FreshApi], publisher_on: int, subscriber_on: int
) -> None:
    """A speaker publishing via worker `publisher_on` is heard via `subscriber_on` until revoked."""
    call_id = f"wk-media-{uuid.uuid4().hex[:12]}"
    cid, path = f"audio_room:{call_id}", f"/calls/audio_room/{call_id}"
    host, speaker = apis[HOST], apis[SPEAKERS[0]]
    members = [{"user_id": SPEAKERS[0], "role": "speaker"}]
    await host.call("POST", path, {"members": members}, expect=201)
    await host.call("POST", f"{path}/go-live")
    await host.call("POST", f"{path}/join")
    await speaker.call("POST", f"{path}/join")
    sockets: list[Watcher] = []
    clients: list[MediaClient] = []
    try:
        speaker_ws = await watcher_on(server, SPEAKERS[0], publisher_on)
        host_ws = await watcher_on(server, HOST, subscriber_on)
        sockets += [speaker_ws, host_ws]
        publisher = await publishing(speaker_ws, cid, clients)
        subscriber = await hearing_everyone(host_ws, cid, clients)

        await host.call(
            "POST", f"{path}/user-permissions", {"user_id": SPEAKERS[0], "revoke": ["send-audio"]}
        )
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
    finally:
        for client in clients:
            await client.close()
        for ws in sockets:
            await ws.close()


async def test_media_flows_between_workers_and_a_revoke_stops_it(
    server: ServerProcess, apis: dict[str, FreshApi]
) -> None:
    await _media_across(server, apis, publisher_on=1, subscriber_on=0)
    await _media_across(server, apis, publisher_on=0, subscriber_on=1)


async def test_a_relayed_refusal_is_the_error_frame_a_local_sfu_sends(
    server: ServerProcess, apis: dict[str, FreshApi]
) -> None:
    """`sfu.*` from a non-participant: the same `error` frame on either worker."""
    call_id = f"wk-refused-{uuid.uuid4().hex[:12]}"
    cid, path = f"audio_room:{call_id}", f"/calls/audio_room/{call_id}"
    await apis[HOST].call("POST", path, {}, expect=201)
    frames = []
    for worker in (0, 1):
        ws = await watcher_on(server, LISTENERS[0], worker)
        try:
            assert ws._ws is not None
            await ws._ws.send(json.dumps({"type": "sfu.offer", "sdp": "v=0", "call_cid": cid}))
            frames.append(await ws.wait_for(lambda f: f["type"] == "error"))
        finally:
            await ws.close()
    assert frames[0] == frames[1]
    assert frames[0]["call_cid"] == cid and frames[0]["in_reply_to"] == "sfu.offer"
    assert frames[0]["error"]["code"] == "permission_denied"


def _workers_of(supervisor: int) -> dict[int, int]:
    """Worker index -> pid of the supervisor's live children, read from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) != supervisor or fields[0] == "Z":
            continue
        for item in environ:
            if item.startswith(b"PODIUM_WORKER_SLOT="):
                found[int(item.split(b"=", 1)[1].split(b"/")[0])] = int(entry)
    return found


async def _restarted(server: ServerProcess, index: int, old_pid: int) -> int:
    assert server.proc is not None
    deadline = time.monotonic() + 20
    while (pid := _workers_of(server.proc.pid).get(index)) in (None, old_pid):
        assert time.monotonic() < deadline, f"worker {index} not restarted: {server.log()}"
        await asyncio.sleep(0.1)
    assert pid is not None
    await asyncio.to_thread(_wait_for_workers, server, {index})
    return pid


async def test_killed_workers_are_restarted_and_serve_again(
    server: ServerProcess, apis: dict[str, FreshApi]
) -> None:
    assert server.proc is not None
    pids = _workers_of(server.proc.pid)
    assert sorted(pids) == [0, 1], pids
    for index in (1, 0):
        os.kill(pids[index], signal.SIGKILL)
        pids[index] = await _restarted(server, index, pids[index])
        assert f"worker {index} (pid" in server.log()
        ws = await watcher_on(server, HOST, index)
        try:
            call_id = f"wk-again-{index}-{uuid.uuid4().hex[:8]}"
            await apis[HOST].call("POST", f"/calls/audio_room/{call_id}", {}, expect=201)
            ok = await ws.watch(f"audio_room:{call_id}", since=0)
            assert ok["type"] == "watch.ok"
        finally:
            await ws.close()
    # The restarted media worker serves the relay of the other worker too.
    await _media_across(server, apis, publisher_on=1, subscriber_on=0)
    assert server.proc.poll() is None, "the supervisor exited"


def test_the_metrics_port_is_served_by_the_media_worker(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    metrics_port = free_port()
    proc = ServerProcess(
        tmp_path,
        pg_url,
        redis_url=redis_url,
        workers=2,
        extra_env={"PODIUM_METRICS_PORT": str(metrics_port)},
    ).start()
    try:
        _wait_for_workers(proc, {0, 1})
        for _ in range(5):
            response = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", trust_env=False)
            assert response.status_code == 200
            assert "podium_sfu_packets_forwarded_total" in response.text
    finally:
        proc.stop()


def _gone(pids: list[int], within_s: float = 15) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.1)
    return False


def test_a_signal_drains_every_worker_and_the_supervisor_exits_0(server: ServerProcess) -> None:
    """Ctrl-C reaches the supervisor only (workers have their own session); it forwards."""
    assert server.proc is not None
    pids = list(_workers_of(server.proc.pid).values())
    assert len(pids) == 2
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=15) == 0, server.log()
    assert _gone(pids), f"workers outlived the supervisor: {pids}"


def test_workers_end_when_their_supervisor_is_killed(server: ServerProcess) -> None:
    assert server.proc is not None
    pids = list(_workers_of(server.proc.pid).values())
    server.kill()
    assert _gone(pids), f"workers outlived a killed supervisor: {pids}"

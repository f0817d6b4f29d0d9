"""MediaService keeps one record per call, and nothing of a call once it ended or emptied.

In-process: a real SQLite store, the in-process bus, a real `EventHub` and
`MediaService`, and aiortc offers from receive-only clients. The service is
observed through `calls` (one record per call id) and the records'
reachability: once a call ended, or its last media session closed, no object
of its media is kept alive by the service, the hub or the bus.
"""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from podium.bus.memory import InProcessBus
from podium.services.calls import CallsService
from podium.services.context import Runtime
from podium.services.delivery import EventHub
from podium.services.identity import Identity
from podium.services.media import MediaService
from podium.store.sql import SqlStore
from tests.sfu.test_call import bounded, eventually

HOST = Identity("host", name="Host")
USERS = [Identity(f"user{i}") for i in range(2)]
CALLS = 4


@dataclass(eq=False)
class Socket:
    """Stands in for a client's WebSocket: keeps what the hub sends it."""

    identity: Identity
    id: str
    last_seen: float = 0.0
    frames: list[dict[str, Any]] = field(default_factory=list)

    def send(self, text: str, *, bulk: bool = False) -> None:
        self.frames.append(json.loads(text))

    def close(self, code: int, reason: str) -> None:
        pass


@dataclass
class Stack:
    runtime: Runtime
    hub: EventHub
    media: MediaService
    calls: CallsService


@pytest.fixture
async def stack(sqlite_url: str) -> AsyncIterator[Stack]:
    store = SqlStore(sqlite_url)
    await store.open()
    bus = InProcessBus()
    await bus.start()
    runtime = Runtime(store, bus)
    hub = EventHub(store, bus)
    await hub.start()
    media = MediaService(runtime, hub, loopback_only=True)
    await media.start()
    try:
        yield Stack(runtime, hub, media, CallsService(runtime))
    finally:
        await media.close()
        await hub.close()
        await bus.close()
        await store.close()


async def offer(stack: Stack, socket: Socket, cid: str, peers: list[RTCPeerConnection]) -> None:
    """A receive-only offer from `socket`'s user, answered by the service (kept in `peers`)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peers.append(pc)
    pc.addTransceiver("audio", direction="recvonly")
    await bounded(pc.setLocalDescription(await pc.createOffer()))
    message = {"type": "sfu.offer", "call_cid": cid, "sdp": pc.localDescription.sdp}
    await stack.media.handle(socket.identity, socket.id, message)

    def answers() -> list[dict[str, Any]]:
        return [f for f in socket.frames if f["type"] == "sfu.answer" and f["call_cid"] == cid]

    await eventually(lambda: bool(answers()))
    await bounded(pc.setRemoteDescription(RTCSessionDescription(answers()[0]["sdp"], "answer")))


def holders(stack: Stack) -> dict[str, list[str]]:
    """Per call, the users whose session owner and identity the call's record keeps."""
    kept = {}
    for cid, media in stack.media.calls.items():
        assert sorted(media.owners) == sorted(media.identities)
        kept[cid] = sorted(media.owners)
    return kept


async def test_ended_and_emptied_calls_leave_nothing_behind(stack: Stack) -> None:
    cids = [f"default:media-{n}" for n in range(CALLS)]
    sockets = {user.user_id: Socket(user, f"conn-{user.user_id}") for user in USERS}
    for socket in sockets.values():
        stack.hub.connect(socket)
    peers: list[RTCPeerConnection] = []
    try:
        for cid in cids:
            await stack.calls.get_or_create(HOST, "default", cid.split(":")[1], [], {})
            for user in USERS:
                await stack.calls.join(user, cid)
                await offer(stack, sockets[user.user_id], cid, peers)
        assert sorted(stack.media.calls) == cids
        records = {cid: weakref.ref(stack.media.calls[cid]) for cid in cids}
        sfu_calls = {cid: weakref.ref(stack.media.calls[cid].sfu) for cid in cids}
        assert all(
            sorted(m.sfu.participants) == [u.user_id for u in USERS]
            for m in stack.media.calls.values()
        )
        assert holders(stack) == dict.fromkeys(cids, sorted(sockets))

        # Ending half the calls drops them whole; the others keep what they had.
        ended, open_ = cids[: CALLS // 2], cids[CALLS // 2 :]
        for cid in ended:
            await stack.calls.end(HOST, cid)
        await eventually(lambda: sorted(stack.media.calls) == open_)
        assert holders(stack) == dict.fromkeys(open_, sorted(sockets))

        # A closed connection ends its sessions; a call nobody has media in is dropped.
        for socket in sockets.values():
            await stack.media.connection_closed(socket.identity.user_id, socket.id)
            stack.hub.disconnect(socket)
        assert stack.media.calls == {}
        assert stack.hub.connection_count == 0
    finally:
        for pc in peers:
            await bounded(pc.close())

    def alive() -> list[str]:
        gc.collect()
        return [cid for cid in cids if records[cid]() is not None or sfu_calls[cid]() is not None]

    # aiortc finishes closing a peer connection in tasks of its own: give them a moment.
    for _ in range(50):
        if not alive():
            break
        await asyncio.sleep(0.1)
    assert alive() == [], f"media of {alive()} is still referenced"


async def test_a_refused_offer_keeps_nothing(stack: Stack) -> None:
    socket = Socket(USERS[0], "conn-refused")
    stack.hub.connect(socket)
    await stack.calls.get_or_create(HOST, "default", "not-joined", [], {})
    for cid in ("default:not-joined", "default:does-not-exist"):
        with pytest.raises(Exception) as refused:
            await stack.media.handle(
                socket.identity, socket.id, {"type": "sfu.offer", "call_cid": cid, "sdp": "v=0"}
            )
        assert getattr(refused.value, "code", None) in ("permission_denied", "call_not_found")
    assert stack.media.calls == {}

"""The media relay: a worker without an SFU reaches the media worker's SFU through Redis.

In-process: one real SQLite store and in-process bus shared by two "workers"
(a `MediaWorker` with its `EventHub`, a `MediaRelay` with its own), each
with its relay link on the real Redis, under a group of its own per test. The
relayed connections are `Socket`s registered in the relay's hub, as ws.py
registers WebSockets. Answers, errors and closings are observed on both sides.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from redis.asyncio import Redis

from podium import rtc
from podium.bus.memory import InProcessBus
from podium.config import WorkerSlot
from podium.core.errors import (
    PermissionDenied,
    PodiumError,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from podium.services import media_relay
from podium.services.calls import CallsService
from podium.services.context import Runtime
from podium.services.delivery import EventHub
from podium.services.identity import Identity
from podium.services.media_relay import MediaRelay, MediaWorker, rebuild_error
from podium.store.sql import SqlStore
from tests.services.test_media import Socket
from tests.sfu.test_call import bounded, eventually

SECRET = "relay-test-secret-0123456789abcdef0123456789"
HOST = Identity("host", name="Host")
USER = Identity("lena", name="Lena", role="speaker", token_id="t-1", expires_at=2_000_000_000)


@dataclass
class Workers:
    calls: CallsService
    media_hub: EventHub
    media: MediaWorker
    relay_hub: EventHub
    relay: MediaRelay
    group: str


@pytest.fixture
async def workers(sqlite_url: str, redis_url: str) -> AsyncIterator[Workers]:
    store = SqlStore(sqlite_url)
    await store.open()
    bus = InProcessBus()
    await bus.start()
    runtime = Runtime(store, bus)
    group = uuid.uuid4().hex[:12]
    media_hub, relay_hub = EventHub(store, bus), EventHub(store, bus)
    link = {"redis_url": redis_url, "secret": SECRET}
    media = MediaWorker(
        runtime, media_hub, **link, slot=WorkerSlot(0, 2, group), loopback_only=True
    )
    relay = MediaRelay(runtime, relay_hub, **link, slot=WorkerSlot(1, 2, group))
    for part in (media_hub, relay_hub, media, relay):
        await part.start()
    try:
        yield Workers(CallsService(runtime), media_hub, media, relay_hub, relay, group)
    finally:
        for part in (relay, media, relay_hub, media_hub):
            await part.close()
        await bus.close()
        await store.close()


async def _offer(workers: Workers, socket: Socket, cid: str, pc: RTCPeerConnection) -> None:
    pc.addTransceiver("audio", direction="recvonly")
    await bounded(pc.setLocalDescription(await pc.createOffer()))
    message = {"type": "sfu.offer", "call_cid": cid, "sdp": pc.localDescription.sdp}
    await workers.relay.handle(socket.identity, socket.id, message)


def test_identity_round_trips_with_its_token_fields() -> None:
    again = Identity.from_dict(USER.to_dict())
    assert again == USER
    assert (again.token_id, again.expires_at) == ("t-1", 2_000_000_000)
    assert Identity.from_dict(HOST.to_dict()) == HOST
    server = Identity.server_identity(token_id="s-1")
    assert Identity.from_dict(server.to_dict()).server is True


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"user_id": 7, "server": False},
        {"user_id": "u", "server": "no"},
        {"user_id": "u", "server": False, "role": 1},
        {"user_id": "u", "server": False, "expires_at": True},
    ],
)
def test_identity_from_a_wrong_dict_is_refused(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Identity.from_dict(broken)


@pytest.mark.parametrize("cls", [PermissionDenied, ValidationFailed, RateLimited, PodiumError])
def test_a_relayed_error_is_raised_as_its_own_class(cls: type[PodiumError]) -> None:
    error = rebuild_error({"code": cls.code, "message": "no", "details": {"a": 1}})
    assert type(error) is cls
    assert (error.message, error.details, error.status) == ("no", {"a": 1}, cls.status)
    assert type(rebuild_error({"code": "from_the_future", "message": "?"})) is PodiumError


async def test_relayed_offer_is_answered_and_closing_ends_the_session(workers: Workers) -> None:
    cid = f"default:relay-{uuid.uuid4().hex[:8]}"
    await workers.calls.get_or_create(HOST, "default", cid.split(":")[1], [], {})
    socket = Socket(USER, "conn-1")
    workers.relay_hub.connect(socket)
    pc, early = rtc.peer_connection(loopback_only=True), rtc.peer_connection(loopback_only=True)
    try:
        # Not joined: the SFU's refusal comes back as the same error, with the same words.
        with pytest.raises(PermissionDenied, match="join the call before sending media"):
            await _offer(workers, socket, cid, early)
        assert workers.media.calls == {}

        await workers.calls.join(USER, cid)
        await _offer(workers, socket, cid, pc)
        answers = [f for f in socket.frames if f["type"] == "sfu.answer"]
        assert len(answers) == 1 and answers[0]["call_cid"] == cid
        media = workers.media.calls[cid]
        assert media.owners == {USER.user_id: "1/conn-1"}
        # The identity crossed whole: capabilities are re-read with the token's role.
        assert media.identities[USER.user_id].role == "speaker"

        # A second frame from a connection that does not own the session is refused there.
        other = Socket(USER, "conn-2")
        with pytest.raises(PermissionDenied, match="on another connection"):
            await workers.relay.handle(
                USER, other.id, {"type": "sfu.subscribe", "call_cid": cid, "user_ids": "all"}
            )

        await workers.relay.connection_closed(USER.user_id, socket.id)
        await eventually(lambda: workers.media.calls == {})
    finally:
        await bounded(pc.close())
        await bounded(early.close())


async def test_a_restarted_worker_says_hello_and_its_old_sessions_end(
    workers: Workers, redis_url: str
) -> None:
    cid = f"default:hello-{uuid.uuid4().hex[:8]}"
    await workers.calls.get_or_create(HOST, "default", cid.split(":")[1], [], {})
    await workers.calls.join(USER, cid)
    socket = Socket(USER, "conn-old")
    workers.relay_hub.connect(socket)
    pc = rtc.peer_connection(loopback_only=True)
    try:
        await _offer(workers, socket, cid, pc)
        assert cid in workers.media.calls
        again = MediaRelay(
            workers.relay.rt,
            workers.relay_hub,
            redis_url=redis_url,
            secret=SECRET,
            slot=workers.relay.slot,
        )
        await again.start()
        try:
            await eventually(lambda: workers.media.calls == {})
        finally:
            await again.close()
    finally:
        await bounded(pc.close())


async def test_no_media_worker_is_service_unavailable(
    sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media_relay, "REPLY_TIMEOUT_S", 0.3)
    store = SqlStore(sqlite_url)
    await store.open()
    bus = InProcessBus()
    hub = EventHub(store, bus)
    slot = WorkerSlot(1, 2, uuid.uuid4().hex)
    relay = MediaRelay(Runtime(store, bus), hub, redis_url=redis_url, secret=SECRET, slot=slot)
    await relay.start()
    try:
        with pytest.raises(ServiceUnavailable, match="media worker did not answer"):
            await relay.handle(USER, "c", {"type": "sfu.offer", "call_cid": "default:x"})
    finally:
        await relay.close()
        await store.close()


async def test_frames_not_signed_with_the_secret_are_dropped(
    workers: Workers, redis_url: str
) -> None:
    """Whoever can write to Redis cannot act as a user: forged, foreign or stale frames."""
    cid = f"default:forged-{uuid.uuid4().hex[:8]}"
    await workers.calls.get_or_create(HOST, "default", cid.split(":")[1], [], {})
    await workers.calls.join(USER, cid)
    socket = Socket(USER, "conn-f")
    workers.relay_hub.connect(socket)
    pc = rtc.peer_connection(loopback_only=True)
    pc.addTransceiver("audio", direction="recvonly")
    await bounded(pc.setLocalDescription(await pc.createOffer()))
    frame = {
        "op": "frame",
        "worker": 1,
        "ref": "r",
        "identity": USER.to_dict(),
        "connection_id": socket.id,
        "message": {"type": "sfu.offer", "call_cid": cid, "sdp": pc.localDescription.sdp},
    }
    channel = media_relay.sfu_channel(workers.group)
    body = json.dumps({**frame, "sent_at": time.time()})
    stale = json.dumps({**frame, "sent_at": time.time() - 2 * media_relay.FRESH_S})
    foreign = media_relay._Link(redis_url, "another-server-secret-0123456789abcdef", channel, _none)
    mac = foreign._mac(channel, body)
    mine = media_relay._Link(redis_url, SECRET, channel, _none)
    client = Redis.from_url(redis_url)
    try:
        for forged in (body, f"{mac}:{body}", f"{mine._mac(channel, stale)}:{stale}"):
            await client.publish(channel, forged)
        await asyncio.sleep(0.5)
        assert workers.media.calls == {}
        assert socket.frames == []
        # The same frame, signed with the server's secret, is served.
        await client.publish(channel, f"{mine._mac(channel, body)}:{body}")
        await eventually(lambda: any(f["type"] == "sfu.answer" for f in socket.frames))
    finally:
        await client.aclose()
        await bounded(pc.close())


async def _none(data: dict[str, Any]) -> None:
    """A handler for links only used to sign."""

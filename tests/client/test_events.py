"""`EventStream` frame handling on a fake connection: health checks, dedupe, watch answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from websockets.asyncio.client import ClientConnection

from podium.client import EventStream, PodiumAPIError, ws_url


class FakeConnection:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


def stream() -> tuple[EventStream, list[dict[str, Any]], FakeConnection]:
    got: list[dict[str, Any]] = []
    events = EventStream("ws://127.0.0.1:1/v1/ws", "t", got.append)
    return events, got, FakeConnection()


def test_ws_url() -> None:
    assert ws_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/v1/ws"
    assert ws_url("https://example.test/podium/") == "wss://example.test/podium/v1/ws"
    with pytest.raises(ValueError):
        ws_url("127.0.0.1:8000")
    with pytest.raises(ValueError):
        EventStream("ws://x", "t", print, backoff_initial_s=2, backoff_max_s=1)


async def test_health_check_is_answered() -> None:
    events, got, fake = stream()
    await events._on_frame(cast(ClientConnection, fake), {"type": "health.check"})
    assert fake.sent == [{"type": "health.check"}]
    assert got == []


async def test_seen_events_are_dropped_and_watch_ok_resolves() -> None:
    events, got, fake = stream()
    ws = cast(ClientConnection, fake)
    events._ws = ws  # as if connected: watch() sends its frame at once
    watching = asyncio.create_task(events.watch("audio_room:r1", since=4))
    await asyncio.sleep(0)
    assert fake.sent == [{"type": "watch", "call_cid": "audio_room:r1", "since": 4}]

    for seq in (3, 4, 5, 5, 6):  # replay overlapping what was seen
        await events._on_frame(ws, {"type": "call.x", "call_cid": "audio_room:r1", "seq": seq})
    await events._on_frame(ws, {"type": "watch.ok", "call_cid": "audio_room:r1", "last_seq": 9})
    assert await asyncio.wait_for(watching, 1) == 9
    assert [f["seq"] for f in got] == [5, 6]
    assert events.watched == {"audio_room:r1": 9}
    await events._on_frame(ws, {"type": "call.x", "call_cid": "audio_room:r1", "seq": 9})
    await events._on_frame(ws, {"type": "call.x", "call_cid": "audio_room:r1", "seq": 12})
    assert [f["seq"] for f in got] == [5, 6, 12]
    # Frames of calls not watched (user-addressed events) still reach the dispatcher.
    await events._on_frame(ws, {"type": "call.y", "call_cid": "default:other", "seq": 1})
    assert got[-1]["call_cid"] == "default:other"
    assert await events.watch("audio_room:r1") == 12, "already watched: no new frame"
    assert len(fake.sent) == 1


async def test_refused_watch_raises_and_later_errors_are_dispatched() -> None:
    events, got, fake = stream()
    ws = cast(ClientConnection, fake)
    events._ws = ws
    watching = asyncio.create_task(events.watch("audio_room:gone"))
    await asyncio.sleep(0)
    error = {"code": "call_not_found", "message": "call audio_room:gone not found", "details": {}}
    await events._on_frame(ws, {"type": "error", "call_cid": "audio_room:gone", "error": error})
    with pytest.raises(PodiumAPIError) as caught:
        await asyncio.wait_for(watching, 1)
    assert caught.value.status == 404 and caught.value.code == "call_not_found"
    assert events.watched == {}

    # An error about a call nobody waits on (a re-watch after reconnecting) is dispatched.
    events._watched["audio_room:r1"] = 3
    denied = {"code": "permission_denied", "message": "no", "details": {}}
    await events._on_frame(ws, {"type": "error", "call_cid": "audio_room:r1", "error": denied})
    assert got[-1]["type"] == "error" and events.watched == {}


async def test_a_refused_media_frame_leaves_the_call_watched() -> None:
    events, got, fake = stream()
    ws = cast(ClientConnection, fake)
    events._ws = ws
    events._watched["audio_room:r1"] = 3
    denied = {"code": "permission_denied", "message": "join first", "details": {}}
    frame = {
        "type": "error",
        "call_cid": "audio_room:r1",
        "in_reply_to": "sfu.offer",
        "error": denied,
    }
    await events._on_frame(ws, frame)
    assert got[-1] == frame
    assert events.watched == {"audio_room:r1": 3}


async def test_audience_opt_in_is_sent_and_changing_it_watches_again() -> None:
    events, _, fake = stream()
    ws = cast(ClientConnection, fake)
    events._ws = ws
    # As if connected, with no connection task of its own that could drop `_ws`.
    events._task = asyncio.create_task(asyncio.Event().wait())
    cid = "audio_room:r1"
    watching = asyncio.create_task(events.watch(cid, since=4, audience=True))
    await asyncio.sleep(0)
    assert fake.sent == [{"type": "watch", "call_cid": cid, "since": 4, "audience": True}]
    await events._on_frame(ws, {"type": "watch.ok", "call_cid": cid, "last_seq": 4})
    assert await asyncio.wait_for(watching, 1) == 4
    assert await events.watch(cid, since=4, audience=True) == 4, "same opt-in: no new frame"
    assert len(fake.sent) == 1

    # Every re-watch (as after a reconnect) asks for the audience again.
    await events._send_watch(ws, cid, 4)
    assert fake.sent[-1]["audience"] is True

    watching = asyncio.create_task(events.watch(cid, since=4))
    await asyncio.sleep(0)
    assert fake.sent[-1] == {"type": "watch", "call_cid": cid, "since": 4}
    await events._on_frame(ws, {"type": "watch.ok", "call_cid": cid, "last_seq": 4})
    assert await asyncio.wait_for(watching, 1) == 4
    events._task.cancel()

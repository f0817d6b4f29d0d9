"""The hub on its own: real SQLite store and in-process bus, recording client connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from podium.bus.events import Audience, EventDraft
from podium.bus.memory import InProcessBus
from podium.services.calls import CallsService
from podium.services.context import Runtime
from podium.services.delivery import EventHub
from podium.services.identity import Identity
from podium.store.sql import SqlStore
from tests.sfu.test_call import eventually

HOST = Identity("host", name="Host")
CID = "default:room"


@dataclass(eq=False)
class Recorder:
    """Stands in for a client's socket: keeps what the hub sends."""

    identity: Identity
    last_seen: float = 0.0
    frames: list[dict[str, Any]] = field(default_factory=list)
    closed: tuple[int, str] | None = None

    def send(self, text: str) -> None:
        self.frames.append(json.loads(text))

    def close(self, code: int, reason: str) -> None:
        self.closed = self.closed or (code, reason)

    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames if "seq" in f]


@pytest.fixture
async def runtime(sqlite_url: str) -> AsyncIterator[Runtime]:
    store = SqlStore(sqlite_url)
    await store.open()
    bus = InProcessBus()
    await bus.start()
    try:
        yield Runtime(store, bus)
    finally:
        await bus.close()
        await store.close()


async def _call(runtime: Runtime) -> None:
    await CallsService(runtime).get_or_create(HOST, "default", "room", [], {})


async def _append(runtime: Runtime, n: int) -> list[Any]:
    drafts = [
        EventDraft("call.user_muted", {"user_id": f"u{i}"}, Audience.watchers()) for i in range(n)
    ]
    async with runtime.store.write(CID) as tx:
        return await tx.append_events(CID, drafts, created_at=runtime.clock())


async def test_out_of_order_events_are_delivered_in_seq_order_once(runtime: Runtime) -> None:
    await _call(runtime)
    hub = EventHub(runtime.store, runtime.bus)
    conn = Recorder(HOST)
    hub.connect(conn)
    start = await hub.watch(conn, CID, None)
    first, second, third = await _append(runtime, 3)
    await hub.on_event(third)
    await hub.on_event(first)
    await hub.on_event(second)
    await hub.on_event(third)
    assert conn.seqs() == [start + 1, start + 2, start + 3]


async def test_replay_then_live_without_duplicates(runtime: Runtime) -> None:
    await _call(runtime)
    hub = EventHub(runtime.store, runtime.bus)
    await hub.start()
    events = await _append(runtime, 4)
    conn = Recorder(HOST)
    hub.connect(conn)
    cursor = await hub.watch(conn, CID, 0)
    for event in events:
        await runtime.bus.publish(event)
    assert conn.seqs() == list(range(1, cursor + 1))
    await hub.close()


async def test_users_audience_reaches_connections_that_do_not_watch(runtime: Runtime) -> None:
    await _call(runtime)
    hub = EventHub(runtime.store, runtime.bus)
    await hub.start()
    listener = Recorder(Identity("listener"))
    hub.connect(listener)
    draft = EventDraft(
        "call.permissions_updated", {"user_id": "listener"}, Audience.users("listener")
    )
    async with runtime.store.write(CID) as tx:
        (event,) = await tx.append_events(CID, [draft], created_at=runtime.clock())
    await runtime.bus.publish(event)
    assert [f["type"] for f in listener.frames] == ["call.permissions_updated"]
    await hub.close()


async def test_health_checks_and_idle_close(runtime: Runtime) -> None:
    now = [100.0]
    hub = EventHub(
        runtime.store,
        runtime.bus,
        health_interval_s=0.02,
        idle_timeout_s=5.0,
        clock=lambda: now[0],
    )
    await hub.start()
    lively = Recorder(Identity("a"), last_seen=99.0)
    silent = Recorder(Identity("b"), last_seen=90.0)
    hub.connect(lively)
    hub.connect(silent)
    for _ in range(100):
        if lively.frames and silent.closed:
            break
        await asyncio.sleep(0.01)
    await hub.close()
    assert {"type": "health.check"} in lively.frames
    assert silent.closed is not None and silent.closed[0] == 4000
    assert lively.closed == (1001, "server shutting down")


async def test_a_gap_longer_than_a_page_is_filled_completely(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podium.services import delivery

    monkeypatch.setattr(delivery, "REPLAY_PAGE", 3)
    await _call(runtime)
    hub = EventHub(runtime.store, runtime.bus)
    conn = Recorder(HOST)
    hub.connect(conn)
    start = await hub.watch(conn, CID, None)
    events = await _append(runtime, 8)
    await hub.on_event(events[-1])
    assert conn.seqs() == list(range(start + 1, start + 9))


async def test_logged_events_no_bus_brought_are_delivered_by_catch_up(runtime: Runtime) -> None:
    await _call(runtime)
    hub = EventHub(runtime.store, runtime.bus, catch_up_interval_s=0.05)
    conn = Recorder(HOST)
    hub.connect(conn)
    start = await hub.watch(conn, CID, None)
    await hub.catch_up()
    assert conn.seqs() == []
    # Logged by "another node" whose bus messages never arrive.
    first, second = await _append(runtime, 2)
    await hub.start()
    try:
        await eventually(lambda: conn.seqs() == [start + 1, start + 2])
        # The bus message arriving late changes nothing.
        await hub.on_event(second)
        assert conn.seqs() == [first.seq, second.seq]
    finally:
        await hub.close()

"""The hub on its own: real SQLite store and in-process bus, recording client connections."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from podium.bus.events import Audience, EventDraft
from podium.core.capabilities import Capability
from podium.core.errors import PermissionDenied
from podium.services import delivery
from podium.services.calls import CallsService
from podium.services.context import Runtime
from podium.services.delivery import OPT_IN, EventHub
from podium.services.identity import Identity
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
    bulk: list[bool] = field(default_factory=list)

    def send(self, text: str, *, bulk: bool = False) -> None:
        self.frames.append(json.loads(text))
        self.bulk.append(bulk)

    def close(self, code: int, reason: str) -> None:
        self.closed = self.closed or (code, reason)

    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames if "seq" in f]


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


async def test_watching_users_follows_watches_and_disconnects(runtime: Runtime) -> None:
    await _call(runtime)
    hub = EventHub(runtime.store, runtime.bus)
    tab1, tab2 = Recorder(HOST), Recorder(HOST)
    server = Recorder(Identity("backend", server=True))
    for conn in (tab1, tab2, server):
        hub.connect(conn)
        await hub.watch(conn, CID, None)
    await hub.watch(tab1, CID, None)  # watching again counts once
    assert hub.watching_users() == {(CID, "host")}, "server tokens are nobody's presence"
    hub.unwatch(tab1, CID)
    assert hub.watching_users() == {(CID, "host")}, "the other tab still watches"
    hub.disconnect(tab2)
    assert hub.watching_users() == set()


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


class CountingIdentity(Identity):
    """An identity that counts how often the hub computes its capabilities."""

    computed = 0

    def capabilities_in(self, access: Any) -> Any:
        CountingIdentity.computed += 1
        return super().capabilities_in(access)


async def test_delivering_an_event_costs_no_work_per_watcher(runtime: Runtime) -> None:
    """A thousand listeners share one group: an event is encoded once and nobody is re-judged."""
    await _call(runtime)
    hub = EventHub(runtime.store, runtime.bus)
    listeners = [Recorder(CountingIdentity(f"u{i}")) for i in range(1000)]
    for conn in listeners:
        hub.connect(conn)
        await hub.watch(conn, CID, None)
    feed = hub.feeds[CID]
    assert len(feed.groups) == 1
    CountingIdentity.computed = 0
    encoded = 0
    real_encode = delivery.encode

    def counting_encode(frame: dict[str, Any]) -> str:
        nonlocal encoded
        encoded += 1
        return real_encode(frame)

    delivery.encode = counting_encode
    try:
        for event in await _append(runtime, 5):
            await hub.on_event(event)
    finally:
        delivery.encode = real_encode
    assert CountingIdentity.computed == 0
    assert encoded == 5
    assert all(conn.seqs() == listeners[0].seqs() and len(conn.seqs()) == 5 for conn in listeners)


async def test_opted_in_events_reach_opted_in_moderators_and_the_user_only(
    runtime: Runtime,
) -> None:
    await _call(runtime)
    hub = EventHub(runtime.store, runtime.bus)
    host_all, host_plain = Recorder(HOST), Recorder(HOST)
    listener, joiner = Recorder(Identity("listener")), Recorder(Identity("joiner"))
    for conn in (host_all, host_plain, listener, joiner):
        hub.connect(conn)
        await hub.watch(conn, CID, None, audience=conn is host_all)
    drafts = [
        EventDraft(
            "call.participant_joined",
            {"participant": {"user_id": "joiner"}},
            Audience.opted_in(OPT_IN, "joiner"),
        )
    ]
    async with runtime.store.write(CID) as tx:
        (event,) = await tx.append_events(CID, drafts, created_at=runtime.clock())
    await hub.on_event(event)
    assert [len(c.frames) for c in (host_all, host_plain, listener, joiner)] == [1, 0, 0, 1]
    # a listener may not opt in
    with pytest.raises(PermissionDenied):
        await hub.watch(listener, CID, None, audience=True)
    # replay decides the same way
    again = Recorder(HOST)
    hub.connect(again)
    await hub.watch(again, CID, event.seq - 1, audience=True)
    assert again.seqs() == [event.seq]
    plain = Recorder(HOST)
    hub.connect(plain)
    await hub.watch(plain, CID, event.seq - 1)
    assert plain.seqs() == []


async def test_only_frames_for_every_watcher_may_wait_behind_others(runtime: Runtime) -> None:
    """A broadcast is `bulk`; what a user or the moderators get is written first (api/frames)."""
    await _call(runtime)
    hub = EventHub(runtime.store, runtime.bus)
    host, listener = Recorder(HOST), Recorder(Identity("listener"))
    for conn in (host, listener):
        hub.connect(conn)
        await hub.watch(conn, CID, None, audience=conn is host)
    audiences = [
        Audience.watchers(),
        Audience.holders(OPT_IN, "listener"),
        Audience.users("listener"),
        Audience.opted_in(OPT_IN, "listener"),
    ]
    drafts = [EventDraft("call.user_muted", {"user_id": "u"}, a) for a in audiences]
    async with runtime.store.write(CID) as tx:
        events = await tx.append_events(CID, drafts, created_at=runtime.clock())
    host.bulk.clear()
    listener.bulk.clear()
    for event in events:
        await hub.on_event(event)
    assert host.bulk == [True, False, False]
    assert listener.bulk == [True, False, False, False]


@pytest.mark.parametrize(
    ("kind", "user", "opted", "seen"),
    [
        (Audience.watchers(), "u", False, True),
        (Audience.holders(OPT_IN), "u", False, False),
        (Audience.holders(OPT_IN, "u"), "u", False, True),
        (Audience.users("u"), "u", True, True),
        (Audience.users("v"), "u", True, False),
        (Audience.opted_in(OPT_IN), "u", True, False),
        (Audience.opted_in(OPT_IN, "u"), "u", False, True),
    ],
)
def test_visible_for_a_listener(kind: Audience, user: str, opted: bool, seen: bool) -> None:
    listener_caps = frozenset({Capability.READ_CALL, Capability.JOIN_CALL})
    assert delivery.visible(kind, user, listener_caps, opted) is seen


def test_visible_opted_in_needs_the_opt_in_and_the_capability() -> None:
    moderator = frozenset({Capability.READ_CALL, OPT_IN})
    assert delivery.visible(Audience.opted_in(OPT_IN), "m", moderator, True)
    assert not delivery.visible(Audience.opted_in(OPT_IN), "m", moderator, False)
    assert not delivery.visible(Audience.opted_in(OPT_IN), "m", moderator - {OPT_IN}, True)

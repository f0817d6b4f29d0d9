"""RedisBus against a real Redis, each test on its own channel."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from podium.bus.events import CallEvent
from podium.bus.redis import RedisBus
from tests.backing_services import PrivateRedis
from tests.bus import WAIT, Collector, make_event

StartBus = Callable[..., Awaitable[RedisBus]]


@pytest.fixture
def channel() -> str:
    return f"podium:test:{uuid.uuid4().hex}"


@pytest.fixture
async def start_bus(redis_url: str, channel: str) -> AsyncIterator[StartBus]:
    """Starts buses ("nodes") on this test's channel and closes them afterwards."""
    started: list[RedisBus] = []

    async def start(url: str = redis_url) -> RedisBus:
        bus = RedisBus(url, channel)
        await bus.start()
        started.append(bus)
        return bus

    yield start
    for bus in started:
        await bus.close()


def _bus_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("podium-bus")]


async def test_own_events_come_back_in_publish_order(start_bus: StartBus) -> None:
    bus = await start_bus()
    got = Collector()
    bus.subscribe(got)
    for seq in range(1, 51):
        await bus.publish(make_event(seq))
    await got.wait_for(50)
    assert got.seqs() == list(range(1, 51))


async def test_two_nodes_both_receive_events_from_either(start_bus: StartBus) -> None:
    node_a, node_b = await start_bus(), await start_bus()
    got_a, got_b = Collector(), Collector()
    node_a.subscribe(got_a)
    node_b.subscribe(got_b)

    async def publish_all(bus: RedisBus, call_cid: str) -> None:
        for seq in range(1, 21):
            await bus.publish(make_event(seq, call_cid))

    await asyncio.gather(publish_all(node_a, "from-a"), publish_all(node_b, "from-b"))
    await got_a.wait_for(40)
    await got_b.wait_for(40)
    for got in (got_a, got_b):
        assert got.seqs("from-a") == list(range(1, 21))
        assert got.seqs("from-b") == list(range(1, 21))


async def test_unsubscribed_handler_gets_nothing_more(start_bus: StartBus) -> None:
    bus = await start_bus()
    removed, kept = Collector(), Collector()
    unsubscribe = bus.subscribe(removed)
    bus.subscribe(kept)
    await bus.publish(make_event(1))
    await kept.wait_for(1)
    unsubscribe()
    await bus.publish(make_event(2))
    await kept.wait_for(2)
    # Handlers run in order, so `removed` would have seen event 2 by now.
    assert removed.seqs() == [1]


async def test_failing_handler_does_not_stop_others(
    start_bus: StartBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus = await start_bus()

    async def broken(event: CallEvent) -> None:
        raise RuntimeError("boom")

    got = Collector()
    bus.subscribe(broken)
    bus.subscribe(got)
    await bus.publish(make_event(1))
    await bus.publish(make_event(2))
    await got.wait_for(2)
    assert got.seqs() == [1, 2]
    failures = [r for r in caplog.records if r.name == "podium.bus"]
    assert len(failures) == 2
    assert all(r.levelno == logging.ERROR and r.exc_info for r in failures)


async def test_close_stops_delivery_and_leaves_nothing_behind(
    redis_url: str, channel: str, start_bus: StartBus
) -> None:
    other = await start_bus()
    other_got = Collector()
    other.subscribe(other_got)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bus = RedisBus(redis_url, channel)
        await bus.start()
        got = Collector()
        bus.subscribe(got)
        await bus.publish(make_event(1))
        await got.wait_for(1)
        await bus.close()
        await bus.close()
        await bus.publish(make_event(2))
        await other.publish(make_event(3))
        await other_got.wait_for(2)
        del bus
        gc.collect()
    assert got.seqs() == [1]
    assert other_got.seqs() == [1, 3]
    assert [w.message for w in caught] == []
    assert len(_bus_tasks()) == 1


async def test_start_failure_raises_and_cleans_up(channel: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bus = RedisBus("redis://127.0.0.1:1/0", channel)
        async with asyncio.timeout(WAIT):
            with pytest.raises(RedisConnectionError):
                await bus.start()
        await bus.close()
        del bus
        gc.collect()
    assert [w.message for w in caught] == []
    assert _bus_tasks() == []


async def test_reconnects_after_server_kills_the_subscription(
    redis_url: str, start_bus: StartBus, caplog: pytest.LogCaptureFixture
) -> None:
    # A client name lets the test kill only this bus's subscriber, not those
    # of tests running concurrently against the same server.
    name = f"podium-test-{uuid.uuid4().hex}"
    publisher = await start_bus()
    bus = await start_bus(f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={name}")
    got = Collector()
    bus.subscribe(got)
    await publisher.publish(make_event(1))
    await got.wait_for(1)

    admin = Redis.from_url(redis_url, decode_responses=True)
    try:
        ids = [c["id"] for c in await admin.client_list(_type="pubsub") if c["name"] == name]
        assert len(ids) == 1
        assert await admin.client_kill_filter(_id=ids[0], _type="pubsub") == 1
    finally:
        await admin.aclose()

    # Events published while the bus reconnects are lost; keep publishing
    # until one gets through.
    seq = 1
    async with asyncio.timeout(WAIT):
        while len(got.events) == 1:
            seq += 1
            await publisher.publish(make_event(seq))
            await asyncio.sleep(0.05)
    received = got.seqs()
    assert received == sorted(received)
    assert any(
        r.name == "podium.bus" and r.levelno == logging.WARNING and "lost" in r.getMessage()
        for r in caplog.records
    )


async def test_own_events_are_delivered_once_before_publish_returns(start_bus: StartBus) -> None:
    bus = await start_bus()
    other = await start_bus()
    got, other_got = Collector(), Collector()
    bus.subscribe(got)
    other.subscribe(other_got)
    for seq in (1, 2, 3):
        await bus.publish(make_event(seq))
        assert got.seqs()[-1] == seq
    await other_got.wait_for(3)
    # The copy Redis sends back to the publisher is dropped, not delivered twice.
    await asyncio.sleep(0.2)
    assert got.seqs() == [1, 2, 3]
    assert other_got.seqs() == [1, 2, 3]


async def test_publish_while_redis_is_down_still_delivers_here(
    tmp_path: Path, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    redis = PrivateRedis(tmp_path).start()
    bus = RedisBus(redis.url, channel)
    try:
        await bus.start()
        got = Collector()
        bus.subscribe(got)
        redis.stop()
        async with asyncio.timeout(WAIT):
            for seq in range(1, 21):
                await bus.publish(make_event(seq))
        assert got.seqs() == list(range(1, 21))
        warned = [r for r in caplog.records if "cannot publish" in r.getMessage()]
        assert len(warned) == 1, "one warning per outage window, not one per event"

        redis.start()
        async with asyncio.timeout(WAIT):
            while not any("takes events again" in r.getMessage() for r in caplog.records):
                await bus.publish(make_event(len(got.events) + 1))
                await asyncio.sleep(0.05)
    finally:
        await bus.close()
        redis.stop()

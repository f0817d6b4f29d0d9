"""InProcessBus, and create_bus choosing between the buses (no server needed)."""

from __future__ import annotations

import logging

import pytest

from podium.bus.base import EventHandler
from podium.bus.events import CallEvent
from podium.bus.factory import create_bus
from podium.bus.memory import InProcessBus
from podium.bus.redis import RedisBus
from tests.bus import Collector, make_event


async def test_publish_awaits_handlers_in_subscription_order() -> None:
    bus = InProcessBus()
    await bus.start()
    calls: list[tuple[str, int]] = []

    def recorder(name: str) -> EventHandler:
        async def handler(event: CallEvent) -> None:
            calls.append((name, event.seq))

        return handler

    bus.subscribe(recorder("first"))
    bus.subscribe(recorder("second"))
    await bus.publish(make_event(1))
    assert calls == [("first", 1), ("second", 1)]
    await bus.close()


async def test_order_preserved_per_publisher() -> None:
    bus = InProcessBus()
    got = Collector()
    bus.subscribe(got)
    for seq in range(1, 51):
        await bus.publish(make_event(seq))
    assert got.seqs() == list(range(1, 51))


async def test_failing_handler_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = InProcessBus()

    async def broken(event: CallEvent) -> None:
        raise RuntimeError("boom")

    before, after = Collector(), Collector()
    bus.subscribe(before)
    bus.subscribe(broken)
    bus.subscribe(after)
    await bus.publish(make_event(1))
    await bus.publish(make_event(2))

    assert before.seqs() == after.seqs() == [1, 2]
    failures = [r for r in caplog.records if r.name == "podium.bus"]
    assert len(failures) == 2
    assert all(r.levelno == logging.ERROR and r.exc_info for r in failures)


async def test_unsubscribe_removes_only_that_registration() -> None:
    bus = InProcessBus()
    got = Collector()
    unsubscribe = bus.subscribe(got)
    bus.subscribe(got)
    await bus.publish(make_event(1))
    unsubscribe()
    unsubscribe()
    await bus.publish(make_event(2))
    assert got.seqs() == [1, 1, 2]


async def test_handler_unsubscribed_during_dispatch_is_not_called() -> None:
    bus = InProcessBus()
    later = Collector()

    async def remover(event: CallEvent) -> None:
        unsubscribe_later()

    bus.subscribe(remover)
    unsubscribe_later = bus.subscribe(later)
    await bus.publish(make_event(1))
    assert later.events == []


async def test_publish_after_close_delivers_nothing() -> None:
    bus = InProcessBus()
    got = Collector()
    bus.subscribe(got)
    await bus.start()
    await bus.close()
    await bus.publish(make_event(1))
    assert got.events == []


def test_factory_without_url_gives_in_process_bus() -> None:
    assert isinstance(create_bus(None), InProcessBus)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380"])
def test_factory_with_redis_url_gives_redis_bus_without_connecting(url: str) -> None:
    assert isinstance(create_bus(url, "chan"), RedisBus)


@pytest.mark.parametrize(
    "url", ["http://user:secret@127.0.0.1", "127.0.0.1:6379", "", "unix:///tmp/redis.sock"]
)
def test_factory_rejects_other_urls_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError, match="redis:// or rediss://") as info:
        create_bus(url)
    assert "secret" not in str(info.value)

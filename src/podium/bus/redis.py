"""The bus shared by every server process through one Redis pub/sub channel.

Redis pub/sub is fire-and-forget: events published while a subscriber is
reconnecting never reach it. The bus contract allows that, because hubs fill
gaps from the durable event log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from podium.bus.base import EventHandler
from podium.bus.events import CallEvent
from podium.bus.memory import Subscribers

log = logging.getLogger("podium.bus")

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 2.0
CONFIRM_TIMEOUT = 5.0
"""How long to wait for Redis to acknowledge SUBSCRIBE."""


class RedisBus:
    """Publishes with PUBLISH and delivers from one reader task per process.

    Every process receives its own events back through Redis, so all
    handlers see one stream in one order per publisher.
    """

    def __init__(self, url: str, channel: str = "podium:events") -> None:
        self._url = url
        self._channel = channel
        self._subscribers = Subscribers()
        self._publisher: Redis | None = None
        self._listener: Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Subscribe and wait for Redis to confirm, then start reading."""
        if self._reader is not None or self._closed:
            raise RuntimeError("a RedisBus can only be started once")
        self._publisher = Redis.from_url(self._url)
        # The reader owns reconnection (with logging and backoff), so the
        # listening connection must not silently retry behind its back.
        self._listener = Redis.from_url(self._url, retry=Retry(NoBackoff(), 0, supported_errors=()))
        try:
            pubsub = await self._subscribe()
        except BaseException:
            await self._close_clients()
            raise
        self._reader = asyncio.create_task(
            self._read(pubsub), name=f"podium-bus-reader:{self._channel}"
        )

    async def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            # wait() rather than awaiting the task, so a cancellation of
            # close() itself is not swallowed along with the reader's.
            await asyncio.wait([self._reader])
            self._reader = None
        await self._close_clients()

    async def publish(self, event: CallEvent) -> None:
        """Send `event` to every process; a no-op once closed, like InProcessBus."""
        if self._closed:
            return
        if self._publisher is None:
            raise RuntimeError("RedisBus.start() must be awaited before publish()")
        await self._publisher.publish(self._channel, event.to_json())

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        return self._subscribers.add(handler)

    async def _subscribe(self) -> PubSub:
        """A pubsub whose SUBSCRIBE Redis has acknowledged, so nothing later is missed."""
        assert self._listener is not None
        pubsub = self._listener.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            async with asyncio.timeout(CONFIRM_TIMEOUT):
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "subscribe":
                        return pubsub
        except BaseException:
            await _discard(pubsub)
            raise

    async def _read(self, pubsub: PubSub) -> None:
        """Deliver messages until cancelled, replacing the subscription when it breaks."""
        try:
            while True:
                try:
                    await self._pump(pubsub)
                except (RedisError, OSError) as exc:
                    log.warning("lost Redis subscription to %s: %s", self._channel, exc)
                except Exception:
                    log.exception("bus reader for %s failed", self._channel)
                await _discard(pubsub)
                pubsub = await self._resubscribe()
        finally:
            await _discard(pubsub)

    async def _pump(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is None or message["type"] != "message":
                continue
            try:
                event = CallEvent.from_json(message["data"])
            except (ValueError, KeyError, TypeError):
                log.exception("dropping undecodable message on %s", self._channel)
                continue
            await self._subscribers.dispatch(event)

    async def _resubscribe(self) -> PubSub:
        delay = FIRST_BACKOFF
        while True:
            await asyncio.sleep(delay)
            try:
                pubsub = await self._subscribe()
            except (RedisError, OSError) as exc:
                delay = min(delay * 2, MAX_BACKOFF)
                log.warning(
                    "reconnecting to Redis for %s failed: %s; retrying in %.1fs",
                    self._channel,
                    exc,
                    delay,
                )
            else:
                log.info("resubscribed to %s", self._channel)
                return pubsub

    async def _close_clients(self) -> None:
        for client in (self._publisher, self._listener):
            if client is not None:
                await client.aclose()
        self._publisher = None
        self._listener = None


async def _discard(pubsub: PubSub) -> None:
    """Close `pubsub`, releasing its connection (redis-py leaves aclose unannotated)."""
    await pubsub.aclose()  # type: ignore[no-untyped-call]

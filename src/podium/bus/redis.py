"""The bus shared by every server process through one Redis pub/sub channel.

Redis pub/sub is fire-and-forget: events published while a subscriber is
reconnecting never reach it. The bus contract allows that, because hubs fill
gaps from the durable event log.

This process's own handlers are called first, straight from `publish`, and
the copy that comes back through Redis is dropped (messages carry the
publishing bus's `origin`). So the node that made a change enforces it and
tells its own watchers even while Redis is unreachable; other nodes catch up
from the event log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError

from podium.bus.base import EventHandler
from podium.bus.events import CallEvent
from podium.bus.memory import Subscribers

log = logging.getLogger("podium.bus")

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 2.0
CONFIRM_TIMEOUT = 5.0
"""How long to wait for Redis to acknowledge SUBSCRIBE."""
PUBLISH_TIMEOUT = 1.0
"""How long a PUBLISH may hold up the request that made the change."""
WARN_EVERY = 10.0
"""During an outage, at most one warning per this many seconds."""


class RedisBus:
    """Publishes with PUBLISH and delivers from one reader task per process.

    Own events reach this process's handlers directly, in publish order;
    other processes' events come from the reader task.
    """

    def __init__(self, url: str, channel: str = "podium:events") -> None:
        self._url = url
        self._channel = channel
        self._subscribers = Subscribers()
        self._publisher: Redis | None = None
        self._listener: Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self.origin = uuid.uuid4().hex
        self._failing_since: float | None = None
        self._warned_at = 0.0

    async def start(self) -> None:
        """Subscribe and wait for Redis to confirm, then start reading."""
        if self._reader is not None or self._closed:
            raise RuntimeError("a RedisBus can only be started once")
        # One quick retry reconnects a pooled connection Redis dropped; more would
        # only hold up the request during an outage.
        self._publisher = Redis.from_url(
            self._url,
            socket_timeout=PUBLISH_TIMEOUT,
            socket_connect_timeout=PUBLISH_TIMEOUT,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        )
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
        """Deliver `event` here, then send it to the other processes.

        A no-op once closed, like InProcessBus. When Redis cannot take it, the
        failure is logged (not raised): the change is committed and delivered
        here, and the other nodes read it from the event log.
        """
        if self._closed:
            return
        if self._publisher is None:
            raise RuntimeError("RedisBus.start() must be awaited before publish()")
        await self._subscribers.dispatch(event)
        message = json.dumps({**event.to_dict(), "origin": self.origin}, separators=(",", ":"))
        try:
            await self._publisher.publish(self._channel, message)
        except (RedisError, OSError) as exc:
            self._publish_failed(exc)
        else:
            if self._failing_since is not None:
                log.warning(
                    "Redis takes events again after %.1f s", time.monotonic() - self._failing_since
                )
                self._failing_since = None

    def _publish_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "cannot publish on %s (%s): other nodes catch up from the event log",
                self._channel,
                exc,
            )

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
                data = json.loads(message["data"])
                if data.get("origin") == self.origin:
                    continue
                event = CallEvent.from_dict(data)
            except (ValueError, KeyError, TypeError, AttributeError):
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

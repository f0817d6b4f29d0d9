"""The bus for a single server process: events never leave memory."""

from __future__ import annotations

import logging
from collections.abc import Callable

from podium.bus.base import EventHandler
from podium.bus.events import CallEvent

log = logging.getLogger("podium.bus")


class Subscribers:
    """Handlers in subscription order, shared by every bus implementation.

    Each handler is isolated from the others: one that raises is logged and
    the rest still see the event, so a single buggy consumer cannot starve
    the WebSocket hub.
    """

    def __init__(self) -> None:
        # Keyed by a fresh token so the same handler can be subscribed twice
        # and each unsubscribe removes exactly its own registration.
        self._handlers: dict[object, EventHandler] = {}

    def add(self, handler: EventHandler) -> Callable[[], None]:
        token = object()
        self._handlers[token] = handler

        def unsubscribe() -> None:
            self._handlers.pop(token, None)

        return unsubscribe

    async def dispatch(self, event: CallEvent) -> None:
        for token, handler in list(self._handlers.items()):
            # A handler unsubscribed by an earlier one must not run any more.
            if token not in self._handlers:
                continue
            try:
                await handler(event)
            except Exception:
                log.exception(
                    "bus handler %r failed on %s event %d of call %s",
                    handler,
                    event.type,
                    event.seq,
                    event.call_cid,
                )


class InProcessBus:
    """Delivers straight to this process's handlers; enough when it is the only one."""

    def __init__(self) -> None:
        self._subscribers = Subscribers()
        self._closed = False

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        self._closed = True

    async def publish(self, event: CallEvent) -> None:
        """Await every handler in order, so the publisher sees them finish."""
        if self._closed:
            return
        await self._subscribers.dispatch(event)

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        return self._subscribers.add(handler)

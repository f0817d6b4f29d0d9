"""The event bus interface: every server process sees every call event.

Delivery is at-least-once and per-publisher ordered, but events of one call
published by different processes may arrive out of `seq` order; the hub
fills gaps from the durable event log, so the bus only has to be fast.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from podium.bus.events import CallEvent

EventHandler = Callable[[CallEvent], Awaitable[None]]


class EventBus(Protocol):
    async def start(self) -> None:
        """Connect; after this returns, published events reach every subscriber."""

    async def close(self) -> None:
        """Disconnect and stop calling handlers."""

    async def publish(self, event: CallEvent) -> None:
        """Send `event` to the subscribers of every process (this one included)."""

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        """Call `handler` for each event; returns a function that unsubscribes."""

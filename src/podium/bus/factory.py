"""Choosing the bus from configuration: no Redis URL means a single process."""

from __future__ import annotations

from urllib.parse import urlsplit

from podium.bus.base import EventBus
from podium.bus.memory import InProcessBus
from podium.bus.redis import RedisBus


def create_bus(redis_url: str | None, channel: str = "podium:events") -> EventBus:
    if redis_url is None:
        return InProcessBus()
    scheme = urlsplit(redis_url).scheme
    if scheme in ("redis", "rediss"):
        return RedisBus(redis_url, channel)
    # Only the scheme is echoed: the URL itself may carry a password.
    raise ValueError(
        f"unsupported event bus URL scheme {scheme!r}: expected redis:// or rediss://, "
        "or no URL for the in-process bus"
    )

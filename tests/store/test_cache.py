"""The call type cache: fresh entries are served, stale and forgotten ones are not."""

from __future__ import annotations

import time

from podium.core.call_types import BUILTIN_CALL_TYPES
from podium.store.cache import CallTypeCache

AUDIO_ROOM = BUILTIN_CALL_TYPES["audio_room"]


def test_serves_what_was_put_until_it_is_forgotten() -> None:
    cache = CallTypeCache()
    assert cache.get("audio_room") is None
    cache.put(AUDIO_ROOM)
    assert cache.get("audio_room") is AUDIO_ROOM
    cache.forget("audio_room")
    assert cache.get("audio_room") is None
    cache.forget("never-there")


def test_entries_expire_after_max_age() -> None:
    cache = CallTypeCache(max_age_s=0.05)
    cache.put(AUDIO_ROOM)
    time.sleep(0.1)
    assert cache.get("audio_room") is None

"""A short-lived in-process cache of call types (read by every transaction)."""

from __future__ import annotations

import time

from podium.core.call_types import CallType


class CallTypeCache:
    """Call types read in the last `max_age_s` seconds.

    Every transaction reads its call's type, and types change rarely. A change
    made through this process is seen at once (the entry is dropped); one made
    through another process sharing the database within `max_age_s`.
    """

    def __init__(self, max_age_s: float = 2.0) -> None:
        self.max_age_s = max_age_s
        self._entries: dict[str, tuple[float, CallType]] = {}

    def get(self, name: str) -> CallType | None:
        entry = self._entries.get(name)
        if entry is None or time.monotonic() - entry[0] > self.max_age_s:
            return None
        return entry[1]

    def put(self, call_type: CallType) -> None:
        self._entries[call_type.name] = (time.monotonic(), call_type)

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)

"""Sliding-window limits: at most `limit` actions in any `window`, decided from their times.

The times come from the store (requests asked and cancelled, calls created),
so the limit holds across server processes and restarts without a counter
of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta


def retry_after_s(times: Iterable[datetime], limit: int, window: timedelta, now: datetime) -> int:
    """Whole seconds until one more action fits (0: it fits now)."""
    recent = sorted(t for t in times if t > now - window)
    if len(recent) < limit:
        return 0
    frees_at = recent[len(recent) - limit] + window
    return max(1, math.ceil((frees_at - now).total_seconds()))


class TokenBucket:
    """`rate` actions a second on average, `burst` at once: one WebSocket's frames."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one (False: the action is over the limit)."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

"""Background work that runs every few seconds for the life of the server.

The log catch-up, media reconciliation, presence, revocations and request
expiry all repeat one step for ever. A failed step is logged and tried again
at the next tick; while the database is unreachable that is one warning when
it starts and one line when it ends, not a traceback a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from podium.core.errors import ServiceUnavailable

log = logging.getLogger("podium.periodic")


async def run_every(interval_s: float, step: Callable[[], Awaitable[object]], what: str) -> None:
    """Await `step()` every `interval_s` seconds until cancelled."""
    unavailable = False
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except ServiceUnavailable:
            if not unavailable:
                log.warning(
                    "%s: the database is unreachable; retrying every %g s", what, interval_s
                )
            unavailable = True
            continue
        except Exception:
            log.exception("%s failed; retrying in %g s", what, interval_s)
            continue
        if unavailable:
            log.warning("%s: the database is back", what)
            unavailable = False

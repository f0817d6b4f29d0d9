"""The background sweep that expires overdue permission requests.

Without it a request nobody answers would stay "awaiting" forever on the
requester's screen; with it, the requester and the moderators are told
within about `interval_s` of `expires_at`.
"""

from __future__ import annotations

import asyncio
import logging

from podium.services.permissions import PermissionsService

log = logging.getLogger("podium.expiry")


async def sweep_forever(permissions: PermissionsService, interval_s: float = 1.0) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await permissions.expire_overdue()
        except Exception:
            log.exception("expiry sweep failed; retrying in %.1f s", interval_s)

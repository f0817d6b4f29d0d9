"""The SFU inside `podium serve`: `sfu.*` signalling over WebSockets, enforced by call events.

One `SfuCall` per call with media on this node, created on the first `sfu.*`
message of a joined participant. A participant's first message is checked
against the store (joined, call not ended) and its capabilities read there;
from then on the call's events (received from the bus, whichever node made
the change) drive enforcement: `call.permissions_updated` re-checks its
sources, `call.user_muted` stops the muted ones, a block or leave ends its
media session, `call.ended` ends the call's. Server messages go to every
WebSocket connection of the user, with the call's `call_cid` added.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiortc import RTCIceServer

from podium.bus.events import CallEvent
from podium.core.capabilities import Capability
from podium.core.errors import PermissionDenied, ValidationFailed
from podium.services.context import Runtime, load_call
from podium.services.delivery import EventHub, encode
from podium.services.identity import Identity
from podium.sfu.call import SfuCall
from podium.sfu.messages import StopReason
from podium.sfu.sources import sources_for_mute

log = logging.getLogger("podium.media")

#: How long shutdown waits for one call's peer connections to close.
CLOSE_TIMEOUT_S = 5.0


class MediaService:
    def __init__(
        self,
        runtime: Runtime,
        hub: EventHub,
        *,
        ice_servers: list[RTCIceServer] | None = None,
        loopback_only: bool = False,
    ) -> None:
        self.rt = runtime
        self.hub = hub
        self.ice_servers = list(ice_servers or [])
        self.loopback_only = loopback_only
        self.calls: dict[str, SfuCall] = {}
        self._joining: dict[str, asyncio.Lock] = {}
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        self._unsubscribe = self.rt.bus.subscribe(self.on_event)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        calls, self.calls = list(self.calls.values()), {}
        for call in calls:
            try:
                await asyncio.wait_for(call.end(), CLOSE_TIMEOUT_S)
            except Exception:
                log.exception("could not end media of %s", call.call_cid)

    def connection_info(self) -> dict[str, Any]:
        """What `join` tells a client so it can connect its peer connection."""
        return {
            "ice_servers": [
                {
                    "urls": server.urls,
                    **({"username": server.username} if server.username else {}),
                    **({"credential": server.credential} if server.credential else {}),
                }
                for server in self.ice_servers
            ]
        }

    # Client messages.

    async def handle(self, identity: Identity, message: Mapping[str, Any]) -> None:
        """One `sfu.*` frame from a WebSocket; `call_cid` names the call."""
        cid = message.get("call_cid")
        if not isinstance(cid, str) or ":" not in cid:
            raise ValidationFailed("sfu messages need call_cid '{type}:{id}'")
        user_id = identity.user_id
        call = self.calls.get(cid)
        if call is None or user_id not in call.participants:
            call = await self._join(identity, cid)
        await call.handle(user_id, {k: v for k, v in message.items() if k != "call_cid"})

    async def _join(self, identity: Identity, cid: str) -> SfuCall:
        user_id = identity.user_id
        async with self.rt.store.read() as tx:
            ctx = await load_call(tx, cid)
            ctx.require_not_ended()
            if await tx.get_participant(cid, user_id) is None:
                raise PermissionDenied(
                    "join the call before sending media messages", {"call_cid": cid}
                )
            caps = await ctx.capabilities(tx, identity)
        lock = self._joining.setdefault(cid, asyncio.Lock())
        async with lock:
            call = self.calls.get(cid)
            if call is None:
                call = self.calls[cid] = SfuCall(
                    cid,
                    ice_servers=self.ice_servers,
                    loopback_only=self.loopback_only,
                    send=self._sender(cid),
                )
            if user_id not in call.participants:
                await call.join(user_id, caps)
        return call

    def _sender(self, cid: str) -> Callable[[str, dict[str, object]], None]:
        def send(user_id: str, message: dict[str, object]) -> None:
            text = encode({**message, "call_cid": cid})
            for conn in list(self.hub.by_user.get(user_id, ())):
                conn.send(text)

        return send

    async def user_disconnected(self, user_id: str) -> None:
        """The user's last WebSocket connection on this node closed: its media sessions end."""
        for call in list(self.calls.values()):
            if user_id in call.participants:
                await call.leave(user_id)

    # Enforcement.

    async def on_event(self, event: CallEvent) -> None:
        call = self.calls.get(event.call_cid)
        if call is None:
            return
        try:
            await self._enforce(call, event)
        except Exception:
            log.exception("media enforcement of %s #%d failed", event.type, event.seq)

    async def _enforce(self, call: SfuCall, event: CallEvent) -> None:
        payload = event.payload
        match event.type:
            case "call.permissions_updated":
                user_id = payload.get("user_id")
                if user_id in call.participants:
                    caps = frozenset(
                        Capability(c)
                        for c in payload.get("own_capabilities", ())
                        if c in Capability._value2member_map_
                    )
                    await call.capabilities_changed(user_id, caps, StopReason.REVOKED)
            case "call.user_muted":
                user_id = payload.get("user_id")
                if user_id in call.participants:
                    await call.muted(user_id, sources_for_mute(payload.get("kinds", ())))
            case "call.blocked_user":
                user_id = payload.get("user_id")
                if user_id in call.participants:
                    await call.capabilities_changed(user_id, frozenset(), StopReason.BLOCKED)
                    await call.leave(user_id)
            case "call.participant_left":
                user_id = (payload.get("participant") or {}).get("user_id")
                if user_id in call.participants:
                    if payload.get("reason") == "blocked":
                        await call.capabilities_changed(user_id, frozenset(), StopReason.BLOCKED)
                    await call.leave(user_id)
            case "call.ended":
                self.calls.pop(event.call_cid, None)
                self._joining.pop(event.call_cid, None)
                await call.end()

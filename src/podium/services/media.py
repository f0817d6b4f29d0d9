"""The SFU inside `podium serve`: `sfu.*` signalling over WebSockets, enforced by call events.

One `SfuCall` per call with media on this node, created on the first `sfu.*`
message of a joined participant and dropped once its last participant left.
A participant's first message is checked against the store (joined, call not
ended). From then on the call's events (received from the bus, whichever node
made the change) drive enforcement: `call.permissions_updated` and the phase
changes (`call.live_started` / `call.live_stopped`, which change what
non-hosts hold) re-read the capabilities from the store with the identity the
participant signalled with (a token's role counts), `call.user_muted` stops
the muted sources, a block or leave ends its media session, `call.ended` ends
the call's. Reading the store rather than trusting an event's payload keeps
enforcement right when events from several nodes arrive out of order.

A user has one media session per call, owned by the WebSocket connection that
opened it: server messages go to that connection only (with the call's
`call_cid` added), and the session ends when it closes. A user's other
connection (a second tab) that sends `sfu.offer` takes the session over: the
old one ends and its connection gets `sfu.error` `replaced`. Any other `sfu.*`
frame from a connection that does not own the session is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from podium.bus.events import CallEvent
from podium.config import IceServer
from podium.core.capabilities import Capability
from podium.core.errors import PermissionDenied, PodiumError, ValidationFailed
from podium.services import metrics
from podium.services.context import Runtime, load_call
from podium.services.delivery import EventHub, encode
from podium.services.grants import ROLE_CHANGED
from podium.services.ice import client_ice_servers, sfu_ice_servers
from podium.services.identity import Identity
from podium.sfu.adapter import check_hooks
from podium.sfu.call import SfuCall
from podium.sfu.messages import Error, ErrorCode, StopReason
from podium.sfu.sources import sources_for_mute

log = logging.getLogger("podium.media")

#: How long shutdown waits for one call's peer connections to close.
CLOSE_TIMEOUT_S = 5.0
_COUNTER_KEYS = tuple(key for key, _, _ in metrics.SFU_COUNTERS)


class MediaService:
    def __init__(
        self,
        runtime: Runtime,
        hub: EventHub,
        *,
        ice_servers: tuple[IceServer, ...] = (),
        turn_secret: str | None = None,
        turn_ttl_s: int = 24 * 3600,
        loopback_only: bool = False,
    ) -> None:
        self.rt = runtime
        self.hub = hub
        self.ice_servers = ice_servers
        self.turn_secret = turn_secret
        self.turn_ttl_s = turn_ttl_s
        self.loopback_only = loopback_only
        self.calls: dict[str, SfuCall] = {}
        #: Who signalled in each call, as they authenticated: their capabilities are re-read
        #: with this identity, so a token's role keeps counting.
        self._identities: dict[str, dict[str, Identity]] = {}
        #: The connection id owning each user's media session, per call.
        self._owners: dict[str, dict[str, str]] = {}
        self._joining: dict[str, asyncio.Lock] = {}
        self._unsubscribe: Callable[[], None] | None = None
        #: Counter totals of calls dropped from this node, so `/metrics` counters never go down.
        self._retired: dict[str, int] = dict.fromkeys(_COUNTER_KEYS, 0)

    async def start(self) -> None:
        # Fail at start, not at the first packet, if aiortc's internals moved.
        check_hooks()
        self._unsubscribe = self.rt.bus.subscribe(self.on_event)
        metrics.SFU.source = self.snapshot

    def snapshot(self) -> metrics.SfuSnapshot:
        """The SFU's figures for `/metrics`."""
        return metrics.SfuSnapshot(
            retired=dict(self._retired),
            calls={cid: call.stats() for cid, call in self.calls.items()},
        )

    def _retire(self, call: SfuCall) -> None:
        stats = call.stats()
        for key in _COUNTER_KEYS:
            self._retired[key] += stats.get(key, 0)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if metrics.SFU.source == self.snapshot:
            metrics.SFU.source = None
        calls, self.calls = list(self.calls.values()), {}
        for call in calls:
            try:
                await asyncio.wait_for(call.end(), CLOSE_TIMEOUT_S)
            except Exception:
                log.exception("could not end media of %s", call.call_cid)

    def connection_info(self, user_id: str) -> dict[str, Any]:
        """What `join` tells a client so it can connect its peer connection."""
        return {
            "ice_servers": client_ice_servers(
                self.ice_servers,
                user_id=user_id,
                now=time.time(),
                turn_secret=self.turn_secret,
                turn_ttl_s=self.turn_ttl_s,
            )
        }

    # Client messages.

    async def handle(
        self, identity: Identity, connection_id: str, message: Mapping[str, Any]
    ) -> None:
        """One `sfu.*` frame from the WebSocket `connection_id`; `call_cid` names the call."""
        cid = message.get("call_cid")
        if not isinstance(cid, str) or ":" not in cid:
            raise ValidationFailed("sfu messages need call_cid '{type}:{id}'")
        user_id = identity.user_id
        call = self.calls.get(cid)
        owner = self._owners.get(cid, {}).get(user_id)
        if call is not None and user_id in call.participants and owner != connection_id:
            if message.get("type") != "sfu.offer":
                raise PermissionDenied(
                    "your media session in this call is on another connection; "
                    "send sfu.offer to move it here",
                    {"call_cid": cid},
                )
            await self._replace(call, user_id)
            call = self.calls.get(cid)
        if call is None or user_id not in call.participants:
            owners = self._owners.setdefault(cid, {})
            owners[user_id] = connection_id
            try:
                call = await self._join(identity, cid)
            except BaseException:
                owners.pop(user_id, None)
                raise
        await call.handle(user_id, {k: v for k, v in message.items() if k != "call_cid"})
        await self._forget_left(cid)

    async def _replace(self, call: SfuCall, user_id: str) -> None:
        """End the user's session for a new connection's offer; tell the old connection why."""
        cid = call.call_cid
        await call.leave(user_id)
        self._sender(cid)(
            user_id,
            Error(ErrorCode.REPLACED, "your media session moved to another connection").to_wire(),
        )
        self._owners.get(cid, {}).pop(user_id, None)
        await self._forget_left(cid)

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
                    ice_servers=sfu_ice_servers(self.ice_servers),
                    loopback_only=self.loopback_only,
                    send=self._sender(cid),
                )
            if user_id not in call.participants:
                await call.join(user_id, caps)
                self._identities.setdefault(cid, {})[user_id] = identity
        return call

    async def _forget_left(self, cid: str) -> None:
        """Forget identities of participants whose media session ended; drop an idle call."""
        call = self.calls.get(cid)
        identities = self._identities.get(cid, {})
        owners = self._owners.get(cid, {})
        for user_id in [u for u in identities if call is None or u not in call.participants]:
            del identities[user_id]
            owners.pop(user_id, None)
        if call is None or call.participants:
            return
        async with self._joining.setdefault(cid, asyncio.Lock()):
            if self.calls.get(cid) is call and not call.participants:
                self._retire(call)
                del self.calls[cid]
                self._identities.pop(cid, None)
                self._owners.pop(cid, None)
                self._joining.pop(cid, None)
                await call.end()

    def _sender(self, cid: str) -> Callable[[str, dict[str, object]], None]:
        def send(user_id: str, message: dict[str, object]) -> None:
            owner = self._owners.get(cid, {}).get(user_id)
            text = encode({**message, "call_cid": cid})
            for conn in list(self.hub.by_user.get(user_id, ())):
                if conn.id == owner:
                    conn.send(text)

        return send

    async def connection_closed(self, user_id: str, connection_id: str) -> None:
        """A WebSocket closed: the media sessions it owned end."""
        for cid, call in list(self.calls.items()):
            owned = self._owners.get(cid, {}).get(user_id) == connection_id
            if owned and user_id in call.participants:
                await call.leave(user_id)
                await self._forget_left(cid)

    # Enforcement.

    async def on_event(self, event: CallEvent) -> None:
        call = self.calls.get(event.call_cid)
        if call is None:
            return
        try:
            await self._enforce(call, event)
        except Exception:
            log.exception("media enforcement of %s #%d failed", event.type, event.seq)
        await self._forget_left(event.call_cid)

    async def _enforce(self, call: SfuCall, event: CallEvent) -> None:
        payload = event.payload
        match event.type:
            case "call.permissions_updated":
                user_id = payload.get("user_id")
                if isinstance(user_id, str) and user_id in call.participants:
                    reason = (
                        StopReason.ROLE_CHANGED
                        if payload.get("reason") == ROLE_CHANGED
                        else StopReason.REVOKED
                    )
                    await self._recheck(call, [user_id], reason)
            case "call.live_started" | "call.live_stopped":
                await self._recheck(call, sorted(call.participants), StopReason.REVOKED)
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
                self._retire(call)
                self.calls.pop(event.call_cid, None)
                self._joining.pop(event.call_cid, None)
                await call.end()

    async def _recheck(self, call: SfuCall, user_ids: Iterable[str], reason: StopReason) -> None:
        """Apply the capabilities the store holds now for each user's published sources.

        If they cannot be read (the call is gone), the users lose every capability.
        """
        identities = self._identities.get(call.call_cid, {})
        held: dict[str, frozenset[Capability]] = {}
        try:
            async with self.rt.store.read() as tx:
                ctx = await load_call(tx, call.call_cid)
                for user_id in user_ids:
                    identity = identities.get(user_id) or Identity(user_id)
                    held[user_id] = frozenset(await ctx.capabilities(tx, identity))
        except PodiumError:
            held = dict.fromkeys(user_ids, frozenset())
        for user_id, caps in held.items():
            if user_id in call.participants:
                await call.capabilities_changed(user_id, caps, reason)

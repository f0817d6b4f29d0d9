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

Enforcement never depends on the bus alone. Each call's events are enforced
once, in `seq` order, a gap being read from the durable log; and every
`reconcile_interval_s` the service reads each call's last `seq` (enforcing
the events no bus message brought) and re-reads every publisher's
capabilities and participation from the store. A bus message lost, or a bus
down, delays enforcement on this node by at most that interval; the node
that made the change gets its own events from the bus at once, Redis or not.

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
from dataclasses import dataclass, field
from typing import Any

from podium.bus.events import CallEvent
from podium.config import IceServer
from podium.core.capabilities import Capability
from podium.core.errors import PermissionDenied, PodiumError, ValidationFailed
from podium.protocol.errors import SfuErrorCode
from podium.protocol.events import EventType, LeftReason, PermissionsReason, StopReason
from podium.protocol.ids import is_call_cid
from podium.services import metrics
from podium.services.context import Runtime, load_call
from podium.services.delivery import EventHub, encode, read_log
from podium.services.ice import client_ice_servers, sfu_ice_servers
from podium.services.identity import Identity
from podium.services.periodic import run_every
from podium.sfu.call import SfuCall
from podium.sfu.hooks import check_hooks
from podium.sfu.messages import Error
from podium.sfu.session import SignallingLimits
from podium.sfu.sources import sources_for_mute

log = logging.getLogger("podium.media")

#: How long shutdown waits for the peer connections of every call to close.
CLOSE_TIMEOUT_S = 2.0
_COUNTER_KEYS = tuple(key for key, _, _ in metrics.SFU_COUNTERS)


@dataclass(eq=False)
class _CallMedia:
    """One call's media on this node: its `SfuCall`, who signalled, and enforcement progress."""

    sfu: SfuCall
    #: The last event `seq` enforced.
    seen: int
    #: The connection id owning each user's media session (the `SfuCall` sends through it).
    owners: dict[str, str]
    #: Who signalled, as they authenticated: their capabilities are re-read with this
    #: identity, so a token's role keeps counting.
    identities: dict[str, Identity] = field(default_factory=dict)
    #: Held while events are enforced, so each is enforced once and in order.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def cid(self) -> str:
        return self.sfu.call_cid

    def forget_left(self) -> None:
        """Drop what is kept about users whose media session has ended."""
        for user_id in [u for u in self.identities if u not in self.sfu.participants]:
            del self.identities[user_id]
            self.owners.pop(user_id, None)


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
        reconcile_interval_s: float = 1.0,
    ) -> None:
        self.rt = runtime
        self.hub = hub
        self.ice_servers = ice_servers
        self.turn_secret = turn_secret
        self.turn_ttl_s = turn_ttl_s
        self.loopback_only = loopback_only
        self.reconcile_interval_s = reconcile_interval_s
        self.calls: dict[str, _CallMedia] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._reconciler: asyncio.Task[None] | None = None
        #: Counter totals of calls dropped from this node, so `/metrics` counters never go down.
        self._retired: dict[str, int] = dict.fromkeys(_COUNTER_KEYS, 0)

    async def start(self) -> None:
        # Fail at start, not at the first packet, if aiortc's internals moved.
        check_hooks()
        self._unsubscribe = self.rt.bus.subscribe(self.on_event)
        metrics.SFU.source = self.snapshot
        self._reconciler = asyncio.create_task(
            run_every(self.reconcile_interval_s, self.reconcile, "media reconciliation"),
            name="podium-media-reconcile",
        )

    def snapshot(self) -> metrics.SfuSnapshot:
        """The SFU's figures for `/metrics`."""
        return metrics.SfuSnapshot(
            retired=dict(self._retired),
            calls={cid: media.sfu.stats() for cid, media in self.calls.items()},
        )

    def _retire(self, call: SfuCall) -> None:
        stats = call.stats()
        for key in _COUNTER_KEYS:
            self._retired[key] += stats.get(key, 0)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._reconciler is not None:
            self._reconciler.cancel()
            await asyncio.gather(self._reconciler, return_exceptions=True)
            self._reconciler = None
        if metrics.SFU.source == self.snapshot:
            metrics.SFU.source = None
        calls, self.calls = list(self.calls.values()), {}
        ending = asyncio.gather(*(media.sfu.end() for media in calls), return_exceptions=True)
        try:
            for result in await asyncio.wait_for(ending, CLOSE_TIMEOUT_S):
                if isinstance(result, Exception):
                    log.error("could not end media of a call", exc_info=result)
        except TimeoutError:
            log.warning("media of %d call(s) did not close in %.0f s", len(calls), CLOSE_TIMEOUT_S)

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
        """One `sfu.*` frame from the WebSocket `connection_id`; `call_cid` names the call.

        Nothing is kept for a refused frame: state is created only once the store
        says the sender is a joined participant of a call that has not ended.
        """
        cid = message.get("call_cid")
        if not is_call_cid(cid):
            raise ValidationFailed("sfu messages need call_cid '{type}:{id}'")
        user_id = identity.user_id
        media = self.calls.get(cid)
        if (
            media is not None
            and user_id in media.sfu.participants
            and media.owners.get(user_id) != connection_id
        ):
            if message.get("type") != "sfu.offer":
                raise PermissionDenied(
                    "your media session in this call is on another connection; "
                    "send sfu.offer to move it here",
                    {"call_cid": cid},
                )
            await self._replace(media, user_id)
            media = self.calls.get(cid)
        if media is None or user_id not in media.sfu.participants:
            media = await self._join(identity, connection_id, cid)
        await media.sfu.handle(user_id, {k: v for k, v in message.items() if k != "call_cid"})
        await self._drop_if_idle(media)

    async def _replace(self, media: _CallMedia, user_id: str) -> None:
        """End the user's session for a new connection's offer; tell the old connection why.

        `replaced` goes first, so the old connection knows why its sources stop.
        """
        self._send(
            media.cid,
            media.owners,
            user_id,
            Error(
                SfuErrorCode.REPLACED, "your media session moved to another connection"
            ).to_wire(),
        )
        await media.sfu.leave(user_id)
        await self._drop_if_idle(media)

    async def _join(self, identity: Identity, connection_id: str, cid: str) -> _CallMedia:
        user_id = identity.user_id
        async with self.rt.store.read() as tx:
            ctx = await load_call(tx, cid)
            ctx.require_not_ended()
            if await tx.get_participant(cid, user_id) is None:
                raise PermissionDenied(
                    "join the call before sending media messages", {"call_cid": cid}
                )
            caps = await ctx.capabilities(tx, identity)
        media = self.calls.get(cid)
        if media is None:
            owners: dict[str, str] = {}
            limits = self.rt.limits
            sfu = SfuCall(
                cid,
                ice_servers=sfu_ice_servers(self.ice_servers),
                loopback_only=self.loopback_only,
                limits=SignallingLimits(
                    limits.sdp_bytes, limits.sdp_media_sections, limits.ice_candidates
                ),
                send=lambda user, message: self._send(cid, owners, user, message),
            )
            media = self.calls[cid] = _CallMedia(sfu, ctx.call.last_seq, owners)
        if user_id not in media.sfu.participants:
            media.identities[user_id] = identity
            media.owners[user_id] = connection_id
            try:
                await media.sfu.join(user_id, caps)
            except BaseException:
                await self._drop_if_idle(media)
                raise
        return media

    async def _drop_if_idle(self, media: _CallMedia) -> None:
        """Forget users whose session ended; drop the call once nobody has media in it."""
        media.forget_left()
        if media.sfu.participants or self.calls.get(media.cid) is not media:
            return
        del self.calls[media.cid]
        self._retire(media.sfu)
        await media.sfu.end()

    def _send(
        self, cid: str, owners: Mapping[str, str], user_id: str, message: dict[str, Any]
    ) -> None:
        owner = owners.get(user_id)
        if owner is not None:
            self.hub.send_to(user_id, owner, encode({**message, "call_cid": cid}))

    async def connection_closed(self, user_id: str, connection_id: str) -> None:
        """A WebSocket closed: the media sessions it owned end."""
        for media in list(self.calls.values()):
            owned = media.owners.get(user_id) == connection_id
            if owned and user_id in media.sfu.participants:
                await media.sfu.leave(user_id)
                await self._drop_if_idle(media)

    # Enforcement.

    async def on_event(self, event: CallEvent) -> None:
        media = self.calls.get(event.call_cid)
        if media is not None:
            await self._enforce_through(media, event.seq, event)

    async def reconcile(self) -> None:
        """Enforce what no bus message brought: logged events, then publishers' capabilities."""
        calls = list(self.calls.values())
        if not calls:
            return
        async with self.rt.store.read() as tx:
            logged = await tx.last_seqs([media.cid for media in calls])
        for media in calls:
            last = logged.get(media.cid, -1)
            if last > media.seen and self.calls.get(media.cid) is media:
                await self._enforce_through(media, last)
            publishers = media.sfu.publishers
            if publishers and self.calls.get(media.cid) is media:
                await self._recheck(media, sorted(publishers), StopReason.REVOKED)
                await self._drop_if_idle(media)

    async def _enforce_through(
        self, media: _CallMedia, seq: int, event: CallEvent | None = None
    ) -> None:
        """Enforce the call's events up to `seq` in order, reading from the log what is missing."""
        async with media.lock:
            if seq <= media.seen:
                return
            if event is not None and seq == media.seen + 1:
                batch = [event]
            else:
                batch = await read_log(self.rt.store, media.cid, media.seen, seq)
                if event is not None and (not batch or batch[-1].seq < seq):
                    batch.append(event)
            for item in batch:
                if self.calls.get(media.cid) is not media:
                    break
                try:
                    await self._enforce(media, item)
                except Exception:
                    log.exception("media enforcement of %s #%d failed", item.type, item.seq)
                media.seen = item.seq
        await self._drop_if_idle(media)

    async def _enforce(self, media: _CallMedia, event: CallEvent) -> None:
        call = media.sfu
        payload = event.payload
        match event.type:
            case EventType.PERMISSIONS_UPDATED:
                user_id = payload.get("user_id")
                if isinstance(user_id, str) and user_id in call.participants:
                    reason = (
                        StopReason.ROLE_CHANGED
                        if payload.get("reason") == PermissionsReason.ROLE_CHANGED
                        else StopReason.REVOKED
                    )
                    await self._recheck(media, [user_id], reason)
            case EventType.LIVE_STARTED | EventType.LIVE_STOPPED:
                await self._recheck(media, sorted(call.participants), StopReason.REVOKED)
            case EventType.USER_MUTED:
                user_id = payload.get("user_id")
                if user_id in call.participants:
                    await call.muted(user_id, sources_for_mute(payload.get("kinds", ())))
            case EventType.BLOCKED_USER:
                user_id = payload.get("user_id")
                if user_id in call.participants:
                    await call.capabilities_changed(user_id, frozenset(), StopReason.BLOCKED)
                    await call.leave(user_id)
            case EventType.PARTICIPANT_LEFT:
                user_id = (payload.get("participant") or {}).get("user_id")
                if user_id in call.participants:
                    if payload.get("reason") == LeftReason.BLOCKED:
                        await call.capabilities_changed(user_id, frozenset(), StopReason.BLOCKED)
                    await call.leave(user_id)
            case EventType.ENDED:
                if self.calls.get(media.cid) is media:
                    del self.calls[media.cid]
                    self._retire(call)
                await call.end()

    async def _recheck(
        self, media: _CallMedia, user_ids: Iterable[str], reason: StopReason
    ) -> None:
        """Apply what the store holds now: each user's capabilities, or their leaving.

        A user who is no longer a participant (left, blocked, removed when the
        call ended) loses the media session; if the call cannot be read at all,
        the users lose every capability.
        """
        call = media.sfu
        held: dict[str, frozenset[Capability]] = {}
        gone: dict[str, bool] = {}
        try:
            async with self.rt.store.read() as tx:
                ctx = await load_call(tx, media.cid)
                for user_id in user_ids:
                    if await tx.get_participant(media.cid, user_id) is None:
                        gone[user_id] = await tx.get_block(media.cid, user_id) is not None
                        continue
                    identity = media.identities.get(user_id) or Identity(user_id)
                    held[user_id] = frozenset(await ctx.capabilities(tx, identity))
        except PodiumError:
            held = dict.fromkeys(user_ids, frozenset())
        for user_id, blocked in gone.items():
            if user_id in call.participants:
                if blocked:
                    await call.capabilities_changed(user_id, frozenset(), StopReason.BLOCKED)
                await call.leave(user_id)
        for user_id, caps in held.items():
            if user_id in call.participants:
                await call.capabilities_changed(user_id, caps, reason)

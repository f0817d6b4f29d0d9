"""Delivering call events to WebSocket connections on this node.

Every node receives every event from the bus. Per watched call the hub keeps
a `Feed`: the last `seq` it has handled and a snapshot of who holds what
(`CallAccess`). Events are handled strictly in `seq` order: a duplicate is
dropped, and a gap (events of one call published by two nodes can cross on
the bus) is filled from the durable log first. So every watcher sees each
event it may see exactly once, in order, whichever node produced it.

The bus may lose events (Redis pub/sub drops what is published while a node
is disconnected from it), so every `catch_up_interval_s` the hub also reads
the last `seq` of each watched call from the store and delivers what it has
not seen: an event made on another node during a bus outage reaches this
node's watchers within that interval, without waiting for a later event.

Recipients follow the event's `Audience`; the snapshot is patched from
events marked `refresh` (and reloaded whenever it is older than
`access_max_age`, which also picks up call-type changes), so decisions
follow grants, revokes, role changes, blocks and phase changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from podium.bus.base import EventBus
from podium.bus.events import Audience, AudienceKind, CallEvent
from podium.core.capabilities import (
    Capabilities,
    Capability,
    parse_capabilities,
    sorted_names,
)
from podium.core.errors import PermissionDenied
from podium.core.json_values import sanitized
from podium.core.policy import CallAccess, CallPhase, MemberGrants
from podium.protocol.events import EventType
from podium.services import metrics
from podium.services.context import load_call
from podium.services.identity import Identity
from podium.services.periodic import run_every
from podium.store.base import Store

log = logging.getLogger("podium.delivery")

REPLAY_PAGE = 1000
#: Connections given a health check per loop iteration.
HEALTH_SLICE = 1000
#: Watching with `audience: true` (the audience's own joins and leaves) needs this.
OPT_IN = Capability.UPDATE_CALL_PERMISSIONS


class Connection(Protocol):
    """One client connection, as the hub sees it."""

    identity: Identity
    last_seen: float
    #: Unique per connection (the `connection_id` of `connection.ok`).
    id: str

    def send(self, text: str, *, bulk: bool = False) -> None:
        """Queue a frame; must not block.

        `bulk` marks a frame sent to every watcher of a call: it may wait
        behind frames for a few (a user, the moderators), never behind
        another frame for the same connection.
        """

    def close(self, code: int, reason: str) -> None:
        """Close the connection soon (it will call `hub.disconnect`)."""


def encode(frame: dict[str, Any]) -> str:
    """A frame as compact JSON; a logged payload that is not valid JSON is repaired first."""
    try:
        return json.dumps(frame, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(sanitized(frame), separators=(",", ":"), allow_nan=False)


async def read_log(store: Store, cid: str, after: int, through: int) -> list[CallEvent]:
    """The call's logged events with `after < seq <= through`, page by page however many."""
    found: list[CallEvent] = []
    async with store.read() as tx:
        while after < through:
            page = await tx.events_since(cid, after, limit=REPLAY_PAGE)
            page = [e for e in page if e.seq <= through]
            if not page:
                break
            found += page
            after = page[-1].seq
    return found


@dataclass(eq=False)
class Feed:
    """One watched call on this node: its position in the log and its watchers, grouped.

    Watchers are grouped by the capabilities they hold, so delivering an event
    costs one check per distinct capability set (a handful: host, speaker,
    listener...) plus the socket writes, however many watch.
    """

    cid: str
    last_seq: int = -1
    access: CallAccess | None = None
    loaded_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    held: dict[Connection, Capabilities] = field(default_factory=dict)
    """Every watching connection and its capabilities under `access`."""
    groups: dict[Capabilities, set[Connection]] = field(default_factory=dict)
    """The watching connections by what they hold."""
    opted_in: set[Connection] = field(default_factory=set)
    """Watchers that asked for the audience's individual joins and leaves."""
    users: Counter[str] = field(default_factory=Counter)
    """Watching connections per user (server tokens not counted), kept as they come and go:
    presence reads who watches every second, and walking 10,000 connections took 12-36 ms."""

    def add(self, conn: Connection, caps: Capabilities) -> None:
        self.remove(conn)
        self.held[conn] = caps
        self.groups.setdefault(caps, set()).add(conn)
        if not conn.identity.server:
            self.users[conn.identity.user_id] += 1

    def remove(self, conn: Connection) -> None:
        caps = self.held.pop(conn, None)
        self.opted_in.discard(conn)
        if caps is not None:
            group = self.groups[caps]
            group.discard(conn)
            if not group:
                del self.groups[caps]
            if not conn.identity.server:
                user_id = conn.identity.user_id
                self.users[user_id] -= 1
                if not self.users[user_id]:
                    del self.users[user_id]

    def regroup(self, conn: Connection) -> None:
        """Recompute what `conn` holds under the current `access`."""
        assert self.access is not None
        caps = conn.identity.capabilities_in(self.access)
        if self.held.get(conn) != caps:
            opted = conn in self.opted_in
            self.add(conn, caps)
            if opted:
                self.opted_in.add(conn)

    def holders(self, capability: Capability) -> Iterator[Connection]:
        for caps, conns in self.groups.items():
            if capability in caps:
                yield from conns


def visible(audience: Audience, user_id: str, caps: Capabilities, opted_in: bool) -> bool:
    """Whether a watcher (`user_id`, holding `caps`) receives an event for this audience.

    Delivery and replay decide the same way, so a replay with `since` gives
    exactly what the connection would have been sent live.
    """
    if audience.kind is AudienceKind.USERS:
        return user_id in audience.user_ids
    if user_id in audience.user_ids:
        return True
    needed = audience.capability or Capability.READ_CALL
    if audience.kind is AudienceKind.OPTED_IN:
        return opted_in and needed in caps
    return needed in caps


class EventHub:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        *,
        health_interval_s: float = 10.0,
        idle_timeout_s: float = 30.0,
        access_max_age_s: float = 5.0,
        catch_up_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.bus = bus
        self.health_interval_s = health_interval_s
        self.idle_timeout_s = idle_timeout_s
        self.access_max_age_s = access_max_age_s
        self.catch_up_interval_s = catch_up_interval_s
        self.clock = clock
        self.feeds: dict[str, Feed] = {}
        self.by_user: dict[str, set[Connection]] = defaultdict(set)
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._unsubscribe = self.bus.subscribe(self.on_event)
        metrics.CONNECTIONS.set_function(lambda: self.connection_count)
        metrics.WATCHED_CALLS.set_function(lambda: len(self.feeds))
        self._tasks = [
            asyncio.create_task(self._health_loop(), name="podium-health"),
            asyncio.create_task(
                run_every(self.catch_up_interval_s, self.catch_up, "catching up from the log"),
                name="podium-catch-up",
            ),
        ]

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conns in list(self.by_user.values()):
            for conn in list(conns):
                conn.close(1001, "server shutting down")

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self.by_user.values())

    def connect(self, conn: Connection) -> None:
        self.by_user[conn.identity.user_id].add(conn)

    def disconnect(self, conn: Connection) -> None:
        conns = self.by_user.get(conn.identity.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.by_user[conn.identity.user_id]
        for cid in [cid for cid, feed in self.feeds.items() if conn in feed.held]:
            self.unwatch(conn, cid)

    def watching_users(self) -> set[tuple[str, str]]:
        """(call cid, user id) of every user (not server token) watching a call here."""
        return {(cid, user_id) for cid, feed in self.feeds.items() for user_id in feed.users}

    def close_tokens(self, token_ids: frozenset[str], code: int, reason: str) -> None:
        """Close every connection here that authenticated with one of these tokens."""
        for conns in list(self.by_user.values()):
            for conn in list(conns):
                if conn.identity.token_id in token_ids:
                    conn.close(code, reason)

    def send_to(self, user_id: str, connection_id: str, text: str) -> None:
        """Queue a frame on one connection of this node, if it is still open."""
        for conn in self.by_user.get(user_id, ()):
            if conn.id == connection_id:
                conn.send(text)
                return

    async def watch(
        self, conn: Connection, cid: str, since: int | None, *, audience: bool = False
    ) -> int:
        """Start delivering `cid`'s events to `conn`; replays those after `since` first.

        `audience` asks for the audience's individual joins and leaves too
        (holders of `update-call-permissions` only). Returns the seq the
        connection is now at (sent as `watch.ok`).
        """
        feed = self.feeds.setdefault(cid, Feed(cid))
        try:
            async with feed.lock:
                if feed.access is None:
                    await self._load(feed)
                assert feed.access is not None
                caps = conn.identity.capabilities_in(feed.access)
                for needed in (Capability.READ_CALL, *([OPT_IN] if audience else [])):
                    if needed not in caps:
                        raise PermissionDenied(
                            f"missing capability {needed.value}", {"capability": needed.value}
                        )
                feed.remove(conn)
                cursor = feed.last_seq if since is None else max(0, min(since, feed.last_seq))
                await self._replay(feed, conn, cursor, audience)
                feed.add(conn, caps)
                if audience:
                    feed.opted_in.add(conn)
                return feed.last_seq
        finally:
            if not feed.held and self.feeds.get(cid) is feed:
                del self.feeds[cid]

    def unwatch(self, conn: Connection, cid: str) -> None:
        feed = self.feeds.get(cid)
        if feed is None:
            return
        feed.remove(conn)
        if not feed.held and not feed.lock.locked():
            del self.feeds[cid]

    async def on_event(self, event: CallEvent) -> None:
        metrics.EVENTS_RECEIVED.inc()
        feed = self.feeds.get(event.call_cid)
        if feed is None:
            if event.audience.kind is AudienceKind.USERS:
                await self._send_to_users(event, event.audience.user_ids)
            return
        await self._deliver_through(feed, event.seq, event)

    async def catch_up(self) -> None:
        """Deliver every logged event of a watched call that the bus has not brought yet."""
        feeds = [f for f in self.feeds.values() if f.access is not None]
        if not feeds:
            return
        async with self.store.read() as tx:
            logged = await tx.last_seqs([f.cid for f in feeds])
        for feed in feeds:
            last = logged.get(feed.cid, -1)
            if last > feed.last_seq and self.feeds.get(feed.cid) is feed:
                await self._deliver_through(feed, last)

    async def _deliver_through(self, feed: Feed, seq: int, event: CallEvent | None = None) -> None:
        """Deliver the feed's events up to `seq`, reading from the log what `event` skips."""
        async with feed.lock:
            if feed.access is None or seq <= feed.last_seq:
                return
            if event is not None and seq == feed.last_seq + 1:
                batch = [event]
            else:
                metrics.GAP_FILLS.inc()
                batch = await read_log(self.store, feed.cid, feed.last_seq, seq)
                if event is not None and (not batch or batch[-1].seq < seq):
                    batch.append(event)
            for item in batch:
                await self._deliver(feed, item)

    async def _deliver(self, feed: Feed, event: CallEvent) -> None:
        """Send one event to its recipients here: encoded once, whoever they are."""
        if self.clock() - feed.loaded_at > self.access_max_age_s:
            await self._reload(feed)
        audience = event.audience
        if audience.kind is AudienceKind.USERS:
            await self._send_to_users(event, audience.user_ids)
        else:
            text = encode(event.frame())
            needed = audience.capability or Capability.READ_CALL
            opted = audience.kind is AudienceKind.OPTED_IN
            recipients: Iterable[Connection] = (
                [c for c in feed.opted_in if needed in feed.held[c]]
                if opted
                else feed.holders(needed)
            )
            bulk = not opted and needed is Capability.READ_CALL
            if bulk:
                # One loop iteration first, so frames already queued for a few
                # (the requester's new capabilities, a request reaching the
                # host) are written before this call-wide pass over every watcher.
                await asyncio.sleep(0)
            sent = 0
            for conn in recipients:
                conn.send(text, bulk=bulk)
                sent += 1
            for user_id in audience.user_ids:
                for conn in self.by_user.get(user_id, ()):
                    caps = feed.held.get(conn)
                    already = (
                        caps is not None and needed in caps and (not opted or conn in feed.opted_in)
                    )
                    if caps is not None and not already:
                        conn.send(text, bulk=bulk)
                        sent += 1
            metrics.FRAMES_DELIVERED.inc(sent)
        feed.last_seq = event.seq
        if event.refresh:
            await self._apply(feed, event)

    async def _apply(self, feed: Feed, event: CallEvent) -> None:
        """Bring the feed's access snapshot up to date with an event that changed it.

        The events that change access carry what changed (member records,
        blocked user, new phase), so the snapshot is patched in place and only
        the affected users' cached capabilities are dropped. Anything else
        marked `refresh` falls back to a reload from the store.
        """
        access = feed.access
        assert access is not None
        payload = event.payload
        kind = event.type
        if kind == EventType.PERMISSIONS_UPDATED:
            return  # the member event that follows carries the change
        if kind in (EventType.MEMBER_ADDED, EventType.MEMBER_UPDATED):
            members = dict(access.members)
            for m in payload["members"]:
                members[m["user_id"]] = MemberGrants(
                    m["role"], parse_capabilities(m["grants"]), parse_capabilities(m["revokes"])
                )
            feed.access = replace(access, members=members)
            self._forget(feed, [m["user_id"] for m in payload["members"]])
        elif kind == EventType.MEMBER_REMOVED:
            gone = set(payload["user_ids"])
            members = {u: g for u, g in access.members.items() if u not in gone}
            feed.access = replace(access, members=members)
            self._forget(feed, gone)
        elif kind in (EventType.BLOCKED_USER, EventType.UNBLOCKED_USER):
            user_id = payload["user_id"]
            blocked = (
                access.blocked | {user_id}
                if kind == EventType.BLOCKED_USER
                else access.blocked - {user_id}
            )
            feed.access = replace(access, blocked=blocked)
            self._forget(feed, [user_id])
        elif kind in (EventType.LIVE_STARTED, EventType.LIVE_STOPPED, EventType.ENDED):
            feed.access = replace(access, phase=CallPhase(payload["call"]["phase"]))
            for conn in list(feed.held):
                feed.regroup(conn)
        else:
            await self._reload(feed)

    def _forget(self, feed: Feed, user_ids: Iterable[str]) -> None:
        """Regroup these users' watching connections after their capabilities changed."""
        for user_id in user_ids:
            for conn in self.by_user.get(user_id, ()):
                if conn in feed.held:
                    feed.regroup(conn)

    async def _send_to_users(self, event: CallEvent, user_ids: Iterable[str]) -> None:
        """User-addressed events reach all of that user's connections, watching or not."""
        text = encode(event.frame())
        sent = 0
        for user_id in user_ids:
            for conn in self.by_user.get(user_id, ()):
                if event.type == EventType.PERMISSIONS_UPDATED and (
                    conn.identity.server or conn.identity.role is not None
                ):
                    conn.send(await self._personal(event, conn.identity))
                else:
                    conn.send(text)
                sent += 1
        metrics.FRAMES_DELIVERED.inc(sent)

    async def _personal(self, event: CallEvent, identity: Identity) -> str:
        """`permissions_updated` computed for a token whose role overrides membership."""
        async with self.store.read() as tx:
            ctx = await load_call(tx, event.call_cid)
            caps = await ctx.capabilities(tx, identity)
        return encode({**event.frame(), "own_capabilities": sorted_names(caps)})

    async def _replay(self, feed: Feed, conn: Connection, cursor: int, opted_in: bool) -> None:
        """Send `conn` what it may see of the log from `cursor` to the feed's `last_seq`."""
        access = feed.access
        assert access is not None
        caps = conn.identity.capabilities_in(access)
        while cursor < feed.last_seq:
            async with self.store.read() as tx:
                events = await tx.events_since(feed.cid, cursor, limit=REPLAY_PAGE)
            events = [e for e in events if e.seq <= feed.last_seq]
            if not events:
                break
            for event in events:
                if visible(event.audience, conn.identity.user_id, caps, opted_in):
                    conn.send(encode(event.frame()))
                cursor = event.seq

    async def _load(self, feed: Feed) -> None:
        async with self.store.read() as tx:
            ctx = await load_call(tx, feed.cid)
            feed.access = await ctx.access(tx)
            if feed.last_seq < 0:
                feed.last_seq = ctx.call.last_seq
        feed.loaded_at = self.clock()

    async def _reload(self, feed: Feed) -> None:
        """Read the call's access again; regroup only the watchers whose capabilities it changes.

        A change of call type or phase can change anyone's; otherwise only the
        users whose member record or block differs can be affected.
        """
        before = feed.access
        await self._load(feed)
        after = feed.access
        assert after is not None
        if before == after:
            return
        if before is None or (before.call_type, before.phase) != (after.call_type, after.phase):
            for conn in list(feed.held):
                feed.regroup(conn)
            return
        changed = {
            u
            for u in before.members.keys() | after.members.keys()
            if before.members.get(u) != after.members.get(u)
        }
        self._forget(feed, changed | (before.blocked ^ after.blocked))

    async def _health_loop(self) -> None:
        """A health check to every connection, yielding every `HEALTH_SLICE` of them.

        At 10,000 connections one pass held the loop for about 20 ms.
        """
        frame = encode({"type": "health.check"})
        while True:
            await asyncio.sleep(self.health_interval_s)
            now = self.clock()
            conns = [conn for user_conns in self.by_user.values() for conn in user_conns]
            for start in range(0, len(conns), HEALTH_SLICE):
                if start:
                    await asyncio.sleep(0)
                for conn in conns[start : start + HEALTH_SLICE]:
                    if conn not in self.by_user.get(conn.identity.user_id, ()):
                        continue  # gone while the loop served others
                    if now - conn.last_seen > self.idle_timeout_s:
                        conn.close(4000, "idle: no frame received")
                    else:
                        conn.send(frame, bulk=True)

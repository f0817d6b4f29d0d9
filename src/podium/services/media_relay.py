"""Media under `podium serve --workers N`: the SFU runs in worker 0, the others relay to it.

An SFU forwards RTP between the peer connections of a call in memory, so every
media session of a server lives in one process, the media worker (index 0).
The kernel spreads WebSockets over all workers; a WebSocket on another worker
reaches the SFU through Redis pub/sub, on channels named by the server's
`WorkerSlot.group` (so servers sharing one Redis keep apart):

- `podium:media:<group>:sfu`, read by the media worker:
  `{"op": "frame", "worker", "ref", "identity", "connection_id", "message"}`,
  `{"op": "closed", "worker", "user_id", "connection_id"}` and
  `{"op": "hello", "worker"}` (a worker started: the sessions its previous
  process owned end, since their connections died with it).
- `podium:media:<group>:worker:<n>`, read by worker n:
  `{"op": "send", "user_id", "connection_id", "text"}` (a frame the SFU sends
  to one of its connections), and a frame's answer: `{"op": "done", "ref"}`,
  `{"op": "failed", "ref", "error": {"code", "message", "details"}}` (a
  `PodiumError`) or `{"op": "crashed", "ref"}` (anything else, logged there).

Each message is `<hex HMAC-SHA256>:<JSON>`, signed with the server's secret
over the channel name and the JSON, which carries `sent_at` (Unix seconds):
a frame names who acts, so Redis access alone must not forge or replay one.

Order: `api/ws.py` awaits `handle` before reading a connection's next frame,
and the relay's `handle` returns once the media worker answered, so a
connection's frames reach the SFU in order; the media worker publishes a
frame's `send`s before its `done` through one ordered outbox. A `failed`
reply is raised again as the same `PodiumError` class, so ws.py sends the
same `error` frame as with a local SFU. The media worker names a relayed
connection `<worker>/<connection id>` in the SFU's session owners.

If the media worker dies it is restarted with no media sessions: clients
open media again (their peer connections fail). A relay that gets no answer
within `REPLY_TIMEOUT_S` refuses the frame with `service_unavailable`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from podium.config import Settings, WorkerSlot
from podium.core.errors import PodiumError, ServiceUnavailable, ValidationFailed
from podium.services.context import Runtime
from podium.services.delivery import EventHub, encode
from podium.services.identity import Identity
from podium.services.media import MediaService

log = logging.getLogger("podium.media.relay")

#: How long a relayed frame waits for the media worker's answer.
REPLY_TIMEOUT_S = 10.0
#: How long SUBSCRIBE may take to be acknowledged, and the reconnection backoff bounds.
CONFIRM_TIMEOUT_S = 5.0
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0
#: A relay message older (or newer) than this is dropped: a captured one cannot be replayed later.
FRESH_S = 30.0

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def media_for(settings: Settings, runtime: Runtime, hub: EventHub) -> MediaService:
    """The media object of this process: the SFU, the SFU serving relays, or a relay."""
    options: dict[str, Any] = {
        "ice_servers": settings.ice_servers,
        "turn_secret": settings.turn_secret,
        "turn_ttl_s": settings.turn_ttl_s,
        "loopback_only": settings.media_loopback_only,
    }
    slot = settings.worker
    if slot is None or slot.count == 1:
        return MediaService(runtime, hub, **options)
    if settings.redis_url is None:
        raise ValueError("workers relay media over Redis: a Redis URL is needed")
    kind = MediaWorker if slot.media else MediaRelay
    return kind(
        runtime, hub, redis_url=settings.redis_url, secret=settings.secret, slot=slot, **options
    )


def sfu_channel(group: str) -> str:
    return f"podium:media:{group}:sfu"


def worker_channel(group: str, index: int) -> str:
    return f"podium:media:{group}:worker:{index}"


class _Link:
    """One subscribed Redis channel, read by a task that resubscribes when it breaks.

    Messages are signed with the server's secret (HMAC-SHA256 over the channel
    and the JSON, which carries its sending time): a relayed frame names who
    acts, so whoever can write to Redis must not be able to forge one, nor
    replay one on another channel or after `FRESH_S`.
    """

    def __init__(self, url: str, secret: str, channel: str, handler: Handler) -> None:
        self.url = url
        self.channel = channel
        self.handler = handler
        self._key = hashlib.sha256(b"podium media relay\n" + secret.encode()).digest()
        self._publisher: Redis | None = None
        self._listener: Redis | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe and wait for Redis to confirm it, so nothing published later is missed."""
        self._publisher = Redis.from_url(self.url)
        self._listener = Redis.from_url(self.url)
        try:
            pubsub = await self._subscribe()
        except BaseException:
            await self.close()
            raise
        self._reader = asyncio.create_task(self._read(pubsub), name=f"podium-{self.channel}")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])
            self._reader = None
        for client in (self._publisher, self._listener):
            if client is not None:
                await client.aclose()
        self._publisher = self._listener = None

    async def publish(self, channel: str, payload: Mapping[str, Any]) -> None:
        """Send `payload` as JSON; raises `RedisError` or `OSError` when Redis cannot take it."""
        assert self._publisher is not None, "start() the link first"
        body = json.dumps({**payload, "sent_at": time.time()}, separators=(",", ":"))
        await self._publisher.publish(channel, f"{self._mac(channel, body)}:{body}")

    def _mac(self, channel: str, body: str) -> str:
        return hmac.new(self._key, f"{channel}\n{body}".encode(), hashlib.sha256).hexdigest()

    def _open(self, text: str) -> dict[str, Any] | None:
        """The message `text` carries, or None when it is unsigned, forged, stale or not JSON."""
        mac, _, body = text.partition(":")
        if not hmac.compare_digest(mac, self._mac(self.channel, body)):
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        sent_at = data.get("sent_at")
        if not isinstance(sent_at, float) or abs(time.time() - sent_at) > FRESH_S:
            return None
        return {str(key): value for key, value in data.items()}

    async def _subscribe(self) -> PubSub:
        assert self._listener is not None
        pubsub = self._listener.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            async with asyncio.timeout(CONFIRM_TIMEOUT_S):
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "subscribe":
                        return pubsub
        except BaseException:
            await _discard(pubsub)
            raise

    async def _read(self, pubsub: PubSub) -> None:
        delay = FIRST_BACKOFF_S
        try:
            while True:
                try:
                    await self._pump(pubsub)
                except (RedisError, OSError) as exc:
                    log.warning("lost the Redis subscription to %s: %s", self.channel, exc)
                await _discard(pubsub)
                while True:
                    await asyncio.sleep(delay)
                    try:
                        pubsub = await self._subscribe()
                        delay = FIRST_BACKOFF_S
                        break
                    except (RedisError, OSError, TimeoutError) as exc:
                        delay = min(delay * 2, MAX_BACKOFF_S)
                        log.warning("resubscribing to %s failed: %s", self.channel, exc)
        finally:
            await _discard(pubsub)

    async def _pump(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is None or message["type"] != "message":
                continue
            raw = message["data"]
            data = self._open(raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))
            if data is None:
                log.error(
                    "dropping a message on %s: not signed by this server, or stale", self.channel
                )
                continue
            try:
                await self.handler(data)
            except Exception:
                log.exception("relay message %r on %s failed", data.get("op"), self.channel)


async def _discard(pubsub: PubSub) -> None:
    """Close `pubsub`, releasing its connection (redis-py leaves aclose unannotated)."""
    await pubsub.aclose()  # type: ignore[no-untyped-call]


def _error_classes() -> dict[str, type[PodiumError]]:
    """Each error code's class, so a relayed failure is raised as the class the SFU raised."""
    found: dict[str, type[PodiumError]] = {}
    pending: list[type[PodiumError]] = [PodiumError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def rebuild_error(error: Mapping[str, Any]) -> PodiumError:
    """The `PodiumError` a `failed` reply describes (`PodiumError` itself for an unknown code)."""
    cls = _error_classes().get(str(error.get("code")), PodiumError)
    details = error.get("details")
    return cls(str(error.get("message", "")), details if isinstance(details, dict) else None)


class MediaRelay(MediaService):
    """A worker's media without an SFU: `sfu.*` frames go to the media worker, replies come back.

    It is a `MediaService` so the routes and the WebSocket endpoint keep one
    type; `connection_info` (the ICE servers of `join`) is computed here, from
    the same settings the media worker has. Nothing else of the SFU runs.
    """

    def __init__(
        self,
        runtime: Runtime,
        hub: EventHub,
        *,
        redis_url: str,
        secret: str,
        slot: WorkerSlot,
        **options: Any,
    ) -> None:
        super().__init__(runtime, hub, **options)
        self.slot = slot
        channel = worker_channel(slot.group, slot.index)
        self._link = _Link(redis_url, secret, channel, self._on_message)
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        #: (user id, connection id) of this worker's connections that sent `sfu.*` frames.
        self._relayed: set[tuple[str, str]] = set()

    async def start(self) -> None:
        await self._link.start()
        try:
            await self._link.publish(
                sfu_channel(self.slot.group), {"op": "hello", "worker": self.slot.index}
            )
        except (RedisError, OSError) as exc:
            log.warning("could not greet the media worker: %s", exc)

    async def close(self) -> None:
        await self._link.close()
        for reply in self._replies.values():
            reply.cancel()
        self._replies.clear()

    async def handle(
        self, identity: Identity, connection_id: str, message: Mapping[str, Any]
    ) -> None:
        """Relay one `sfu.*` frame and wait for the media worker to have handled it."""
        ref = uuid.uuid4().hex
        reply = self._replies[ref] = asyncio.get_running_loop().create_future()
        self._relayed.add((identity.user_id, connection_id))
        frame = {
            "op": "frame",
            "worker": self.slot.index,
            "ref": ref,
            "identity": identity.to_dict(),
            "connection_id": connection_id,
            "message": dict(message),
        }
        try:
            await self._link.publish(sfu_channel(self.slot.group), frame)
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                answer = await reply
        except (RedisError, OSError, TimeoutError) as exc:
            raise ServiceUnavailable(
                "the media worker did not answer; retry", {"retry_after_s": 1}
            ) from exc
        finally:
            self._replies.pop(ref, None)
        if answer.get("op") == "failed":
            raise rebuild_error(answer.get("error") or {})
        if answer.get("op") == "crashed":
            # As when a local SFU raises: ws.py ends the connection (the media worker logged why).
            raise RuntimeError("the media worker failed on this frame")

    async def connection_closed(self, user_id: str, connection_id: str) -> None:
        """Tell the media worker, if this connection ever sent it a frame."""
        if (user_id, connection_id) not in self._relayed:
            return
        self._relayed.discard((user_id, connection_id))
        closed = {
            "op": "closed",
            "worker": self.slot.index,
            "user_id": user_id,
            "connection_id": connection_id,
        }
        try:
            await self._link.publish(sfu_channel(self.slot.group), closed)
        except (RedisError, OSError) as exc:
            log.warning("media worker not told that %s closed: %s", connection_id, exc)

    async def _on_message(self, data: dict[str, Any]) -> None:
        op = data.get("op")
        if op == "send":
            fields = [data.get(key) for key in ("user_id", "connection_id", "text")]
            strings = [value for value in fields if isinstance(value, str)]
            if len(strings) == len(fields):
                self.hub.send_to(*strings)
        elif op in ("done", "failed", "crashed"):
            reply = self._replies.get(str(data.get("ref")))
            if reply is not None and not reply.done():
                reply.set_result(data)


class MediaWorker(MediaService):
    """The SFU of worker 0, also serving the frames the other workers relay.

    A relayed connection is `<worker>/<connection id>` among the SFU's session
    owners; what the SFU sends to one goes back to its worker over Redis.
    """

    def __init__(
        self,
        runtime: Runtime,
        hub: EventHub,
        *,
        redis_url: str,
        secret: str,
        slot: WorkerSlot,
        **options: Any,
    ) -> None:
        super().__init__(runtime, hub, **options)
        self.slot = slot
        self._link = _Link(redis_url, secret, sfu_channel(slot.group), self._on_message)
        self._outbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await super().start()
        await self._link.start()
        self._writer = asyncio.create_task(self._write(), name="podium-media-relay-out")

    async def close(self) -> None:
        await self._link.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().close()
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None

    def _send(
        self, cid: str, owners: Mapping[str, str], user_id: str, message: dict[str, Any]
    ) -> None:
        """Queue what the SFU sends: on this worker's connection, or back to a relaying worker."""
        worker, relayed, connection_id = owners.get(user_id, "").partition("/")
        if not relayed:
            super()._send(cid, owners, user_id, message)
            return
        text = encode({**message, "call_cid": cid})
        self._post(
            int(worker),
            {"op": "send", "user_id": user_id, "connection_id": connection_id, "text": text},
        )

    def _post(self, worker: int, payload: dict[str, Any]) -> None:
        self._outbox.put_nowait((worker_channel(self.slot.group, worker), payload))

    async def _write(self) -> None:
        """Publish the outbox in order, so a frame's replies precede its `done`."""
        while True:
            channel, payload = await self._outbox.get()
            try:
                await self._link.publish(channel, payload)
            except (RedisError, OSError) as exc:
                log.warning("could not relay %s to %s: %s", payload.get("op"), channel, exc)

    async def _on_message(self, data: dict[str, Any]) -> None:
        worker = data.get("worker")
        if not isinstance(worker, int) or isinstance(worker, bool) or worker < 1:
            log.error("dropping a relay message from no known worker: %r", data.get("op"))
            return
        match data.get("op"):
            case "frame":
                self._spawn(self._serve_frame(worker, data))
            case "closed":
                owner = f"{worker}/{data.get('connection_id')}"
                self._spawn(self.connection_closed(str(data.get("user_id")), owner))
            case "hello":
                self._spawn(self._forget_worker(worker))

    def _spawn(self, work: Awaitable[None]) -> None:
        """Run `work` on its own: one connection's slow offer must not hold up the others."""

        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_frame(self, worker: int, data: dict[str, Any]) -> None:
        ref = data.get("ref")
        reply: dict[str, Any] = {"op": "done", "ref": ref}
        try:
            message = data.get("message")
            if not isinstance(message, dict):
                raise ValidationFailed("a relayed frame carries a message object")
            try:
                identity = Identity.from_dict(data.get("identity") or {})
            except ValueError as exc:
                raise ValidationFailed(str(exc)) from exc
            await self.handle(identity, f"{worker}/{data.get('connection_id')}", message)
        except PodiumError as exc:
            error = {"code": exc.code, "message": exc.message, "details": exc.details}
            reply = {"op": "failed", "ref": ref, "error": error}
        except Exception:
            log.exception("a frame relayed by worker %d failed", worker)
            reply = {"op": "crashed", "ref": ref}
        self._post(worker, reply)

    async def _forget_worker(self, worker: int) -> None:
        """End the media sessions owned by connections of `worker`'s previous process."""
        prefix = f"{worker}/"
        for media in list(self.calls.values()):
            for user_id, owner in list(media.owners.items()):
                if owner.startswith(prefix):
                    await self.connection_closed(user_id, owner)

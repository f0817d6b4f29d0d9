"""WebSocket endpoint `GET /v1/ws` (spec §3): authenticate, then `watch`/`unwatch`/pings.

Frames are written to each connection's socket without waiting (see
`WsConnection`), so one slow client never delays delivery to the others; a
client that falls too far behind is disconnected (4008).

Limits (`podium.config.Limits`): frames past `ws_frame_bytes` are refused by
the protocol layer, before authentication too (close 1009); a binary frame
closes the connection (1003); a connection sending faster than
`ws_messages_per_s` (with bursts of `ws_message_burst`) is closed (1008); a
user may hold `ws_connections_per_user` connections on one node (4029). JSON
that could not be sent back (`NaN`, lone surrogates, deep nesting) is refused
like any invalid frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from podium.api.deps import Services
from podium.api.frames import CLOSE_TOO_SLOW, EXTENSION, FrameWriter, framed
from podium.core.errors import PodiumError, RateLimited, TooManyConnections, ValidationFailed
from podium.core.json_values import decode_strict, json_problem
from podium.core.rates import TokenBucket
from podium.protocol.ids import is_call_cid
from podium.services import metrics
from podium.services.delivery import EventHub, encode
from podium.services.identity import Identity
from podium.tokens import verify

log = logging.getLogger("podium.ws")
router = APIRouter()

AUTH_TIMEOUT_S = 5.0
MAX_QUEUE = 10_000
#: A client with more than this written to it and not yet read is too slow.
MAX_UNSENT_BYTES = 4 * 1024 * 1024
#: The first frame, when it authenticates, holds only a token.
MAX_AUTH_FRAME_CHARS = 8 * 1024
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_MANY = 4029


class WsConnection:
    """One WebSocket: frames written at once where the server allows it, else queued.

    Under `podium serve` the connection has a `FrameWriter` (api/frames.py):
    `send` hands the frame to the loop's outbox, which writes it in this loop
    iteration (or, for a `bulk` frame sent to every watcher, in a later slice
    of the broadcast), and a client that leaves more than `MAX_UNSENT_BYTES`
    unread is disconnected. Under another ASGI
    server frames go through a queue and a writer task, and a client is
    disconnected past `MAX_QUEUE` queued frames. Closing always goes through
    the writer task.
    """

    def __init__(self, websocket: WebSocket, identity: Identity) -> None:
        self.websocket = websocket
        self.identity = identity
        self.id = uuid.uuid4().hex
        self.last_seen = time.monotonic()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""
        self._frames: FrameWriter | None = websocket.scope.get("extensions", {}).get(EXTENSION)
        if self._frames is not None:
            self._frames.max_unsent = MAX_UNSENT_BYTES
            self._frames.on_close = self._cannot_write
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.id}")

    def send(self, text: str, *, bulk: bool = False) -> None:
        if self.close_code is not None:
            return
        if self._frames is not None:
            self._frames.write(framed(text), prompt=not bulk)
            return
        if self._queue.qsize() >= MAX_QUEUE:
            metrics.SLOW_CLOSES.inc()
            self.close(CLOSE_TOO_SLOW, "too slow: outgoing queue full")
            return
        self._queue.put_nowait(text)

    def _cannot_write(self, code: int, reason: str) -> None:
        """The frame writer found the connection closing (1006) or the client too slow (4008)."""
        if code == CLOSE_TOO_SLOW:
            metrics.SLOW_CLOSES.inc()
        self.close(code, reason)

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            if self._frames is not None:
                self._frames.close_soon()
            self._queue.put_nowait(None)

    async def _write(self) -> None:
        try:
            while (text := await self._queue.get()) is not None:
                await self.websocket.send_text(text)
            await self.websocket.close(self.close_code or 1000, self.close_reason)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.close_code = self.close_code or 1006

    async def finish(self) -> None:
        self.close(1000, "")
        await asyncio.gather(self._writer, return_exceptions=True)


def _error(exc: PodiumError, **context: Any) -> str:
    return encode(
        {
            "type": "error",
            **context,
            "error": {"code": exc.code, "message": exc.message, "details": exc.details},
        }
    )


async def _authenticate(websocket: WebSocket, services: Services) -> Identity:
    token = websocket.query_params.get("token")
    if token is None:
        try:
            first = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT_S)
        except TimeoutError as exc:
            raise ValidationFailed("send {'type': 'auth', 'token': ...} first") from exc
        if first["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(first.get("code", 1000))
        text = first.get("text")
        message = (
            _decode(text) if isinstance(text, str) and len(text) <= MAX_AUTH_FRAME_CHARS else None
        )
        if not isinstance(message, dict) or message.get("type") != "auth":
            raise ValidationFailed("send {'type': 'auth', 'token': ...} first")
        token = message.get("token")
        if not isinstance(token, str):
            raise ValidationFailed("auth needs a token string")
    identity = verify(services.settings.secret, token)
    services.revocations.check(identity)
    return identity


def _decode(text: str) -> object:
    """A frame's JSON, or None when it is not JSON Podium accepts (see json_values)."""
    try:
        value = decode_strict(text)
    except (ValueError, RecursionError):
        return None
    return None if json_problem(value) is not None else value


async def _handle(conn: WsConnection, hub: EventHub, message: Any) -> None:
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValidationFailed("frames are JSON objects with a string 'type'")
    kind = message["type"]
    if kind in ("health.check", "pong"):
        return
    if kind == "ping":
        conn.send(encode({"type": "pong"}))
        return
    if kind not in ("watch", "unwatch"):
        raise ValidationFailed(f"unknown message type {kind!r}", {"type": kind})
    cid = message.get("call_cid")
    if not is_call_cid(cid):
        raise ValidationFailed("call_cid must be '{type}:{id}'", {"call_cid": str(cid)[:140]})
    if kind == "unwatch":
        hub.unwatch(conn, cid)
        conn.send(encode({"type": "unwatch.ok", "call_cid": cid}))
        return
    since = message.get("since")
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        raise ValidationFailed("since must be a non-negative integer")
    audience = message.get("audience", False)
    if not isinstance(audience, bool):
        raise ValidationFailed("audience must be true or false")
    seq = await hub.watch(conn, cid, since, audience=audience)
    ok: dict[str, Any] = {"type": "watch.ok", "call_cid": cid, "last_seq": seq}
    if audience:
        ok["audience"] = True
    conn.send(encode(ok))


@router.websocket("/v1/ws")
async def events(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    hub = services.hub
    limits = services.settings.limits
    await websocket.accept()
    try:
        identity = await _authenticate(websocket, services)
    except PodiumError as exc:
        await websocket.send_text(_error(exc))
        await websocket.close(4001, exc.code)
        return
    except WebSocketDisconnect:
        return
    held = len(hub.by_user.get(identity.user_id, ()))
    if not identity.server and held >= limits.ws_connections_per_user:
        crowded = TooManyConnections(
            f"at most {limits.ws_connections_per_user} connections per user",
            {"limit": limits.ws_connections_per_user},
        )
        await websocket.send_text(_error(crowded))
        await websocket.close(CLOSE_TOO_MANY, "too many connections")
        return
    conn = WsConnection(websocket, identity)
    hub.connect(conn)
    conn.send(
        encode({"type": "connection.ok", "user_id": identity.user_id, "connection_id": conn.id})
    )
    bucket = TokenBucket(limits.ws_messages_per_s, limits.ws_message_burst, time.monotonic())
    try:
        while conn.close_code is None:
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                break
            text = received.get("text")
            if not isinstance(text, str):
                log.warning(
                    "connection %s of %s sent a binary frame: closed", conn.id, identity.user_id
                )
                conn.close(CLOSE_UNSUPPORTED, "binary frames are not accepted")
                break
            conn.last_seen = time.monotonic()
            if not bucket.take(conn.last_seen):
                refusal = RateLimited(
                    f"more than {limits.ws_messages_per_s:g} frames a second",
                    {"limit_per_s": limits.ws_messages_per_s, "burst": limits.ws_message_burst},
                )
                conn.send(_error(refusal))
                conn.close(CLOSE_POLICY, "message rate exceeded")
                break
            message = _decode(text)
            if message is None:
                conn.send(_error(ValidationFailed("frame is not valid JSON")))
                continue
            try:
                if isinstance(message, dict) and str(message.get("type")).startswith("sfu."):
                    await services.media.handle(conn.identity, conn.id, message)
                else:
                    await _handle(conn, hub, message)
            except PodiumError as exc:
                context = {}
                if isinstance(message, dict):
                    context["call_cid"] = message.get("call_cid")
                    if isinstance(message.get("type"), str):
                        context["in_reply_to"] = message["type"]
                conn.send(_error(exc, **context))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.disconnect(conn)
        await conn.finish()
        await services.media.connection_closed(conn.identity.user_id, conn.id)

"""WebSocket endpoint `GET /v1/ws` (spec §3): authenticate, then `watch`/`unwatch`/pings.

Each connection has an outgoing queue drained by its own writer task, so one
slow client never delays delivery to the others; a client that lets its queue
grow past `MAX_QUEUE` frames is disconnected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from podium.api.deps import Services
from podium.core.errors import PodiumError, ValidationFailed
from podium.services import metrics
from podium.services.delivery import EventHub, encode
from podium.services.identity import Identity
from podium.tokens import verify

log = logging.getLogger("podium.ws")
router = APIRouter()

AUTH_TIMEOUT_S = 5.0
MAX_QUEUE = 10_000
MAX_FRAME_BYTES = 64 * 1024
CID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,64}$")


class WsConnection:
    def __init__(self, websocket: WebSocket, identity: Identity) -> None:
        self.websocket = websocket
        self.identity = identity
        self.id = uuid.uuid4().hex
        self.last_seen = time.monotonic()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.id}")

    def send(self, text: str) -> None:
        if self.close_code is not None:
            return
        if self._queue.qsize() >= MAX_QUEUE:
            metrics.SLOW_CLOSES.inc()
            self.close(4008, "too slow: outgoing queue full")
            return
        self._queue.put_nowait(text)

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
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


async def _authenticate(websocket: WebSocket, secret: str) -> Identity:
    token = websocket.query_params.get("token")
    if token is None:
        try:
            first = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_S)
            message = json.loads(first)
        except (TimeoutError, ValueError) as exc:
            raise ValidationFailed("send {'type': 'auth', 'token': ...} first") from exc
        if not isinstance(message, dict) or message.get("type") != "auth":
            raise ValidationFailed("send {'type': 'auth', 'token': ...} first")
        token = message.get("token")
        if not isinstance(token, str):
            raise ValidationFailed("auth needs a token string")
    return verify(secret, token)


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
    if not isinstance(cid, str) or not CID_PATTERN.fullmatch(cid):
        raise ValidationFailed("call_cid must be '{type}:{id}'", {"call_cid": str(cid)[:140]})
    if kind == "unwatch":
        hub.unwatch(conn, cid)
        conn.send(encode({"type": "unwatch.ok", "call_cid": cid}))
        return
    since = message.get("since")
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        raise ValidationFailed("since must be a non-negative integer")
    seq = await hub.watch(conn, cid, since)
    conn.send(encode({"type": "watch.ok", "call_cid": cid, "last_seq": seq}))


@router.websocket("/v1/ws")
async def events(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    hub = services.hub
    await websocket.accept()
    try:
        identity = await _authenticate(websocket, services.settings.secret)
    except PodiumError as exc:
        await websocket.send_text(_error(exc))
        await websocket.close(4001, exc.code)
        return
    except WebSocketDisconnect:
        return
    conn = WsConnection(websocket, identity)
    hub.connect(conn)
    conn.send(
        encode({"type": "connection.ok", "user_id": identity.user_id, "connection_id": conn.id})
    )
    try:
        while conn.close_code is None:
            text = await websocket.receive_text()
            conn.last_seen = time.monotonic()
            if len(text) > MAX_FRAME_BYTES:
                conn.send(_error(ValidationFailed("frame too large")))
                continue
            try:
                message = json.loads(text)
            except ValueError:
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

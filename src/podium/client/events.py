"""The client's one WebSocket connection (spec §3): watch calls, survive reconnects.

`EventStream` keeps a connection to `GET /v1/ws` open in a background task:

- after `connection.ok` it sends `watch` for every watched call, with `since`
  set to the last `seq` seen for that call, so events published while the
  connection was down are replayed and none is missed;
- it answers every `health.check` (the server closes silent connections);
- it drops call events it has already seen (a `seq` at or below the last one)
  and hands every other frame that names a `call_cid` to `dispatch`;
- when the connection drops it reconnects after a delay that doubles from
  `backoff_initial_s` up to `backoff_max_s`; a refused token (`invalid_token`,
  `token_expired`) stops it for good.

Calling order: `await connect()` (optional: `watch` connects too), then
`await watch(cid, since)` per call, and `await close()` at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from podium.client.errors import PodiumAPIError, PodiumConnectionError

log = logging.getLogger("podium.client.events")

Frame = dict[str, Any]
FrameHandler = Callable[[Frame], None]

FATAL_CODES = frozenset({"invalid_token", "token_expired"})
"""Error codes of a refused token: reconnecting with the same token cannot help."""


def ws_url(base_url: str) -> str:
    """`http://host:port[/prefix]` → `ws://host:port[/prefix]/v1/ws` (https → wss)."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"base_url must be http(s)://..., got {base_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path + "/v1/ws", "", ""))


class EventStream:
    """One auto-reconnecting WebSocket connection shared by every call of a `Client`."""

    def __init__(
        self,
        url: str,
        token: str,
        dispatch: FrameHandler,
        *,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 5.0,
        open_timeout_s: float = 10.0,
        ack_timeout_s: float = 10.0,
    ) -> None:
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self.url = url
        self._token = token
        self._dispatch = dispatch
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.open_timeout_s = open_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.user_id: str | None = None
        self.connection_id: str | None = None
        self.connects = 0
        """How many times a connection was established (reconnects = connects - 1)."""
        self._watched: dict[str, int | None] = {}
        self._audience: set[str] = set()
        """Calls watched with `audience=True` (every re-watch asks for it again)."""
        self._acks: dict[str, asyncio.Future[int]] = {}
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: PodiumAPIError | None = None

    # public API

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def websocket(self) -> ClientConnection | None:
        """The current connection (None while reconnecting); exposed for tests and debugging."""
        return self._ws

    @property
    def watched(self) -> dict[str, int | None]:
        """Watched call cids and the last `seq` seen for each (a copy)."""
        return dict(self._watched)

    async def connect(self, timeout_s: float | None = None) -> None:
        """Start the connection task if needed and wait until the server said `connection.ok`."""
        self._raise_if_unusable()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="podium-client-events")
        await self.wait_connected(timeout_s if timeout_s is not None else self.open_timeout_s)

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) until a connection is up; `PodiumConnectionError` if not."""
        if self._ws is not None:
            return
        ready = asyncio.ensure_future(self._ready.wait())
        task = self._task
        waiting: set[asyncio.Future[Any]] = {ready}
        if task is not None:
            waiting.add(task)
        try:
            await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        self._raise_if_unusable()
        if self._ws is None:
            raise PodiumConnectionError(f"no event connection to {self.url} within {timeout_s} s")

    async def send(self, frame: Frame) -> None:
        """Send one frame on the current connection (e.g. `sfu.*` media signalling).

        Raises `PodiumConnectionError` while there is no connection: the frame is
        not queued, as the server's state for it would not survive a reconnect anyway.
        """
        ws = self._ws
        if ws is None:
            raise PodiumConnectionError(f"no event connection to {self.url}")
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed as exc:
            raise PodiumConnectionError("the event connection closed") from exc

    async def watch(self, cid: str, since: int | None = None, *, audience: bool = False) -> int:
        """Watch `cid` (replaying events after `since`); returns the seq of `watch.ok`.

        `audience=True` also asks for each audience join and leave (moderators
        only: the server refuses it without `update-call-permissions`).
        Watching a call already watched the same way returns at once with the
        last seq seen; changing `audience` sends the watch again.
        Raises `PodiumAPIError` when the server refuses (e.g. `permission_denied`).
        """
        self._raise_if_unusable()
        same = (cid in self._audience) == audience
        if audience:
            self._audience.add(cid)
        else:
            self._audience.discard(cid)
        if cid in self._watched and cid not in self._acks and same:
            return self._watched[cid] or 0
        if cid not in self._acks:
            self._watched[cid] = since
            self._acks[cid] = asyncio.get_running_loop().create_future()
            if self._ws is not None:
                await self._send_watch(self._ws, cid, since)
        ack = self._acks[cid]
        try:
            if self._task is None:
                await self.connect()
            return await asyncio.wait_for(asyncio.shield(ack), self.ack_timeout_s)
        except TimeoutError:
            raise PodiumConnectionError(
                f"no watch.ok for {cid} within {self.ack_timeout_s} s"
            ) from None
        finally:
            if self._acks.get(cid) is ack and not ack.done():
                self._forget(cid)  # given up on (timeout, cancelled, no connection)
            elif ack.done() and not ack.cancelled():
                ack.exception()  # failed while connecting: mark the error as retrieved

    async def unwatch(self, cid: str) -> None:
        """Stop watching `cid` (no more events, no re-watch after reconnects)."""
        self._forget(cid)
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "unwatch", "call_cid": cid}))

    async def close(self) -> None:
        """Close the connection for good and stop the task; pending watches fail."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail_acks(PodiumConnectionError("event connection closed"))

    # connection loop

    async def _run(self) -> None:
        delay = self.backoff_initial_s
        url = f"{self.url}?token={quote(self._token, safe='')}"
        while not self._closing:
            try:
                async with connect(
                    url,
                    open_timeout=self.open_timeout_s,
                    close_timeout=2.0,
                    max_size=2**22,
                ) as ws:
                    await self._session(ws)
                    delay = self.backoff_initial_s
            except PodiumAPIError as exc:
                if exc.code in FATAL_CODES:
                    log.error("event connection refused: %s", exc)
                    self._failure = exc
                    self._give_up(exc)
                    return
                log.warning("event connection error: %s", exc)
            except (
                OSError,
                TimeoutError,
                ConnectionClosed,
                InvalidHandshake,
                InvalidURI,
                PodiumConnectionError,
            ) as exc:
                log.info("event connection lost: %r", exc)
            except Exception:
                log.exception("event connection failed unexpectedly")
            finally:
                self._ws = None
                self._ready.clear()
            if self._closing:
                return
            pause = delay * random.uniform(0.8, 1.2)
            delay = min(delay * 2, self.backoff_max_s)
            log.info("reconnecting to %s in %.2f s", self.url, pause)
            await asyncio.sleep(pause)

    async def _session(self, ws: ClientConnection) -> None:
        """One connection: hello, re-watch everything, then read frames until it closes."""
        hello = _decode(await asyncio.wait_for(ws.recv(), self.open_timeout_s))
        if hello is None or hello.get("type") != "connection.ok":
            if hello is not None and hello.get("type") == "error":
                raise PodiumAPIError.from_frame(hello)
            raise PodiumConnectionError(f"expected connection.ok, got {hello!r}")
        self.user_id = _str_or_none(hello.get("user_id"))
        self.connection_id = _str_or_none(hello.get("connection_id"))
        self.connects += 1
        # Publishing the connection and listing what to re-watch happen in one step
        # (no await between), so a concurrent `watch()` either sends its own frame
        # or is in this list: never neither.
        self._ws = ws
        self._ready.set()
        for cid, since in list(self._watched.items()):
            await self._send_watch(ws, cid, since)
        async for text in ws:
            frame = _decode(text)
            if frame is not None:
                await self._on_frame(ws, frame)

    async def _send_watch(self, ws: ClientConnection, cid: str, since: int | None) -> None:
        frame: Frame = {"type": "watch", "call_cid": cid}
        if since is not None:
            frame["since"] = since
        if cid in self._audience:
            frame["audience"] = True
        with contextlib.suppress(ConnectionClosed):  # the next connection sends it again
            await ws.send(json.dumps(frame))

    async def _on_frame(self, ws: ClientConnection, frame: Frame) -> None:
        kind = frame.get("type")
        cid = frame.get("call_cid")
        if kind == "health.check":
            with contextlib.suppress(ConnectionClosed):
                await ws.send('{"type":"health.check"}')
            return
        if kind == "watch.ok" and isinstance(cid, str):
            self._on_watch_ok(cid, frame.get("last_seq"))
            return
        if kind == "error":
            self._on_error(frame)
            return
        if not isinstance(cid, str):
            log.debug("ignoring frame %r", kind)
            return
        seq = frame.get("seq")
        if isinstance(seq, int) and cid in self._watched:
            last = self._watched[cid]
            if last is not None and seq <= last:
                return  # already seen: a replay overlapping what was delivered live
            self._watched[cid] = seq
        self._deliver(frame)

    def _on_watch_ok(self, cid: str, seq: object) -> None:
        if cid not in self._watched:
            return  # unwatched meanwhile
        if isinstance(seq, int):
            last = self._watched[cid]
            self._watched[cid] = seq if last is None else max(last, seq)
        ack = self._acks.pop(cid, None)
        if ack is not None and not ack.done():
            ack.set_result(self._watched[cid] or 0)

    def _on_error(self, frame: Frame) -> None:
        cid = frame.get("call_cid")
        error = PodiumAPIError.from_frame(frame)
        if not isinstance(cid, str):
            log.warning("event connection error frame: %s", error)
            return
        if str(frame.get("in_reply_to", "")).startswith("sfu."):
            self._deliver(frame)  # a refused media frame: the call stays watched
            return
        # Other errors naming a call answer a watch: the call is no longer watched.
        self._watched.pop(cid, None)
        ack = self._acks.pop(cid, None)
        if ack is not None and not ack.done():
            ack.set_exception(error)
        else:
            self._deliver(frame)

    def _deliver(self, frame: Frame) -> None:
        try:
            self._dispatch(frame)
        except Exception:
            log.exception("dispatching %s failed", frame.get("type"))

    def _forget(self, cid: str) -> None:
        self._watched.pop(cid, None)
        self._audience.discard(cid)
        ack = self._acks.pop(cid, None)
        if ack is not None and not ack.done():
            ack.cancel()

    def _fail_acks(self, error: Exception) -> None:
        for cid, ack in list(self._acks.items()):
            if not ack.done():
                ack.set_exception(error)
            self._watched.pop(cid, None)
        self._acks.clear()

    def _give_up(self, error: PodiumAPIError) -> None:
        """The token was refused: fail waiting watches, tell every watched call, stop."""
        waiting = set(self._acks)
        self._fail_acks(error)
        body = {"code": error.code, "message": error.message, "details": error.details}
        for cid in [c for c in self._watched if c not in waiting]:
            self._deliver({"type": "error", "call_cid": cid, "error": body})
        self._watched.clear()

    def _raise_if_unusable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closing:
            raise PodiumConnectionError("event connection closed")


def _decode(text: str | bytes) -> Frame | None:
    try:
        frame = json.loads(text)
    except ValueError:
        log.warning("ignoring a frame that is not JSON")
        return None
    return frame if isinstance(frame, dict) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None

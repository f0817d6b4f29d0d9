"""`Client`: one user's (or a server's) session with a Podium server.

It owns one HTTP client and one WebSocket connection shared by every call it
watches, and hands out one `Call` object per call:

    async with Client("http://127.0.0.1:8000", token) as client:
        call = client.call("audio_room", "town-hall")
        await call.join()
        call.on("call.permissions_updated", print)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
from collections.abc import Awaitable
from types import TracebackType
from typing import Any

import httpx

from podium.client.call import Call, check_id
from podium.client.events import EventStream, Frame, ws_url
from podium.client.http import JSON, HttpTransport, decode

log = logging.getLogger("podium.client")


class Client:
    """A Podium client acting with `token` against `base_url` (e.g. `http://127.0.0.1:8000`).

    Pass `http` to use your own `httpx.AsyncClient` (it is then yours to close).
    The event connection opens on the first `join()`/`watch()` (or `connect()`)
    and reconnects by itself, waiting `backoff_initial_s` doubling up to
    `backoff_max_s` between attempts. `media_loopback` makes media sessions
    gather only 127.0.0.1 candidates (tests on one machine); it defaults to
    the environment's `PODIUM_MEDIA_LOOPBACK=1`.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        http: httpx.AsyncClient | None = None,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 5.0,
        timeout_s: float = 15.0,
        media_loopback: bool | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.media_loopback = (
            os.environ.get("PODIUM_MEDIA_LOOPBACK") == "1"
            if media_loopback is None
            else media_loopback
        )
        self.http = HttpTransport(self.base_url, token, http=http, timeout_s=timeout_s)
        self.events = EventStream(
            ws_url(self.base_url),
            token,
            self._dispatch,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            open_timeout_s=timeout_s,
            ack_timeout_s=timeout_s,
        )
        self._claims = token_claims(token)
        self._calls: dict[str, Call] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, user_id={self.user_id!r})"

    @property
    def user_id(self) -> str | None:
        """The token's user (`sub`); None for server tokens.

        A token whose claims cannot be read falls back to what the server said
        on connecting (`connection.ok`).
        """
        if self._claims is None:
            return self.events.user_id
        sub = self._claims.get("sub")
        return sub if isinstance(sub, str) and self._claims.get("server") is not True else None

    def call(self, type: str, id: str) -> Call:
        """The `Call` for `type:id` (always the same object for the same call)."""
        cid = f"{check_id(type, 'call type')}:{check_id(id, 'call id')}"
        found = self._calls.get(cid)
        if found is None:
            found = self._calls[cid] = Call(self, type, id)
        return found

    async def connect(self) -> None:
        """Open the event connection now (otherwise the first watch opens it)."""
        await self.events.connect()

    async def call_types(self) -> list[JSON]:
        """Every call type (`GET /v1/call-types`)."""
        data = await self.http.request("GET", "/v1/call-types")
        types = data.get("call_types")
        return [t for t in types if isinstance(t, dict)] if isinstance(types, list) else []

    async def query_calls(self, type: str | None = None, live: bool | None = None) -> list[JSON]:
        """Calls you are a member of plus live calls you may read (`GET /v1/calls`)."""
        params: dict[str, str] = {}
        if type is not None:
            params["type"] = check_id(type, "call type")
        if live is not None:
            params["live"] = "true" if live else "false"
        data = await self.http.request("GET", "/v1/calls", params=params)
        calls = data.get("calls")
        return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []

    def spawn(self, awaitable: Awaitable[Any], what: str = "task") -> None:
        """Run a coroutine handler in the background; its failure is logged, not raised."""
        future = asyncio.ensure_future(awaitable)
        self._tasks.add(future)

        def done(task: asyncio.Future[Any]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("%s failed", what, exc_info=task.exception())

        future.add_done_callback(done)

    async def close(self) -> None:
        """Close media sessions and the event connection, stop handlers, close the HTTP client."""
        if self._closed:
            return
        self._closed = True
        for call in list(self._calls.values()):
            await call.close_media()
        await self.events.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.http.aclose()

    aclose = close

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @classmethod
    async def dev_token(
        cls,
        base_url: str,
        user_id: str,
        name: str | None = None,
        role: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> str:
        """A user token from a server run with `podium serve --dev` (`POST /v1/dev/token`)."""
        body: dict[str, Any] = {"user_id": check_id(user_id, "user id")}
        if name is not None:
            body["name"] = name
        if role is not None:
            body["role"] = role
        url = base_url.rstrip("/") + "/v1/dev/token"
        if http is not None:
            data = decode(await http.post(url, json=body))
        else:
            async with httpx.AsyncClient(timeout=httpx.Timeout(15.0)) as own:
                data = decode(await own.post(url, json=body))
        token = data.get("token")
        if not isinstance(token, str):
            raise ValueError("the server's dev token answer has no token")
        return token

    def _dispatch(self, frame: Frame) -> None:
        cid = frame.get("call_cid")
        call = self._calls.get(cid) if isinstance(cid, str) else None
        if call is not None:
            call.handle_frame(frame)


def token_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, read without verifying them (the server verifies)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None

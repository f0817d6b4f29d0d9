"""`--dev` answers only requests addressed to a loopback host name.

Dev mode mints a token for anyone who asks. A web page on another site could
still reach it through DNS rebinding (its own name, re-pointed at 127.0.0.1),
but its requests then carry that name in `Host`: refusing every `Host` but
127.0.0.1, localhost and [::1] closes that door.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from podium.api.errors import send_error
from podium.config import LOOPBACK_HOSTS
from podium.protocol.errors import ErrorCode


def host_name(header: str) -> str:
    """The name in a `Host` header, without its port (`[::1]:8000` → `::1`).

    A header that is not `name` or `name:port` (e.g. `[::1].evil.example`) is returned whole.
    """
    if header.startswith("["):
        name, _, rest = header[1:].partition("]")
        return name if rest == "" or (rest[:1] == ":" and rest[1:].isdigit()) else header
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() else header


class LoopbackHostsOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers", ())).get(b"host", b"").decode("latin-1")
        if host_name(header).lower() in LOOPBACK_HOSTS:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # Closing before accepting answers the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_error(
            send,
            403,
            ErrorCode.HOST_NOT_ALLOWED,
            "with --dev, only requests to 127.0.0.1, localhost or [::1] are served",
            {"host": header[:255]},
        )

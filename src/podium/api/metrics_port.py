"""`/metrics` without a token, on a port of its own that only this machine can reach.

Prometheus scrapers rarely hold short-lived tokens, so `--metrics-port`
serves the same text on 127.0.0.1 (a scraper elsewhere needs a tunnel or a
local agent). Requests must name a loopback `Host`, so a web page on this
machine cannot read it through DNS rebinding. It runs on the server's event
loop, so reading the figures never races the code that changes them.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from podium.api.hosts import host_name
from podium.config import LOOPBACK_HOSTS
from podium.services import metrics

#: A request's line and headers; scrapers send a few hundred bytes.
MAX_REQUEST_BYTES = 8 * 1024
READ_TIMEOUT_S = 5.0


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        line, *fields = head.decode("latin-1").split("\r\n")
        method, _, rest = line.partition(" ")
        path = rest.split(" ", 1)[0].split("?", 1)[0]
        hosts = [v.strip() for k, _, v in (f.partition(":") for f in fields) if k.lower() == "host"]
        if len(hosts) != 1 or host_name(hosts[0]).lower() not in LOOPBACK_HOSTS:
            status, kind, body = b"403 Forbidden", "text/plain", b"Host must be 127.0.0.1\n"
        elif method == "GET" and path == "/metrics":
            status, kind = b"200 OK", CONTENT_TYPE_LATEST
            body = generate_latest(metrics.REGISTRY)
        else:
            status, kind, body = b"404 Not Found", "text/plain", b"only /metrics is served here\n"
        headers = f"content-type: {kind}\r\ncontent-length: {len(body)}\r\nconnection: close"
        writer.write(b"HTTP/1.1 %s\r\n%s\r\n\r\n%s" % (status, headers.encode(), body))
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serve_metrics(port: int) -> asyncio.Server:
    """Listen on 127.0.0.1:`port`; close the returned server to stop."""
    return await asyncio.start_server(_answer, "127.0.0.1", port, limit=MAX_REQUEST_BYTES)

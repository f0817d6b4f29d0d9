"""Metrics and dev mode publish nothing to strangers.

Against real `podium serve` processes:

- `/metrics` on the API port answers 401 without a token (or with a non-bearer
  one), 403 to user tokens (an `admin` role too) and Prometheus text to server tokens.
- After a call of a private call type with a distinctive id was created,
  joined, watched and given a media session, `/metrics` names neither the call
  nor its type by default (the SFU gauges are totals); with
  `PODIUM_METRICS_CALL_LABELS=1` the gauges carry its `call_cid`.
- `PODIUM_METRICS_PORT` serves the same text without a token, listening on
  127.0.0.1 only (read from `/proc/net/tcp*`; no other address is contacted),
  and only to requests whose `Host` is a loopback name.
- `--dev` answers the dev token endpoint, and everything else, only for a
  loopback `Host` (127.0.0.1, localhost, [::1], any port); other names, names that
  merely start with a loopback one, and malformed ones get 403
  `host_not_allowed`, and a WebSocket upgrade for them gets 403 too. Without
  `--dev` any `Host` is served (a server behind a reverse proxy) and there is no
  dev token endpoint. `serve --dev --host 0.0.0.0` does not start.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from podium.tokens import verify
from tests.e2e.clients import Api, MediaClient, Watcher
from tests.server import SECRET, ServerProcess, free_port

SUBPROCESS_TIMEOUT_S = 60
LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
TCP_LISTEN = "0A"

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def http_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=15, trust_env=False)


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) with a TCP socket listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                address, _, port_hex = fields[1].rpartition(":")
                if fields[3] == TCP_LISTEN and int(port_hex, 16) == port:
                    found.add(address)
    return found


async def upgrade_status(port: int, host: str) -> int:
    """The status a WebSocket upgrade of `/v1/ws` with this `Host` gets (101 when accepted)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        writer.write(
            (
                f"GET /v1/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# /metrics on the API port


async def test_metrics_on_the_api_port_need_a_server_token(tmp_path: Path, sqlite_url: str) -> None:
    server = ServerProcess(tmp_path, sqlite_url).start()
    try:
        async with http_client(server.url) as http:
            for headers in ({}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer"}):
                response = await http.get("/metrics", headers=headers)
                assert response.status_code == 401, (headers, response.text)
                assert response.json()["error"]["code"] == "invalid_token"
                assert "podium_" not in response.text
            for role in (None, "admin"):
                response = await http.get("/metrics", headers=bearer(server.token("u", role=role)))
                assert response.status_code == 403, (role, response.text)
                assert response.json()["error"]["code"] == "permission_denied"
            response = await http.get("/metrics", headers=bearer(server.server_token()))
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain")
            assert "# TYPE podium_ws_connections gauge" in response.text
    finally:
        server.stop()


@pytest.mark.parametrize("call_labels", [False, True], ids=["default", "call-labels"])
async def test_metrics_name_no_call_unless_call_labels_are_on(
    tmp_path: Path, sqlite_url: str, call_labels: bool
) -> None:
    env = {"PODIUM_MEDIA_LOOPBACK": "1"}
    if call_labels:
        env["PODIUM_METRICS_CALL_LABELS"] = "1"
    server = ServerProcess(tmp_path, sqlite_url, extra_env=env).start()
    call_type = f"hushtype{uuid.uuid4().hex[:8]}"
    call_id = f"hushcall{uuid.uuid4().hex[:8]}"
    cid = f"{call_type}:{call_id}"
    host = Api(server, "hushhost")
    sockets: list[Watcher] = []
    media: list[MediaClient] = []
    try:
        async with http_client(server.url) as http:
            operator = bearer(server.server_token())
            default = (await http.get("/v1/call-types/default", headers=operator)).json()
            del default["name"]
            put = await http.put(f"/v1/call-types/{call_type}", headers=operator, json=default)
            assert put.status_code == 200, put.text
            await host.call("POST", f"/calls/{call_type}/{call_id}", {}, 201)
            await host.call("POST", f"/calls/{call_type}/{call_id}/join")
            ws = await Watcher(server, "hushhost").open()
            sockets.append(ws)
            assert (await ws.watch(cid))["type"] == "watch.ok"
            client = MediaClient(ws, cid)
            media.append(client)
            client.pc.addTransceiver("audio", direction="recvonly")
            await client.connect()
            await host.call("POST", f"/calls/{call_type}/{call_id}/mute", {"user_ids": ["x"]})
            await ws.wait_for(lambda f: f["type"] == "call.user_muted")

            response = await http.get("/metrics", headers=operator)
            assert response.status_code == 200
            text = response.text
        assert re.search(r"^podium_sfu_calls 1\.0$", text, re.MULTILINE), text
        if call_labels:
            assert f'podium_sfu_participants{{call_cid="{cid}"}} 1.0' in text
        else:
            assert re.search(r"^podium_sfu_participants 1\.0$", text, re.MULTILINE)
            assert "call_cid" not in text
            assert call_id not in text and call_type not in text, "metrics name the call"
            assert "hushhost" not in text
    finally:
        for client in media:
            await client.close()
        for ws in sockets:
            await ws.close()
        await host.aclose()
        server.stop()


# the metrics port


async def test_the_metrics_port_serves_without_a_token_on_127_0_0_1_only(
    tmp_path: Path, sqlite_url: str
) -> None:
    metrics_port = free_port()
    server = ServerProcess(
        tmp_path, sqlite_url, extra_env={"PODIUM_METRICS_PORT": str(metrics_port)}
    ).start()
    try:
        assert listening_addresses(metrics_port) == {LOOPBACK_HEX}
        async with http_client(f"http://127.0.0.1:{metrics_port}") as scraper:
            response = await scraper.get("/metrics")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain")
            assert "# TYPE podium_ws_connections gauge" in response.text
            other = await scraper.get("/v1/calls")
            assert other.status_code == 404
            # DNS rebinding from a page in this machine's browser names another host.
            for host in ("evil.example", f"127.0.0.1.evil.example:{metrics_port}"):
                rebound = await scraper.get("/metrics", headers={"Host": host})
                assert rebound.status_code == 403, (host, rebound.text)
                assert "podium_" not in rebound.text
        async with http_client(server.url) as http:
            # The API port keeps asking for a token.
            assert (await http.get("/metrics")).status_code == 401
    finally:
        server.stop()
    assert listening_addresses(metrics_port) == set()


# dev mode


LOOPBACK_HOSTS = ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LocalHost:{port}"]
OTHER_HOSTS = [
    "evil.example",
    "evil.example:{port}",
    "127.0.0.1.evil.example",
    "127.0.0.1.evil.example:{port}",
    "localhost.evil.example:{port}",
    "127.0.0.1:{port}.evil.example",
    "[::1].evil.example",
    "[::1]evil:{port}",
    "0.0.0.0:{port}",
    "",
]


async def test_dev_mode_answers_only_loopback_host_names(tmp_path: Path, sqlite_url: str) -> None:
    server = ServerProcess(tmp_path, sqlite_url, dev=True).start()
    try:
        async with http_client(server.url) as http:
            for pattern in LOOPBACK_HOSTS:
                host = pattern.format(port=server.port)
                response = await http.post(
                    "/v1/dev/token", headers={"Host": host}, json={"user_id": "devuser"}
                )
                assert response.status_code == 200, (host, response.text)
                assert verify(SECRET, response.json()["token"]).user_id == "devuser"
                assert await upgrade_status(server.port, host) == 101, host
            for pattern in OTHER_HOSTS:
                host = pattern.format(port=server.port)
                response = await http.post(
                    "/v1/dev/token", headers={"Host": host}, json={"user_id": "devuser"}
                )
                assert response.status_code == 403, (host, response.text)
                assert response.json()["error"]["code"] == "host_not_allowed"
                assert "token" not in response.json()
                assert await upgrade_status(server.port, host) == 403, host
            # Not only the token endpoint: a rebound page reads nothing else either.
            for path in ("/v1/server", "/healthz", "/"):
                response = await http.get(path, headers={"Host": "evil.example"})
                assert response.status_code == 403, (path, response.text)
    finally:
        server.stop()


async def test_without_dev_any_host_is_served_and_there_are_no_dev_tokens(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url).start()
    public = {"Host": "podium.example.com"}
    try:
        async with http_client(server.url) as http:
            assert (await http.get("/healthz", headers=public)).status_code == 200
            listed = await http.get("/v1/calls", headers={**public, **bearer(server.token("u"))})
            assert listed.status_code == 200, listed.text
            assert await upgrade_status(server.port, "podium.example.com") == 101
            for host in (f"127.0.0.1:{server.port}", "podium.example.com"):
                minted = await http.post(
                    "/v1/dev/token", headers={"Host": host}, json={"user_id": "devuser"}
                )
                assert minted.status_code in (404, 405), (host, minted.text)
    finally:
        server.stop()


def test_serve_dev_refuses_a_public_bind_address(tmp_path: Path) -> None:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    env = {**base, "PODIUM_SECRET": SECRET, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "podium",
            "serve",
            "--dev",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    message = done.stderr.strip()
    assert "\n" not in message and "refusing" in message and "0.0.0.0" in message, message
    assert "Podium on" not in message
    assert listening_addresses(port) == set()

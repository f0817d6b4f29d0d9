"""Faults: PostgreSQL connections lost mid-load, signals, a port in use.

- Every backend of the server's database is terminated (`pg_terminate_backend`)
  several times while clients keep calling: no answer is a 500, a transient
  loss is 503 `service_unavailable` with `Retry-After`, and the server recovers
  by itself (pooled connections are checked before use).
- SIGTERM with calls, WebSockets and a media session open: the server drains
  and exits within 5 s; a second SIGTERM exits at once.
- A port in use: one clear line and exit code 1, before "Podium on ..." is printed.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.backing_services import PG_ADMIN_URL
from tests.e2e.clients import Api, MediaClient, Watcher
from tests.server import SECRET, ServerProcess
from tests.sfu.test_call import Tone

#: How long the load runs, and how many times every backend is terminated meanwhile.
LOAD_S = 6.0
TERMINATIONS = 4
CLIENTS = 6

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


async def _terminate_backends(database: str) -> int:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return len(rows)
    finally:
        await admin.close()


async def test_lost_postgres_connections_answer_503_never_500_and_recover(
    tmp_path: Path, pg_url: str
) -> None:
    server = ServerProcess(tmp_path, pg_url).start()
    database = pg_url.rsplit("/", 1)[1]
    #: Answers by status; 0 counts reads of a call whose creation answered 503 (404).
    statuses: Counter[int] = Counter()
    retry_after: set[str | None] = set()
    created: set[str] = set()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=15, trust_env=False) as http:

            async def client(n: int) -> None:
                headers = {"Authorization": f"Bearer {server.token(f'load-{n}')}"}
                deadline = time.monotonic() + LOAD_S
                i = 0
                while time.monotonic() < deadline:
                    i += 1
                    path = f"/v1/calls/default/fault-{n}-{i % 5}"
                    for method in ("POST", "GET"):
                        response = await http.request(method, path, headers=headers)
                        if method == "POST" and response.status_code in (200, 201):
                            created.add(path)
                        if response.status_code == 404 and path not in created:
                            # Its creation answered 503: the call rightly does not exist.
                            statuses[0] += 1
                            continue
                        statuses[response.status_code] += 1
                        if response.status_code == 503:
                            retry_after.add(response.headers.get("retry-after"))
                            assert response.json()["error"]["code"] == "service_unavailable"

            async def killer() -> int:
                killed = 0
                for _ in range(TERMINATIONS):
                    await asyncio.sleep(LOAD_S / (TERMINATIONS + 1))
                    killed += await _terminate_backends(database)
                return killed

            *_, killed = await asyncio.gather(*(client(n) for n in range(CLIENTS)), killer())
            assert killed >= TERMINATIONS, "the load had connections to terminate"
            assert statuses[500] == 0, statuses
            assert set(statuses) <= {0, 200, 201, 503}, statuses
            assert retry_after <= {"1"}, retry_after
            # Recovered by itself: every request succeeds again.
            headers = {"Authorization": f"Bearer {server.token('after')}"}
            for i in range(20):
                response = await http.post(f"/v1/calls/default/after-{i}", headers=headers)
                assert response.status_code == 201, response.text
        assert "Traceback" not in server.log(), server.log()
    finally:
        server.stop()
    print(f"statuses under terminations: {dict(statuses)}")


def _wait_exit(proc: subprocess.Popen[bytes], within_s: float) -> float:
    started = time.monotonic()
    proc.wait(timeout=within_s)
    return time.monotonic() - started


async def _busy_server(tmp_path: Path, sqlite_url: str) -> tuple[ServerProcess, list[object]]:
    """A server with a live call, watchers and a publishing media session."""
    server = ServerProcess(
        tmp_path, sqlite_url, dev=True, extra_env={"PODIUM_MEDIA_LOOPBACK": "1"}
    ).start()
    call_id = f"drain-{uuid.uuid4().hex[:10]}"
    cid, path = f"development:{call_id}", f"/calls/development/{call_id}"
    host = Api(server, "host")
    await host.call("POST", path, {}, expect=201)
    await host.call("POST", f"{path}/join")
    watchers = [await Watcher(server, f"w{i}").open() for i in range(5)]
    for ws in watchers:
        await ws.watch(cid)
    media_ws = await Watcher(server, "host").open()
    publisher = MediaClient(media_ws, cid)
    publisher.pc.addTransceiver(Tone(), direction="sendonly")
    await publisher.connect()
    await publisher.send({"type": "sfu.publish", "source": "microphone"})
    await publisher.expect("sfu.publish_ok")
    return server, [host, *watchers, media_ws, publisher]


async def _close_all(things: list[object]) -> None:
    for thing in reversed(things):
        if isinstance(thing, Api):
            await thing.aclose()
        elif isinstance(thing, Watcher | MediaClient):
            await thing.close()


async def test_sigterm_drains_and_exits_within_5_s(tmp_path: Path, sqlite_url: str) -> None:
    server, things = await _busy_server(tmp_path, sqlite_url)
    try:
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        took = await asyncio.to_thread(_wait_exit, server.proc, 10.0)
        assert took < 5.0, f"exited {took:.1f} s after SIGTERM"
        watcher = next(t for t in things if isinstance(t, Watcher))
        await asyncio.wait_for(watcher.closed.wait(), 5)
        assert "Traceback" not in server.log(), server.log()
    finally:
        await _close_all(things)
        server.stop()


async def test_a_second_sigterm_exits_at_once(tmp_path: Path, sqlite_url: str) -> None:
    server, things = await _busy_server(tmp_path, sqlite_url)
    # A request that holds the drain open: a header-less slow client is not enough, so an
    # HTTP request body that never ends keeps one request in flight.
    slow = socket.create_connection(("127.0.0.1", server.port))
    try:
        slow.sendall(
            b"POST /v1/calls/default/x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        await asyncio.sleep(0.3)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        took = await asyncio.to_thread(_wait_exit, server.proc, 10.0)
        assert took < 1.0, f"exited {took:.1f} s after the second SIGTERM"
        assert server.proc.returncode != 0
    finally:
        slow.close()
        await _close_all(things)
        server.stop()


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "podium", "serve", "--port", str(port)],
            cwd=tmp_path,
            env={"PODIUM_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], lines
    assert "Podium on" not in done.stderr + done.stdout

"""Secrets and tokens: weak secrets refused, lifetimes capped, tokens revocable everywhere.

Against real `podium serve` processes and the `python -m podium` command:

- `serve` refuses to start with a `PODIUM_SECRET` under 32 bytes, a secret file
  the group or others can read, or a secret file holding a short secret: exit
  code 2, one line saying how to fix it, nothing bound, no database opened. A
  0600 secret file is used; without one a secret is generated into a new file of
  mode 0600.
- `podium token` mints tokens with a distinct `jti`, server tokens for 1 hour by
  default, and refuses a `--ttl` over `PODIUM_LIMIT_TOKEN_TTL_S` (30 days unless set).
- `POST /v1/tokens/revoke`: a user may revoke the same user's tokens by `token`
  (signing out), never another user's or a server token, never by `jti`; a server
  token may revoke any, by `token` or `jti`; bad bodies are 422. A revoked token
  gets 401 `token_revoked` on HTTP and on WebSocket authentication (query or
  first frame), and its open WebSockets are closed with 4001 `token_revoked`
  while other tokens of the same user keep working. `podium token --revoke`
  writes the revocation to the database and the running server follows.
- Two nodes on PostgreSQL + Redis: a token revoked on one node is refused on the
  other (HTTP and its open WebSocket) within 2 s, and stays refused after both restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from podium.tokens import mint_user_token
from tests.e2e.clients import Watcher
from tests.server import SECRET, ServerProcess, free_port

SUBPROCESS_TIMEOUT_S = 60
#: A revocation made on another node (or by the CLI) is enforced within this (nodes poll every 1 s).
REVOKE_WITHIN_S = 2.0
GOOD_SECRET = "file-secret-0123456789abcdef0123456789abcdef"

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


def podium(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m podium ARGS` with only the PODIUM_* variables given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    return subprocess.run(
        [sys.executable, "-m", "podium", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )


def claims(token: str, secret: str = SECRET) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"])
    return decoded


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def http_client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=15, trust_env=False) as http:
        yield http


async def status_of(http: httpx.AsyncClient, token: str) -> tuple[int, str | None]:
    """What `GET /v1/calls` answers `token`: (status, error code or None)."""
    response = await http.get("/v1/calls", headers=bearer(token))
    code = response.json()["error"]["code"] if response.status_code >= 400 else None
    return response.status_code, code


async def revoke(http: httpx.AsyncClient, by: str, body: Any, expect: int = 200) -> dict[str, Any]:
    response = await http.post("/v1/tokens/revoke", headers=bearer(by), json=body)
    assert response.status_code == expect, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def refused_within(http: httpx.AsyncClient, token: str, within_s: float) -> float:
    """Seconds until `token` gets 401 `token_revoked`, polling; fails past `within_s`."""
    start = time.monotonic()
    for _ in range(int(within_s / 0.05) + 1):
        if await status_of(http, token) == (401, "token_revoked"):
            return time.monotonic() - start
        if time.monotonic() - start > within_s:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"token still accepted {within_s} s after its revocation")


async def watcher(server: ServerProcess, user_id: str, token: str) -> Watcher:
    """A `Watcher` authenticated with this very token (query parameter)."""
    ws = Watcher(server, user_id)
    ws.token = token
    return await ws.open()


async def closed_with(ws: Watcher, within_s: float) -> tuple[int | None, str | None]:
    await asyncio.wait_for(ws.closed.wait(), within_s)
    assert ws._ws is not None
    return ws._ws.close_code, ws._ws.close_reason


async def ws_refusal(server: ServerProcess, token: str, *, first_frame: bool) -> tuple[str, int]:
    """Authenticate a new WebSocket with `token`: (error code of the first frame, close code)."""
    url = server.ws_url if first_frame else f"{server.ws_url}?token={quote(token)}"
    async with asyncio.timeout(10):
        async with connect(url, open_timeout=10, proxy=None) as ws:
            if first_frame:
                await ws.send(json.dumps({"type": "auth", "token": token}))
            frame = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    assert frame["type"] == "error", frame
    assert closed.value.rcvd is not None
    return frame["error"]["code"], closed.value.rcvd.code


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


# secrets


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("abc", ["PODIUM_SECRET is 3 bytes", "at least 32", "secrets.token_urlsafe(48)"]),
        ("x" * 31, ["PODIUM_SECRET is 31 bytes", "at least 32", "secrets.token_urlsafe(48)"]),
        ("file:0640", ["can be read by group or others (mode 0640)", "chmod 600"]),
        ("file:0644", ["can be read by group or others (mode 0644)", "chmod 600"]),
        ("short-file:0600", ["is 9 bytes", "at least 32", "secrets.token_urlsafe(48)"]),
    ],
)
def test_serve_refuses_a_weak_secret_with_one_line_saying_how_to_fix_it(
    tmp_path: Path, case: str, expected: list[str]
) -> None:
    db = tmp_path / "never.db"
    env = {"PODIUM_DATABASE_URL": f"sqlite:///{db}"}
    secret_file = tmp_path / "secret"
    if ":" in case:
        kind, mode = case.split(":")
        secret_file.write_text("too-short\n" if kind == "short-file" else GOOD_SECRET + "\n")
        secret_file.chmod(int(mode, 8))
        env["PODIUM_SECRET_FILE"] = str(secret_file)
        if kind == "file":
            expected = [*expected, str(secret_file)]
    else:
        env["PODIUM_SECRET"] = case
    port = free_port()
    done = podium("serve", "--port", str(port), cwd=tmp_path, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    message = done.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert "Podium on" not in message
    for part in expected:
        assert part in message, (part, message)
    assert not db.exists(), "the database was opened: serve got past the secret check"
    assert not listening(port)
    if secret_file.exists():
        assert secret_file.read_text().strip() in (GOOD_SECRET, "too-short"), "file rewritten"


async def test_a_private_secret_file_signs_the_tokens_the_server_accepts(
    tmp_path: Path, sqlite_url: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(GOOD_SECRET + "\n")
    secret_file.chmod(0o600)
    env = {"PODIUM_SECRET": "", "PODIUM_SECRET_FILE": str(secret_file)}
    server = ServerProcess(tmp_path, sqlite_url, extra_env=env).start()
    try:
        async with http_client(server) as http:
            assert await status_of(http, mint_user_token(GOOD_SECRET, "alice")) == (200, None)
            assert await status_of(http, server.token("alice")) == (401, "invalid_token")
    finally:
        server.stop()
    assert secret_file.read_text().strip() == GOOD_SECRET


async def test_without_a_secret_one_is_generated_into_a_file_of_mode_0600(
    tmp_path: Path, sqlite_url: str
) -> None:
    assert "PODIUM_SECRET_FILE" not in os.environ
    secret_file = tmp_path / ".podium-secret"
    server = ServerProcess(tmp_path, sqlite_url, extra_env={"PODIUM_SECRET": ""}).start()
    try:
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        generated = secret_file.read_text().strip()
        assert len(generated.encode()) >= 32
        async with http_client(server) as http:
            assert await status_of(http, mint_user_token(generated, "alice")) == (200, None)
            assert await status_of(http, server.token("alice")) == (401, "invalid_token")
    finally:
        server.stop()


# tokens


def test_podium_token_caps_ttl_at_the_configured_maximum(tmp_path: Path) -> None:
    capped = {"PODIUM_SECRET": SECRET, "PODIUM_LIMIT_TOKEN_TTL_S": "600"}
    refused = podium("token", "alice", "--ttl", "601", cwd=tmp_path, env=capped)
    assert refused.returncode == 2, refused.stderr
    assert refused.stdout == ""
    assert "--ttl 601 is longer than the 600 s allowed" in refused.stderr
    assert "PODIUM_LIMIT_TOKEN_TTL_S" in refused.stderr
    exact = podium("token", "alice", "--ttl", "600", cwd=tmp_path, env=capped)
    assert exact.returncode == 0, exact.stderr
    minted = claims(exact.stdout.strip())
    assert minted["exp"] - minted["iat"] == 600
    # Without --ttl the default (1 day, 1 hour for servers) shrinks to the maximum.
    for args in (("alice",), ("--server",)):
        default = podium("token", *args, cwd=tmp_path, env=capped)
        assert default.returncode == 0, default.stderr
        minted = claims(default.stdout.strip())
        assert minted["exp"] - minted["iat"] == 600
    # Unset, the maximum is 30 days, for server tokens too: no 100-year tokens.
    month = str(30 * 24 * 3600 + 1)
    for args in (("alice", "--ttl", month), ("--server", "--ttl", month)):
        done = podium("token", *args, cwd=tmp_path, env={"PODIUM_SECRET": SECRET})
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stdout == ""
        assert "PODIUM_LIMIT_TOKEN_TTL_S" in done.stderr


async def test_cli_tokens_carry_a_jti_and_server_tokens_last_one_hour(
    tmp_path: Path, sqlite_url: str
) -> None:
    env = {"PODIUM_SECRET": SECRET}
    minted = [podium("token", *args, cwd=tmp_path, env=env) for args in (["--server"], ["bob"])]
    for done in minted:
        assert done.returncode == 0, done.stderr
    server_token, user_token = (done.stdout.strip() for done in minted)
    server_claims, user_claims = claims(server_token), claims(user_token)
    assert server_claims["server"] is True
    assert server_claims["exp"] - server_claims["iat"] == 3600
    jtis = {server_claims["jti"], user_claims["jti"]}
    assert len(jtis) == 2 and all(isinstance(j, str) and len(j) >= 16 for j in jtis)
    server = ServerProcess(tmp_path, sqlite_url).start()
    try:
        default = claims(server.server_token())
        assert default["exp"] - default["iat"] == 3600
        async with http_client(server) as http:
            assert await status_of(http, user_token) == (200, None)
            assert (await http.get("/metrics", headers=bearer(server_token))).status_code == 200
    finally:
        server.stop()


# revocation on one node


async def test_who_may_revoke_which_token_and_what_a_revoked_token_gets(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url).start()
    operator = server.server_token()
    alice = [server.token("alice") for _ in range(4)]
    bob = [server.token("bob") for _ in range(2)]
    try:
        async with http_client(server) as http:
            # A user revokes another token of the same user, and then signs out.
            done = await revoke(http, alice[0], {"token": alice[1]})
            assert done == {
                "revoked": True,
                "token_id": claims(alice[1])["jti"],
                "until": done["until"],
            }
            assert datetime.fromisoformat(done["until"]).timestamp() == claims(alice[1])["exp"]
            assert await status_of(http, alice[1]) == (401, "token_revoked")
            assert await status_of(http, alice[0]) == (200, None)
            await revoke(http, alice[0], {"token": alice[0]})
            assert await status_of(http, alice[0]) == (401, "token_revoked")
            await revoke(http, alice[0], {"token": alice[2]}, expect=401)

            # Never another user's token, a server token, or anything by jti.
            for body in (
                {"token": alice[2]},
                {"token": operator},
                {"jti": claims(alice[2])["jti"]},
                {"jti": claims(bob[1])["jti"]},
            ):
                refusal = await revoke(http, bob[0], body, expect=403)
                assert refusal["error"]["code"] == "permission_denied", body
            assert await status_of(http, alice[2]) == (200, None)
            assert await status_of(http, bob[1]) == (200, None)

            # A server token revokes any token, by token or by jti.
            await revoke(http, operator, {"token": alice[2]})
            by_jti = await revoke(http, operator, {"jti": claims(bob[1])["jti"]})
            assert by_jti["token_id"] == claims(bob[1])["jti"]
            assert await status_of(http, alice[2]) == (401, "token_revoked")
            assert await status_of(http, bob[1]) == (401, "token_revoked")
            assert await status_of(http, alice[3]) == (200, None)
            assert await status_of(http, bob[0]) == (200, None)

            # An expired token needs no revoking.
            expired = mint_user_token(SECRET, "alice", ttl_s=-60)
            assert await revoke(http, alice[3], {"token": expired}) == {
                "revoked": False,
                "reason": "expired",
            }
    finally:
        server.stop()


async def test_bad_revoke_bodies_are_422_and_revoke_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url).start()
    operator, victim = server.server_token(), server.token("carol")
    foreign = mint_user_token("another-secret-0123456789abcdef0123456789", "carol")
    bodies: list[Any] = [
        {},
        {"token": victim, "jti": claims(victim)["jti"]},
        {"token": ""},
        {"jti": ""},
        {"jti": "x" * 129},
        {"token": "x" * 8193},
        {"token": "not-a-jwt"},
        {"token": foreign},
        {"token": 5},
        {"jti": None},
        {"jti": "abc", "user_id": "carol"},
        [victim],
        "jti",
    ]
    try:
        async with http_client(server) as http:
            for body in bodies:
                refusal = await revoke(http, operator, body, expect=422)
                assert refusal["error"]["code"] == "validation_error", (body, refusal)
            response = await http.post(
                "/v1/tokens/revoke",
                headers={**bearer(operator), "Content-Type": "application/json"},
                content=b"{not json",
            )
            assert response.status_code == 400, response.text
            assert await status_of(http, victim) == (200, None)
            assert await status_of(http, operator) == (200, None)
    finally:
        server.stop()


async def test_a_revoked_token_is_refused_on_websockets_and_its_open_ones_close_4001(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url).start()
    doomed, other = server.token("dana"), server.token("dana")
    sockets: list[Watcher] = []
    try:
        sockets += [await watcher(server, "dana", doomed), await watcher(server, "dana", doomed)]
        survivor = await watcher(server, "dana", other)
        sockets.append(survivor)
        async with http_client(server) as http:
            await revoke(http, server.server_token(), {"token": doomed})
            for ws in sockets[:2]:
                assert await closed_with(ws, REVOKE_WITHIN_S) == (4001, "token_revoked")
            assert await status_of(http, doomed) == (401, "token_revoked")
        for first_frame in (False, True):
            assert await ws_refusal(server, doomed, first_frame=first_frame) == (
                "token_revoked",
                4001,
            )
        # The same user's other token keeps its connection, and may open new ones.
        assert not survivor.closed.is_set()
        assert survivor._ws is not None
        start = len(survivor.frames)
        await survivor._ws.send(json.dumps({"type": "ping"}))
        await survivor.wait_for(lambda f: f["type"] == "pong", start=start)
        sockets.append(await watcher(server, "dana", other))
    finally:
        for ws in sockets:
            await ws.close()
        server.stop()


async def test_podium_token_revoke_writes_to_the_database_and_the_server_follows(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = ServerProcess(tmp_path, sqlite_url).start()
    doomed = server.token("erin")
    env = {"PODIUM_SECRET": SECRET, "PODIUM_DATABASE_URL": sqlite_url}
    sockets: list[Watcher] = []
    try:
        sockets.append(await watcher(server, "erin", doomed))
        done = await asyncio.to_thread(podium, "token", "--revoke", doomed, cwd=tmp_path, env=env)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert f"revoked {claims(doomed)['jti']}" in done.stdout
        async with http_client(server) as http:
            await refused_within(http, doomed, REVOKE_WITHIN_S)
            assert await closed_with(sockets[0], REVOKE_WITHIN_S) == (4001, "token_revoked")
            assert await status_of(http, server.token("erin")) == (200, None)
        garbage = await asyncio.to_thread(
            podium, "token", "--revoke", "not-a-jwt", cwd=tmp_path, env=env
        )
        assert garbage.returncode == 2, (garbage.stdout, garbage.stderr)
        assert "not a token of this server" in garbage.stderr
        assert "Traceback" not in garbage.stderr
    finally:
        for ws in sockets:
            await ws.close()
        server.stop()


# revocation across nodes


async def test_a_revocation_reaches_every_node_and_survives_restarts(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    a = ServerProcess(tmp_path, pg_url, redis_url=redis_url).start()
    b = ServerProcess(tmp_path, pg_url, redis_url=redis_url).start()
    nodes = (a, b)
    by_token, by_jti, kept = a.token("fay"), a.token("fay"), a.token("fay")
    sockets: list[Watcher] = []
    try:
        sockets.append(await watcher(b, "fay", by_token))
        async with http_client(a) as on_a, http_client(b) as on_b:
            for http in (on_a, on_b):
                for token in (by_token, by_jti, kept):
                    assert await status_of(http, token) == (200, None)
            # Revoked through A by token: B refuses it and closes its WebSocket.
            await revoke(on_a, a.server_token(), {"token": by_token})
            assert await status_of(on_a, by_token) == (401, "token_revoked")
            await refused_within(on_b, by_token, REVOKE_WITHIN_S)
            assert await closed_with(sockets[0], REVOKE_WITHIN_S) == (4001, "token_revoked")
            # Revoked through B by jti: A refuses it.
            await revoke(on_b, b.server_token(), {"jti": claims(by_jti)["jti"]})
            await refused_within(on_a, by_jti, REVOKE_WITHIN_S)
        for node in nodes:
            node.stop()
        for node in nodes:
            node.start()
        async with http_client(a) as on_a, http_client(b) as on_b:
            for http in (on_a, on_b):
                assert await status_of(http, by_token) == (401, "token_revoked")
                assert await status_of(http, by_jti) == (401, "token_revoked")
                assert await status_of(http, kept) == (200, None)
        for node in nodes:
            assert await ws_refusal(node, by_token, first_frame=False) == ("token_revoked", 4001)
    finally:
        for ws in sockets:
            await ws.close()
        for node in nodes:
            node.stop()

"""Fixtures of the HTTP/WebSocket API tests: one real server per test module.

Starting `podium serve` costs ~1.5 s, so each module shares one server
(its own SQLite database); tests keep apart by using unique call ids,
user ids and call type names (`helpers.uid`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.api.helpers import ClientFactory, WsFactory, WsProbe
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real `podium serve --dev` process on SQLite, shared by the tests of one module."""
    workdir = tmp_path_factory.mktemp("api-server")
    proc = ServerProcess(workdir, f"sqlite:///{workdir / 'podium.db'}", dev=True)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def clients(server: ServerProcess) -> AsyncIterator[ClientFactory]:
    """`clients("alice", role=None)` → an httpx client authenticated as that user."""
    made: list[httpx.AsyncClient] = []

    def make(
        user_id: str | None = None, *, role: str | None = None, token: str | None = None
    ) -> httpx.AsyncClient:
        if token is None:
            token = server.server_token() if user_id is None else server.token(user_id, role=role)
        client = httpx.AsyncClient(
            base_url=server.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(15.0),
        )
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.aclose()


@pytest.fixture
async def ws_connect(server: ServerProcess) -> AsyncIterator[WsFactory]:
    """`await ws_connect(token)` → a connected `WsProbe` (closed at teardown)."""
    made: list[WsProbe] = []

    async def make(token: str | None, *, auth_message: bool = False) -> WsProbe:
        probe = await WsProbe.open(server.ws_url, token, auth_message=auth_message)
        made.append(probe)
        return probe

    try:
        yield make
    finally:
        for probe in made:
            await probe.close()

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import backing_services as services
from tests.server import ServerProcess

#: The `chromium` fixture (a headless Debian Chromium) for browser tests.
pytest_plugins = ["tests.e2e.browser"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name, url = services.create_pg_database()
    try:
        yield url
    finally:
        services.drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'podium.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def redis_url() -> str:
    services.require("Redis", 6379)
    return services.REDIS_URL


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[ServerProcess]:
    """A real `podium serve --dev` process on SQLite."""
    proc = ServerProcess(tmp_path, sqlite_url, dev=True).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def media_server(tmp_path: Path, sqlite_url: str) -> Iterator[ServerProcess]:
    """A real `podium serve --dev` process on SQLite whose SFU offers loopback candidates."""
    proc = ServerProcess(
        tmp_path, sqlite_url, dev=True, extra_env={"PODIUM_MEDIA_LOOPBACK": "1"}
    ).start()
    try:
        yield proc
    finally:
        proc.stop()

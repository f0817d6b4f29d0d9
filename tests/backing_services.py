"""Real services the tests talk to: PostgreSQL and Redis on 127.0.0.1.

When one is missing the test is skipped locally and fails when `CI=true`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest

PG_ADMIN_URL = os.environ.get("PODIUM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PODIUM_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str, port: int) -> None:
    if _reachable(port):
        return
    message = f"{name} is not reachable on 127.0.0.1:{port}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database() -> tuple[str, str]:
    """Create an empty database; returns (name, SQLAlchemy URL)."""
    require("PostgreSQL", 5432)
    name = f"podium_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

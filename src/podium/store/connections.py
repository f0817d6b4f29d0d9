"""The connection the store's transactions talk to, whichever the database.

PostgreSQL uses SQLAlchemy's `AsyncConnection` on asyncpg. SQLite uses a plain
synchronous SQLAlchemy connection on the standard `sqlite3` module, called
inline on the event loop: a statement on a local file takes ~10 µs, while
handing each one to a worker thread (aiosqlite) cost ~450 µs of latency per
statement here. Inline calls never wait on a lock: writers are serialised by
the store's in-process lock, and in WAL mode readers never wait for a writer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import CursorResult, Executable
from sqlalchemy.engine import Connection, Dialect

T = TypeVar("T")


class SqlConnection(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Sequence[dict[str, Any]] | None = None
    ) -> CursorResult[Any]: ...

    async def run_sync(self, fn: Callable[[Connection], T]) -> T: ...


class InlineConnection:
    """A synchronous connection behind the async interface (SQLite)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    @property
    def dialect(self) -> Dialect:
        return self._connection.dialect

    async def execute(
        self, statement: Executable, parameters: Sequence[dict[str, Any]] | None = None
    ) -> CursorResult[Any]:
        return self._connection.execute(statement, parameters)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        return fn(self._connection)

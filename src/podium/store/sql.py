"""The `Store` on SQLAlchemy Core, for SQLite (inline `sqlite3`) and PostgreSQL (asyncpg).

Writers of a call are serialised by a row lock on `calls` in PostgreSQL and by
one in-process lock on SQLite, which allows a single writer anyway. The two
guarantees that matter most also hold at statement level: `seq` comes from an
atomic `last_seq + 1`, and a request is resolved by an update conditional on
`state = 'pending'`, so only the first answer changes a row. The statements
themselves are `podium.store.transaction`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    event,
    func,
    select,
)
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from podium.core.call_types import BUILTIN_CALL_TYPES
from podium.core.errors import ServiceUnavailable
from podium.store import schema
from podium.store.cache import CallTypeCache
from podium.store.connections import InlineConnection, SqlConnection
from podium.store.schema import (
    call_types,
    calls,
)
from podium.store.transaction import SqlTransaction, insert_missing

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"

_DRIVERS: Final = {
    # Earlier docs said sqlite+aiosqlite; it names the same file, now used inline.
    "sqlite": "sqlite+pysqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
# Any fixed key works: it only has to be the same in every process sharing the database.
_MIGRATION_LOCK_KEY: Final = 0x706F6469756D
# Advisory locks on (space, hashtext(cid)) stand in for the row lock of a call not yet created.
_CALL_LOCK_SPACE: Final = 0x50444D
# What a 503 tells the client to wait before retrying, in seconds.
RETRY_AFTER_S: Final = 1
# Execution option telling the SQLite `begin` hook which BEGIN to emit.
_SQLITE_BEGIN: Final = "podium_sqlite_begin"
# busy_timeout first: switching a new file to WAL takes a lock other openers must wait for.
_SQLITE_PRAGMAS: Final = (
    "busy_timeout=5000",
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
)


def create_store(url: str) -> SqlStore:
    """The store for a database URL; `ValueError` when the URL is not one we support."""
    return SqlStore(url)


def _database_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "not a database URL; expected sqlite:///path or postgresql+asyncpg://..."
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}; "
            "expected sqlite:///path or postgresql+asyncpg://..."
        )
    if driver.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise ValueError(
            "in-memory SQLite is not supported (every connection would get its own "
            "database); give a file path: sqlite:///path/to/podium.db"
        )
    return parsed.set(drivername=driver)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 driver so `_sqlite_begin` decides what it is.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # Writers BEGIN IMMEDIATE: they hold the write lock from the start instead of
    # failing to upgrade a read snapshot that another process has moved past.
    mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _create_sqlite_engine(url: URL) -> Engine:
    engine = create_engine(url, pool_size=4, max_overflow=4)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


async def _lock_call(conn: SqlConnection, cid: str) -> None:
    """Hold the call's row lock until the transaction ends (PostgreSQL).

    While the call does not exist there is no row to lock, so writers that may
    create it queue on an advisory lock for the cid instead and look again:
    two "get or create" writers then see each other's call instead of both
    inserting it.
    """
    lock_row = select(calls.c.cid).where(calls.c.cid == cid).with_for_update()
    if (await conn.execute(lock_row)).first() is None:
        await conn.execute(select(func.pg_advisory_xact_lock(_CALL_LOCK_SPACE, func.hashtext(cid))))
        await conn.execute(lock_row)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


class SqlStore:
    """A `Store` on one SQLAlchemy async engine."""

    def __init__(self, url: str) -> None:
        parsed = _database_url(url)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self._lite: Engine | None = None
        self._async: AsyncEngine | None = None
        if self._sqlite:
            self._lite = _create_sqlite_engine(parsed)
        else:
            # Pre-ping: a connection the server dropped is replaced before use, not failed on.
            self._async = create_async_engine(
                parsed, pool_size=10, max_overflow=10, pool_recycle=1800, pool_pre_ping=True
            )
        self._call_types = CallTypeCache()
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        async with self._writer() as conn:
            if not self._sqlite:
                # Processes starting together must not migrate or seed at the same time.
                await conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            await conn.run_sync(_upgrade)
            rows = [schema.call_type_values(ct) for ct in BUILTIN_CALL_TYPES.values()]
            await conn.execute(insert_missing(conn, call_types), rows)

    async def close(self) -> None:
        if self._lite is not None:
            self._lite.dispose()
        if self._async is not None:
            await self._async.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqlTransaction]:
        async with self._transaction(immediate=False) as conn:
            yield SqlTransaction(conn, writable=False, call_types=self._call_types)

    @asynccontextmanager
    async def write(self, cid: str | None = None) -> AsyncIterator[SqlTransaction]:
        async with self._writer() as conn:
            if cid is not None and not self._sqlite:
                await _lock_call(conn, cid)
            yield SqlTransaction(conn, writable=True, call_types=self._call_types)

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[SqlConnection]:
        if self._sqlite:
            async with self._write_lock, self._transaction(immediate=True) as conn:
                yield conn
        else:
            async with self._transaction(immediate=False) as conn:
                yield conn

    @asynccontextmanager
    async def _transaction(self, *, immediate: bool) -> AsyncIterator[SqlConnection]:
        """A transaction; losing the database answers `service_unavailable`, never a 500."""
        try:
            async with self._connected(immediate=immediate) as conn:
                yield conn
        except (DBAPIError, PoolTimeout, OSError) as exc:
            if not _is_connection_loss(exc):
                raise
            raise ServiceUnavailable(
                "the database is unreachable; try again shortly",
                {"retry_after_s": RETRY_AFTER_S},
            ) from exc

    @asynccontextmanager
    async def _connected(self, *, immediate: bool) -> AsyncIterator[SqlConnection]:
        if self._lite is not None:
            with self._lite.connect() as conn:
                if immediate:
                    conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
                with conn.begin():
                    yield InlineConnection(conn)
            return
        assert self._async is not None
        async with self._async.connect() as aconn, aconn.begin():
            yield aconn


def _is_connection_loss(exc: BaseException) -> bool:
    """A lost or refused connection (or a locked SQLite file), not an error in the statement."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return True

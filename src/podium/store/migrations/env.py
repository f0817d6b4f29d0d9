"""Alembic environment: runs on the connection `SqlStore.open()` passes in.

The store builds the Alembic `Config` in code and hands over an open
connection inside its own transaction, so there is no `alembic.ini` and no
engine here; that transaction also holds the PostgreSQL advisory lock.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from podium.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through SqlStore.open(); it passes the connection in")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

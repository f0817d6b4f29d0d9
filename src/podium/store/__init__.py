"""Persistence: one `Store` interface, implemented with SQLAlchemy for SQLite and PostgreSQL."""

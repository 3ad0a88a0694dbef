"""Versioned schema migrations of the PostgreSQL backend.

The files `storage/migrations/NNNN_name.sql` ship inside the package; each is applied once, in
name order, in its own transaction, and recorded in `schema_migrations` (version = the file
name without `.sql`). Every step holds a transaction-level advisory lock, so processes that
start together apply each file exactly once instead of racing on the same DDL."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import psycopg

MIGRATIONS_PACKAGE = "eventpipe.storage.migrations"
# Any fixed 64-bit key shared by every eventpipe process migrating the same database.
_LOCK_KEY = 0x6576_656E_7470_6970  # "eventpip"
_FILE_NAME = re.compile(r"^(\d{4}_[a-z0-9_]+)\.sql$")


def available_migrations() -> list[tuple[str, str]]:
    """(version, SQL) of every migration file in the package, in the order to apply them."""
    found: list[tuple[str, str]] = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match and entry.is_file():
            found.append((match.group(1), entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn_or_dsn: psycopg.Connection[Any] | str) -> list[str]:
    """Apply the migrations not yet applied; returns the versions this call applied. Given a
    DSN it opens (and closes) its own connection; given a connection, it must not be inside
    a transaction, as each migration commits on its own."""
    if isinstance(conn_or_dsn, str):
        with psycopg.connect(conn_or_dsn, autocommit=True) as conn:
            return _migrate(conn)
    return _migrate(conn_or_dsn)


def _migrate(conn: psycopg.Connection[Any]) -> list[str]:
    applied: list[str] = []
    for version, script in available_migrations():
        with conn.transaction():
            # Released at commit; a second process waits here, then sees the version applied.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", [version]
            ).fetchone()
            if done is not None:
                continue
            # Without parameters psycopg sends the script as one simple query, so a file may
            # hold several statements; bytes, because its text is not a literal in our code.
            conn.execute(script.encode("utf-8"))
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, now())",
                [version],
            )
        applied.append(version)
    return applied

"""PostgreSQL fixtures (a pytest plugin: `pytest_plugins = ["fixtures_pg"]`).

They need a PostgreSQL server; by default the local one at 127.0.0.1:5432 as user postgres
(trust auth), or the maintenance-database DSN in EVENTPIPE_TEST_PG_ADMIN_DSN. Without a
server the tests that use them are skipped (under CI=true they fail). One database is
created per test session and dropped at its end; each test gets the tables emptied."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from eventpipe.storage.postgres import PostgresBackend
from support.needs import service_missing

ADMIN_DSN = os.environ.get(
    "EVENTPIPE_TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
_HOW_TO_START = (
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
    "or point EVENTPIPE_TEST_PG_ADMIN_DSN at another server"
)
# Every table the backend writes, emptied between tests (schema_migrations is kept).
RESULT_TABLES = (
    "documents", "entities", "triplets", "events", "failed_documents",
    "event_links", "storylines", "batch_statistics",
)


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)


def _create_database() -> str:
    name = f"eventpipe_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def _drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin DSN of a reachable server; skips the test when there is none (fails it
    under CI=true)."""
    try:
        with _admin():
            pass
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL is not reachable ({exc}); {_HOW_TO_START}")
    return ADMIN_DSN


@pytest.fixture(scope="session")
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A fresh database for this test session, migrated, dropped at the end."""
    name = _create_database()
    dsn = make_conninfo(pg_server, dbname=name)
    try:
        PostgresBackend(dsn, pool_size=1, migrate=True).close()
        yield dsn
    finally:
        _drop_database(name)


@pytest.fixture
def pg_new_database(pg_server: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases (no schema) for one test; returns their DSNs."""
    names: list[str] = []

    def make() -> str:
        names.append(_create_database())
        return make_conninfo(pg_server, dbname=names[-1])

    yield make
    for name in names:
        _drop_database(name)


@pytest.fixture
def pg_backend(pg_dsn: str) -> Iterator[PostgresBackend]:
    """A backend on the session database with every result table empty."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, RESULT_TABLES)))
        )
    backend = PostgresBackend(pg_dsn, pool_size=2, migrate=False)
    yield backend
    backend.close()

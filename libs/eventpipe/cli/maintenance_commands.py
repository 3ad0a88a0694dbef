"""`topics create` and `db migrate`: setting up a cluster's topics and a database's schema."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import click

from eventpipe.backoff import Backoff, retry
from eventpipe.cli import options
from eventpipe.cli.errors import UsageError
from eventpipe.errors import StackError
from eventpipe.kafka.clients import make_admin
from eventpipe.kafka.topics import ensure_topics
from eventpipe.settings import Settings


def cmd_db_migrate(args: SimpleNamespace, settings: Settings) -> int:
    dsn = settings.postgres_migration_dsn or settings.postgres_dsn
    if dsn is None:
        raise UsageError("set EVENTPIPE_POSTGRES_MIGRATION_DSN or EVENTPIPE_POSTGRES_DSN to "
                         "the database to migrate")
    import psycopg

    from eventpipe.storage.pg_migrate import migrate

    def reason(exc: Exception) -> str:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def not_yet(exc: Exception, _retry: int, _delay: float) -> None:
        print(f"PostgreSQL not reachable yet ({reason(exc)}); retrying", file=sys.stderr)

    # A database that is still starting (a container next to this one) is waited for.
    try:
        applied = retry(lambda: migrate(dsn.get_secret_value()),
                        retry_on=(psycopg.OperationalError,), backoff=Backoff(0.5, 5.0),
                        deadline_s=args.wait, on_retry=not_yet)
    except psycopg.OperationalError as exc:
        raise StackError(f"cannot reach PostgreSQL: {reason(exc)}") from None
    print("applied: " + ", ".join(applied) if applied else "the schema is up to date")
    return 0


def cmd_topics_create(args: SimpleNamespace, settings: Settings) -> int:
    if not settings.kafka_bootstrap:
        raise UsageError("set EVENTPIPE_KAFKA_BOOTSTRAP to the cluster to create topics on")
    for spec in ensure_topics(make_admin(settings), settings, alter=args.alter_configs):
        configs = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
        print(f"{spec.name}: {spec.partitions} partitions, {configs}")
    return 0


topics = options.group("topics", "Kafka topics.", [
    options.command("create", cmd_topics_create, [
        click.Option(["--alter-configs"], is_flag=True,
                     help="set the configs of existing topics that differ instead of failing")],
        "Create (or verify) every topic with its partitions and configs "
        "(EVENTPIPE_KAFKA_BOOTSTRAP).")])

db = options.group("db", "Database maintenance.", [
    options.command("migrate", cmd_db_migrate, [
        click.Option(["--wait"], type=float, default=0.0, metavar="SECONDS",
                     help="retry an unreachable database for up to this long (default: no)")],
        "Apply the PostgreSQL schema migrations (EVENTPIPE_POSTGRES_MIGRATION_DSN, else "
        "EVENTPIPE_POSTGRES_DSN); the sink also applies them at start-up unless "
        "EVENTPIPE_POSTGRES_MIGRATE=false.")])

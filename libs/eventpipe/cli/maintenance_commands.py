"""`topics create` and `db migrate`: setting up a cluster's topics and a database's schema."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import click

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

    # A database that is still starting (a container next to this one) is waited for.
    deadline = time.monotonic() + args.wait
    delay = 0.5
    while True:
        try:
            applied = migrate(dsn.get_secret_value())
            break
        except psycopg.OperationalError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if time.monotonic() + delay > deadline:
                raise StackError(f"cannot reach PostgreSQL: {reason}") from None
            print(f"PostgreSQL not reachable yet ({reason}); retrying", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
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

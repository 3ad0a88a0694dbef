"""Argument parsing and the commands' entry points."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaException

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.cli import failures, stack_commands
from eventpipe.cli.output import monitor_line, run_summary, status_report
from eventpipe.cli.progress import Progress
from eventpipe.errors import (
    BrokerConfigError,
    EventpipeError,
    InputError,
    StackError,
    UsageError,
)
from eventpipe.jobs import (
    RateWindow,
    check_batch_id,
    check_input,
    default_batch_id,
    load_checkpoint,
    require_checkpoint,
    resolve_job,
    send_control,
    submit,
)
from eventpipe.kafka.clients import make_admin, make_producer
from eventpipe.kafka.topics import ensure_topics
from eventpipe.logs import setup_logging
from eventpipe.models import ControlCommand, JobStatus, Stage, Submission
from eventpipe.settings import Settings, load_settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import batch_output_path


def wait_for_job(
    stack: Stack, sub: Submission, register_timeout_s: float = 120.0
) -> Checkpoint:
    """Show progress until the job ends, restarting services that die. Only a checkpoint that
    this submission has registered counts, so an earlier run's final status is not taken for
    this one's."""
    progress = Progress()
    registered_by = time.monotonic() + register_timeout_s
    try:
        while True:
            for name in stack.supervise():
                print(f"\nservice {name} died; started it again", file=sys.stderr)
            cp = load_checkpoint(stack.settings, sub.job_id)
            if cp is not None and cp.metadata.submission_id == sub.submission_id:
                progress.update(cp)
                if cp.ended:
                    return cp
            elif time.monotonic() > registered_by:
                raise StackError(f"job {sub.job_id} was not registered within "
                                 f"{register_timeout_s} s; see {stack.log_dir}/ingest.log")
            time.sleep(0.25)
    finally:
        progress.close()


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    path = check_input(Path(args.input))
    batch_id = check_batch_id(args.batch_id or default_batch_id())
    stack = Stack(settings)
    started = time.monotonic()
    print(f"starting the stack (data in {stack.settings.data_dir}) ...", file=sys.stderr)
    try:
        stack.start()
        print(f"broker {stack.bootstrap}; services ready in "
              f"{time.monotonic() - started:.1f} s; submitting {path} as batch {batch_id}",
              file=sys.stderr)
        if (url := stack.state().console_url) is not None:
            print(f"console: {url} (API token: {stack.state().console_token})",
                  file=sys.stderr)
        cp = wait_for_job(stack, submit(stack.settings, path, batch_id))
    finally:
        stack.stop()
    print(run_summary(cp, stack.settings.data_dir, time.monotonic() - started))
    return 0 if cp.status is JobStatus.COMPLETED else 1


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    path = check_input(Path(args.input))
    batch_id = check_batch_id(args.batch_id or default_batch_id())
    sub = submit(stack_commands.attached_settings(settings), path, batch_id,
                 retry_failed=args.retry_failed)
    print(sub.job_id)
    print(f"submitted {path} as batch {batch_id}"
          + (" (failed documents only)" if args.retry_failed else ""), file=sys.stderr)
    return 0


def cmd_control(args: argparse.Namespace, settings: Settings) -> int:
    command = ControlCommand(args.command)
    cp = send_control(stack_commands.attached_settings(settings), command, args.job,
                      args.timeout)
    print(f"job {cp.job_id} (batch {cp.batch_id}): {cp.status.value}")
    if command is ControlCommand.RESUME:
        path = cp.metadata.input_path
        if path and Path(path).is_file():
            print(f"the remaining documents are re-sent from {path}")
        else:
            print("the input is not readable here: resubmit the batch to send the remaining "
                  "documents")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    cp = require_checkpoint(settings, resolve_job(settings, args.job), args.job)
    if args.json:
        print(json.dumps(cp.to_file(), indent=2, ensure_ascii=False))
        return 0
    print(status_report(cp))
    stats_path = batch_output_path(settings.data_dir, cp.batch_id, "batch_stats")
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        print(f"\nBatch-level results: {stats['event_links']} event links, "
              f"{stats['storylines']} storylines, events by type {stats['events_by_type']}")
    return 0


def cmd_link(args: argparse.Namespace, settings: Settings) -> int:
    """Run a job's batch-level work again (after it FAILED, or to refresh it)."""
    from eventpipe.linking.finish import finish_job
    from eventpipe.storage.factory import open_backends

    live = stack_commands.attached_settings(settings)
    job_id = resolve_job(settings, args.job)
    cp = require_checkpoint(settings, job_id, args.job)
    if cp.done < cp.total_documents or not cp.metadata.total_known:
        raise UsageError(f"job {job_id} has {cp.total_documents - cp.done} documents left: "
                         "batch-level work runs when every document is processed or failed")
    if cp.status in (JobStatus.PAUSED, JobStatus.STOPPED):
        raise UsageError(f"job {job_id} is {cp.status.value}")
    stop = threading.Event()
    backends = open_backends(live, stop)
    try:
        record = finish_job(live, CheckpointWriter(live, make_producer(live)), cp, backends,
                            stop)
    finally:
        for backend in backends:
            backend.close()
    print(f"job {job_id}: {record.status.value}"
          + (f" ({record.reason})" if record.reason else ""))
    return 0 if record.status.value == "COMPLETED" else 1


def cmd_failures(args: argparse.Namespace, settings: Settings) -> int:
    if args.failures_command == "list":
        return failures.cmd_list(settings, args.job, args.stage, args.reason, args.json)
    if args.failures_command == "show":
        return failures.cmd_show(settings, args.job, args.doc)
    try:
        live = stack_commands.attached_settings(settings)
    except UsageError:
        if settings.kafka_bootstrap:
            raise
        # As `run` does: a stack of its own for the replay, stopped once the job is done.
        print(f"no stack is running for {settings.data_dir}: starting one for the replay "
              "(it stops when the job is done) ...", file=sys.stderr)
        stack = Stack(settings)
        try:
            stack.start()
            return failures.cmd_replay(stack.settings, args.job, args.stage, args.reason,
                                       args.doc, args.include_quarantined, True, args.timeout)
        finally:
            stack.stop()
    return failures.cmd_replay(live, args.job, args.stage, args.reason, args.doc,
                               args.include_quarantined, args.wait, args.timeout)


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    job_id = resolve_job(settings, args.job)
    rate = RateWindow()
    n = 0
    while True:
        cp = require_checkpoint(settings, job_id, args.job)
        n += 1
        print(monitor_line(n, cp, rate.add(cp.done)), flush=True)
        if cp.is_final:
            return 0 if cp.status is JobStatus.COMPLETED else 1
        time.sleep(args.interval)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    return stack_commands.up(settings)


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    return stack_commands.down(settings)


def cmd_ps(args: argparse.Namespace, settings: Settings) -> int:
    return stack_commands.ps(settings)


def cmd_cleanup(args: argparse.Namespace, settings: Settings) -> int:
    return stack_commands.cleanup(settings, args.older_than)


def cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:
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


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.kafka_bootstrap:
        raise UsageError("set EVENTPIPE_KAFKA_BOOTSTRAP to the cluster to create topics on")
    for spec in ensure_topics(make_admin(settings), settings, alter=args.alter_configs):
        configs = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
        print(f"{spec.name}: {spec.partitions} partitions, {configs}")
    return 0


BROKERS = ("embedded", "kafka")
BROKER_HELP = ("local broker: embedded (default, memory only) or kafka (Apache Kafka from "
               "`make kafka`, data on disk); env EVENTPIPE_BROKER")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventpipe", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", help="results, checkpoints, logs and the stack's "
                          "state (default ./data, env EVENTPIPE_DATA_DIR)")
    job = argparse.ArgumentParser(add_help=False)
    job.add_argument("job", nargs="?", help="job id or batch id (default: the last submitted)")

    run = sub.add_parser("run", parents=[data_dir],
                         help="process a JSONL file end to end on this machine")
    run.add_argument("input", help="JSONL file, one object with `id` and `text` per line")
    run.add_argument("--batch-id", help="names the batch; the same id continues the same job")
    run.add_argument("--broker", help=BROKER_HELP)
    run.set_defaults(func=cmd_run)

    s = sub.add_parser("submit", parents=[data_dir], help="send a batch to the running stack")
    s.add_argument("input", help="JSONL file, one object with `id` and `text` per line")
    s.add_argument("--batch-id", help="default: batch_YYYYMMDD_HHMMSS")
    s.add_argument("--retry-failed", action="store_true",
                   help="reprocess only the documents of this batch that failed")
    s.set_defaults(func=cmd_submit)

    for name, text in [("pause", "pause a job: no new documents start"),
                       ("resume", "resume a paused job; re-sends what is left"),
                       ("stop", "stop a job for good")]:
        c = sub.add_parser(name, parents=[data_dir, job], help=text)
        c.add_argument("--timeout", type=float, default=30.0,
                       help="seconds to wait for the checkpoint to show it (default 30)")
        c.set_defaults(func=cmd_control)

    st = sub.add_parser("status", parents=[data_dir, job], help="print a job's checkpoint")
    st.add_argument("--json", action="store_true", help="print the checkpoint itself")
    st.set_defaults(func=cmd_status)

    lk = sub.add_parser("link", parents=[data_dir, job],
                        help="run a job's batch-level work again (links, storylines, stats)")
    lk.set_defaults(func=cmd_link)

    fl = sub.add_parser("failures", help="list, show and replay a job's failed documents")
    fl_sub = fl.add_subparsers(dest="failures_command", required=True)
    stages = [s.value for s in Stage]
    ls = fl_sub.add_parser("list", parents=[data_dir], help="one line per failed document, "
                           "then counts by stage and reason")
    ls.add_argument("job", help="job id or batch id")
    ls.add_argument("--stage", choices=stages, help="only documents that failed at this stage")
    ls.add_argument("--reason", help="only documents whose reason contains this text")
    ls.add_argument("--json", action="store_true", help="print JSON")
    show = fl_sub.add_parser("show", parents=[data_dir],
                             help="a failed document's whole record, payload included")
    show.add_argument("job", help="job id or batch id")
    show.add_argument("doc", help="document id")
    rp = fl_sub.add_parser("replay", parents=[data_dir], help="send the stored payloads of "
                           "failed documents into the stage where they failed")
    rp.add_argument("job", help="job id or batch id")
    rp.add_argument("--stage", choices=stages, help="only documents that failed at this stage")
    rp.add_argument("--reason", help="only documents whose reason contains this text")
    rp.add_argument("--doc", nargs="+", action="extend", metavar="ID",
                    help="only these documents")
    rp.add_argument("--include-quarantined", action="store_true",
                    help="also replay documents quarantined after failed replays")
    rp.add_argument("--wait", action="store_true",
                    help="wait until the job is COMPLETED (or FAILED) again (always, when no "
                    "stack is running: the replay then starts one and stops it after)")
    rp.add_argument("--timeout", type=float, default=30.0,
                    help="seconds to wait for the checkpoint to show the replay (default 30)")
    fl.set_defaults(func=cmd_failures)

    m = sub.add_parser("monitor", parents=[data_dir, job], help="a line per interval until "
                       "the job ends")
    m.add_argument("--interval", type=float, default=5.0, help="seconds (default 5)")
    m.set_defaults(func=cmd_monitor)

    sub.add_parser("up", parents=[data_dir], help="start the stack in the background"
                   ).set_defaults(func=cmd_up)
    sub.choices["up"].add_argument("--broker", help=BROKER_HELP)
    for name, func, text in [("down", cmd_down, "stop the background stack"),
                             ("ps", cmd_ps, "list the stack's processes")]:
        sub.add_parser(name, parents=[data_dir], help=text).set_defaults(func=func)

    topics = sub.add_parser("topics", help="Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    tc = topics_sub.add_parser("create", help="create (or verify) every topic with its "
                               "partitions and configs (EVENTPIPE_KAFKA_BOOTSTRAP)")
    tc.add_argument("--alter-configs", action="store_true",
                    help="set the configs of existing topics that differ instead of failing")
    tc.set_defaults(func=cmd_topics_create)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    dm = db_sub.add_parser("migrate", help="apply the PostgreSQL schema migrations "
                           "(EVENTPIPE_POSTGRES_MIGRATION_DSN, else EVENTPIPE_POSTGRES_DSN); "
                           "the sink also applies them at start-up unless "
                           "EVENTPIPE_POSTGRES_MIGRATE=false")
    dm.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                    help="retry an unreachable database for up to this long (default: no)")
    dm.set_defaults(func=cmd_db_migrate)

    c = sub.add_parser("cleanup", parents=[data_dir],
                       help="remove checkpoints of jobs that ended long ago")
    c.add_argument("--older-than", required=True, help="age, e.g. 7d, 12h, 30m")
    c.set_defaults(func=cmd_cleanup)
    return p


# The one place an error becomes an exit code (the tree is drawn in `eventpipe.errors`): the
# user's own mistakes exit 2, every other failure 1.
EXIT_CODES: tuple[tuple[type[EventpipeError], int], ...] = (
    (UsageError, 2), (InputError, 2), (BrokerConfigError, 2))


def exit_code(exc: EventpipeError) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # What the CLI writes (the data folder, the inbox, logs of the stack it starts) is the
    # user's alone: folders 0700, files 0600.
    os.umask(0o077)
    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"eventpipe: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    if getattr(args, "data_dir", None):
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    setup_logging("WARNING")
    try:
        if getattr(args, "broker", None) is not None:
            if args.broker not in BROKERS:
                raise UsageError(f"unknown broker {args.broker!r}: use embedded or kafka")
            settings = settings.model_copy(update={"broker": args.broker})
        sys.exit(args.func(args, settings))
    except EventpipeError as exc:
        print(f"eventpipe: {exc}", file=sys.stderr)
        sys.exit(exit_code(exc))
    except (KafkaException, TimeoutError) as exc:
        print(f"eventpipe: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\neventpipe: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        sys.exit(0)


__all__ = ["exit_code", "main", "parser"]

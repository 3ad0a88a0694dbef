"""`run`, `submit`, `pause`/`resume`/`stop`, `status`, `link` and `monitor`: one job's life."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.cli import options, stack_commands
from eventpipe.cli.errors import UsageError
from eventpipe.cli.output import (
    events_lines,
    monitor_line,
    run_summary,
    status_report,
    versions_report,
)
from eventpipe.cli.progress import Progress
from eventpipe.cli.tables import on_terminal, show, status_tables
from eventpipe.errors import StackError
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
from eventpipe.kafka.clients import make_producer
from eventpipe.models import ControlCommand, JobStatus, Submission
from eventpipe.reprocess import batch_versions
from eventpipe.settings import Settings
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
                progress.note(f"service {name} died; started it again")
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


def cmd_run(args: SimpleNamespace, settings: Settings) -> int:
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
    elapsed = time.monotonic() - started
    print(run_summary(cp, stack.settings.data_dir, elapsed, batch_stats(stack.settings, cp)))
    return 0 if cp.status is JobStatus.COMPLETED else 1


def cmd_submit(args: SimpleNamespace, settings: Settings) -> int:
    path = check_input(Path(args.input))
    batch_id = check_batch_id(args.batch_id or default_batch_id())
    sub = submit(stack_commands.attached_settings(settings), path, batch_id,
                 retry_failed=args.retry_failed)
    print(sub.job_id)
    print(f"submitted {path} as batch {batch_id}"
          + (" (failed documents only)" if args.retry_failed else ""), file=sys.stderr)
    return 0


def cmd_control(args: SimpleNamespace, settings: Settings) -> int:
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


def cmd_status(args: SimpleNamespace, settings: Settings) -> int:
    cp = require_checkpoint(settings, resolve_job(settings, args.job), args.job)
    if args.json:
        print(json.dumps(cp.to_file(), indent=2, ensure_ascii=False))
        return 0
    stats = batch_stats(settings, cp)
    lines = [f"Batch-level results: {stats['event_links']} event links, "
             f"{stats['storylines']} storylines, events by type {stats['events_by_type']}",
             *events_lines(stats)] if stats else []
    versions = batch_versions(settings, cp.batch_id)
    shown = (versions_report(versions, settings.data_dir, cp.job_id)
             if len(versions) > 1 or cp.metadata.result_version else None)
    if on_terminal():
        show([*status_tables(cp), *([shown] if shown else []), *lines])
        return 0
    print(status_report(cp))
    if shown:
        print(shown)
    if lines:
        print("\n" + "\n".join(lines))
    return 0


def batch_stats(settings: Settings, cp: Checkpoint) -> dict[str, Any] | None:
    """The batch statistics the linker wrote for a job, when it has."""
    path = batch_output_path(settings.data_dir, cp.batch_id, "batch_stats",
                             cp.metadata.result_version or 1)
    try:
        stats: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stats


def cmd_link(args: SimpleNamespace, settings: Settings) -> int:
    """Run a job's batch-level work again (after it FAILED, or to refresh it)."""
    # Imported here: only this command needs the batch-level code and the backends.
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


def cmd_monitor(args: SimpleNamespace, settings: Settings) -> int:
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


def _control(name: str, text: str) -> click.Command:
    def body(args: SimpleNamespace, settings: Settings) -> int:
        args.command = name
        return cmd_control(args, settings)

    return options.command(name, body, [
        options.job(), options.data_dir(),
        options.timeout("seconds to wait for the checkpoint to show it")],
        f"{text}\n\n{options.JOB_HELP}")


BATCH_ID_HELP = "names the batch; the same id continues the same job (default: " \
                "batch_YYYYMMDD_HHMMSS)"

COMMANDS = [
    options.command("run", cmd_run, [
        options.input_file(), options.data_dir(),
        click.Option(["--batch-id"], help=BATCH_ID_HELP), options.broker(),
        options.llm_server()],
        "Process a JSONL file end to end on this machine.\n\nINPUT: JSONL file, one object "
        "with `id` and `text` per line."),
    options.command("submit", cmd_submit, [
        options.input_file(), options.data_dir(),
        click.Option(["--batch-id"], help=BATCH_ID_HELP),
        click.Option(["--retry-failed"], is_flag=True,
                     help="reprocess only the documents of this batch that failed")],
        "Send a batch to the running stack; prints the job id.\n\nINPUT: JSONL file, one "
        "object with `id` and `text` per line."),
    _control("pause", "Pause a job: no new documents start."),
    _control("resume", "Resume a paused job; re-sends what is left."),
    _control("stop", "Stop a job for good."),
    options.command("status", cmd_status, [
        options.job(), options.data_dir(), options.json_flag("print the checkpoint itself")],
        f"Print a job's checkpoint (a table on a terminal).\n\n{options.JOB_HELP}"),
    options.command("link", cmd_link, [options.job(), options.data_dir()],
                    "Run a job's batch-level work again (links, storylines, stats).\n\n"
                    + options.JOB_HELP),
    options.command("monitor", cmd_monitor, [
        options.job(), options.data_dir(),
        click.Option(["--interval"], type=float, default=5.0, show_default=True,
                     help="seconds between lines")],
        f"A line per interval until the job ends.\n\n{options.JOB_HELP}"),
]

"""`up`, `down`, `ps` and `cleanup`: the background stack of a data directory."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.cli import options
from eventpipe.cli.errors import UsageError
from eventpipe.constants import TIME_FORMAT
from eventpipe.errors import StackError
from eventpipe.kafka.clients import make_producer
from eventpipe.settings import Settings
from eventpipe.stack import Stack, StackState, stack_status

BROKER_NAMES = {"embedded": "embedded broker", "kafka": "Apache Kafka", "cluster": "cluster"}


def state_path(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "run" / "stack.json"


def attached_settings(settings: Settings) -> Settings:
    """Settings pointing at the stack `up` started in this data directory, when there is one
    and no cluster is configured explicitly."""
    if settings.kafka_bootstrap:
        return settings
    state = StackState.load(state_path(settings))
    if state is None:
        raise UsageError(f"no stack is running for {settings.data_dir} (start one with "
                         "`eventpipe up`, or set EVENTPIPE_KAFKA_BOOTSTRAP)")
    if not state.broker_alive():
        raise UsageError(f"the stack's {BROKER_NAMES[state.broker_kind]} is not running: "
                         "`eventpipe up` starts it again")
    return settings.model_copy(update={"kafka_bootstrap": state.bootstrap})


def on_a_stack(settings: Settings, what: str, work: Callable[[Settings, bool], int],
               wait: bool) -> int:
    """Run `work(settings, wait)` on the stack running for the data directory; with none, as
    `run` does, on a stack of its own, waiting until the job is done, then stopping it."""
    try:
        live = attached_settings(settings)
    except UsageError:
        if settings.kafka_bootstrap:
            raise
        print(f"no stack is running for {settings.data_dir}: starting one for the {what} "
              "(it stops when the job is done) ...", file=sys.stderr)
        stack = Stack(settings)
        try:
            stack.start()
            return work(stack.settings, True)
        finally:
            stack.stop()
    return work(live, wait)


def up(settings: Settings, timeout_s: float = 180.0) -> int:
    path = state_path(settings)
    state = StackState.load(path)
    if (state is not None and state.local_broker and "broker" in settings.model_fields_set
            and settings.broker != state.broker_kind):
        raise UsageError(f"the stack of {settings.data_dir} runs the "
                         f"{BROKER_NAMES[state.broker_kind]}: `eventpipe down` before "
                         f"starting it with --broker {settings.broker}")
    if state is not None and state.broker_alive():
        stack = Stack.attach(settings, state)
        dead = [name for name, proc in stack.procs.items() if not proc.alive()]
        if not dead:
            print(f"already running (broker {state.bootstrap}); nothing started")
            return 0
        print(f"starting again: {', '.join(dead)}", file=sys.stderr)
        for name in dead:
            stack.spawn(name)
        stack.wait_ready(timeout_s, dead)
    else:
        if state is not None:
            # The local broker died. Services still running have been failing to deliver
            # and will crash when their flush times out, with nobody to start them again:
            # stop them (their uncommitted batches are redelivered) and start everything.
            attached = Stack.attach(settings, state)
            attached.broker_pid = None  # gone: never signal a pid that may be reused
            attached.stop(timeout_s=15)
            print("the embedded broker had died (its topics with it); starting the whole "
                  "stack again" if state.broker_kind == "embedded" else
                  "Apache Kafka had stopped; starting it again on its data, and the services "
                  "with it", file=sys.stderr)
            settings = settings.model_copy(update={"broker_port": _port(state.bootstrap),
                                                   "broker": state.broker_kind})
        stack = Stack(settings, tie_to_parent=False)
        started = time.monotonic()
        stack.start(timeout_s)
        print(f"stack ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    stack.state().save(path)
    print_ps(stack.state())
    return 0


def _port(bootstrap: str) -> int:
    try:
        return int(bootstrap.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def down(settings: Settings, timeout_s: float = 60.0) -> int:
    path = state_path(settings)
    state = StackState.load(path)
    if state is None:
        print(f"no stack is running for {settings.data_dir}")
        return 0
    Stack.attach(settings, state).stop(timeout_s)
    path.unlink(missing_ok=True)
    print({"embedded": "stack stopped (embedded broker state is gone; the checkpoint files "
                        "keep every job)",
           "kafka": "stack stopped (Apache Kafka keeps its topics in "
                    f"{settings.data_dir.resolve() / 'kafka'})"}.get(state.broker_kind,
                                                                   "services stopped"))
    return 0


def print_ps(state: StackState) -> None:
    print(f"bootstrap: {state.bootstrap} ({BROKER_NAMES[state.broker_kind]})")
    if state.console_url:
        print(f"console: {state.console_url} (API token: {state.console_token})")
    print(f"{'NAME':<16}{'PID':>8}  {'STATUS':<8}  LOG")
    for row in stack_status(state):
        print(f"{row['name']:<16}{row['pid'] or '-':>8}  {row['status']:<8}  {row['log']}")


def ps(settings: Settings) -> int:
    state = StackState.load(state_path(settings))
    if state is None:
        print(f"no stack is running for {settings.data_dir}")
        return 1
    print_ps(state)
    rows = stack_status(state)
    return 0 if all(r["status"] == "running" for r in rows) else 1


def parse_age(text: str) -> timedelta:
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    try:
        value, unit = float(text[:-1]), units[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise UsageError(f"invalid age {text!r}: use a number and a unit, e.g. 7d, 12h, "
                         "30m") from None
    if value < 0:
        raise UsageError("the age must not be negative")
    return timedelta(**{unit: value})


def cleanup(settings: Settings, older_than: str) -> int:
    """Delete the checkpoint files of jobs that ended longer ago than the age, and tombstone
    their records on the checkpoint and control topics when a broker is reachable."""
    cutoff = datetime.now(UTC) - parse_age(older_than)
    try:
        live = attached_settings(settings)
    except (UsageError, StackError):
        live = None
    writer = CheckpointWriter(live, make_producer(live)) if live else None
    removed = 0
    for path in sorted(settings.checkpoint_dir.glob("*.json")):
        try:
            # A ValidationError is a ValueError: a file that is no checkpoint is skipped.
            cp = Checkpoint.model_validate_json(path.read_bytes())
            ended = datetime.strptime(cp.updated_at, TIME_FORMAT).replace(tzinfo=UTC)
        except (OSError, ValueError) as exc:
            print(f"skipped {path.name}: {str(exc)[:500]}", file=sys.stderr)
            continue
        if not cp.is_final or ended > cutoff:
            continue
        if writer is not None:
            writer.tombstone_job(cp.job_id, [*cp.processed_doc_ids, *cp.failed_doc_ids])
        path.unlink()
        removed += 1
        print(f"removed {cp.job_id} (batch {cp.batch_id}, {cp.status.value}, ended "
              f"{cp.updated_at})")
    if writer is not None:
        writer.flush()
    where = "" if writer is not None else " (no broker running: files only)"
    print(f"{removed} job(s) removed{where}")
    return 0


COMMANDS = [
    options.command("up", lambda args, settings: up(settings),
                    [options.data_dir(), options.broker(), options.llm_server()],
                    "Start the stack in the background; returns when it is ready."),
    options.command("down", lambda args, settings: down(settings), [options.data_dir()],
                    "Stop the background stack."),
    options.command("ps", lambda args, settings: ps(settings), [options.data_dir()],
                    "List the stack's processes, the bootstrap address and the console's URL."),
    options.command("cleanup", lambda args, settings: cleanup(settings, args.older_than), [
        options.data_dir(),
        click.Option(["--older-than"], required=True, help="age, e.g. 7d, 12h, 30m")],
        "Remove checkpoints of jobs that ended long ago."),
]

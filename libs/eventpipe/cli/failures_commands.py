"""`eventpipe failures list | show | replay`: the commands over `failures.py`'s logic."""

from __future__ import annotations

from types import SimpleNamespace

import click

from eventpipe.cli import failures, options, stack_commands
from eventpipe.models import Stage
from eventpipe.settings import Settings


def cmd_list(args: SimpleNamespace, settings: Settings) -> int:
    return failures.cmd_list(settings, args.job, args.stage, args.reason, args.json)


def cmd_show(args: SimpleNamespace, settings: Settings) -> int:
    return failures.cmd_show(settings, args.job, args.doc)


def cmd_replay(args: SimpleNamespace, settings: Settings) -> int:
    doc_ids = list(args.doc) or None
    return stack_commands.on_a_stack(settings, "replay", lambda live, wait: failures.cmd_replay(
        live, args.job, args.stage, args.reason, doc_ids, args.include_quarantined, wait,
        args.timeout), args.wait)


def spread_doc_ids(argv: list[str]) -> list[str]:
    """`failures replay --doc a b c` as `--doc a --doc b --doc c`: click options take one
    value each, the command line users know takes a list after one `--doc`."""
    if argv[:2] != ["failures", "replay"]:
        return argv
    out, in_docs, empty = argv[:2], False, False
    for i, arg in enumerate(argv[2:], start=2):
        if arg == "--":
            return out + (["--doc"] if empty else []) + argv[i:]
        if arg == "--doc":
            if empty:
                out.append("--doc")  # no value: click says so
            in_docs = empty = True
            continue
        if in_docs and not arg.startswith("-"):
            out += ["--doc", arg]
            empty = False
            continue
        if empty:
            out.append("--doc")
        in_docs = empty = False
        out.append(arg)
    if empty:
        out.append("--doc")
    return out


def _stage() -> click.Option:
    return click.Option(["--stage"], type=click.Choice([s.value for s in Stage]),
                        help="only documents that failed at this stage")


def _reason() -> click.Option:
    return click.Option(["--reason"], help="only documents whose reason contains this text")


group = options.group("failures", "List, show and replay a job's failed documents.", [
    options.command("list", cmd_list, [
        options.job(required=True), options.data_dir(), _stage(), _reason(),
        options.json_flag()],
        "One line per failed document, then counts by stage and reason (tables on a "
        "terminal).\n\nJOB: job id or batch id."),
    options.command("show", cmd_show, [
        options.job(required=True), click.Argument(["doc"]), options.data_dir()],
        "A failed document's whole record, payload included.\n\nJOB: job id or batch id; "
        "DOC: document id."),
    options.command("replay", cmd_replay, [
        options.job(required=True), options.data_dir(), _stage(), _reason(),
        click.Option(["--doc"], multiple=True, metavar="ID",
                     help="only these documents (`--doc a b c`)"),
        click.Option(["--include-quarantined"], is_flag=True,
                     help="also replay documents quarantined after failed replays"),
        click.Option(["--wait"], is_flag=True,
                     help="wait until the job is COMPLETED (or FAILED) again (always, when no "
                     "stack is running: the replay then starts one and stops it after)"),
        options.timeout("seconds to wait for the checkpoint to show the replay")],
        "Send the stored payloads of failed documents into the stage where they failed."
        "\n\nJOB: job id or batch id."),
])

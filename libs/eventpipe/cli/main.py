"""The `eventpipe` command: its command tree (click) and the one place where an error
becomes a line on stderr and an exit code.

Shell completion comes with click: `eval "$(_EVENTPIPE_COMPLETE=bash_source eventpipe)"` in
~/.bashrc (zsh: `zsh_source`, fish: `fish_source`); see the README."""

from __future__ import annotations

import os
import sys

import click
from confluent_kafka import KafkaException

from eventpipe.cli import (
    failures_commands,
    job_commands,
    maintenance_commands,
    options,
    reprocess_commands,
    stack_commands,
)
from eventpipe.cli.errors import FAILURE, INTERRUPTED, USAGE, exit_code
from eventpipe.cli.job_commands import cmd_link
from eventpipe.errors import EventpipeError

PROG = "eventpipe"


def cli() -> click.Group:
    return options.group(PROG, "Run a batch end to end, or operate a background stack.", [
        *job_commands.COMMANDS, failures_commands.group, reprocess_commands.command,
        *stack_commands.COMMANDS,
        maintenance_commands.topics, maintenance_commands.db])


def main(argv: list[str] | None = None) -> None:
    args = failures_commands.spread_doc_ids(sys.argv[1:] if argv is None else list(argv))
    # What the CLI writes (the data folder, the inbox, logs of the stack it starts) is the
    # user's alone: folders 0700, files 0600.
    os.umask(0o077)
    try:
        code = cli().main(args, prog_name=PROG, complete_var="_EVENTPIPE_COMPLETE",
                          standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        # A group without its subcommand: the help says what there is.
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        code = USAGE
    except click.ClickException as exc:
        # One line, as for every other error; the help is one flag away.
        where = exc.ctx.command_path if isinstance(exc, click.UsageError) and exc.ctx else PROG
        print(f"{PROG}: {exc.format_message()} (see `{where} --help`)", file=sys.stderr)
        code = exc.exit_code
    except EventpipeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        code = exit_code(exc)
    except (KafkaException, TimeoutError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        code = FAILURE
    except (KeyboardInterrupt, click.Abort):
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        code = INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        code = 0
    sys.exit(code)


__all__ = ["cli", "cmd_link", "exit_code", "main"]

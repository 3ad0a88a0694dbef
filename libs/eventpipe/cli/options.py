"""What several commands share: their common options and arguments, shell completion of job
ids, and how a command's parameters become its settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
from click.shell_completion import CompletionItem
from pydantic import ValidationError

from eventpipe.cli.errors import UsageError
from eventpipe.logs import setup_logging
from eventpipe.settings import Settings, load_settings

# A command's body: its parameters by name (as `args.name`) and the settings they select.
Body = Callable[[SimpleNamespace, Settings], int]

BROKERS = ("embedded", "kafka")
BROKER_HELP = ("local broker: embedded (default, memory only) or kafka (Apache Kafka from "
               "`make kafka`, data on disk); env EVENTPIPE_BROKER")
JOB_HELP = "JOB: job id or batch id (default: the last submitted)."


def data_dir() -> click.Option:
    return click.Option(["--data-dir"], help="results, checkpoints, logs and the stack's state "
                        "(default ./data, env EVENTPIPE_DATA_DIR)")


def broker() -> click.Option:
    # Checked with the settings, not as a click.Choice: the message is the one users know.
    return click.Option(["--broker"], help=BROKER_HELP)


def llm_server() -> click.Option:
    return click.Option(["--llm-server"], metavar="MODEL.gguf", help="start llama.cpp's server "
                        "(`make llm-server`) on this GGUF file and take events from it (the "
                        "openai backend); env EVENTPIPE_LLM_SERVER_MODEL")


def json_flag(text: str = "print JSON") -> click.Option:
    return click.Option(["--json"], is_flag=True, help=text)


def timeout(text: str) -> click.Option:
    return click.Option(["--timeout"], type=float, default=30.0, show_default=True, help=text)


def job(required: bool = False) -> click.Argument:
    return click.Argument(["job"], required=required, shell_complete=complete_job)


def input_file() -> click.Argument:
    # A plain path: the checks and their messages are `jobs.check_input`'s.
    return click.Argument(["input"], type=click.Path())


def complete_job(ctx: click.Context, _param: click.Parameter, incomplete: str
                 ) -> list[CompletionItem]:
    """The job ids with a checkpoint in the data folder (from the file names: cheap)."""
    try:
        settings = load_settings()
    except ValueError:
        return []
    folder = Path(ctx.params.get("data_dir") or settings.data_dir) / "checkpoints"
    return [CompletionItem(p.stem) for p in sorted(folder.glob(f"{incomplete}*.json"))]


def settings_for(args: SimpleNamespace) -> Settings:
    """The settings from the environment (and secret files), with the command's --data-dir,
    --broker and --llm-server on top."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        # One line: each wrong setting and why, without pydantic's links.
        raise UsageError("invalid configuration: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
            for e in exc.errors())) from None
    except ValueError as exc:
        raise UsageError(f"invalid configuration: {exc}") from None
    if getattr(args, "data_dir", None):
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    setup_logging("WARNING")
    if getattr(args, "broker", None) is not None:
        if args.broker not in BROKERS:
            raise UsageError(f"unknown broker {args.broker!r}: use embedded or kafka")
        settings = settings.model_copy(update={"broker": args.broker})
    if getattr(args, "llm_server", None):
        settings = settings.model_copy(update={"llm_server_model": Path(args.llm_server)})
    if settings.llm_server_model is not None:
        from eventpipe.nlp.llm.server import check_model, server_binary

        # Here, not in the service: a wrong path is the user's to fix, said at once.
        check_model(settings.llm_server_model)
        server_binary(settings)
    return settings


def command(name: str, body: Body, params: list[click.Parameter], help: str) -> click.Command:
    """A click command that runs `body` with its parameters and their settings; its return
    value is the exit code."""

    def callback(**values: Any) -> int:
        args = SimpleNamespace(**values)
        return body(args, settings_for(args))

    return click.Command(name, callback=callback, params=params, help=help,
                         context_settings=CONTEXT)


class Group(click.Group):
    """Commands listed in the order they are given (the order of a job's life), not sorted."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def group(name: str, help: str, commands: list[click.Command]) -> Group:
    return Group(name, help=help, commands=commands, context_settings=CONTEXT)


# -h as well as --help, as argparse had; wide enough help for the option texts.
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

"""One exception tree: every exception class defined in libs/ and services/ descends from
`EventpipeError`, the tree drawn in `eventpipe.errors` names them all, and the CLI turns
them into exit codes in one place."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import eventpipe.errors as errors
from eventpipe.cli.main import exit_code, main
from eventpipe.errors import EventpipeError

ROOT = Path(__file__).resolve().parents[2]


def _module_names() -> list[str]:
    names = []
    for base in (ROOT / "libs", ROOT):
        top = "eventpipe" if base.name == "libs" else "services"
        for path in sorted((base / top).rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__main__":
                continue
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
    return names


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _module_names():
        module = importlib.import_module(name)
        for cls_name, cls in vars(module).items():
            if (inspect.isclass(cls) and issubclass(cls, BaseException)
                    and cls.__module__ == name):
                found[f"{name}.{cls_name}"] = cls
    return found


def test_every_exception_class_descends_from_the_root() -> None:
    classes = _exception_classes()
    assert len(classes) >= 20  # the walk found the tree, not nothing
    strays = sorted(name for name, cls in classes.items() if not issubclass(cls, EventpipeError))
    assert strays == []


def test_the_drawn_tree_names_every_class() -> None:
    doc = errors.__doc__ or ""
    for name, cls in vars(errors).items():
        if inspect.isclass(cls) and issubclass(cls, BaseException):
            # A line of the drawing: box characters, then the class name.
            assert re.search(rf"(?m)^[\s│├└─]*{name}\b", doc), name


def test_old_names_are_the_same_classes() -> None:
    from eventpipe.checkpoint.files import CheckpointNotFound
    from eventpipe.cli.errors import UsageError
    from eventpipe.kafka.errors import KafkaSetupError
    from eventpipe.stack import StackError
    from eventpipe.storage.base import BackendUnavailable

    assert UsageError is errors.UsageError
    assert StackError is errors.StackError
    assert KafkaSetupError is errors.KafkaSetupError
    assert BackendUnavailable is errors.BackendUnavailable
    # Code that catches the built-in a class used to extend still catches it.
    assert issubclass(CheckpointNotFound, FileNotFoundError)
    assert issubclass(errors.InvalidControlMessage, ValueError)
    assert issubclass(errors.DeliveryError, RuntimeError)


@pytest.mark.parametrize(
    "exc, code",
    [
        (errors.UsageError("x"), 2),
        (errors.InvalidControlMessage("x"), 2),
        (errors.StackError("x"), 1),
        (errors.KafkaSetupError("x"), 1),
        (errors.BackendUnavailable("x"), 1),
        (errors.CheckpointNotFound("x"), 1),
    ],
)
def test_exit_codes_by_group(exc: EventpipeError, code: int) -> None:
    assert exit_code(exc) == code


def test_the_cli_exits_with_the_mapped_code(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # No job submitted from this data directory: a usage error, one line, exit 2.
    with pytest.raises(SystemExit) as exited:
        main(["status", "--data-dir", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("eventpipe: no job given") and err.count("\n") == 1

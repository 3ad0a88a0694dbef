"""The `eventpipe` command on click and rich: the options users know, one-line errors with
the exit codes of `cli/errors.py`, plain output when piped and tables, bars and colour only
on a terminal, shell completion."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.cli.failures_commands import spread_doc_ids
from eventpipe.cli.main import main
from eventpipe.cli.progress import Progress
from eventpipe.models import job_id_for
from helpers import EVENTPIPE

ESC = "\x1b["


def checkpoint(done: int, total: int = 100, status: str = "RUNNING",
               batch: str = "demo") -> Checkpoint:
    return Checkpoint.model_validate({
        "job_id": job_id_for(batch), "batch_id": batch, "status": status,
        "total_documents": total, "processed_documents": done - 1, "failed_documents": 1,
        "processed_doc_ids": [f"d{i}" for i in range(done - 1)], "failed_doc_ids": ["bad"],
        "failures": {"bad": {"stage": "llm", "error": "no answer from the server",
                             "class": "transient", "attempts": 2}},
        "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:01:00Z",
        "metadata": {"started_at": "2026-12-01T10:00:00Z"}})


def test_doc_lists_keep_their_argparse_form() -> None:
    assert spread_doc_ids(["failures", "replay", "b", "--doc", "x", "y", "--wait"]) == [
        "failures", "replay", "b", "--doc", "x", "--doc", "y", "--wait"]
    assert spread_doc_ids(["failures", "replay", "b", "--doc", "x", "--doc", "z"]) == [
        "failures", "replay", "b", "--doc", "x", "--doc", "z"]
    # Only `failures replay` has the option; everything after `--` is left alone.
    assert spread_doc_ids(["status", "--doc", "x", "y"]) == ["status", "--doc", "x", "y"]
    assert spread_doc_ids(["failures", "replay", "b", "--", "--doc", "x", "y"]) == [
        "failures", "replay", "b", "--", "--doc", "x", "y"]
    assert spread_doc_ids(["failures", "replay", "b", "--doc"]) == [
        "failures", "replay", "b", "--doc"]


@pytest.mark.parametrize(("argv", "words"), [
    (["status", "--bogus"], "No such option '--bogus'"),
    (["failures", "list", "j", "--stage", "nope"], "'nope' is not one of 'ingest'"),
    (["failures", "show", "j"], "Missing argument 'DOC'"),
    (["monitor", "--interval", "soon"], "'soon' is not a valid float"),
    (["cleanup"], "Missing option '--older-than'"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["up", "--broker", "rabbit"], "unknown broker 'rabbit': use embedded or kafka"),
])
def test_a_wrong_command_line_is_one_line_and_exit_2(
        argv: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPIPE_DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("eventpipe: ") and err.count("\n") == 1, err
    assert words in err


def test_a_bad_setting_is_one_line(capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPIPE_WORK_PARTITIONS", "zero")
    with pytest.raises(SystemExit) as exited:
        main(["status", "x"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert err.startswith("eventpipe: invalid configuration: work_partitions: ")


def test_help_lists_every_command_in_the_order_of_a_job(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    names = ["run", "submit", "pause", "resume", "stop", "status", "link", "monitor",
             "failures", "reprocess", "up", "down", "ps", "cleanup", "topics", "db"]
    where = [out.index(f"\n  {n} ") for n in names]
    assert where == sorted(where)
    with pytest.raises(SystemExit) as exited:
        main([])  # no command: the help on stderr, a usage error
    assert exited.value.code == 2 and "Commands:" in capsys.readouterr().err


def test_plain_progress_lines_with_eta_and_no_escape_codes() -> None:
    stream = io.StringIO()
    clock = [1000.0]
    progress = Progress(stream, line_every_s=0, clock=lambda: clock[0])
    for done in (10, 10, 30, 60):
        clock[0] += 10
        progress.update(checkpoint(done))
    progress.update(checkpoint(100, status="COMPLETED"))
    progress.close()
    lines = stream.getvalue().splitlines()
    # The repeated state is not printed twice; the rate counts from the first sample.
    assert [line.split()[1] for line in lines] == ["10/100", "30/100", "60/100", "100/100"]
    assert "  1.0 docs/s  ETA 0:01:10" in lines[1]  # 20 docs in 20 s, 70 left
    assert "ETA" not in lines[-1] and lines[-1].startswith("COMPLETED")
    assert ESC not in stream.getvalue()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_bar_with_eta() -> None:
    stream = Terminal()
    progress = Progress(stream)
    progress.update(checkpoint(10))
    progress.note("service ner died; started it again")
    progress.update(checkpoint(40))
    progress.close()
    text = stream.getvalue()
    assert ESC in text and "━" in text and "ETA" in text
    assert "40/100" in text and "failed 1" in text
    assert "service ner died; started it again" in text


def _data_dir_with_a_job(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoints"
    folder.mkdir(parents=True)
    cp = checkpoint(40, status="PAUSED")
    (folder / f"{cp.job_id}.json").write_text(json.dumps(cp.to_file()))
    return tmp_path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    return subprocess.run([*EVENTPIPE, *args], capture_output=True, text=True, timeout=60,
                          env=clean | (env or {}), check=False)


def _on_a_terminal(*args: str) -> str:
    """The command's stdout when it is a terminal (a pseudo-terminal here)."""
    leader, follower = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    clean |= {"COLUMNS": "120", "TERM": "xterm"}
    clean.pop("NO_COLOR", None)
    with subprocess.Popen([*EVENTPIPE, *args], stdout=follower, stderr=subprocess.PIPE,
                          env=clean) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    os.close(leader)
    return b"".join(chunks).decode()


def test_status_and_failures_are_tables_on_a_terminal_and_plain_in_a_pipe(
        tmp_path: Path) -> None:
    data = str(_data_dir_with_a_job(tmp_path))
    piped = _cli("status", "demo", "--data-dir", data)
    assert piped.returncode == 0 and ESC not in piped.stdout
    assert "Status:              PAUSED" in piped.stdout
    assert "  ✗ bad (llm: no answer from the server)" in piped.stdout

    table = _on_a_terminal("status", "demo", "--data-dir", data)
    assert ESC in table and "Status:" not in table
    assert "PAUSED" in table and "39 (39.0%)" in table and "no answer from the server" in table

    piped = _cli("failures", "list", "demo", "--data-dir", data)
    assert piped.returncode == 0 and ESC not in piped.stdout
    assert "  bad\tllm\ttransient\tattempts 2\tno answer from the server" in piped.stdout
    table = _on_a_terminal("failures", "list", "demo", "--data-dir", data)
    assert ESC in table and "\t" not in table
    assert "stage" in table and "attempts" in table and "no answer from the server" in table

    as_json = _cli("failures", "list", "demo", "--data-dir", data, "--json")
    assert json.loads(as_json.stdout)["by_stage"] == {"llm": 1}


def test_shell_completion_offers_commands_and_job_ids(tmp_path: Path) -> None:
    data = str(_data_dir_with_a_job(tmp_path))
    script = _cli(env={"_EVENTPIPE_COMPLETE": "bash_source"})
    assert script.returncode == 0 and "complete -o nosort -F _eventpipe_completion" in (
        script.stdout)
    commands = _cli(env={"_EVENTPIPE_COMPLETE": "bash_complete",
                         "COMP_WORDS": "eventpipe fail", "COMP_CWORD": "1"})
    assert commands.stdout.split() == ["plain,failures"]
    jobs = _cli(env={"_EVENTPIPE_COMPLETE": "bash_complete", "COMP_CWORD": "4",
                     "COMP_WORDS": f"eventpipe status --data-dir {data} "})
    assert jobs.stdout.split() == [f"plain,{job_id_for('demo')}"]

"""`eventpipe run` as a user runs it: its own embedded broker, exit codes, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from eventpipe.models import job_id_for
from eventpipe.storage.jsonl import results_path
from helpers import EVENTPIPE, corpus_lines, read_results, run_cli, write_jsonl


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "/nonexistent/in.jsonl"], "does not exist"),
        (["run", "/tmp"], "is not a file"),
        (["run", __file__, "--batch-id", "../escape"], "invalid batch id"),
        (["status", "no_such_batch"], "no checkpoint"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path: Path, args: list[str],
                                                words: str) -> None:
    result = run_cli(*args, data_dir=tmp_path)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_is_reported(tmp_path: Path) -> None:
    env = dict(os.environ, EVENTPIPE_WORK_PARTITIONS="zero", EVENTPIPE_DATA_DIR=str(tmp_path))
    result = subprocess.run([*EVENTPIPE, "status", "x"], capture_output=True, text=True,
                            env=env, check=False)
    assert result.returncode == 2 and "work_partitions" in result.stderr


def test_run_then_rerun_the_same_batch_skips_what_is_done(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lines = corpus_lines(30, seed=2)
    first = write_jsonl(tmp_path / "a.jsonl", [*lines, "{broken"])
    result = run_cli("run", str(first), "--batch-id", "cli_batch", data_dir=data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "COMPLETED" in result.stdout and "processed 30, failed 1" in result.stdout
    assert "line-31" in result.stdout

    # A fresh embedded broker: state comes back from the checkpoint files, so the 30 done
    # documents are skipped and only the 5 new ones are processed.
    second = write_jsonl(tmp_path / "b.jsonl", [*lines, "{broken", *corpus_lines(35, 4)[30:]])
    result = run_cli("run", str(second), "--batch-id", "cli_batch", data_dir=data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "processed 35, failed 1" in result.stdout

    cp = json.loads((data / "checkpoints" / f"{job_id_for('cli_batch')}.json").read_text())
    assert cp["status"] == "COMPLETED" and cp["total_documents"] == 36
    saved = read_results(results_path(data, "cli_batch"))
    assert len(saved) == len({r["id"] for r in saved}) == 35
    script = Path(__file__).parents[2] / "scripts" / "checkpoint_status.sh"
    status = subprocess.run([str(script), "cli_batch", "--data-dir", str(data)],
                            capture_output=True, text=True, check=False)
    assert status.returncode == 0 and "Status:              COMPLETED" in status.stdout
    assert "Processed:           35 (97.2%)" in status.stdout

    ingest_log = (data / "logs" / "ingest.log").read_text().splitlines()
    summaries = [json.loads(x) for x in ingest_log if "submission ingested" in x]
    assert [(s["sent"], s["skipped"]) for s in summaries] == [(30, 0), (5, 31)]

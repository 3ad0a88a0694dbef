"""Helpers shared by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from eventpipe.checkpoint.files import CheckpointNotFound, read_checkpoint
from eventpipe.nlp.corpus import generate_documents
from eventpipe.settings import Settings
from eventpipe.stack import Stack


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def corpus_lines(n: int, seed: int = 11) -> list[str]:
    return [json.dumps(d) for d in generate_documents(n, seed=seed)]


def wait_checkpoint(
    settings: Settings,
    job_id: str,
    until: Any,
    timeout_s: float = 180.0,
    stack: Stack | None = None,
) -> dict[str, Any]:
    """Poll the checkpoint file until `until(cp)` holds; restarts dead services if a stack is
    given (as `eventpipe run` does)."""
    deadline = time.monotonic() + timeout_s
    cp: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if stack is not None:
            stack.supervise()
        try:
            cp = read_checkpoint(settings.checkpoint_dir, job_id)
        except CheckpointNotFound:
            cp = None
        if cp is not None and until(cp):
            return cp
        time.sleep(0.1)
    raise AssertionError(f"checkpoint condition not met in {timeout_s} s; last: "
                         f"{ {k: v for k, v in (cp or {}).items() if not k.endswith('ids')} }")


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


EVENTPIPE = [sys.executable, "-m", "eventpipe.cli"]


def run_cli(*args: str, data_dir: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    env["EVENTPIPE_DATA_DIR"] = str(data_dir)
    return subprocess.run([*EVENTPIPE, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)

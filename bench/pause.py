"""A pause frees resources: each service's RSS while a batch runs, just after a pause, 30 s
into it (the stages give back what they can after EVENTPIPE_IDLE_RELEASE_S, 10 s here) and
after the resume has processed more documents.

    .venv/bin/python bench/pause.py [--docs 3000] [--idle-s 10] [--backend rules]

With `--backend transformers` and EVENTPIPE_LLM_MODEL set, the events stage's model is
unloaded during the pause (and its GPU memory, on a GPU) and loaded again on resume.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from soak import rss_mb

from eventpipe.jobs import send_control, submit
from eventpipe.models import ControlCommand
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from support.unseen import unseen_documents


def checkpoint(path: Path) -> dict[str, Any]:
    while True:
        try:
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
        except (OSError, ValueError):
            time.sleep(0.2)


def wait_processed(path: Path, at_least: int, timeout_s: float = 1800) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = int(checkpoint(path)["processed_documents"])
        if done >= at_least:
            return done
        time.sleep(0.2)
    raise SystemExit(f"fewer than {at_least} documents processed in {timeout_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--backend", default="rules")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eventpipe-pause-") as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(d) + "\n" for d in unseen_documents(args.docs)))
        settings = Settings(data_dir=Path(tmp) / "data",
                            topic_prefix=f"pause{uuid.uuid4().hex[:6]}",
                            idle_release_s=args.idle_s, llm_backend=args.backend)
        stack = Stack(settings)
        stack.start()
        pids = {name: proc.pid for name, proc in stack.procs.items()}
        rows: list[tuple[str, dict[str, float]]] = []
        try:
            job_id = submit(stack.settings, corpus, "pause").job_id
            cp = stack.settings.checkpoint_dir / f"{job_id}.json"
            wait_processed(cp, args.docs // 4)
            rows.append(("running", {n: rss_mb(p) for n, p in pids.items()}))
            send_control(stack.settings, ControlCommand.PAUSE, job_id, timeout_s=120)
            rows.append(("paused", {n: rss_mb(p) for n, p in pids.items()}))
            time.sleep(30)  # the measurement point itself, not a wait for a condition
            rows.append(("30 s in", {n: rss_mb(p) for n, p in pids.items()}))
            paused_at = int(checkpoint(cp)["processed_documents"])
            send_control(stack.settings, ControlCommand.RESUME, job_id, timeout_s=120)
            wait_processed(cp, paused_at + args.docs // 4)
            rows.append(("resumed", {n: rss_mb(p) for n, p in pids.items()}))
        finally:
            stack.stop()
    names = sorted(pids)
    print(f"RSS in MB, events backend {args.backend}, idle release after {args.idle_s} s")
    print(f"{'':<9}" + " ".join(f"{n:>10}" for n in names))
    for label, sample in rows:
        print(f"{label:<9}" + " ".join(f"{sample[n]:>10.1f}" for n in names))


if __name__ == "__main__":
    main()

"""Memory over a long batch: N news-like documents full of never-seen strings (invented
names, companies, codes, figures, links) through the embedded stack, each service's RSS
printed at every 10% of the batch. The NLP workers (ner, dp, llm) should end where they
were at 10%: the last lines give end / 10% and end / 20% for each.

    .venv/bin/python bench/soak.py [N=200000] [--workdir DIR]

The corpus is written first (about 0.8 KB a document); the job is timed from submission.
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

# The shared test code (corpus generators) lives in tests/support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from eventpipe.jobs import submit
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from support.processes import rss_mb
from support.unseen import unseen_documents

NLP_WORKERS = ("ner", "dp", "llm")


def write_corpus(path: Path, n: int) -> None:
    with path.open("w") as f:
        for doc in unseen_documents(n):
            f.write(json.dumps(doc) + "\n")


def done_count(cp_path: Path) -> tuple[int, str]:
    try:
        cp = json.loads(cp_path.read_text())
    except (OSError, ValueError):
        return 0, "RUNNING"  # not written yet, or replaced while read
    return int(cp["processed_documents"]) + int(cp["failed_documents"]), str(cp["status"])


def soak(n: int, workdir: Path) -> dict[int, dict[str, float]]:
    corpus = workdir / "corpus.jsonl"
    write_corpus(corpus, n)
    settings = Settings(data_dir=workdir / "data", topic_prefix=f"soak{uuid.uuid4().hex[:6]}")
    stack = Stack(settings)
    stack.start()
    pids = {name: proc.pid for name, proc in stack.procs.items()}
    if stack.broker_pid is not None:
        pids["broker"] = stack.broker_pid
    names = sorted(pids)
    print(f"{'done':>6} {'docs':>8} {'s':>7}  " + " ".join(f"{x:>9}" for x in names))
    samples: dict[int, dict[str, float]] = {}
    try:
        started = time.perf_counter()
        job_id = submit(stack.settings, corpus, "soak").job_id
        cp_path = stack.settings.checkpoint_dir / f"{job_id}.json"
        tenth = 1
        while tenth <= 10:
            done, status = done_count(cp_path)
            if done >= n * tenth // 10:
                samples[tenth * 10] = {name: rss_mb(pid) for name, pid in pids.items()}
                print(f"{tenth * 10:>5}% {done:>8} {time.perf_counter() - started:>7.1f}  "
                      + " ".join(f"{samples[tenth * 10][x]:>9.1f}" for x in names), flush=True)
                tenth += 1
                continue
            if status not in ("RUNNING", "COMPLETED"):
                raise SystemExit(f"job ended {status}")
            time.sleep(0.2)
    finally:
        stack.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=200_000)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the corpus and the stack's data go (default: a temp dir)")
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        samples = soak(args.n, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="eventpipe-soak-") as tmp:
            samples = soak(args.n, Path(tmp))
    print("RSS in MB above; NLP workers at the end against 10% and 20% of the batch:")
    for name in sorted(samples[100]):
        if name.split(".")[0] in NLP_WORKERS:
            end = samples[100][name]
            print(f"{name:<8} end/10% {end / samples[10][name]:.3f}   "
                  f"end/20% {end / samples[20][name]:.3f}")


if __name__ == "__main__":
    main()

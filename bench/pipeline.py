"""End-to-end throughput: eventpipe against a one-process baseline, on the same corpus.

(a) baseline: one process, spaCy `nlp.pipe` with the full pipeline (the same model and the
    components the stages use), the same triplet and event code, one JSONL write at the end.
(b) eventpipe with two chained workers (EVENTPIPE_CHAINED_WORKERS=2: NER, DP and the events
    stage in each of two processes): the stack (embedded broker and every service as its own
    process) is started and ready first; then the batch is submitted and timed until the job
    is COMPLETED.
(d) the same with one process per stage (the default layout, as in docker-compose and Helm).
(c) spaCy's own parallel run, `nlp.pipe(n_process=2)`, otherwise as (a): what the simplest
    parallel script gets on the same machine in the same run.

All are timed after loading the model or starting the stack (spaCy's worker processes in (c)
start inside the timed call, as in any script that uses it). Prints docs/s for each, how
many documents' entities and triplets differ from the baseline's, and as its last line
`ratio: <b/a>`.

    .venv/bin/python bench/pipeline.py [--docs 1000] [--seed 3] [--broker tansu|kafka]

`--broker kafka` runs (b) on a local Apache Kafka (`make kafka`) instead of the embedded
Tansu broker; its start-up is not counted either.
"""

from __future__ import annotations

import os

# Both sides single-threaded BLAS, set before numpy loads: it is faster for spaCy here (the
# stack sets the same for its services).
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

# The shared test code (corpus, gold set, process measurements) lives in tests/support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from eventpipe.jobs import submit
from eventpipe.nlp.entities import entities_from_doc, sentences_from_doc
from eventpipe.nlp.events import EventInput, RulesBackend
from eventpipe.nlp.model import load_pipeline
from eventpipe.nlp.predicates import predicates_from_doc
from eventpipe.nlp.triplets import triplets_from_doc
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from support.corpus import generate_documents
from support.processes import cpu_seconds, peak_rss_mb


def baseline(
    docs: list[dict[str, Any]], out: Path, n_process: int = 1
) -> tuple[float, float, dict[str, Any]]:
    """(a) with n_process=1; (c), spaCy's own parallelism, with n_process=2 (its worker
    processes parse, this one extracts and writes; the CPU figure is this process's)."""
    nlp = load_pipeline()
    backend = RulesBackend()
    nlp("warm up")
    started, cpu_started = time.perf_counter(), time.process_time()
    results: dict[str, Any] = {}
    lines = []
    parsed = nlp.pipe((d["text"] for d in docs), batch_size=64, n_process=n_process)
    for doc, sp in zip(docs, parsed, strict=True):
        entities = entities_from_doc(sp)
        triplets = triplets_from_doc(sp)
        events = backend.extract_batch([EventInput(
            doc["text"], entities, triplets, sentences_from_doc(sp), predicates_from_doc(sp))])[0]
        line = {"id": doc["id"], "entities": [e.model_dump() for e in entities],
                "triplets": [t.model_dump() for t in triplets],
                "events": [e.model_dump() for e in events]}
        results[doc["id"]] = line
        lines.append(json.dumps(line))
    out.write_text("\n".join(lines) + "\n")
    return time.perf_counter() - started, time.process_time() - cpu_started, results


def pipeline(docs_path: Path, data_dir: Path, broker: str = "embedded", chained_workers: int = 2
             ) -> tuple[float, float, dict[str, Any]]:
    settings = Settings(data_dir=data_dir, topic_prefix=f"bench{uuid.uuid4().hex[:6]}",
                        checkpoint_flush_interval_s=0.2, broker=broker,
                        chained_workers=chained_workers)
    stack = Stack(settings)
    t0 = time.perf_counter()
    stack.start()
    startup = time.perf_counter() - t0
    pids = {name: proc.pid for name, proc in stack.procs.items()}
    if stack.broker_pid is not None:
        pids["broker"] = stack.broker_pid
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    try:
        started = time.perf_counter()
        job_id = submit(stack.settings, docs_path, "bench").job_id
        cp_path = stack.settings.checkpoint_dir / f"{job_id}.json"
        all_done: float | None = None  # when the checkpoint first counted every document
        while True:
            if cp_path.exists():
                cp = json.loads(cp_path.read_text())
                if all_done is None and cp["processed_documents"] + cp[
                        "failed_documents"] >= cp["total_documents"]:
                    all_done = time.perf_counter()
                if cp["status"] != "RUNNING":
                    break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        tail = time.perf_counter() - (all_done or time.perf_counter())
        linked = [json.loads(line) for line in (stack.settings.data_dir / "logs" / "linker.log")
                  .read_text().splitlines() if '"linked"' in line]
        print(f"last document -> COMPLETED {tail:.2f} s (batch-level step "
              f"{linked[-1]['ms'] / 1000 if linked else float('nan'):.2f} s, storylines formed "
              f"while the job ran: {linked[-1].get('live') if linked else None})")
        # CPU seconds during (b) tell a slow machine (more CPU for the same work) from a stall.
        for name, pid in sorted(pids.items()):
            print(f"{name:<10} peak RSS {peak_rss_mb(pid):7.1f} MB   "
                  f"CPU during (b) {cpu_seconds(pid) - cpu_before[name]:6.2f} s")
    finally:
        stack.stop()
    if cp["status"] != "COMPLETED":
        raise SystemExit(f"job ended {cp['status']}")
    results = {}
    for line in results_path(stack.settings.data_dir, "bench").read_text().splitlines():
        r = json.loads(line)
        results[r["id"]] = r
    return startup, elapsed, results


def differences(a: dict[str, Any], b: dict[str, Any], field: str) -> int:
    return sum(1 for doc_id in a if a[doc_id][field] != b.get(doc_id, {}).get(field))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--broker", choices=["tansu", "kafka"], default="tansu",
                        help="the broker of (b): embedded Tansu or a local Apache Kafka")
    args = parser.parse_args()

    docs = generate_documents(args.docs, seed=args.seed)
    words = sum(len(d["text"].split()) for d in docs)
    with tempfile.TemporaryDirectory(prefix="eventpipe-bench-") as tmp:
        tmpdir = Path(tmp)
        docs_path = tmpdir / "corpus.jsonl"
        docs_path.write_text("".join(json.dumps(d) + "\n" for d in docs))

        base_s, base_cpu_s, base = baseline(docs, tmpdir / "baseline.jsonl")
        two_s, two_cpu_s, two = baseline(docs, tmpdir / "two.jsonl", n_process=2)
        broker = "kafka" if args.broker == "kafka" else "embedded"
        print("(b) two chained workers:")
        startup_s, pipe_s, piped = pipeline(docs_path, tmpdir / "data", broker)
        print("(d) one process per stage:")
        _, stages_s, staged = pipeline(docs_path, tmpdir / "data-stages", broker, 0)

    a, b, c = len(docs) / base_s, len(docs) / pipe_s, len(docs) / two_s
    d = len(docs) / stages_s
    print(f"corpus: {len(docs)} documents, {words} words")
    print(f"(a) baseline, one process, nlp.pipe: {base_s:7.2f} s  {a:7.1f} docs/s  "
          f"(CPU {base_cpu_s:.2f} s)")
    print(f"(b) eventpipe on {args.broker}, {startup_s:.1f} s start-up not counted: "
          f"{pipe_s:7.2f} s  {b:7.1f} docs/s")
    print(f"(c) spaCy nlp.pipe(n_process=2): {two_s:7.2f} s  {c:7.1f} docs/s  "
          f"(CPU of the main process {two_cpu_s:.2f} s)  c/a {c / a:.2f}  b/c {b / c:.2f}")
    print(f"(d) eventpipe, one process per stage: {stages_s:7.2f} s  {d:7.1f} docs/s  "
          f"d/a {d / a:.2f}  b/d {b / d:.2f}")
    print(f"documents whose results differ between (c) and (a): "
          f"{sum(1 for k in base if base[k] != two.get(k))}")
    print(f"documents missing from eventpipe's results: {len(set(base) - set(piped))}")
    print(f"documents whose entities differ: {differences(base, piped, 'entities')}")
    print(f"documents whose triplets differ: {differences(base, piped, 'triplets')}")
    print(f"documents whose events differ: {differences(base, piped, 'events')}")
    print("documents whose entities, triplets or events differ between (d) and (b): "
          f"{sum(differences(piped, staged, f) for f in ('entities', 'triplets', 'events'))}")
    print(f"ratio: {b / a:.2f}")


if __name__ == "__main__":
    main()

"""CPU per document per stage with 3 NER + 3 DP workers on a three-node Apache Kafka cluster.

Starts three KRaft nodes on loopback (each broker and controller, as the fixture of
tests/kafka/test_cluster.py does), topics with replication factor 3 and min.insync.replicas 2,
12 partitions per work topic, and the stack (no console) with 3 NER and 3 DP worker processes.
Once everything is ready it submits `--docs` generated documents and waits for COMPLETED.

Prints the wall time and docs/s of the batch, and for every process (each worker, the other
services and the three broker JVMs) its CPU seconds during the batch, CPU-ms per document and
peak RSS; per stage the sum over its workers and docs/s per core (documents / stage CPU-s);
per worker the documents it processed (its /metrics counter) and its docs per CPU-second.
Checks that every document is saved exactly once in the JSONL results.

On a machine with fewer cores than processes the wall time is contention, not capacity:
CPU per document is the figure that carries over to a cluster.

    EVENTPIPE_KAFKA_LIBS=.kafka/libs .venv/bin/python bench/cluster.py [--docs 600] [--idle 10]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import math
import re
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

# The shared test code (corpus, process measurements) lives in tests/support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from eventpipe.jobs import submit
from eventpipe.kafka.broker import free_port
from eventpipe.kafka.local_kafka import LocalKafka
from eventpipe.settings import Settings
from eventpipe.stack import SERVICES, Stack
from eventpipe.storage.jsonl import results_path
from support.cluster import start_cluster, stop_cluster
from support.corpus import generate_documents
from support.processes import cpu_seconds, peak_rss_mb

WORKERS = 3
PARTITIONS = 12
PROCESSED = re.compile(r'^eventpipe_documents_processed_total\{stage="[^"]*"\} (\S+)$', re.M)


def processed_count(port: int | None) -> float | None:
    """The documents a process counted in its /metrics (None where it exports none)."""
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    found = [float(v) for v in PROCESSED.findall(text)]
    return sum(found) if found else None


def run(docs_path: Path, n_docs: int, data_dir: Path, nodes: dict[int, LocalKafka],
        idle_s: float) -> int:
    settings = Settings(
        kafka_bootstrap=",".join(node.bootstrap for node in nodes.values()),
        broker="kafka", topic_prefix=f"cluster{uuid.uuid4().hex[:6]}", data_dir=data_dir,
        replication_factor=3, min_insync_replicas=2, session_timeout_ms=6000,
        heartbeat_interval_ms=2000, checkpoint_flush_interval_s=0.2,
        ner_workers=WORKERS, dp_workers=WORKERS, work_partitions=PARTITIONS,
        health_port=free_port(),
    )
    stack = Stack(settings, services=tuple(s for s in SERVICES if s != "console"))
    t0 = time.perf_counter()
    stack.start(ready_timeout_s=300)
    try:
        print(f"stack ready in {time.perf_counter() - t0:.1f} s (not counted)")
        pids = {name: proc.pid for name, proc in stack.procs.items()}
        for n, node in nodes.items():
            assert node.pid is not None
            pids[f"kafka{n}"] = node.pid
        # What each process costs with nothing to do (polling, heartbeats, the quorum): the
        # part of the batch's CPU that follows time rather than documents.
        idle_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(idle_s)
        idle = {name: (cpu_seconds(pid) - idle_before[name]) / idle_s
                for name, pid in pids.items()}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}

        started = time.perf_counter()
        job_id = submit(stack.settings, docs_path, "cluster").job_id
        cp_path = stack.settings.checkpoint_dir / f"{job_id}.json"
        deadline = time.monotonic() + 1200
        all_done: float | None = None  # when the checkpoint first counted every document
        while True:
            cp = json.loads(cp_path.read_text()) if cp_path.exists() else None
            if all_done is None and cp is not None and (
                    cp["processed_documents"] + cp["failed_documents"] >= n_docs):
                all_done = time.perf_counter()
            if cp is not None and cp["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"not finished after 1200 s: {cp}")
            stack.supervise()
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        tail = time.perf_counter() - (all_done or time.perf_counter())
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        rss = {name: peak_rss_mb(pid) for name, pid in pids.items()}
        done = {name: processed_count(proc.health_port) for name, proc in stack.procs.items()}
        restarts = {name: proc.restarts for name, proc in stack.procs.items() if proc.restarts}
    finally:
        stack.stop()

    print(f"job {cp['status']}: {n_docs} documents in {elapsed:.2f} s = "
          f"{n_docs / elapsed:.1f} docs/s wall ({os.cpu_count()} cores for "
          f"{len(pids)} processes: contention, not capacity)")
    # The linker's share: live storylines while the job runs, then the batch-level step.
    steps = [json.loads(line) for line in (stack.log_dir / "linker.log").read_text()
             .splitlines() if '"batch-level step"' in line or '"linked"' in line]
    step = {k: v for line in steps for k, v in line.items()
            if k in ("load_ms", "compute_ms", "save_ms", "links", "storylines", "live")}
    print(f"last document -> COMPLETED {tail:.2f} s; linker batch-level step {step}")
    if restarts:
        print(f"services restarted during the batch: {restarts}")
    print(f"\n{'process':<11}{'CPU-s':>8}{'CPU-ms/doc':>12}{'peak RSS MB':>13}"
          f"{'docs':>7}{'docs/CPU-s':>12}{'idle CPU-s/s':>14}")
    for name in sorted(pids):
        count = done.get(name)
        per = f"{count / cpu[name]:12.1f}" if count and cpu[name] > 0 else f"{'':>12}"
        print(f"{name:<11}{cpu[name]:8.2f}{1000 * cpu[name] / n_docs:12.2f}{rss[name]:13.1f}"
              f"{'' if count is None else int(count):>7}{per}{idle[name]:14.3f}")

    print(f"\n{'stage':<11}{'procs':>6}{'CPU-s':>8}{'CPU-ms/doc':>12}{'docs/s/core':>13}"
          f"{'max RSS MB':>12}")
    stages: dict[str, list[str]] = {}
    for name in pids:
        stages.setdefault("kafka" if name.startswith("kafka") else name.split(".")[0],
                          []).append(name)
    total = 0.0
    for stage, names in sorted(stages.items()):
        s_cpu = sum(cpu[n] for n in names)
        total += s_cpu
        rate = n_docs / s_cpu if s_cpu > 0 else math.inf
        print(f"{stage:<11}{len(names):6d}{s_cpu:8.2f}{1000 * s_cpu / n_docs:12.2f}"
              f"{rate:13.1f}{max(rss[n] for n in names):12.1f}")
    print(f"{'all':<11}{len(pids):6d}{total:8.2f}{1000 * total / n_docs:12.2f}"
          f"{n_docs / total:13.1f}")
    # A broker's cost follows time (fetch polling, replication, the quorum) as well as records.
    brokers = sum(cpu[n] for n in stages["kafka"])
    print(f"brokers: {brokers / elapsed:.2f} CPU-s per second of the batch, "
          f"{sum(idle[n] for n in stages['kafka']):.2f} per second idle before it (three JVMs)")

    if cp["status"] != "COMPLETED":
        print(f"FAILED: job ended {cp['status']}")
        return 1
    counts = Counter(json.loads(line)["id"] for line in
                     results_path(stack.settings.data_dir, "cluster").read_text().splitlines())
    dupes = sum(1 for c in counts.values() if c > 1)
    exact = len(counts) == n_docs and dupes == 0
    print(f"\nsaved exactly once: {exact} ({len(counts)} of {n_docs} documents in JSONL, "
          f"{dupes} saved more than once)")
    return 0 if exact else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds of idle CPU measured before the batch")
    args = parser.parse_args()

    docs = generate_documents(args.docs, seed=args.seed)
    words = sum(len(d["text"].split()) for d in docs)
    print(f"corpus: {len(docs)} documents, {words} words ({words / len(docs):.0f} per document)")
    with tempfile.TemporaryDirectory(prefix="eventpipe-cluster-") as tmp:
        tmpdir = Path(tmp)
        docs_path = tmpdir / "corpus.jsonl"
        docs_path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        t0 = time.perf_counter()
        try:
            nodes = start_cluster(tmpdir / "kafka")
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        try:
            print(f"three-node cluster ready in {time.perf_counter() - t0:.1f} s")
            code = run(docs_path, len(docs), tmpdir / "data", nodes, args.idle)
        finally:
            stop_cluster(nodes)
    raise SystemExit(code)


if __name__ == "__main__":
    main()

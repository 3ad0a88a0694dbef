"""How cost grows with the job's size, on the Kafka + sink + checkpoint path alone.

The NLP stages are replaced by pass-through stages (bench/passthrough_stage.py); ingest, the
sink (fsync and checkpoint record per document), the materializer and the linker are the real
services on the embedded broker. For jobs of 1,000, 10,000 and 100,000 small documents it
prints the time per document (submit to COMPLETED), the materializer's peak memory and the
time of its largest checkpoint write; then the same 10,000-document job with fsync on and off
(the durability overhead, as a percentage); then the latency of recording one document in the
checkpoint (produce + acknowledgement), p50 and p99. Ratios are within this one run.

    .venv/bin/python bench/scaling.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# The shared test code (corpus, gold set, process measurements) lives in tests/support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.jobs import submit
from eventpipe.kafka.broker import EmbeddedBroker
from eventpipe.kafka.clients import make_admin, make_producer
from eventpipe.kafka.topics import ensure_topics
from eventpipe.models import DocRecord, job_id_for, utc_now
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from support.processes import peak_rss_mb

HERE = Path(__file__).parent
TEXT = "Acme Corp opened an office in Oslo."


def run_job(broker: EmbeddedBroker, n: int, fsync: bool, tmp: Path) -> dict[str, float]:
    settings = Settings(kafka_bootstrap=broker.bootstrap, topic_prefix=f"s{uuid.uuid4().hex[:8]}",
                        data_dir=tmp / f"data-{n}-{fsync}-{uuid.uuid4().hex[:4]}", fsync=fsync,
                        session_timeout_ms=2000, heartbeat_interval_ms=500,
                        stage_batch_size=500, log_level="DEBUG")
    stack = Stack(settings, services=("checkpoint", "linker", "sink", "ingest"))
    stack.start()
    env = stack.service_env()
    stages = [subprocess.Popen([sys.executable, str(HERE / "passthrough_stage.py"), s], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for s in ("ner", "dp", "llm")]
    try:
        path = tmp / f"docs-{n}.jsonl"
        path.write_text("".join(json.dumps({"id": f"d{i}", "text": TEXT}) + "\n"
                                for i in range(n)))
        time.sleep(3)  # the pass-through stages join their groups
        started = time.perf_counter()
        job_id = submit(stack.settings, path, "scale").job_id
        cp_path = stack.settings.checkpoint_dir / f"{job_id}.json"
        while True:
            try:
                if json.loads(cp_path.read_text())["status"] == "COMPLETED":
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        materializer = stack.procs["checkpoint"].pid
        log = Path(stack.procs["checkpoint"].log_path)
        writes = [json.loads(x)["ms"] for x in log.read_text().splitlines()
                  if '"checkpoint written"' in x]
        return {"seconds": elapsed, "ms_per_doc": 1000 * elapsed / n,
                "materializer_mb": peak_rss_mb(materializer),
                "sink_mb": peak_rss_mb(stack.procs["sink"].pid),
                "max_write_ms": max(writes) if writes else float("nan"),
                "file_kb": cp_path.stat().st_size / 1024}
    finally:
        for p in stages:
            p.terminate()
        for p in stages:
            p.wait()
        stack.stop()


def record_latency(broker: EmbeddedBroker, n: int = 2000) -> list[float]:
    settings = Settings(kafka_bootstrap=broker.bootstrap, topic_prefix=f"l{uuid.uuid4().hex[:8]}")
    ensure_topics(make_admin(settings), settings)
    writer = CheckpointWriter(settings, make_producer(settings))
    job = job_id_for("latency")
    samples = []
    for i in range(n):
        started = time.perf_counter()
        writer.send(DocRecord(job_id=job, doc_id=f"d{i}", state="processed", at=utc_now()))
        writer.flush()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    os.environ.setdefault("EVENTPIPE_LOG_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory(prefix="eventpipe-scale-") as tmp_name:
        tmp = Path(tmp_name)
        log = tmp / "broker.log"
        results = {}
        for n in sizes:
            # A fresh broker per size: the embedded one never frees memory.
            with EmbeddedBroker(log_path=log) as broker:
                results[n] = run_job(broker, n, True, tmp)
            r = results[n]
            print(f"{n:>7} docs: {r['seconds']:7.2f} s  {r['ms_per_doc']:6.3f} ms/doc  "
                  f"materializer peak {r['materializer_mb']:6.1f} MB, largest checkpoint "
                  f"write {r['max_write_ms']:.1f} ms ({r['file_kb']:.0f} KB file), sink peak "
                  f"{r['sink_mb']:.1f} MB", flush=True)
        base = results[sizes[0]]["ms_per_doc"]
        for n in sizes[1:]:
            print(f"per-document time at {n} / at {sizes[0]}: "
                  f"{results[n]['ms_per_doc'] / base:.2f}")
        with EmbeddedBroker(log_path=log) as broker:
            on = run_job(broker, 10_000, True, tmp)["seconds"]
            off = run_job(broker, 10_000, False, tmp)["seconds"]
            print(f"durability (fsync) overhead on 10,000 docs: on {on:.2f} s, off {off:.2f} s: "
                  f"{100 * (on - off) / off:+.1f}%")
            samples = sorted(record_latency(broker))
        p50 = statistics.median(samples)
        p99 = samples[int(0.99 * len(samples)) - 1]
        print(f"checkpoint record latency (produce + ack, one at a time): p50 {p50:.2f} ms, "
              f"p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()

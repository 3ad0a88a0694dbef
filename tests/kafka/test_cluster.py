"""A three-node Apache Kafka cluster on loopback (each node broker and controller),
replication factor 3, min.insync.replicas 2, acks=all and idempotent producers. Mid-batch
one node is SIGKILLed: the leader of a work partition, or, in the other run, the active
controller. The batch completes with every document exactly once in JSONL and PostgreSQL;
the test prints how long the pipeline stalled.

Three JVMs and the whole stack: marked slow (not in `make test`); run it with
    .venv/bin/pytest -m slow -s tests/kafka/test_cluster.py"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from eventpipe.jobs import submit
from eventpipe.kafka.clients import make_admin
from eventpipe.kafka.local_kafka import LocalKafka
from eventpipe.kafka.topics import Topics
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import (
    corpus_lines,
    kafka_libs_or_skip,
    read_checkpoint_or_none,
    read_results,
    write_jsonl,
)
from support.cluster import start_cluster, stop_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
DOCS = 300


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[int, LocalKafka]]:
    kafka_libs_or_skip()
    nodes = start_cluster(tmp_path)
    try:
        yield nodes
    finally:
        stop_cluster(nodes)


def active_controller(nodes: dict[int, LocalKafka]) -> int:
    """The quorum leader, from a surviving node's `quorum-state` file."""
    for node in nodes.values():
        state = node.log_dir / "__cluster_metadata-0" / "quorum-state"
        if state.is_file():
            leader = json.loads(state.read_text()).get("leaderId", -1)
            if leader in nodes:
                return int(leader)
    raise AssertionError("no node knows the active controller")


@pytest.mark.parametrize("victim", ["partition_leader", "active_controller"])
def test_sigkill_one_node_mid_batch_exactly_once(
    cluster: dict[int, LocalKafka], victim: str, pg_dsn: str, tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap=",".join(node.bootstrap for node in cluster.values()),
        broker="kafka", topic_prefix=f"cluster{victim[:4]}", data_dir=tmp_path / "data",
        replication_factor=3, min_insync_replicas=2, session_timeout_ms=6000,
        heartbeat_interval_ms=2000, checkpoint_flush_interval_s=0.2,
        postgres_dsn=SecretStr(pg_dsn), stage_batch_size=16,
    )
    stack = Stack(settings)
    stack.start(ready_timeout_s=300)
    try:
        path = write_jsonl(tmp_path / "batch.jsonl", corpus_lines(DOCS, seed=31))
        job_id = submit(settings, path, f"cluster_{victim}").job_id
        while (cp := read_checkpoint_or_none(settings, job_id)) is None or (
                cp["processed_documents"] < 30):
            time.sleep(0.2)
        if victim == "partition_leader":
            docs = Topics.from_settings(settings).docs
            meta = make_admin(settings).list_topics(docs, timeout=10).topics[docs]
            node_id = meta.partitions[0].leader
        else:
            node_id = active_controller(cluster)
        killed_at = cp["processed_documents"]
        proc = cluster[node_id].process
        assert proc is not None
        proc.kill()
        proc.wait()
        cluster[node_id].process = None

        # The stall: the longest time the processed count did not move after the kill.
        last, last_change, stall = killed_at, time.monotonic(), 0.0
        deadline = time.monotonic() + 600
        while cp["status"] not in ("COMPLETED", "FAILED", "STOPPED"):
            assert time.monotonic() < deadline, f"not finished: {cp['processed_documents']}"
            stack.supervise()
            time.sleep(0.2)
            cp = read_checkpoint_or_none(settings, job_id) or cp
            if cp["processed_documents"] != last:
                stall = max(stall, time.monotonic() - last_change)
                last, last_change = cp["processed_documents"], time.monotonic()
        print(f"\nSIGKILL node {node_id} ({victim}) at {killed_at}/{DOCS}: longest stall "
              f"{stall:.1f} s; {cp['status']}")
    finally:
        stack.stop()
    assert cp["status"] == "COMPLETED"
    assert cp["processed_documents"] == len(set(cp["processed_doc_ids"])) == DOCS
    counts = Counter(r["id"] for r in read_results(results_path(settings.data_dir,
                                                                f"cluster_{victim}")))
    assert len(counts) == DOCS and max(counts.values()) == 1
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT doc_id, count(*) FROM documents WHERE job_id = %s "
                            "GROUP BY doc_id", (job_id,)).fetchall()
    assert len(rows) == DOCS and all(n == 1 for _doc, n in rows)

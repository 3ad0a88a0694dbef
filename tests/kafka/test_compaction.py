"""Compaction for real: on Apache Kafka the checkpoint topic is compacted. With segment and
dirty-ratio settings that make the log cleaner run within seconds, jobs are processed, one is
removed by `cleanup` (tombstones), the cleaner drops the superseded and deleted records, and
a materializer started from scratch rebuilds exactly the same checkpoint files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from eventpipe.cli.stack_commands import cleanup
from eventpipe.jobs import submit
from eventpipe.kafka.clients import make_admin, make_reader
from eventpipe.kafka.topics import Topics
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from helpers import corpus_lines, wait_checkpoint, write_jsonl

# Three stacks and the log cleaner's passes: beyond the suite's 300 s on a loaded machine.
pytestmark = [pytest.mark.kafka_only, pytest.mark.timeout(1200)]

# The cleaner considers a segment once it is closed: roll every second, clean at any dirt,
# drop tombstones on the next pass.
FAST_COMPACTION = {
    "segment.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "0",
}


def read_topic(settings: Settings, topic: str) -> tuple[list[tuple[bytes, bytes | None]], int]:
    """Every record still in the log (key, value), and the end offset."""
    consumer = make_reader(settings, **{"enable.partition.eof": True})
    try:
        tp = TopicPartition(topic, 0, 0)
        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([tp])
        records: list[tuple[bytes, bytes | None]] = []
        position = -1
        while position < high - 1:
            msg = consumer.poll(5)
            assert msg is not None, "the topic was not read to its end"
            if msg.error() is not None:  # end of partition (offsets removed by compaction)
                break
            records.append((msg.key(), msg.value()))
            position = msg.offset()
        return records, high
    finally:
        consumer.close()


def run_job(settings: Settings, tmp_path: Path, batch_id: str, n: int) -> dict[str, Any]:
    path = write_jsonl(tmp_path / f"{batch_id}.jsonl", corpus_lines(n, seed=len(batch_id)))
    job_id = submit(settings, path, batch_id).job_id
    return wait_checkpoint(settings, job_id, lambda c: c["status"] == "COMPLETED")


def test_cleanup_tombstones_and_compaction_keep_the_checkpoints(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"work_partitions": 1})
    topics = Topics.from_settings(settings)
    stack = Stack(settings)
    stack.start()
    try:
        admin = make_admin(settings)
        resource = ConfigResource("topic", topics.checkpoints, incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in FAST_COMPACTION.items()])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result()
        kept = run_job(settings, tmp_path, "kept_a", 25)
        removed = run_job(settings, tmp_path, "removed", 20)
    finally:
        stack.stop()
    # `cleanup` sees only the removed job's file: the other stays out of its reach.
    aside = tmp_path / "aside.json"
    (settings.checkpoint_dir / f"{kept['job_id']}.json").rename(aside)
    assert cleanup(settings, "0s") == 0
    assert not (settings.checkpoint_dir / f"{removed['job_id']}.json").exists()

    # A job after the tombstones: its records close the segment that holds them.
    stack = Stack(settings)
    stack.start()
    try:
        later = run_job(settings, tmp_path, "later_b", 15)
    finally:
        stack.stop()

    removed_prefixes = (f"job/{removed['job_id']}".encode(),
                        f"doc/{removed['job_id']}/".encode(),
                        f"status/{removed['job_id']}".encode())
    deadline = time.monotonic() + 180
    while True:
        records, end = read_topic(settings, topics.checkpoints)
        of_removed = [(k, v) for k, v in records if k.startswith(removed_prefixes)]
        if len(records) < end and not any(v is not None for _k, v in of_removed):
            break
        assert time.monotonic() < deadline, (
            f"not compacted in 180 s: {len(records)} records, end offset {end}, "
            f"{len(of_removed)} of the removed job")
        time.sleep(2)
    print(f"\ncompacted: {len(records)} records left of {end} written; "
          f"{len(of_removed)} tombstones of the removed job left")

    # From scratch: a new data directory, only the materializer, the same topics.
    fresh = settings.model_copy(update={"data_dir": tmp_path / "fresh"})
    materializer = Stack(fresh, services=("checkpoint",))
    materializer.start()
    try:
        for original in (json.loads(aside.read_text()), later):
            rebuilt = wait_checkpoint(fresh, original["job_id"],
                                      lambda c, o=original: c == o, timeout_s=60)
            assert rebuilt == original
        assert not (fresh.checkpoint_dir / f"{removed['job_id']}.json").exists()
    finally:
        materializer.stop()

"""SIGTERM while ingest reads a submitted file: it stops reading at once (within its grace
period) and leaves the submission uncommitted, so the next ingest reads the file again and
every document arrives."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from prometheus_client import REGISTRY

from eventpipe.inbox import place_in_inbox
from eventpipe.kafka.clients import make_admin, make_producer, make_reader
from eventpipe.kafka.topics import Topics, ensure_topics
from eventpipe.models import Submission, job_id_for
from eventpipe.runtime.retry import StopRequested
from eventpipe.settings import Settings
from helpers import corpus_lines, write_jsonl
from services.ingest.service import Ingest


def sent() -> float:
    """Documents this process's ingest sent (its /metrics counter)."""
    return REGISTRY.get_sample_value("eventpipe_documents_processed_total",
                                     {"stage": "ingest"}) or 0.0


def doc_ids_on(settings: Settings, topic: str, want: int, timeout_s: float = 90) -> set[str]:
    """Keys of the records on a topic, read from the start until `want` arrived."""
    reader = make_reader(settings)
    try:
        meta = reader.list_topics(topic, timeout=10).topics[topic]
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        keys: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while len(keys) < want and time.monotonic() < deadline:
            msg = reader.poll(0.2)
            if msg is not None and msg.error() is None and msg.key():
                keys.add(msg.key().decode())
        return keys
    finally:
        reader.close()


def test_sigterm_stops_reading_and_the_file_is_read_again(settings: Settings,
                                                          tmp_path: Path) -> None:
    ensure_topics(make_admin(settings), settings)
    topics = Topics.from_settings(settings)
    path = write_jsonl(tmp_path / "in.jsonl", corpus_lines(30, seed=5))
    job_id = job_id_for("stop-test")
    # Where `eventpipe submit` puts a file: the inbox, an input root ingest may read.
    path = place_in_inbox(settings, path, job_id)
    sub = Submission(batch_id="stop-test", job_id=job_id, path=str(path))
    producer = make_producer(settings)
    producer.produce(topics.submissions, key=sub.batch_id.encode(),
                     value=sub.model_dump_json().encode())
    assert producer.flush(30) == 0

    before = sent()
    first = Ingest(settings)
    first.loop.stop_event.set()  # SIGTERM arrives as the submission is handled
    first.loop.consumer.subscribe(first.loop.topics)
    deadline = time.monotonic() + 60
    with pytest.raises(StopRequested, match="stopped at line 1 of"):
        while time.monotonic() < deadline:
            first.loop.step()
    # Nothing sent, nothing committed: the submission is still to do.
    assert sent() == before
    committed = first.loop.consumer.committed(
        [TopicPartition(topics.submissions, p) for p in range(settings.work_partitions)],
        timeout=10)
    assert all(tp.offset < 0 for tp in committed), committed
    first.loop.consumer.close()
    first.reader.close()

    second = Ingest(settings)
    runner = threading.Thread(target=second.loop.run, daemon=True)
    runner.start()
    try:
        keys = doc_ids_on(settings, topics.docs, want=30)
    finally:
        second.loop.stop_event.set()
        runner.join(30)
        second.reader.close()
    assert len(keys) == 30, "the file was not read again whole"
    assert sent() == before + 30

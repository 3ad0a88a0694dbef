"""Hostile input: every bad thing ends as a clear, specific error or a failed-document record
with its reason; no service crashes and no other document is lost."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from eventpipe.cli.errors import UsageError
from eventpipe.jobs import check_batch_id, check_input, submit
from eventpipe.kafka.clients import make_producer, make_reader
from eventpipe.models import FailedDocument, job_id_for
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import corpus_lines, read_results, wait_checkpoint

# On the embedded broker and on Apache Kafka (tests/conftest.py).
pytestmark = pytest.mark.both_brokers

MB = 1024 * 1024


def test_hostile_jsonl_lines_fail_alone_with_their_reasons(stack: Stack, tmp_path: Path) -> None:
    good = corpus_lines(20, seed=61)
    hostile: list[tuple[bytes, str, str]] = [  # (line, failed id, words in the reason)
        (b"{not json", "line-{n}", "not valid JSON"),
        (b'"just a string"', "line-{n}", "JSON str"),
        (b"[1, 2, 3]", "line-{n}", "JSON list"),
        (b'{"text": "no id"}', "line-{n}", "has no `id`"),
        (b'{"id": "no-text"}', "no-text", "has no `text`"),
        (b'{"id": "num-text", "text": 3.5}', "num-text", "must be a string"),
        (b'{"id": "empty", "text": ""}', "empty", "is empty"),
        (b'{"id": "doc_0001", "text": "A duplicate of the first line."}', "line-{n}",
         "duplicate id 'doc_0001'"),
        (b'{"id": "latin1", "text": "caf\xe9"}', "line-{n}", "not valid UTF-8"),
        (b'{"id": "nul\\u0000id", "text": "x"}', "line-{n}", "control character"),
        (json.dumps({"id": "x" * 10_000, "text": "long id"}).encode(), "line-{n}",
         "10000 characters long"),
        # Lines over the message limit are failed unread (never held in memory whole), so
        # under their line number.
        (json.dumps({"id": "ten-mb", "text": "word " * (2 * MB)}).encode(), "line-{n}",
         "bytes long; the limit is"),
        (b'{"id": "hundred-mb", "text": "' + b"a" * (100 * MB) + b'"}', "line-{n}",
         "bytes long; the limit is"),
        (b'{"id": "bad\\ud800id", "text": "x"}', "line-{n}", "unpaired surrogate"),
        (b'{"id": "nl\\n", "text": "x"}', "line-{n}", "control character"),
    ]
    # Ids that look like paths are just ids: processed, never used as paths.
    odd_ids = [json.dumps({"id": i, "text": "Police arrested a man in Lyon on Monday."})
               for i in ("../../etc/passwd", "a/b/c", "..", "emoji 🎉 id")]
    lines = [line.encode() for line in good[:10]]
    expected: dict[str, str] = {}
    for raw, doc_id, words in hostile:
        lines.append(raw)
        expected[doc_id.format(n=len(lines))] = words
    lines += [line.encode() for line in good[10:] + odd_ids]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    job_id = submit(stack.settings, path, "hostile").job_id
    cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] != "RUNNING",
                         timeout_s=300)
    assert cp["status"] == "COMPLETED"
    assert cp["total_documents"] == len(lines)
    assert cp["processed_documents"] == 24 and cp["failed_documents"] == len(hostile)
    for doc_id, words in expected.items():
        assert doc_id in cp["failures"], (doc_id, sorted(cp["failures"]))
        assert words in cp["failures"][doc_id]["error"], (doc_id, cp["failures"][doc_id])
    results = read_results(results_path(stack.settings.data_dir, "hostile"))
    ids = Counter(r["id"] for r in results)
    assert max(ids.values()) == 1 and set(ids) == set(cp["processed_doc_ids"])
    assert {"../../etc/passwd", "a/b/c", "..", "emoji 🎉 id"} <= set(ids)
    first = next(r for r in results if r["id"] == "doc_0001")
    assert first["text"] != "A duplicate of the first line."  # the first line wins
    written = {p.name for p in stack.settings.data_dir.iterdir()}
    assert not any(n.startswith("etc") or n == "passwd" for n in written)
    assert all(p.alive() for p in stack.procs.values())


@pytest.mark.parametrize("bad", ["../escape", "a/b", "x" * 10_000, "nul\x00byte", "", ".."])
def test_hostile_batch_ids_are_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="invalid batch id"):
        check_batch_id(bad)


def test_missing_file_and_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        check_input(tmp_path / "nope.jsonl")
    with pytest.raises(UsageError, match="is not a file"):
        check_input(tmp_path)


def test_foreign_messages_on_a_work_topic_go_to_the_failed_topic(stack: Stack) -> None:
    settings = stack.settings
    job = job_id_for("foreign")
    producer = make_producer(settings)
    docs = f"{settings.topic_prefix}.docs"
    producer.produce(docs, key=b"x", value=b"\x00 not json at all")
    producer.produce(docs, key=b"y", value=json.dumps(
        {"job_id": job, "batch_id": "foreign", "doc_id": "no-text"}).encode())
    producer.produce(docs, key=b"z", value=json.dumps(
        {"job_id": job, "batch_id": "foreign", "doc_id": "bad-entities", "text": "t",
         "entities": [{"text": "x"}]}).encode())
    assert producer.flush(10) == 0

    reader = make_reader(settings)
    failed_topic = f"{settings.topic_prefix}.failed"
    parts = reader.list_topics(failed_topic, timeout=10).topics[failed_topic].partitions
    reader.assign([TopicPartition(failed_topic, p, OFFSET_BEGINNING) for p in parts])
    found: dict[str, FailedDocument] = {}
    deadline = time.monotonic() + 60
    while len(found) < 3 and time.monotonic() < deadline:
        for msg in reader.consume(100, timeout=0.5):
            if msg.error() is None:
                f = FailedDocument.model_validate_json(msg.value())
                found[f.doc_id] = f
    reader.close()
    assert found["unknown"].stage.value == "ner" and found["unknown"].job_id == "unknown"
    assert "invalid message on the work topic" in found["unknown"].error
    assert "text" in found["no-text"].error and found["no-text"].job_id == job
    assert "entities" in found["bad-entities"].error
    assert all(p.alive() for p in stack.procs.values())

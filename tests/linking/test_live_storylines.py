"""Storylines while a job runs: the linker places documents as they pass the events topic,
writes the storylines so far, and the end step starts from them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pipeline_helpers import JOB, checkpoint, through_pipeline
from test_linking import QUAKE, TAKEOVER, batch

from eventpipe.kafka.clients import make_producer
from eventpipe.linking.batch import compute, document_profile
from eventpipe.linking.live import LiveStorylines, profile_from_message
from eventpipe.models import DocumentMessage, job_id_for
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import batch_output_path
from helpers import wait_checkpoint


def read_rows(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except (FileNotFoundError, ValueError):
        return []


def story_of(doc_id: str) -> str:
    return doc_id[0]  # a: earthquake, b: takeover, n: unrelated


def test_end_step_uses_live_stories_only_when_they_hold_every_saved_document() -> None:
    records = through_pipeline(batch(QUAKE, TAKEOVER))
    settings = Settings()
    live = LiveStorylines(settings.storyline_threshold)
    # The linker sees documents in another order than the sink saved them in: the outputs
    # must not depend on it (`eventpipe link` runs the step again on the saved order).
    for record in reversed(records):
        value = DocumentMessage(job_id=JOB, batch_id="b",
                                doc_id=record["id"], text=record["text"],
                                meta=record["meta"], entities=record["entities"]
                                ).model_dump_json().encode()
        found = profile_from_message(value)
        assert found is not None
        live.add(*found)
    assert profile_from_message(b"{not json") is None
    assert profile_from_message(b'{"job_id": 1, "batch_id": "b", "doc_id": "x"}') is None
    clustering = live.clustering(JOB)
    assert clustering is not None
    rebuilt = compute(settings, checkpoint(records), records)
    from_live = compute(settings, checkpoint(records), records, clustering)
    assert from_live.storylines == rebuilt.storylines
    assert from_live.links == rebuilt.links
    shuffled = records[1::2] + records[::2]
    assert compute(settings, checkpoint(records), shuffled).links == rebuilt.links
    # A document the live state never saw: the end step clusters the saved documents again.
    partial = LiveStorylines(settings.storyline_threshold)
    for record in records[:-1]:
        partial.add(JOB, "b", document_profile(record))
    again = compute(settings, checkpoint(records), records,
                    partial.clustering(JOB))
    assert again.storylines == rebuilt.storylines


def test_a_running_job_shows_its_storylines_so_far(settings: Settings) -> None:
    settings = settings.model_copy(update={"live_storylines_s": 0.3})
    docs = batch(QUAKE, TAKEOVER)
    stack = Stack(settings)
    stack.start()
    try:
        producer = make_producer(settings)
        topic = f"{settings.topic_prefix}.submissions"
        for doc_id, text, day in docs:  # a stream batch stays RUNNING until it is closed
            producer.produce(topic, key=b"live", value=json.dumps(
                {"batch_id": "live", "id": doc_id, "text": text, "published": day}).encode())
        producer.flush(30)
        job = job_id_for("live")
        cp = wait_checkpoint(settings, job, lambda c: c["processed_documents"] == len(docs))
        assert cp["status"] == "RUNNING"
        path = batch_output_path(settings.data_dir, "live", "storylines")
        deadline = time.monotonic() + 60
        while sum(len(r["doc_ids"]) for r in read_rows(path)) < 6:
            assert time.monotonic() < deadline, f"no storylines so far: {read_rows(path)}"
            time.sleep(0.1)
        so_far = read_rows(path)
        assert all(r["provisional"] for r in so_far)
        for row in so_far:  # each story so far holds the documents of one story
            assert len({story_of(d) for d in row["doc_ids"]}) == 1, so_far
        assert {story_of(d) for r in so_far for d in r["doc_ids"]} == {"a", "b"}

        producer.produce(topic, key=b"live", value=json.dumps(
            {"batch_id": "live", "end": True, "count": len(docs)}).encode())
        producer.flush(30)
        done = wait_checkpoint(settings, job, lambda c: c["status"] != "RUNNING")
        assert done["status"] == "COMPLETED"
        final = read_rows(path)
        assert sorted(sorted(r["doc_ids"]) for r in final) == [
            [f"a{i}" for i in range(5)], [f"b{i}" for i in range(5)]]
        assert not any(r.get("provisional") for r in final)
        log = (settings.data_dir / "logs" / "linker.log").read_text()
        linked = [json.loads(line) for line in log.splitlines() if '"linked"' in line]
        assert linked and linked[-1]["live"] is True  # the end step began from live stories
    finally:
        stack.stop()

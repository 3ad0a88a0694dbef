"""The whole pipeline on the real embedded broker, every service a real process."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from eventpipe.jobs import submit
from eventpipe.kafka.topics import Topics
from eventpipe.models import DocumentMessage, job_id_for
from eventpipe.nlp.events import build_backend
from eventpipe.nlp.model import load_pipeline
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import corpus_lines, read_results, wait_checkpoint, write_jsonl
from services.dp.service import make_process as dp_process
from services.llm.service import make_process as llm_process
from services.ner.service import make_process as ner_process
from support.processes import kill_service

# On the embedded broker and on Apache Kafka (tests/conftest.py).
pytestmark = pytest.mark.both_brokers

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "checkpoint.schema.json").read_text())

MALFORMED = {
    # line content -> expected words in the failure reason
    "{not json": "not valid JSON",
    json.dumps(["an", "array"]): "JSON list",
    json.dumps({"text": "No id here."}): "has no `id`",
    json.dumps({"id": "no-text"}): "has no `text`",
    json.dumps({"id": "num-text", "text": 42}): "must be a string",
    json.dumps({"id": "empty-text", "text": "   "}): "is empty",
}


def test_batch_with_malformed_lines_completes_exactly_once(stack: Stack, tmp_path: Path) -> None:
    lines = corpus_lines(210)
    # Spread the malformed lines through the batch; add one line that is not UTF-8.
    for i, bad in enumerate(MALFORMED):
        lines.insert(20 + i * 30, bad)
    path = tmp_path / "batch.jsonl"
    write_jsonl(path, lines)
    with path.open("ab") as f:
        f.write(b'{"id": "latin1", "text": "caf\xe9"}\n')
    total = len(lines) + 1

    job_id = submit(stack.settings, path, "it_batch").job_id
    assert job_id == job_id_for("it_batch")
    cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] != "RUNNING")

    assert cp["status"] == "COMPLETED"
    assert cp["total_documents"] == total
    assert cp["processed_documents"] + cp["failed_documents"] == total
    assert cp["failed_documents"] == len(MALFORMED) + 1
    jsonschema.validate(cp, SCHEMA)

    reasons = [f["error"] for f in cp["failures"].values()]
    for expected in [*MALFORMED.values(), "not valid UTF-8"]:
        assert sum(expected in r for r in reasons) == 1, (expected, reasons)
    assert all(f["stage"] == "ingest" for f in cp["failures"].values())

    results = read_results(results_path(stack.settings.data_dir, "it_batch"))
    ids = Counter(r["id"] for r in results)
    assert max(ids.values()) == 1, "a document was saved twice"
    assert set(ids) == set(cp["processed_doc_ids"])
    assert len(ids) == 210
    assert not set(cp["processed_doc_ids"]) & set(cp["failed_doc_ids"])
    sample = results[0]
    assert sample["entities"] and sample["triplets"]
    assert set(sample["timings_ms"]) == {"ner", "dp", "llm"}
    assert {"text", "label", "start_char", "end_char"} <= set(sample["entities"][0])

    # Batch-level work ran before COMPLETED: links, storylines and statistics are saved.
    data = stack.settings.data_dir
    stats = json.loads((data / "batch_stats_it_batch.json").read_text())
    assert stats["documents"] == {"total": total, "processed": 210, "failed": 7}
    assert stats["failed_by_stage"] == {"ingest": 7}
    assert sum(stats["events_by_type"].values()) == sum(len(r["events"]) for r in results)
    assert stats["events_by_backend"] == {"rules": len(results)}
    assert stats["events_fallbacks"] == {}
    links = [json.loads(x) for x in (data / "event_links_it_batch.jsonl").read_text().splitlines()]
    storylines = (data / "storylines_it_batch.jsonl").read_text().splitlines()
    assert stats["event_links"] == len(links) and stats["storylines"] == len(storylines)
    assert all(x["source_doc_id"] != x["target_doc_id"] for x in links)


def test_sigkill_sink_mid_batch_loses_and_duplicates_nothing(stack: Stack, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "batch.jsonl", corpus_lines(300, seed=5))
    job_id = submit(stack.settings, path, "kill_sink").job_id
    wait_checkpoint(stack.settings, job_id, lambda c: 20 <= c["processed_documents"] < 250)

    kill_service(stack, "sink")
    cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] != "RUNNING", stack=stack)

    assert stack.procs["sink"].restarts == 1
    assert cp["status"] == "COMPLETED"
    assert cp["processed_documents"] == 300 and cp["failed_documents"] == 0
    assert len(cp["processed_doc_ids"]) == len(set(cp["processed_doc_ids"])) == 300
    results = read_results(results_path(stack.settings.data_dir, "kill_sink"))
    ids = Counter(r["id"] for r in results)
    assert len(results) == 300 and max(ids.values()) == 1


@pytest.mark.parametrize("victim", ["ner", "checkpoint"])
def test_sigkill_other_services_mid_batch(stack: Stack, tmp_path: Path, victim: str) -> None:
    path = write_jsonl(tmp_path / "batch.jsonl", corpus_lines(200, seed=9))
    job_id = submit(stack.settings, path, f"kill_{victim}").job_id
    wait_checkpoint(stack.settings, job_id, lambda c: 10 <= c["processed_documents"] < 170)
    kill_service(stack, victim)
    cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] != "RUNNING", stack=stack)
    assert cp["status"] == "COMPLETED"
    assert cp["processed_documents"] == 200
    results = read_results(results_path(stack.settings.data_dir, f"kill_{victim}"))
    assert len(results) == len({r["id"] for r in results}) == 200


def held_partitions(log: Path) -> set[str]:
    """The partitions a stage worker holds at the end of its log (cooperative-sticky logs
    what it gains and what it loses)."""
    held: set[str] = set()
    for line in log.read_text().splitlines():
        if '"partitions assigned"' in line:
            held |= set(json.loads(line)["partitions"])
        elif '"partitions revoked"' in line:
            held -= set(json.loads(line)["partitions"])
    return held


def test_two_workers_per_stage_share_the_default_partitions_evenly(
        settings: Settings, tmp_path: Path) -> None:
    partitions = Settings.model_fields["work_partitions"].default
    assert settings.work_partitions == partitions
    stack = Stack(settings.model_copy(update={"ner_workers": 2, "dp_workers": 2}))
    stack.start()
    try:
        path = write_jsonl(tmp_path / "two.jsonl", corpus_lines(120, seed=4))
        job_id = submit(stack.settings, path, "two_workers").job_id
        cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] != "RUNNING",
                             stack=stack)
        assert cp["status"] == "COMPLETED" and cp["processed_documents"] == 120
        ids = Counter(r["id"] for r in read_results(
            results_path(stack.settings.data_dir, "two_workers")))
        assert len(ids) == 120 and max(ids.values()) == 1
        work = Topics.from_settings(stack.settings)
        topics = {"ner": work.docs, "dp": work.ner}
        for stage, topic in topics.items():
            held = [{p for p in held_partitions(stack.log_dir / f"{name}.log")
                     if p.startswith(f"{topic}:")} for name in (stage, f"{stage}.2")]
            # An even split of the stage's input topic, each partition with one worker.
            assert [len(h) for h in held] == [partitions // 2] * 2, held
            assert not held[0] & held[1]
        # NER yields the CPU to the later stages (eventpipe.stack.NICENESS).
        base = os.getpriority(os.PRIO_PROCESS, 0)
        nice = {name: os.getpriority(os.PRIO_PROCESS, proc.pid) - base
                for name, proc in stack.procs.items() if proc.service in ("ner", "dp")}
        assert nice == {"ner": 10, "ner.2": 10, "dp": 0, "dp.2": 0}
    finally:
        stack.stop()


def test_chained_workers_give_the_stages_results_exactly_once(
        settings: Settings, tmp_path: Path) -> None:
    """EVENTPIPE_CHAINED_WORKERS: two processes each run NER, DP and the rules events stage;
    no process of those stages runs; one killed mid-batch loses and repeats nothing; the
    results are those of the stages run one by one."""
    stack = Stack(settings.model_copy(update={"chained_workers": 2}))
    stack.start()
    try:
        assert {p.service for p in stack.procs.values()} & {"ner", "dp", "llm"} == set()
        assert sorted(n for n, p in stack.procs.items() if p.service == "chain") == [
            "chain", "chain.2"]
        lines = corpus_lines(200, seed=8)
        path = write_jsonl(tmp_path / "chained.jsonl", lines)
        job_id = submit(stack.settings, path, "chained").job_id
        docs_topic = Topics.from_settings(stack.settings).docs
        wait_checkpoint(stack.settings, job_id, lambda c: 10 <= c["processed_documents"] < 170)
        held = [{p for p in held_partitions(stack.log_dir / f"{name}.log")
                 if p.startswith(f"{docs_topic}:")} for name in ("chain", "chain.2")]
        assert [len(h) for h in held] == [settings.work_partitions // 2] * 2, held
        kill_service(stack, "chain.2")
        cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] != "RUNNING",
                             stack=stack)
        assert cp["status"] == "COMPLETED" and cp["processed_documents"] == 200
        records = read_results(results_path(stack.settings.data_dir, "chained"))
        assert Counter(r["id"] for r in records) == Counter(
            json.loads(line)["id"] for line in lines)
    finally:
        stack.stop()
    nlp = load_pipeline(settings.spacy_model)
    stages = [ner_process(nlp), dp_process(nlp), llm_process(build_backend(settings))]
    by_id = {r["id"]: r for r in records}
    for line in lines:
        data = json.loads(line)
        batch = [DocumentMessage(job_id=job_id, batch_id="chained", doc_id=data["id"],
                                 text=data["text"])]
        for stage in stages:
            results = stage(batch)
            batch = [r for r in results if isinstance(r, DocumentMessage)]
        [doc] = batch
        record = by_id[data["id"]]
        assert set(record["timings_ms"]) == {"ner+dp", "llm"}
        assert record["entities"] == [e.model_dump() for e in doc.entities], data["id"]
        assert record["triplets"] == [t.model_dump() for t in doc.triplets], data["id"]
        assert record["events"] == [e.model_dump() for e in doc.events], data["id"]

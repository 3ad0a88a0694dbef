"""Failure records, the retry budget, replay bookkeeping in the checkpoint and message schema
versions: the pure parts, without Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventpipe.checkpoint.state import JobTable
from eventpipe.models import (
    SCHEMA_VERSION,
    DocRecord,
    DocumentMessage,
    FailedDocument,
    FailureClass,
    JobRecord,
    JobStatus,
    Stage,
    StatusRecord,
    job_id_for,
)
from eventpipe.nlp.llm import BackendError, BackendUnreachable
from eventpipe.runtime.retry_topic import classify, due_ms, next_retry
from eventpipe.runtime.stage import (
    NewerSchemaVersion,
    decode_document,
    failure_for_undecodable,
    failure_of,
)
from eventpipe.settings import Settings
from eventpipe.storage.jsonl import JsonlStore, load_failure_records

AT = "2026-12-01T10:00:00Z"
JOB = job_id_for("b")


def doc(doc_id: str = "d1", **more: object) -> DocumentMessage:
    return DocumentMessage(job_id="j", batch_id="b", doc_id=doc_id, text="Police arrived.",
                           **more)  # type: ignore[arg-type]


def test_transient_and_permanent() -> None:
    assert classify(BackendUnreachable("down")) is FailureClass.TRANSIENT
    assert classify(TimeoutError()) is FailureClass.TRANSIENT
    assert classify(ConnectionRefusedError()) is FailureClass.TRANSIENT
    assert classify(BackendError("refused the request: HTTP 400")) is FailureClass.PERMANENT
    assert classify(ValueError("[E088] Text of length 1000001 exceeds maximum"))\
        is FailureClass.PERMANENT


def test_retry_budget_counts_attempts_and_backs_off() -> None:
    s = Settings(retry_max_attempts=4, retry_max_seconds=100, retry_backoff_s=2,
                 retry_max_backoff_s=5)
    first = next_retry(s, "llm", None, "down", now_ms=1_000_000)
    assert first.retry is not None and first.attempts == 1
    assert first.retry.not_before_ms == 1_002_000  # 2 s
    second = next_retry(s, "llm", first.retry, "down", now_ms=1_002_000)
    assert second.retry is not None and second.attempts == 2
    assert second.retry.not_before_ms == 1_006_000  # 4 s
    assert second.retry.first_failed_ms == 1_000_000
    third = next_retry(s, "llm", second.retry, "down", now_ms=1_006_000)
    assert third.retry is not None and third.retry.not_before_ms == 1_011_000  # capped: 5 s
    fourth = next_retry(s, "llm", third.retry, "down", now_ms=1_011_000)
    assert fourth.retry is None and fourth.attempts == 4  # attempts spent
    assert fourth.first_failed_at == first.first_failed_at


def test_retry_budget_in_time() -> None:
    s = Settings(retry_max_attempts=50, retry_max_seconds=3, retry_backoff_s=2)
    first = next_retry(s, "llm", None, "down", now_ms=0)
    assert first.retry is not None and first.retry.not_before_ms == 2000
    second = next_retry(s, "llm", first.retry, "down", now_ms=2000)
    assert second.retry is not None and second.retry.not_before_ms == 3000  # what is left
    assert next_retry(s, "llm", second.retry, "down", now_ms=3000).retry is None


def test_another_stage_starts_a_fresh_budget() -> None:
    s = Settings(retry_max_attempts=2)
    at_ner = next_retry(s, "ner", None, "down", now_ms=0).retry
    at_llm = next_retry(s, "llm", at_ner, "down", now_ms=10_000)
    assert at_llm.retry is not None and at_llm.attempts == 1


def test_due_time_from_a_held_message() -> None:
    d = doc()
    assert due_ms(d.model_dump_json().encode()) == 0
    d.retry = next_retry(Settings(), "llm", None, "x", now_ms=5000).retry
    assert due_ms(d.model_dump_json().encode()) == d.retry.not_before_ms  # type: ignore[union-attr]
    assert due_ms(b"not json") == 0


def test_failure_keeps_the_payload_and_quarantines_after_replays() -> None:
    payload = doc(replays=1)
    f = failure_of(payload, Stage.LLM, "BackendUnreachable: down", payload, 3,
                   failure_class=FailureClass.TRANSIENT, attempts=6, first_failed_at=AT)
    assert (f.failure_class, f.attempts, f.first_failed_at, f.quarantined) == (
        FailureClass.TRANSIENT, 6, AT, False)
    assert f.payload == payload and f.schema_version == SCHEMA_VERSION
    again = failure_of(doc(replays=3), Stage.LLM, "down", None, 3)
    assert again.quarantined
    assert again.error == "quarantined: failed again after 3 replays: down"


def test_a_newer_schema_version_fails_with_a_clear_reason() -> None:
    newer = doc().model_dump() | {"schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(NewerSchemaVersion, match="schema version 2 is newer"):
        decode_document(json.dumps(newer).encode())
    newer["a_field_from_the_future"] = 1  # fails validation too: the version is the reason
    raw = json.dumps(newer).encode()
    with pytest.raises(NewerSchemaVersion) as caught:
        decode_document(raw)
    failure = failure_for_undecodable(raw, Stage.NER, caught.value)
    assert failure.doc_id == "d1" and failure.error.startswith("message schema version 2")
    assert decode_document(doc().model_dump_json().encode()).schema_version == SCHEMA_VERSION


def test_replay_reopens_a_completed_job_until_its_documents_are_done() -> None:
    table = JobTable()
    table.apply_record(JobRecord(job_id=JOB, batch_id="b", created_at=AT, total_documents=2))
    table.apply_record(DocRecord(job_id=JOB, doc_id="a", state="processed", at=AT))
    table.apply_record(DocRecord(job_id=JOB, doc_id="b", state="failed", stage=Stage.LLM,
                                 error="down", failure_class=FailureClass.TRANSIENT,
                                 attempts=6, at=AT))
    table.apply_record(StatusRecord(job_id=JOB, status=JobStatus.COMPLETED, at=AT))
    state = table.jobs[JOB]
    cp = table.to_checkpoint(state).to_file()
    assert cp["failures"]["b"] == {"stage": "llm", "error": "down", "class": "transient",
                                   "attempts": 6}
    # replay: pending documents and RUNNING, written before the payloads are sent
    table.apply_record(DocRecord(job_id=JOB, doc_id="b", state="pending", at=AT))
    table.apply_record(StatusRecord(job_id=JOB, status=JobStatus.RUNNING, at=AT,
                                    replay_id="r1"))
    cp = table.to_checkpoint(state).to_file()
    assert (cp["status"], cp["failed_documents"], cp["processed_documents"]) == (
        "RUNNING", 0, 1)
    assert not state.all_done and cp["metadata"]["replay_id"] == "r1"
    assert cp["metadata"]["replaying_doc_ids"] == ["b"]
    table.apply_record(DocRecord(job_id=JOB, doc_id="b", state="processed", at=AT))
    assert state.all_done and table.to_checkpoint(state).to_file()["processed_documents"] == 2
    assert "replaying_doc_ids" not in table.to_checkpoint(state).to_file()["metadata"]
    # a pending record never unsaves a processed document
    table.apply_record(DocRecord(job_id=JOB, doc_id="a", state="pending", at=AT))
    assert "a" in state.processed and state.all_done


def test_jsonl_failure_records_newest_per_document(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path, fsync=False)
    payload = doc("d1")
    first = FailedDocument(job_id="j", batch_id="b", doc_id="d1", stage=Stage.LLM,
                           error="down", at=AT, payload=payload)
    later = first.model_copy(update={"at": "2026-12-01T11:00:00Z", "replays": 1,
                                     "error": "down again"})
    other_job = first.model_copy(update={"job_id": "k"})
    store.save_failures([first, first, other_job])  # a redelivered record is kept once
    store.save_failures([later])
    store.close()
    lines = (tmp_path / "failed_documents_b.jsonl").read_text().splitlines()
    assert len(lines) == 3
    found = load_failure_records(tmp_path, "b", "j")
    assert list(found) == ["d1"] and found["d1"].error == "down again"
    assert found["d1"].payload == payload
    reopened = JsonlStore(tmp_path, fsync=False)  # indexes the file: no repeat after restart
    reopened.save_failures([later])
    reopened.close()
    assert len((tmp_path / "failed_documents_b.jsonl").read_text().splitlines()) == 3

"""eventpipe.reprocess without a broker: finding a batch's result versions from the derived
job ids (also across a version `cleanup` removed), and a saved result turned into the input
message of the first re-run stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eventpipe.atomic import atomic_write_json
from eventpipe.checkpoint.files import checkpoint_path
from eventpipe.errors import UsageError
from eventpipe.models import Entity, Predicate, Triplet, job_id_for, reprocess_job_id
from eventpipe.reprocess import batch_versions, next_version, to_message
from eventpipe.settings import Settings
from eventpipe.storage.jsonl import newest_results_path, result_versions, results_path

BATCH = "rp_batch"


def write_checkpoint(settings: Settings, job_id: str, version: int | None) -> None:
    meta: dict[str, Any] = {"started_at": "2026-01-01T00:00:00Z"}
    if version is not None:
        meta |= {"result_version": version, "reprocess_of": job_id_for(BATCH),
                 "from_stage": "llm"}
    atomic_write_json(checkpoint_path(settings.checkpoint_dir, job_id), {
        "job_id": job_id, "batch_id": BATCH, "status": "COMPLETED", "total_documents": 0,
        "processed_documents": 0, "failed_documents": 0, "processed_doc_ids": [],
        "failed_doc_ids": [], "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "metadata": meta}, fsync=False)


def test_versions_are_found_across_a_removed_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    write_checkpoint(settings, job_id_for(BATCH), None)
    assert list(batch_versions(settings, BATCH)) == [1]
    assert next_version(settings, BATCH, batch_versions(settings, BATCH)) == 2
    # Version 2's checkpoint is gone (cleanup), its results file stays; version 3 exists.
    results_path(tmp_path, BATCH, 2).write_text("")
    write_checkpoint(settings, reprocess_job_id(BATCH, 3), 3)
    results_path(tmp_path, BATCH, 3).write_text("")
    versions = batch_versions(settings, BATCH)
    assert sorted(versions) == [1, 3]
    assert versions[3].metadata.result_version == 3
    assert next_version(settings, BATCH, versions) == 4
    assert result_versions(tmp_path, BATCH) == [2, 3]  # no v1 results file written here
    assert newest_results_path(tmp_path, BATCH) == results_path(tmp_path, BATCH, 3)
    assert results_path(tmp_path, BATCH, 3).name == f"extracted_events_{BATCH}.v3.jsonl"


def saved(**more: Any) -> dict[str, Any]:
    record = {
        "id": "d1", "job_id": job_id_for(BATCH), "batch_id": BATCH, "text": "Police came.",
        "meta": {"published": "2026-01-01"},
        "entities": [Entity(text="Police", label="ORG", start_char=0, end_char=6).model_dump()],
        "triplets": [Triplet(subject="Police", action="come").model_dump()],
        "sentences": [[0, 12]],
        "predicates": [Predicate(lemma="come", kind="verb", start_char=7,
                                 end_char=11).model_dump()],
        "events": [{"trigger": "came", "type": "movement"}],
        "timings_ms": {"ner": 1.0, "dp": 2.0, "llm": 3.0},
        "versions": {"models": {"ner": "spacy:x", "dp": "spacy:x", "llm": "rules"}},
    }
    return record | more


def test_from_llm_keeps_the_parse_and_drops_the_events() -> None:
    job = reprocess_job_id(BATCH, 2)
    msg = to_message(saved(), job, 2, "llm", 5)
    assert (msg.job_id, msg.result_version, msg.epoch_ms) == (job, 2, 5)
    assert msg.sentences == [(0, 12)] and msg.predicates[0].lemma == "come"
    assert msg.triplets[0].action == "come" and msg.entities[0].text == "Police"
    assert msg.events == [] and msg.events_backend is None
    assert msg.models == {"ner": "spacy:x", "dp": "spacy:x"}
    assert msg.timings_ms == {"ner": 1.0, "dp": 2.0}


def test_from_dp_keeps_only_the_entities() -> None:
    msg = to_message(saved(), reprocess_job_id(BATCH, 2), 2, "dp", 0)
    assert msg.entities and not (msg.triplets or msg.sentences or msg.predicates)
    assert msg.models == {"ner": "spacy:x"} and msg.timings_ms == {"ner": 1.0}


def test_a_chained_workers_timing_is_kept_with_both_its_stages() -> None:
    chained = saved(timings_ms={"ner+dp": 3.0, "llm": 1.0})
    assert to_message(chained, reprocess_job_id(BATCH, 2), 2, "llm", 0).timings_ms == {
        "ner+dp": 3.0}
    assert to_message(chained, reprocess_job_id(BATCH, 2), 2, "dp", 0).timings_ms == {}


def test_a_result_saved_without_the_parse_is_refused_from_llm() -> None:
    old = saved()
    del old["predicates"]
    with pytest.raises(UsageError, match="--from-stage dp"):
        to_message(old, reprocess_job_id(BATCH, 2), 2, "llm", 0)
    assert to_message(old, reprocess_job_id(BATCH, 2), 2, "dp", 0).doc_id == "d1"
    assert json.loads(to_message(saved(), reprocess_job_id(BATCH, 2), 2, "llm",
                                 0).model_dump_json())["result_version"] == 2

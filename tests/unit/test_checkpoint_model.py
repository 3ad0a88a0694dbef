"""The typed checkpoint (`eventpipe.checkpoint.model.Checkpoint`): the file format on disk,
key for key and in order; "finished" defined once; a bad file refused clearly; and the
committed JSON Schemas generated from the models, not stale."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest

from eventpipe.atomic import atomic_write_json
from eventpipe.checkpoint.files import checkpoint_path, load_checkpoint
from eventpipe.checkpoint.model import Checkpoint
from eventpipe.checkpoint.state import JobTable
from eventpipe.errors import CheckpointError, CheckpointNotFound
from eventpipe.models import DocRecord, JobRecord, JobStatus, Stage, StatusRecord, job_id_for

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
JOB = job_id_for("b1")
# The earlier system's file, as DESIGN.md shows it, field for field.
SEED = {
    "job_id": "f90aa645-4061-4e91-8199-43504ee4b770",
    "batch_id": "batch_20251214_204300",
    "status": "RUNNING",
    "total_documents": 253,
    "processed_documents": 136,
    "failed_documents": 12,
    "processed_doc_ids": ["doc_101", "doc_102"],
    "failed_doc_ids": ["doc_105", "doc_132"],
    "created_at": "2025-12-14T20:43:00Z",
    "updated_at": "2025-12-14T21:45:30Z",
    "metadata": {"started_at": "2025-12-14T20:43:00Z", "progressive_save_enabled": True},
}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("schemas_generate", SCHEMAS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_schemas_are_generated_from_the_models() -> None:
    gen = _generator()
    assert "checkpoint.schema.json" in gen.SCHEMAS
    for name, (title, model) in gen.SCHEMAS.items():
        expected = gen.render(title, model, gen.HEADERS.get(name), name in gen.WRITTEN)
        assert (SCHEMAS / name).read_text() == expected, (
            f"schemas/{name} is stale: run `.venv/bin/python schemas/generate.py`")
        jsonschema.Draft202012Validator.check_schema(json.loads(expected))


def _table() -> JobTable:
    table = JobTable()
    for record in [
        JobRecord(job_id=JOB, batch_id="b1", created_at="2025-01-01T00:00:00Z",
                  total_documents=2, input_path="/in.jsonl", submission_id="s1"),
        DocRecord(job_id=JOB, doc_id="a", state="processed", at="2025-01-01T00:00:01Z"),
        DocRecord(job_id=JOB, doc_id="b", state="failed", stage=Stage.NER, error="boom",
                  at="2025-01-01T00:00:02Z"),
    ]:
        table.apply_record(record)
    return table


def test_the_file_keeps_its_keys_and_their_order() -> None:
    table = _table()
    data = table.to_checkpoint(table.jobs[JOB]).to_file()
    assert list(data) == [*SEED, "failures"]
    assert list(data["metadata"]) == ["started_at", "progressive_save_enabled", "input_path",
                                      "total_known", "submission_id", "phase"]
    assert data["metadata"]["phase"] == "batch-level work"  # all done, not yet COMPLETED
    assert data["failures"] == {"b": {"stage": "ner", "error": "boom"}}
    jsonschema.validate(data, json.loads((SCHEMAS / "checkpoint.schema.json").read_text()))
    # Final: no phase any more, the reason when there is one.
    table.apply_record(StatusRecord(job_id=JOB, status=JobStatus.FAILED, at="2025-01-01T00:00:03Z",
                                    reason="linking failed"))
    meta = table.to_checkpoint(table.jobs[JOB]).to_file()["metadata"]
    assert "phase" not in meta and meta["status_reason"] == "linking failed"


def test_reading_and_writing_back_loses_nothing(tmp_path: Path) -> None:
    # The seed file reads (without eventpipe's additions), and unknown keys survive.
    data = SEED | {"job_id": JOB, "from_the_future": {"x": 1}}
    atomic_write_json(checkpoint_path(tmp_path, JOB), data)
    cp = load_checkpoint(tmp_path, JOB)
    assert cp.status is JobStatus.RUNNING and cp.done == 148 and not cp.is_final
    written = cp.to_file()
    assert written["from_the_future"] == {"x": 1}
    assert {k: v for k, v in written.items() if k in data and k != "metadata"} == {
        k: v for k, v in data.items() if k != "metadata"}
    assert written["metadata"].items() >= SEED["metadata"].items()


@pytest.mark.parametrize("status, final", [("RUNNING", False), ("PAUSED", False),
                                           ("STOPPED", True), ("COMPLETED", True),
                                           ("FAILED", True)])
def test_one_definition_of_finished(status: str, final: bool) -> None:
    cp = Checkpoint.model_validate(SEED | {"status": status})
    assert cp.is_final is final is JobStatus(status).is_final
    assert cp.ended is final  # the total of a file batch is known
    streamed = Checkpoint.model_validate(
        SEED | {"status": status, "metadata": SEED["metadata"] | {"total_known": False}})
    assert streamed.ended is False


def test_a_bad_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound):
        load_checkpoint(tmp_path, JOB)
    atomic_write_json(checkpoint_path(tmp_path, JOB), SEED | {"job_id": JOB,
                                                              "status": "SLEEPING"})
    with pytest.raises(CheckpointError, match=rf"{JOB}.json is not a valid checkpoint.*status"):
        load_checkpoint(tmp_path, JOB)

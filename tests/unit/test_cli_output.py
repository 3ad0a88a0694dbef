"""What `run` and `status` say about where a job's events came from."""

from __future__ import annotations

from pathlib import Path

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.cli.output import events_lines, run_summary

CHECKPOINT = Checkpoint.model_validate({
    "job_id": "f90aa645-4061-4e91-8199-43504ee4b770", "batch_id": "b", "status": "COMPLETED",
    "total_documents": 20, "processed_documents": 20, "failed_documents": 0,
    "processed_doc_ids": [], "failed_doc_ids": [], "created_at": "2026-12-01T18:00:00Z",
    "updated_at": "2026-12-01T18:00:10Z",
    "metadata": {"started_at": "2026-12-01T18:00:00Z", "progressive_save_enabled": True},
})


def test_a_run_that_mostly_fell_back_says_so_in_one_line() -> None:
    stats = {
        "events_by_backend": {"rules": 15, "transformers": 5},
        "events_fallbacks": {"over the time budget of 60 s": 12, "cut off at 8 new tokens": 3},
    }
    lines = events_lines(stats)
    assert lines[0] == "events from: rules 15, transformers 5"
    assert lines[1] == (
        "fell back to rules: 15 (over the time budget of 60 s: 12; cut off at 8 new tokens: 3)"
    )
    assert lines[2].startswith("warning: 15 of 20 documents fell back to the rules backend")
    summary = run_summary(CHECKPOINT, Path("/data"), 10.0, stats)
    assert "(0.50 s per document)" in summary.splitlines()[0]
    assert summary.splitlines()[-1] == "  " + lines[2]


def test_a_run_where_the_model_answered_has_no_warning() -> None:
    stats = {"events_by_backend": {"transformers": 19, "rules": 1},
             "events_fallbacks": {"cut off at 8 new tokens": 1}}
    heads = [line.split(":")[0] for line in events_lines(stats)]
    assert heads == ["events from", "fell back to rules"]
    assert events_lines({"events_by_backend": {}}) == []

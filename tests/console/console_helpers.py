"""Tokens and data-directory files (checkpoints, batch-level results in their real formats)
for the console tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from eventpipe.checkpoint.files import atomic_write_json, checkpoint_path
from eventpipe.models import job_id_for
from eventpipe.settings import Settings
from eventpipe.storage.jsonl import batch_output_path

CONTROL_TOKEN = "control-token-for-tests"
READ_TOKEN = "read-token-for-tests"
CONTROL = {"Authorization": f"Bearer {CONTROL_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


def write_job(settings: Settings, batch_id: str, status: str, processed: int = 3,
              failures: dict[str, dict[str, str]] | None = None, total: int = 5) -> str:
    job_id = job_id_for(batch_id)
    failures = failures or {}
    cp: dict[str, Any] = {
        "job_id": job_id, "batch_id": batch_id, "status": status, "total_documents": total,
        "processed_documents": processed, "failed_documents": len(failures),
        "processed_doc_ids": [f"d{i}" for i in range(processed)],
        "failed_doc_ids": list(failures), "created_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-01T10:05:00Z",
        "metadata": {"started_at": "2026-12-01T10:00:00Z", "progressive_save_enabled": True,
                     "input_path": None, "total_known": True, "submission_id": "s1"},
        "failures": failures,
    }
    atomic_write_json(checkpoint_path(settings.checkpoint_dir, job_id), cp, fsync=False)
    return job_id


def write_batch_outputs(settings: Settings, batch_id: str) -> None:
    d = settings.data_dir
    stories = [{"job_id": job_id_for(batch_id), "storyline_id": "s1", "title": "Acme: sued",
                "doc_ids": ["d0", "d1"], "start": "2026-01-02", "end": "2026-01-05",
                "events": [{"doc_id": "d0", "event": 0, "published": "2026-01-02",
                            "trigger": "sue", "type": "legal"}]}]
    links = [{"source_doc_id": "d0", "target_doc_id": "d1", "score": 0.8}]
    batch_output_path(d, batch_id, "storylines").write_text(
        "".join(json.dumps(s) + "\n" for s in stories))
    batch_output_path(d, batch_id, "event_links").write_text(
        "".join(json.dumps(x) + "\n" for x in links))
    batch_output_path(d, batch_id, "batch_stats").write_text(json.dumps(
        {"events_by_type": {"legal": 1}, "event_links": 1, "storylines": 1}))


def console_settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, api_token=SecretStr(CONTROL_TOKEN),
                    api_read_token=SecretStr(READ_TOKEN), **extra)

"""Checkpoint files: `checkpoints/{job_id}.json`, written atomically (`eventpipe.atomic`:
temp file, fsync, rename) so a reader never sees half a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eventpipe.atomic import atomic_write_bytes as atomic_write_bytes
from eventpipe.atomic import atomic_write_json as atomic_write_json
from eventpipe.checkpoint.model import Checkpoint
from eventpipe.constants import JOB_ID
from eventpipe.errors import CheckpointError
from eventpipe.errors import CheckpointNotFound as CheckpointNotFound


def checkpoint_path(checkpoint_dir: Path, job_id: str) -> Path:
    # Job ids are UUIDs; anything else never becomes a path, so no id can escape the folder.
    if not JOB_ID.fullmatch(job_id):
        raise ValueError(f"not a job id (expected a UUID): {job_id[:80]!r}")
    return checkpoint_dir / f"{job_id}.json"


def load_checkpoint(checkpoint_dir: Path, job_id: str) -> Checkpoint:
    """The job's checkpoint file as the typed model; CheckpointNotFound when there is none,
    CheckpointError naming the file when it is not a valid checkpoint."""
    data = read_checkpoint(checkpoint_dir, job_id)
    try:
        return Checkpoint.model_validate(data)
    except ValidationError as exc:
        path = checkpoint_path(checkpoint_dir, job_id)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise CheckpointError(f"{path} is not a valid checkpoint: {problems}"[:2000]) from None


def read_checkpoint(checkpoint_dir: Path, job_id: str) -> dict[str, Any]:
    """The job's checkpoint file as it is on disk."""
    path = checkpoint_path(checkpoint_dir, job_id)
    try:
        with path.open(encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
    except FileNotFoundError as exc:
        raise CheckpointNotFound(f"no checkpoint for job {job_id} in {checkpoint_dir}") from exc
    return data


def checkpoint_job_ids(checkpoint_dir: Path) -> list[str]:
    """The job ids that have a checkpoint file (temp files and strays are not jobs)."""
    try:
        names = [p.name[:-5] for p in checkpoint_dir.glob("*.json")]
    except OSError:
        return []
    return sorted(n for n in names if JOB_ID.fullmatch(n))

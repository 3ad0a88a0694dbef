"""Checkpoint files: `checkpoints/{job_id}.json`, written atomically (temp file, fsync,
rename) so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class CheckpointNotFound(FileNotFoundError):
    pass


def checkpoint_path(checkpoint_dir: Path, job_id: str) -> Path:
    # Job ids are UUIDs; anything else never becomes a path, so no id can escape the folder.
    if not _UUID.match(job_id):
        raise ValueError(f"not a job id (expected a UUID): {job_id[:80]!r}")
    return checkpoint_dir / f"{job_id}.json"


def atomic_write_json(path: Path, data: Any, fsync: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode(),
                       fsync)


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """Temp file in the same folder, fsync, rename, fsync of the folder: a reader sees the
    old file or the new one, never half of one, also after a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_checkpoint(checkpoint_dir: Path, job_id: str) -> dict[str, Any]:
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
    return sorted(n for n in names if _UUID.match(n))

"""Jobs as the console shows them: the checkpoint (re-read only when its file changed) plus
what a person watching wants to know: rate, ETA, phase, seconds since the last progress."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventpipe.checkpoint.files import checkpoint_job_ids, checkpoint_path
from eventpipe.constants import TIME_FORMAT
from eventpipe.jobs import RateWindow, require_checkpoint
from eventpipe.models import JobStatus
from eventpipe.settings import Settings

log = logging.getLogger(__name__)

# Left out of job lists: they grow with the job (the detail view has them).
BIG_FIELDS = ("processed_doc_ids", "failed_doc_ids", "failures")


def seconds_since(iso: str, now: float | None = None) -> float | None:
    try:
        at = datetime.strptime(iso, TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, (time.time() if now is None else now) - at)


def phase(cp: dict[str, Any]) -> str:
    status = cp["status"]
    if status != JobStatus.RUNNING.value:
        return str(status).lower()
    metadata = cp.get("metadata") or {}
    if metadata.get("phase"):
        return str(metadata["phase"])
    if not metadata.get("total_known", True):
        return "ingesting"
    return "processing"


class JobViews:
    """Checkpoint files cached by (mtime, size) and a rate window per job; shared by the
    request threads, hence the lock."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._files: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
        self._rates: dict[str, RateWindow] = {}

    def checkpoint(self, job_id: str) -> dict[str, Any] | None:
        path = checkpoint_path(self.settings.checkpoint_dir, job_id)
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
            with self._lock:
                cached = self._files.get(job_id)
            if cached is not None and cached[0] == key:
                return cached[1]
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("checkpoint file unreadable", extra={"job_id": job_id,
                                                             "reason": str(exc)[:300]})
            return None
        with self._lock:
            self._files[job_id] = (key, data)
        return data

    def require(self, job_id: str, named: str) -> dict[str, Any]:
        """The checkpoint, or the library's UnknownJob with the CLI's message."""
        return (self.checkpoint(job_id)
                or require_checkpoint(self.settings, job_id, named).to_file())

    def all(self) -> list[dict[str, Any]]:
        found = [cp for job_id in checkpoint_job_ids(self.settings.checkpoint_dir)
                 if (cp := self.checkpoint(job_id)) is not None]
        return sorted(found, key=lambda cp: str(cp.get("created_at", "")), reverse=True)

    def view(self, cp: dict[str, Any], detail: bool = False) -> dict[str, Any]:
        total = int(cp["total_documents"])
        done = int(cp["processed_documents"]) + int(cp["failed_documents"])
        remaining = max(0, total - done)
        with self._lock:
            window = self._rates.setdefault(cp["job_id"], RateWindow())
            per_min = window.add(done)
        running = cp["status"] == JobStatus.RUNNING.value
        eta = 60.0 * remaining / per_min if running and per_min > 0 and remaining else None
        view = {k: v for k, v in cp.items() if detail or k not in BIG_FIELDS}
        view.update({
            "remaining_documents": remaining,
            "progress": (round(done / total, 4) if total
                         else 1.0 if JobStatus(cp["status"]).is_final else 0.0),
            "rate_per_min": round(per_min, 2),
            "eta_s": round(eta, 1) if eta is not None else None,
            "phase": phase(cp),
            "seconds_since_update": seconds_since(str(cp.get("updated_at", ""))),
        })
        return view


def read_jsonl(path: Path, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """Rows `offset`..`offset+limit` of a JSONL file and the number of rows in it."""
    rows: list[dict[str, Any]] = []
    count = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            if offset <= count < offset + limit:
                rows.append(json.loads(line))
            count += 1
    return count, rows

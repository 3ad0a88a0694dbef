"""Finishing a job: its batch-level step (retrying unreachable backends), then the outcome,
COMPLETED or FAILED with the reason, recorded on the checkpoint topic. The linker service
runs it when a job's last document is done; `eventpipe link` runs it again on demand."""

from __future__ import annotations

import logging
import threading

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.errors import BatchLevelError
from eventpipe.linking.batch import run_batch_level
from eventpipe.linking.clustering import OnlineStorylines
from eventpipe.models import JobStatus, StatusRecord, utc_now
from eventpipe.runtime.loop import is_transient
from eventpipe.settings import Settings
from eventpipe.storage.base import Backend
from eventpipe.storage.retry import retry_unavailable

log = logging.getLogger(__name__)


def finish_job(settings: Settings, writer: CheckpointWriter, checkpoint: Checkpoint,
               backends: list[Backend], stop: threading.Event,
               live: OnlineStorylines | None = None) -> StatusRecord:
    """Run the batch-level step and record the outcome; raises StopRequested if `stop` is
    set while a backend is unreachable (nothing is recorded then). `live`: the job's stories
    formed while it ran (eventpipe.linking.live)."""
    job_id = checkpoint.job_id
    try:
        outputs = retry_unavailable(
            "batch-level storage", lambda: run_batch_level(settings, checkpoint, backends, live),
            stop, settings.backend_retry_max_s)
        record = StatusRecord(job_id=job_id, status=JobStatus.COMPLETED, at=utc_now())
        log.info("job completed", extra={"job_id": job_id, "links": len(outputs.links),
                                         "storylines": len(outputs.storylines)})
    except BatchLevelError as exc:
        record = StatusRecord(job_id=job_id, status=JobStatus.FAILED, at=utc_now(),
                              reason=f"batch-level work failed: {exc}")
        log.error("batch-level work failed", extra={"job_id": job_id, "reason": str(exc)})
    except Exception as exc:
        if is_transient(exc):
            raise
        # A job whose data breaks the batch-level step (a corrupt results line...) fails
        # alone, with the reason; raising would crash the linker again after every restart.
        reason = f"batch-level work raised {type(exc).__name__}: {exc}"[:2000]
        record = StatusRecord(job_id=job_id, status=JobStatus.FAILED, at=utc_now(),
                              reason=reason)
        log.exception("batch-level work raised", extra={"job_id": job_id})
    writer.send(record)
    writer.flush()
    return record

from __future__ import annotations

import logging
import signal
import threading
import time

from eventpipe.atomic import atomic_write_json
from eventpipe.checkpoint.files import checkpoint_path
from eventpipe.checkpoint.reader import CheckpointReader
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.kafka.clients import make_producer
from eventpipe.models import JobStatus
from eventpipe.runtime.health import HEARTBEAT, READINESS
from eventpipe.runtime.loop import ready_file
from eventpipe.runtime.metrics import CHECKPOINT_WRITE_SECONDS, JOBS_STUCK
from eventpipe.runtime.service import main_for
from eventpipe.settings import Settings

log = logging.getLogger(__name__)


class Materializer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reader = CheckpointReader(settings)
        self.writer = CheckpointWriter(settings, make_producer(settings))
        self.stop_event = threading.Event()
        self._last_status: dict[str, JobStatus] = {}
        self._stuck: dict[str, dict[str, str]] = {}  # job id -> since, waiting for

    def report_stuck(self) -> None:
        """Mark running jobs without progress for `stuck_after_s` (checkpoint
        `metadata.stuck`, the metric, one warning each), and unmark those that moved."""
        table = self.reader.table
        now = time.time()
        for job_id, state in table.jobs.items():
            report = table.stuck(state, now, self.settings.stuck_after_s)
            if report is None:
                if self._stuck.pop(job_id, None) is not None:
                    table.dirty.add(job_id)
            elif self._stuck.get(job_id) != report:
                self._stuck[job_id] = report
                table.dirty.add(job_id)
                log.warning("job stuck", extra={"job_id": job_id} | report)
        for job_id in [j for j in self._stuck if j not in table.jobs]:
            del self._stuck[job_id]
        JOBS_STUCK.set(len(self._stuck))

    def flush_files(self) -> int:
        table = self.reader.table
        dirty, table.dirty = table.dirty, set()
        for job_id in dirty:
            state = table.jobs.get(job_id)
            if state is None:
                continue
            try:
                path = checkpoint_path(self.settings.checkpoint_dir, job_id)
            except ValueError as exc:
                log.warning("no checkpoint file for this job", extra={"job_id": job_id[:200],
                                                                      "reason": str(exc)})
                continue
            started = time.perf_counter()
            checkpoint = table.to_checkpoint(state)
            if job_id in self._stuck:
                checkpoint.metadata.stuck = self._stuck[job_id]
            atomic_write_json(path, checkpoint.to_file(), fsync=self.settings.fsync)
            CHECKPOINT_WRITE_SECONDS.observe(time.perf_counter() - started)
            status = checkpoint.status
            if self._last_status.get(job_id) is not status:
                self._last_status[job_id] = status
                log.info("job status", extra={"job_id": job_id, "status": status.value,
                                              "processed": checkpoint.processed_documents,
                                              "failed": checkpoint.failed_documents})
            log.debug("checkpoint written", extra={
                "job_id": job_id, "ms": round((time.perf_counter() - started) * 1000, 2)})
        return len(dirty)

    def run(self) -> None:
        def stop(_signum: int, _frame: object) -> None:
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        ready = ready_file(self.settings.data_dir, "checkpoint")
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.touch()
        READINESS.set(None)
        next_flush = next_stuck = time.monotonic()
        try:
            while not self.stop_event.is_set():
                HEARTBEAT.beat()
                self.reader.poll(timeout_s=0.1)
                if time.monotonic() >= next_stuck:
                    # O(jobs): not at every flush.
                    next_stuck = time.monotonic() + min(60.0, self.settings.stuck_after_s / 4)
                    self.report_stuck()
                if time.monotonic() >= next_flush:
                    self.flush_files()
                    next_flush = time.monotonic() + self.settings.checkpoint_flush_interval_s
            self.flush_files()
        finally:
            self.reader.close()
            ready.unlink(missing_ok=True)


def run(settings: Settings) -> None:
    Materializer(settings).run()


main = main_for("checkpoint", run)

"""Folding checkpoint and control records into job states. Pure: no Kafka, no files."""

from __future__ import annotations

import calendar
import logging
import time
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from eventpipe.checkpoint.model import Checkpoint, CheckpointMetadata, FailureInfo
from eventpipe.constants import TIME_FORMAT
from eventpipe.control.state import ControlLatest
from eventpipe.kafka.markers import is_marker
from eventpipe.models import (
    CheckpointRecord,
    ControlCommand,
    DocRecord,
    JobRecord,
    JobStatus,
    StatusRecord,
)

log = logging.getLogger(__name__)
_record_adapter: TypeAdapter[CheckpointRecord] = TypeAdapter(CheckpointRecord)

# The final statuses a status record decides; STOPPED comes from the control topic instead.
TERMINAL = tuple(s for s in JobStatus if s.is_final and s is not JobStatus.STOPPED)


def refusal(status: JobStatus) -> str | None:
    """Why a submission to a job in this status is refused, or None: a stopped job is over
    for good, a paused one continues by resume, not by resubmission."""
    if status is JobStatus.STOPPED:
        return "the job is STOPPED and cannot be resumed or resubmitted"
    if status is JobStatus.PAUSED:
        return "the job is PAUSED; resume it to continue"
    return None


@dataclass
class Failure:
    stage: str
    error: str
    failure_class: str | None = None
    attempts: int | None = None
    quarantined: bool = False


@dataclass
class JobState:
    job_id: str
    batch_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    total: int | None = None
    input_path: str | None = None
    submission_id: str | None = None
    # dicts keep insertion order: the last processed documents are the last keys.
    processed: dict[str, None] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    pending: dict[str, None] = field(default_factory=dict)  # re-sent by a replay, not done
    terminal: JobStatus | None = None
    terminal_reason: str | None = None
    replay_id: str | None = None  # the newest replay that re-opened the job
    # A reprocess (eventpipe.reprocess): the result version it makes, from which job's
    # saved output, starting at which stage. None for a job made from submitted input.
    result_version: int | None = None
    reprocess_of: str | None = None
    from_stage: str | None = None

    def touch(self, at: str | None) -> None:
        if at and (self.updated_at is None or at > self.updated_at):
            self.updated_at = at

    @property
    def done(self) -> int:
        return len(self.processed) + len(self.failures)

    @property
    def all_done(self) -> bool:
        return self.total is not None and self.done >= self.total

    def waiting_for(self) -> str:
        """What an unfinished job still waits for, in words."""
        if self.total is None:
            return (f"the closing message of its stream ({self.done} documents recorded, "
                    "total unknown)")
        if self.all_done:
            return "its batch-level work (the linker)"
        return f"{self.total - self.done} of {self.total} documents"


class JobTable:
    """Every job's state, folded from checkpoint records and control messages in any order."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.control = ControlLatest()
        self.dirty: set[str] = set()

    def job(self, job_id: str) -> JobState:
        state = self.jobs.get(job_id)
        if state is None:
            state = self.jobs[job_id] = JobState(job_id)
        return state

    def status(self, state: JobState) -> JobStatus:
        if state.terminal is not None:
            return state.terminal
        command = self.control.command(state.job_id)
        if command is ControlCommand.STOP:
            return JobStatus.STOPPED
        if command is ControlCommand.PAUSE:
            return JobStatus.PAUSED
        return JobStatus.RUNNING

    def apply_control(self, key: bytes | None, value: bytes | None, timestamp_ms: int) -> None:
        job_id = self.control.apply(key, value, timestamp_ms)
        if job_id is None:
            return
        state = self.jobs.get(job_id)
        if state is None:
            log.warning("control message for an unknown job", extra={"job_id": job_id[:200]})
            return
        state.touch(time.strftime(TIME_FORMAT, time.gmtime(timestamp_ms / 1000)))
        self.dirty.add(job_id)

    def apply_checkpoint(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self._tombstone(key.decode(errors="replace"))
            return
        if is_marker(key):
            return
        try:
            record = _record_adapter.validate_json(value)
        except ValidationError as exc:
            log.warning("checkpoint record ignored", extra={"key": key, "reason": str(exc)})
            return
        self.apply_record(record)

    def apply_record(self, record: CheckpointRecord) -> None:
        state = self.job(record.job_id)
        if isinstance(record, JobRecord):
            if state.terminal is JobStatus.COMPLETED and record.total_documents != state.total:
                # Resubmitted with other contents: the job is open again until they are done.
                state.terminal = None
            state.batch_id = record.batch_id
            state.created_at = state.created_at or record.created_at
            state.total = record.total_documents
            state.input_path = record.input_path
            state.submission_id = record.submission_id
            if record.result_version is not None:
                state.result_version = record.result_version
                state.reprocess_of = record.reprocess_of
                state.from_stage = record.from_stage.value if record.from_stage else None
            state.touch(record.created_at)
        elif isinstance(record, DocRecord):
            if record.state == "processed":
                state.processed[record.doc_id] = None
                state.failures.pop(record.doc_id, None)
                state.pending.pop(record.doc_id, None)
            elif record.doc_id in state.processed:
                # A saved document stays processed: a later failure of a redelivered copy
                # does not unsave it, so no document is ever both processed and failed.
                pass
            elif record.state == "pending":
                # Re-sent by a replay: not done until it is processed or fails again.
                state.failures.pop(record.doc_id, None)
                state.pending[record.doc_id] = None
            else:
                state.pending.pop(record.doc_id, None)
                state.failures[record.doc_id] = Failure(
                    str(record.stage or "unknown"), record.error or "unknown error",
                    record.failure_class.value if record.failure_class else None,
                    record.attempts, bool(record.quarantined),
                )
            state.touch(record.at)
        elif isinstance(record, StatusRecord):
            state.terminal = record.status if record.status in TERMINAL else None
            state.terminal_reason = record.reason
            if record.replay_id:
                state.replay_id = record.replay_id
            state.touch(record.at)
        self.dirty.add(record.job_id)

    def _tombstone(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        if kind == "job":
            self.jobs.pop(rest, None)
            self.dirty.discard(rest)
        elif kind == "doc":
            job_id, _, doc_id = rest.partition("/")
            if job_id in self.jobs:
                self.jobs[job_id].processed.pop(doc_id, None)
                self.jobs[job_id].failures.pop(doc_id, None)
                self.jobs[job_id].pending.pop(doc_id, None)
                self.dirty.add(job_id)
        elif kind == "status" and rest in self.jobs:
            self.jobs[rest].terminal = None
            self.dirty.add(rest)

    def stuck(self, state: JobState, now_s: float, after_s: float) -> dict[str, str] | None:
        """For a RUNNING job with no record for `after_s` seconds: since when, and what it
        waits for; else None. Paused or finished jobs wait on purpose."""
        if state.batch_id is None or self.status(state) is not JobStatus.RUNNING:
            return None
        last = state.updated_at or state.created_at
        if last is None:
            return None
        try:
            at = calendar.timegm(time.strptime(last, TIME_FORMAT))
        except ValueError:
            return None
        if now_s - at < after_s:
            return None
        return {"since": last, "waiting_for": state.waiting_for()}

    def to_checkpoint(self, state: JobState) -> Checkpoint:
        """The checkpoint file's content: the earlier system's format, field for field, plus
        `failures` with the stage and reason of every failed document."""
        created = state.created_at or state.updated_at or ""
        status = self.status(state)
        # Built from state this table has validated already: no second validation of what
        # can be a million document ids.
        return Checkpoint.model_construct(
            job_id=state.job_id,
            batch_id=state.batch_id or "",
            status=status,
            total_documents=state.total if state.total is not None else state.done,
            processed_documents=len(state.processed),
            failed_documents=len(state.failures),
            processed_doc_ids=list(state.processed),
            failed_doc_ids=list(state.failures),
            created_at=created,
            updated_at=state.updated_at or created,
            metadata=CheckpointMetadata.model_construct(
                started_at=created,
                progressive_save_enabled=True,
                input_path=state.input_path,
                total_known=state.total is not None,
                submission_id=state.submission_id,
                replay_id=state.replay_id or None,
                # Kept in the file, so a restore after a broker restart knows they are owed.
                replaying_doc_ids=list(state.pending) or None,
                status_reason=state.terminal_reason or None,
                result_version=state.result_version,
                reprocess_of=state.reprocess_of,
                from_stage=state.from_stage,
                phase=("batch-level work"
                       if state.all_done and status is JobStatus.RUNNING else None),
            ),
            failures={doc_id: _failure_entry(f) for doc_id, f in state.failures.items()},
        )


def _failure_entry(failure: Failure) -> FailureInfo:
    return FailureInfo.model_construct(
        stage=failure.stage, error=failure.error,
        failure_class=failure.failure_class or None, attempts=failure.attempts or None,
        quarantined=True if failure.quarantined else None)

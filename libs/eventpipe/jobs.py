"""Finding jobs, submitting batches and sending control commands, with the rules that refuse
what does not fit a job's status: one implementation for the CLI and the console's HTTP API."""

from __future__ import annotations

import os
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import KafkaError

from eventpipe.checkpoint import files
from eventpipe.checkpoint.files import CheckpointNotFound
from eventpipe.checkpoint.model import Checkpoint
from eventpipe.checkpoint.state import refusal
from eventpipe.constants import BATCH_ID, JOB_ID, TIME_FORMAT
from eventpipe.control.messages import encode_control
from eventpipe.errors import Refused, UnknownJob, UsageError
from eventpipe.inbox import place_in_inbox
from eventpipe.kafka.clients import make_producer
from eventpipe.kafka.errors import KafkaSetupError
from eventpipe.kafka.topics import Topics
from eventpipe.models import ControlCommand, JobStatus, Submission, job_id_for
from eventpipe.settings import Settings


def default_batch_id() -> str:
    return datetime.now(UTC).strftime("batch_%Y%m%d_%H%M%S")


def check_batch_id(batch_id: str) -> str:
    if not BATCH_ID.fullmatch(batch_id) or ".." in batch_id:
        raise UsageError(
            f"invalid batch id {batch_id[:80]!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return batch_id


def check_input(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"input file {path} does not exist")
    if not path.is_file():
        raise UsageError(f"input {path} is not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"input file {path} is not readable")
    return path.resolve()


def load_checkpoint(settings: Settings, job_id: str) -> Checkpoint | None:
    try:
        return files.load_checkpoint(settings.checkpoint_dir, job_id)
    except CheckpointNotFound:
        return None


def last_job_path(settings: Settings) -> Path:
    return settings.data_dir / "run" / "last_job"


def resolve_job(settings: Settings, job: str | None) -> str:
    """A job id, a batch id, or (None) the last job submitted from this data directory."""
    if job is None:
        try:
            return last_job_path(settings).read_text().strip()
        except FileNotFoundError:
            raise UsageError(f"no job given and none submitted from {settings.data_dir} "
                             "yet") from None
    if JOB_ID.fullmatch(job):
        return job
    return job_id_for(check_batch_id(job))


def require_checkpoint(settings: Settings, job_id: str, job: str | None) -> Checkpoint:
    cp = load_checkpoint(settings, job_id)
    if cp is None:
        raise UnknownJob(f"unknown job {job or job_id}: no checkpoint in "
                         f"{settings.checkpoint_dir}")
    return cp


def submit(settings: Settings, path: Path, batch_id: str, retry_failed: bool = False
           ) -> Submission:
    job_id = job_id_for(batch_id)
    previous = load_checkpoint(settings, job_id)
    if previous is not None:
        # The same rule ingest applies; here with what to do instead.
        status = previous.status
        reason = refusal(status)
        if reason is not None:
            hint = ("use another batch id" if status is JobStatus.STOPPED
                    else f"run `eventpipe resume {batch_id}`")
            raise Refused(f"job {job_id} (batch {batch_id}): {reason}: {hint}")
    elif retry_failed:
        raise UnknownJob(f"--retry-failed: batch {batch_id} has no job to retry")
    # Ingest opens only files under its input roots; a file elsewhere is linked or copied
    # into the inbox here, with the permissions of the user who submits it.
    try:
        readable = place_in_inbox(settings, path, job_id)
    except OSError as exc:
        raise UsageError(f"cannot place {path} in {settings.data_dir / 'inbox'}: {exc}") from exc
    sub = Submission(batch_id=batch_id, job_id=job_id, path=str(readable),
                     retry_failed=retry_failed)
    _send(settings, Topics.from_settings(settings).submissions, batch_id.encode(),
          sub.model_dump_json().encode())
    last = last_job_path(settings)
    last.parent.mkdir(parents=True, exist_ok=True)
    last.write_text(job_id + "\n")
    return sub


def retry_failed(settings: Settings, job: str | None) -> Submission:
    """Send a job's failed documents again, read from the input its checkpoint records (the
    console's "retry failed"; the CLI's `submit FILE --retry-failed` names the file)."""
    job_id = resolve_job(settings, job)
    cp = require_checkpoint(settings, job_id, job)
    if not cp.failed_documents:
        raise Refused(f"job {job_id} has no failed documents to retry")
    if cp.metadata.reprocess_of:
        raise Refused(f"job {job_id} is a reprocess (no input file): replay its failed "
                      "documents with `eventpipe failures replay`")
    path = cp.metadata.input_path
    if not (path and Path(path).is_file()):
        raise Refused(f"job {job_id}: its input is not readable here; submit the fixed file "
                      "with --retry-failed (or POST /api/v1/jobs?retry_failed=true)")
    return submit(settings, Path(path), cp.batch_id, retry_failed=True)


def _send(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    producer = make_producer(settings)
    # A refused record (an ACL that does not allow this user to write the topic) is reported
    # only to the delivery callback: without it the command would say it was sent.
    refused: list[KafkaError] = []
    producer.produce(topic, key=key, value=value,
                     on_delivery=lambda err, _msg: refused.extend([err] if err else []))
    if producer.flush(30):
        raise KafkaSetupError(f"the broker at {settings.kafka_bootstrap} did not acknowledge "
                              f"the message to {topic}")
    if refused:
        raise KafkaSetupError(f"the broker at {settings.kafka_bootstrap} refused the message "
                              f"to {topic}: {refused[0].str()}")


EXPECTED = {ControlCommand.PAUSE: JobStatus.PAUSED, ControlCommand.RESUME: JobStatus.RUNNING,
            ControlCommand.STOP: JobStatus.STOPPED}


def send_control(settings: Settings, command: ControlCommand, job: str | None,
                 timeout_s: float) -> Checkpoint:
    """Check the command makes sense for the job's status, send it, and wait until the
    checkpoint shows the new status."""
    job_id = resolve_job(settings, job)
    cp = require_checkpoint(settings, job_id, job)
    status = cp.status
    if status in (JobStatus.COMPLETED, JobStatus.FAILED):
        raise Refused(f"job {job_id} is already {status.value}: nothing to {command.value}")
    if status is JobStatus.STOPPED:
        raise Refused(f"job {job_id} is STOPPED: a stopped job cannot be "
                      f"{command.value}d")
    if command is ControlCommand.PAUSE and status is JobStatus.PAUSED:
        return cp
    if command is ControlCommand.RESUME and status is JobStatus.RUNNING:
        path = cp.metadata.input_path
        if not (path and Path(path).is_file()):
            raise Refused(f"job {job_id} is RUNNING and its input is not readable here: "
                          "to re-send lost documents, resubmit the batch")
        # RUNNING after a restart of the broker: resume re-sends what it lost.
    sent = time.time()
    _send(settings, Topics.from_settings(settings).control, job_id.encode(),
          encode_control(command, job_id))
    want = EXPECTED[command]
    deadline = time.monotonic() + timeout_s
    while True:
        cp = require_checkpoint(settings, job_id, job)
        if cp.status is want and (command is not ControlCommand.RESUME
                                  or _newer(cp.updated_at, sent)):
            return cp
        if cp.is_final and cp.status is not want:
            return cp
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"sent {command.value} to job {job_id}, but its checkpoint did not show "
                f"{want.value} within {timeout_s:.0f} s (it shows {cp.status.value}); is the "
                "checkpoint service running? (`eventpipe ps`)")
        time.sleep(0.1)


def _newer(iso: str, since_epoch_s: float) -> bool:
    at = datetime.strptime(iso, TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    return at >= int(since_epoch_s)


class RateWindow:
    """Documents per minute over a sliding window of recent samples."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, done: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return 60.0 * (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

"""The control state of every job, folded from control messages. Pure: no Kafka.

Ordering is by the record's timestamp, so commands for one job spread over partitions (a
foreign producer's partitioner) still resolve to the newest. Stop is final: a command after
a stop is ignored.

Epochs: every document carries `epoch_ms`, the timestamp of the newest resume its sender knew
of (0 if none). A stage drops a document whose epoch is older than the job's newest pause,
stop or resume. So documents sent before a pause or a resume are never processed after it
(resume re-sends what is left from the recorded input), while re-sent ones pass even at a
stage that has not yet read the resume: no document is processed twice because of a pause."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from eventpipe.control.messages import InvalidControlMessage, parse_control
from eventpipe.kafka.markers import is_marker
from eventpipe.models import ControlCommand

log = logging.getLogger(__name__)


@dataclass
class JobControl:
    command: ControlCommand
    at_ms: int
    floor_ms: int = 0  # newest pause, stop or resume: older documents are dropped
    resumed_at_ms: int = 0  # newest resume: the epoch of documents sent now


class ControlLatest:
    def __init__(self) -> None:
        self.jobs: dict[str, JobControl] = {}

    def apply(self, key: bytes | None, value: bytes | None, timestamp_ms: int) -> str | None:
        """Fold one record; returns the job id it concerned, if any."""
        if is_marker(key):
            return None  # written by a reader to find the end of the topic
        if value is None:  # tombstone from cleanup
            if key is not None:
                job_id = key.decode(errors="replace")
                state = self.jobs.get(job_id)
                if state is not None and state.command is ControlCommand.STOP:
                    # Stop is final: a null record (anyone can write one) cannot undo it.
                    log.warning("tombstone ignored: the job is stopped",
                                extra={"job_id": job_id})
                else:
                    self.jobs.pop(job_id, None)
            return None
        try:
            msg = parse_control(value)
        except InvalidControlMessage as exc:
            log.warning("control message ignored", extra={"reason": str(exc)})
            return None
        state = self.jobs.get(msg.job_id)
        if state is None:
            state = self.jobs[msg.job_id] = JobControl(msg.command, timestamp_ms)
        elif state.command is ControlCommand.STOP:
            if msg.command is not ControlCommand.STOP:
                log.warning("control message ignored: the job is stopped",
                            extra={"job_id": msg.job_id, "command": msg.command.value})
            return msg.job_id
        elif timestamp_ms >= state.at_ms:
            state.command, state.at_ms = msg.command, timestamp_ms
        if msg.command is ControlCommand.RESUME:
            state.resumed_at_ms = max(state.resumed_at_ms, timestamp_ms)
        state.floor_ms = max(state.floor_ms, timestamp_ms)
        return msg.job_id

    def command(self, job_id: str) -> ControlCommand | None:
        state = self.jobs.get(job_id)
        return state.command if state else None

    def epoch(self, job_id: str) -> int:
        """What a sender stamps on the documents of this job it sends now."""
        state = self.jobs.get(job_id)
        return state.resumed_at_ms if state else 0

    def blocks(self, job_id: str, epoch_ms: int = 0) -> bool:
        """Whether a stage must drop a document of this job carrying this epoch."""
        state = self.jobs.get(job_id)
        if state is None:
            return False
        if state.command is ControlCommand.STOP:
            return True
        # A document stamped with a resume newer than a pause this reader knows proves that
        # resume, even before this reader has read it.
        return epoch_ms < state.floor_ms

"""The latest command of every job, folded from control messages. Pure: no Kafka."""

from __future__ import annotations

import logging

from eventpipe.control.messages import InvalidControlMessage, parse_control
from eventpipe.models import ControlCommand

log = logging.getLogger(__name__)


class ControlLatest:
    """The latest command per job, ordered by the record's timestamp so that commands for one
    job spread over partitions (foreign partitioners) still resolve to the newest."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, ControlCommand]] = {}

    def apply(self, key: bytes | None, value: bytes | None, timestamp_ms: int) -> None:
        if value is None:  # tombstone from cleanup
            if key is not None:
                self._latest.pop(key.decode(errors="replace"), None)
            return
        try:
            msg = parse_control(value)
        except InvalidControlMessage as exc:
            log.warning("control message ignored", extra={"reason": str(exc)})
            return
        current = self._latest.get(msg.job_id)
        if current is None or timestamp_ms >= current[0]:
            self._latest[msg.job_id] = (timestamp_ms, msg.command)

    def command(self, job_id: str) -> ControlCommand | None:
        entry = self._latest.get(job_id)
        return entry[1] if entry else None

    def blocks(self, job_id: str) -> bool:
        return self.command(job_id) in (ControlCommand.PAUSE, ControlCommand.STOP)

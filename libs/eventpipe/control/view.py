"""A live view of the control topic for the stages: is a job paused or stopped?"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from eventpipe.control.state import ControlLatest
from eventpipe.kafka.clients import make_reader
from eventpipe.kafka.topics import Topics
from eventpipe.settings import Settings

log = logging.getLogger(__name__)


class ControlView(threading.Thread):
    """Follows the control topic from its beginning in a background thread."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="control-view", daemon=True)
        self.latest = ControlLatest()
        self._topic = Topics.from_settings(settings).control
        self._consumer = make_reader(settings)
        meta = self._consumer.list_topics(self._topic, timeout=10).topics[self._topic]
        self._consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        )
        self._stopping = threading.Event()

    def blocks(self, job_id: str, epoch_ms: int = 0) -> bool:
        return self.latest.blocks(job_id, epoch_ms)

    def run(self) -> None:
        while not self._stopping.is_set():
            for msg in self._consumer.consume(num_messages=500, timeout=0.2):
                if msg.error():
                    log.warning("control read error", extra={"error": str(msg.error())})
                    continue
                self.latest.apply(msg.key(), msg.value(), msg.timestamp()[1])
        self._consumer.close()

    def close(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=5)

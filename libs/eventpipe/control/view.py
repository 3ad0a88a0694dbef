"""A live view of the control topic for the stages: is a job paused or stopped?"""

from __future__ import annotations

import logging
import threading
import uuid

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from eventpipe.control.state import ControlLatest
from eventpipe.errors import KafkaSetupError
from eventpipe.kafka.clients import make_producer, make_reader
from eventpipe.kafka.markers import Markers, is_marker, marker_key
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
        self._partitions = list(meta.partitions)
        self._consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in self._partitions]
        )
        self._stopping = threading.Event()
        self._settings = settings
        self._markers = Markers()

    def start_caught_up(self, timeout_s: float = 60.0) -> None:
        """Start following, and return once everything written to the topic before this call
        is folded, so a (re)started stage never processes a paused job's documents before it
        has read the pause. A marker record per partition tells where "now" is: high
        watermarks are not trusted for that (some brokers report them wrong)."""
        self.start()
        token = uuid.uuid4().hex
        key = marker_key(token)
        self._markers.expect(key)
        producer = make_producer(self._settings)
        for p in self._partitions:
            producer.produce(self._topic, key=key, value=b"{}", partition=p)
        if producer.flush(timeout_s):
            raise KafkaSetupError("control topic markers were not acknowledged")
        self._markers.catch_up(key, len(self._partitions), timeout_s, "the control topic")

    def blocks(self, job_id: str, epoch_ms: int = 0) -> bool:
        return self.latest.blocks(job_id, epoch_ms)

    def run(self) -> None:
        while not self._stopping.is_set():
            for msg in self._consumer.consume(num_messages=500, timeout=0.2):
                if msg.error():
                    log.warning("control read error", extra={"error": str(msg.error())})
                    continue
                key = msg.key()
                if is_marker(key):
                    assert key is not None
                    self._markers.saw(key)
                    continue
                self.latest.apply(key, msg.value(), msg.timestamp()[1])
        self._consumer.close()

    def close(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=5)

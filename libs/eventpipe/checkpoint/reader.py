"""Reading the checkpoint and control topics from the beginning into a JobTable. Compaction
may never run (it does not on the embedded broker), so the whole history is folded by key."""

from __future__ import annotations

import logging

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from eventpipe.checkpoint.state import JobTable
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.kafka.clients import make_reader
from eventpipe.kafka.markers import Markers, is_marker, marker_key
from eventpipe.kafka.topics import Topics
from eventpipe.settings import Settings

log = logging.getLogger(__name__)


class CheckpointReader:
    def __init__(self, settings: Settings, table: JobTable | None = None) -> None:
        self.table = table or JobTable()
        topics = Topics.from_settings(settings)
        self._checkpoints, self._control = topics.checkpoints, topics.control
        self._consumer = make_reader(settings)
        assignment = []
        for topic in (self._checkpoints, self._control):
            meta = self._consumer.list_topics(topic, timeout=10).topics[topic]
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        self._control_partitions = sum(1 for tp in assignment if tp.topic == self._control)
        self._consumer.assign(assignment)
        self._markers = Markers()

    def poll(self, timeout_s: float = 0.2, max_records: int = 5000) -> int:
        """Fold what has arrived; returns the number of records read."""
        msgs = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        for msg in msgs:
            if msg.error():
                log.warning("checkpoint read error", extra={"error": str(msg.error())})
                continue
            key = msg.key()
            if is_marker(key):
                assert key is not None
                self._markers.saw(key)
            elif msg.topic() == self._control:
                self.table.apply_control(key, msg.value(), msg.timestamp()[1])
            else:
                self.table.apply_checkpoint(key, msg.value())
        return len(msgs)

    def sync(self, writer: CheckpointWriter, timeout_s: float = 30.0) -> None:
        """Read until a marker written now has come back on every partition: then everything
        written before this call is folded. High watermarks are not trusted for this (they
        can be wrong on some brokers)."""
        token = writer.send_marker(self._control_partitions)
        key = marker_key(token)
        self._markers.expect(key)  # read only in poll(), in this thread: none missed yet
        writer.flush()
        self._markers.catch_up(key, writer.partitions + self._control_partitions,
                               timeout_s, "the checkpoint topic",
                               read=lambda: self.poll(timeout_s=0.1))

    def close(self) -> None:
        self._consumer.close()

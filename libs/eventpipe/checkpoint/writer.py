"""Producing checkpoint records: job registration (ingest), document outcomes (sink) and
terminal statuses (materializer)."""

from __future__ import annotations

import uuid

from confluent_kafka import KafkaError, Producer

from eventpipe.checkpoint import keys
from eventpipe.errors import CheckpointWriteError as CheckpointWriteError
from eventpipe.kafka.clients import produce
from eventpipe.kafka.topics import Topics
from eventpipe.models import CheckpointRecord, DocRecord, JobRecord
from eventpipe.settings import Settings


class CheckpointWriter:
    def __init__(self, settings: Settings, producer: Producer) -> None:
        self.topic = Topics.from_settings(settings).checkpoints
        self.control_topic = Topics.from_settings(settings).control
        self.producer = producer
        meta = producer.list_topics(self.topic, timeout=10).topics[self.topic]
        self.partitions = len(meta.partitions)
        if self.partitions == 0:
            raise CheckpointWriteError(f"topic {self.topic} has no partitions")
        self._errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _key(self, record: CheckpointRecord) -> bytes:
        if isinstance(record, DocRecord):
            return keys.doc_key(record.job_id, record.doc_id)
        if isinstance(record, JobRecord):
            return keys.job_key(record.job_id)
        return keys.status_key(record.job_id)

    def send(self, record: CheckpointRecord) -> None:
        produce(self.producer, self.topic, self._key(record),
                record.model_dump_json(exclude_none=True).encode(), self._on_delivery,
                partition=keys.partition_for(record.job_id, self.partitions))

    def send_marker(self, control_partitions: int = 0) -> str:
        """One marker per partition of the checkpoint topic (and of the control topic); a
        reader that has seen them all is caught up to now."""
        token = uuid.uuid4().hex
        for p in range(control_partitions):
            produce(self.producer, self.control_topic, keys.marker_key(token), b"{}",
                    self._on_delivery, partition=p)
        for p in range(self.partitions):
            produce(self.producer, self.topic, keys.marker_key(token), b"{}", self._on_delivery,
                    partition=p)
        return token

    def tombstone_job(self, job_id: str, doc_ids: list[str]) -> None:
        """Delete a job's records (compaction removes them; readers drop them at once). The
        job's own key goes first: readers then drop the job whole, never a half of it."""
        partition = keys.partition_for(job_id, self.partitions)
        for key in [keys.job_key(job_id), keys.status_key(job_id),
                    *(keys.doc_key(job_id, d) for d in doc_ids)]:
            self.producer.produce(self.topic, key=key, value=None, partition=partition,
                                  on_delivery=self._on_delivery)
            self.producer.poll(0)
        self.producer.produce(self.control_topic, key=job_id.encode(), value=None,
                              on_delivery=self._on_delivery)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every record is acknowledged; raise if any was not."""
        remaining = self.producer.flush(timeout_s)
        if remaining:
            raise CheckpointWriteError(f"{remaining} checkpoint records not delivered")
        if self._errors:
            errors, self._errors = self._errors, []
            raise CheckpointWriteError("checkpoint records not delivered: " + errors[0])



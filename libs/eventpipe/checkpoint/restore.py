"""Restoring checkpoint and control state from the checkpoint files into a broker that has
lost it (a fresh embedded broker, a cluster whose topics were recreated). The files are the
durable copy; the topics are rebuilt from them before any service consumes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from eventpipe.checkpoint.model import Checkpoint
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.control.messages import encode_control
from eventpipe.kafka.clients import make_reader
from eventpipe.kafka.topics import Topics
from eventpipe.models import (
    ControlCommand,
    DocRecord,
    JobRecord,
    JobStatus,
    Stage,
    StatusRecord,
)
from eventpipe.settings import Settings

log = logging.getLogger(__name__)


# Errors that pass once the partition's leader is known (not all are flagged retriable).
LEADER_MOVING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                 KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT}


def topic_is_empty(settings: Settings, topic: str, timeout_s: float = 60.0) -> bool:
    consumer = make_reader(settings)
    deadline = time.monotonic() + timeout_s
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        for p in meta.partitions:
            while True:
                try:
                    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                                timeout=10)
                    break
                except KafkaException as exc:
                    # Apache Kafka answers NOT_LEADER for a moment after a topic is created
                    # or the broker restarted: retriable, so wait for the leader.
                    err = exc.args[0]
                    if (not (err.retriable() or err.code() in LEADER_MOVING)
                            or time.monotonic() > deadline):
                        raise
                    time.sleep(0.2)
            if high > 0:
                return False
        return True
    finally:
        consumer.close()


def restore_from_files(settings: Settings, producer: Producer) -> int:
    """Re-send every job found in the checkpoint folder; returns the number of jobs."""
    topics = Topics.from_settings(settings)
    if not topic_is_empty(settings, topics.checkpoints):
        return 0
    writer = CheckpointWriter(settings, producer)
    restored = 0
    for path in sorted(Path(settings.checkpoint_dir).glob("*.json")):
        try:
            cp = Checkpoint.model_validate_json(path.read_bytes())
            job_id, at = cp.job_id, cp.updated_at
            writer.send(JobRecord(
                job_id=job_id, batch_id=cp.batch_id, created_at=cp.created_at,
                total_documents=cp.total_documents, input_path=cp.metadata.input_path,
                submission_id=cp.metadata.submission_id,
                result_version=cp.metadata.result_version,
                reprocess_of=cp.metadata.reprocess_of,
                from_stage=Stage(cp.metadata.from_stage) if cp.metadata.from_stage else None,
            ))
            for doc_id in cp.processed_doc_ids:
                writer.send(DocRecord(job_id=job_id, doc_id=doc_id, state="processed", at=at))
            for doc_id in cp.failed_doc_ids:
                reason = cp.failures.get(doc_id)
                writer.send(DocRecord(
                    job_id=job_id, doc_id=doc_id, state="failed", at=at,
                    stage=Stage(reason.stage if reason else "sink"),
                    error=reason.error if reason else "failed before restore",
                    failure_class=reason.failure_class if reason else None,
                    attempts=reason.attempts if reason else None,
                    quarantined=reason.quarantined if reason else None,
                ))
            for doc_id in cp.metadata.replaying_doc_ids or []:
                writer.send(DocRecord(job_id=job_id, doc_id=doc_id, state="pending", at=at))
            status = cp.status
            if status in (JobStatus.COMPLETED, JobStatus.FAILED):
                writer.send(StatusRecord(job_id=job_id, status=status, at=at))
            elif status in (JobStatus.PAUSED, JobStatus.STOPPED):
                command = ControlCommand.PAUSE if status is JobStatus.PAUSED else (
                    ControlCommand.STOP)
                producer.produce(topics.control, key=job_id.encode(),
                                 value=encode_control(command, job_id))
            restored += 1
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("checkpoint file not restored", extra={"path": str(path),
                                                            "reason": str(exc)[:500]})
    writer.flush()
    if restored:
        log.info("restored checkpoint state from files", extra={"jobs": restored})
    return restored

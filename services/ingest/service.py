from __future__ import annotations

import logging
from pathlib import Path

from confluent_kafka import Message
from pydantic import ValidationError

from eventpipe.checkpoint.reader import CheckpointReader
from eventpipe.checkpoint.state import JobState
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.kafka.clients import make_producer
from eventpipe.kafka.topics import Topics
from eventpipe.models import (
    DocumentMessage,
    FailedDocument,
    JobRecord,
    JobStatus,
    Stage,
    Submission,
    utc_now,
)
from eventpipe.runtime.loop import ConsumeLoop
from eventpipe.runtime.service import main_for
from eventpipe.settings import Settings
from services.ingest.lines import InvalidLine, parse_line

log = logging.getLogger(__name__)

# Checked every this many lines: a pause or stop during a long read stops the sending.
CONTROL_CHECK_LINES = 500


def count_documents(path: Path) -> int:
    """Every non-blank line is one document (valid or failed), so processed + failed adds up
    to this total."""
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


class Ingest:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        producer = make_producer(settings)
        self.checkpoints = CheckpointWriter(settings, producer)
        self.reader = CheckpointReader(settings)
        self.loop = ConsumeLoop(
            settings,
            service="ingest",
            topics=[self.topics.submissions],
            group_id=f"{settings.topic_prefix}-ingest",
            handle=self.handle,
            producer=producer,
        )

    def handle(self, msgs: list[Message]) -> None:
        for msg in msgs:
            try:
                submission = Submission.model_validate_json(msg.value() or b"")
            except (ValueError, ValidationError) as exc:
                log.warning("submission ignored: not a valid submission message",
                            extra={"reason": str(exc)[:500]})
                continue
            self.ingest_file(submission)

    def _send(self, topic: str, job_id: str, doc_id: str, value: bytes) -> None:
        self.loop.produce(topic, f"{job_id}/{doc_id}".encode(), value)

    def _fail(self, sub: Submission, doc_id: str, reason: str) -> None:
        log.warning("document failed", extra={"job_id": sub.job_id, "doc_id": doc_id,
                                              "reason": reason})
        failure = FailedDocument(job_id=sub.job_id, batch_id=sub.batch_id, doc_id=doc_id,
                                 stage=Stage.INGEST, error=reason)
        self._send(self.topics.failed, sub.job_id, doc_id, failure.model_dump_json().encode())

    def ingest_file(self, sub: Submission) -> None:
        ctx = {"job_id": sub.job_id, "batch_id": sub.batch_id, "path": sub.path}
        path = Path(sub.path)
        if not path.is_file():
            log.error("submission refused: input is not a readable file", extra=ctx)
            return
        self.reader.sync(self.checkpoints)
        table = self.reader.table
        state = table.jobs.get(sub.job_id) or JobState(sub.job_id)
        if state.batch_id is not None and table.status(state) is JobStatus.STOPPED:
            log.error("submission refused: the job is STOPPED", extra=ctx)
            return
        total = count_documents(path)
        self.checkpoints.send(JobRecord(
            job_id=sub.job_id, batch_id=sub.batch_id, created_at=state.created_at or utc_now(),
            total_documents=total, input_path=str(path.resolve()),
            submission_id=sub.submission_id,
        ))
        self.checkpoints.flush()
        done = set(state.processed) if sub.retry_failed else (
            set(state.processed) | set(state.failures))
        seen: dict[str, int] = {}
        sent = skipped = 0
        with path.open("rb") as f:
            line_no = 0
            for raw in f:
                line_no += 1
                if not raw.strip():
                    continue
                if line_no % CONTROL_CHECK_LINES == 0:
                    self.reader.poll(timeout_s=0)
                    if table.control.blocks(sub.job_id):
                        log.info("job paused or stopped: sending stopped", extra=ctx)
                        break
                parsed = parse_line(raw, line_no, self.settings.max_message_bytes - 65536)
                doc_id = parsed.doc_id
                if doc_id in seen:
                    # Duplicate ids: the first line wins, later ones fail under their line.
                    doc_id = f"line-{line_no}"
                    parsed = InvalidLine(doc_id, f"line {line_no}: duplicate id "
                                         f"{parsed.doc_id!r} (first at line {seen[parsed.doc_id]})")
                seen.setdefault(doc_id, line_no)
                if doc_id in done:
                    skipped += 1
                    continue
                if isinstance(parsed, InvalidLine):
                    self._fail(sub, doc_id, parsed.reason)
                    continue
                doc = DocumentMessage(job_id=sub.job_id, batch_id=sub.batch_id, doc_id=doc_id,
                                      text=parsed.text, meta=parsed.meta)
                self._send(self.topics.docs, sub.job_id, doc_id, doc.model_dump_json().encode())
                sent += 1
        log.info("submission ingested", extra=ctx | {"total": total, "sent": sent,
                                                      "skipped": skipped})

    def run(self) -> None:
        self.loop.install_signal_handlers()
        try:
            self.loop.run()
        finally:
            self.reader.close()


def run(settings: Settings) -> None:
    Ingest(settings).run()


main = main_for("ingest", run)

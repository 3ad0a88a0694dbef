from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Message
from pydantic import ValidationError

from eventpipe.checkpoint.reader import CheckpointReader
from eventpipe.checkpoint.state import JobState
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.control.messages import InvalidControlMessage, parse_control
from eventpipe.kafka.clients import make_producer
from eventpipe.kafka.topics import Topics
from eventpipe.models import (
    ControlCommand,
    DocumentMessage,
    FailedDocument,
    JobRecord,
    JobStatus,
    Stage,
    StreamEnd,
    Submission,
    check_id,
    job_id_for,
    utc_now,
)
from eventpipe.runtime.loop import ConsumeLoop
from eventpipe.runtime.metrics import DOCUMENTS_FAILED, DOCUMENTS_PROCESSED
from eventpipe.runtime.service import main_for
from eventpipe.settings import Settings
from services.ingest.lines import InvalidLine, ValidLine, parse_line, validate_document

log = logging.getLogger(__name__)

# Checked every this many lines: a pause or stop during a long read stops the sending.
CONTROL_CHECK_LINES = 200
ENVELOPE = ("batch_id",)


def count_documents(path: Path) -> int:
    """Every non-blank line is one document (valid or failed), so processed + failed adds up
    to this total."""
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


@dataclass
class Stream:
    """A batch arriving document by document on the submissions topic."""

    job_id: str
    batch_id: str
    submission_id: str
    refused: bool = False
    seen: dict[str, str] = field(default_factory=dict)  # doc id -> where it was first seen
    count: int = 0


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
            topics=[self.topics.submissions, self.topics.control],
            group_id=f"{settings.topic_prefix}-ingest",
            handle=self.handle,
            producer=producer,
        )
        self.streams: dict[str, Stream] = {}
        self.max_text = settings.max_message_bytes - 65536

    # --- shared -------------------------------------------------------------------------

    def _send_doc(self, job_id: str, batch_id: str, valid: ValidLine) -> None:
        doc = DocumentMessage(job_id=job_id, batch_id=batch_id, doc_id=valid.doc_id,
                              text=valid.text, meta=valid.meta,
                              epoch_ms=self.reader.table.control.epoch(job_id))
        self.loop.produce(self.topics.docs, f"{job_id}/{valid.doc_id}".encode(),
                          doc.model_dump_json().encode())
        DOCUMENTS_PROCESSED.labels("ingest").inc()

    def _fail(self, job_id: str, batch_id: str, doc_id: str, reason: str) -> None:
        DOCUMENTS_FAILED.labels("ingest").inc()
        log.warning("document failed", extra={"job_id": job_id, "doc_id": doc_id,
                                              "reason": reason})
        failure = FailedDocument(job_id=job_id, batch_id=batch_id, doc_id=doc_id,
                                 stage=Stage.INGEST, error=reason)
        self.loop.produce(self.topics.failed, f"{job_id}/{doc_id}".encode(),
                          failure.model_dump_json().encode())

    def _register(self, job_id: str, batch_id: str, total: int | None, path: str | None,
                  submission_id: str) -> None:
        state = self.reader.table.jobs.get(job_id) or JobState(job_id)
        self.checkpoints.send(JobRecord(
            job_id=job_id, batch_id=batch_id, created_at=state.created_at or utc_now(),
            total_documents=total, input_path=path, submission_id=submission_id,
        ))
        self.checkpoints.flush()

    def _refusal(self, job_id: str) -> str | None:
        table = self.reader.table
        state = table.jobs.get(job_id)
        if state is not None and state.batch_id is not None:
            status = table.status(state)
            if status is JobStatus.STOPPED:
                return "the job is STOPPED and cannot be resubmitted"
            if status is JobStatus.PAUSED:
                return "the job is PAUSED; resume it to continue"
        return None

    def _blocked(self, job_id: str) -> bool:
        self.reader.poll(timeout_s=0)
        return self.reader.table.control.command(job_id) in (ControlCommand.PAUSE,
                                                             ControlCommand.STOP)

    # --- dispatch -----------------------------------------------------------------------

    def handle(self, msgs: list[Message]) -> None:
        for msg in msgs:
            if msg.topic() == self.topics.control:
                self.on_control(msg)
                continue
            value = msg.value() or b""
            try:
                data = json.loads(value)
            except (ValueError, UnicodeDecodeError) as exc:
                log.warning("submission message ignored: not JSON", extra={"reason": str(exc)})
                continue
            if not isinstance(data, dict):
                log.warning("submission message ignored: not a JSON object")
            elif data.get("kind") == "file":
                try:
                    self.ingest_file(Submission.model_validate(data))
                except ValidationError as exc:
                    log.warning("file submission ignored", extra={"reason": str(exc)[:500]})
            elif "end" in data:
                self.end_stream(data)
            else:
                self.stream_document(data, f"message {msg.partition()}:{msg.offset()}",
                                     f"msg-{msg.partition()}-{msg.offset()}")

    # --- files --------------------------------------------------------------------------

    def ingest_file(self, sub: Submission) -> None:
        ctx = {"job_id": sub.job_id, "batch_id": sub.batch_id, "path": sub.path}
        path = Path(sub.path)
        if not path.is_file() or not os.access(path, os.R_OK):
            log.error("submission refused: input is not a readable file", extra=ctx)
            return
        self.reader.sync(self.checkpoints)
        refusal = self._refusal(sub.job_id)
        if refusal:
            log.error(f"submission refused: {refusal}", extra=ctx)
            return
        table = self.reader.table
        state = table.jobs.get(sub.job_id) or JobState(sub.job_id)
        total = count_documents(path)
        self._register(sub.job_id, sub.batch_id, total, str(path.resolve()), sub.submission_id)
        failed = set(state.failures)
        done = set(state.processed) | failed
        seen: dict[str, int] = {}
        sent = skipped = 0
        with path.open("rb") as f:
            for line_no, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                if line_no % CONTROL_CHECK_LINES == 0 and self._blocked(sub.job_id):
                    log.info("job paused or stopped: sending stopped", extra=ctx)
                    break
                parsed = parse_line(raw, line_no, self.max_text)
                doc_id = parsed.doc_id
                if doc_id in seen:
                    # Duplicate ids: the first line wins, later ones fail under their line.
                    first = seen[doc_id]
                    doc_id = f"line-{line_no}"
                    parsed = InvalidLine(doc_id, f"line {line_no}: duplicate id "
                                         f"{parsed.doc_id!r} (first at line {first})")
                seen.setdefault(doc_id, line_no)
                if (doc_id not in failed) if sub.retry_failed else (doc_id in done):
                    skipped += 1
                    continue
                if isinstance(parsed, InvalidLine):
                    self._fail(sub.job_id, sub.batch_id, doc_id, parsed.reason)
                else:
                    self._send_doc(sub.job_id, sub.batch_id, parsed)
                    sent += 1
        log.info("submission ingested", extra=ctx | {"total": total, "sent": sent,
                                                      "skipped": skipped,
                                                      "origin": sub.origin,
                                                      "retry_failed": sub.retry_failed})

    # --- documents from any Kafka producer ------------------------------------------------

    def _stream(self, batch_id: str) -> Stream:
        stream = self.streams.get(batch_id)
        if stream is None:
            job_id = job_id_for(batch_id)
            stream = Stream(job_id, batch_id, submission_id=os.urandom(8).hex())
            self.reader.sync(self.checkpoints)
            refusal = self._refusal(job_id)
            if refusal:
                stream.refused = True
                log.error(f"submission refused: {refusal}",
                          extra={"job_id": job_id, "batch_id": batch_id})
            else:
                state = self.reader.table.jobs.get(job_id)
                # The total is unknown until the closing message.
                self._register(job_id, batch_id, None, state.input_path if state else None,
                               stream.submission_id)
            self.streams[batch_id] = stream
        return stream

    def _batch_id(self, data: dict[str, Any]) -> str | None:
        try:
            return check_id(str(data["batch_id"]), "batch_id")
        except (KeyError, ValueError) as exc:
            log.warning("submission message ignored: no usable batch_id",
                        extra={"reason": str(exc)})
            return None

    def stream_document(self, data: dict[str, Any], where: str, fallback_id: str) -> None:
        batch_id = self._batch_id(data)
        if batch_id is None:
            return
        stream = self._stream(batch_id)
        if stream.refused:
            return
        stream.count += 1
        parsed = validate_document(data, where, fallback_id, self.max_text, ignore=ENVELOPE)
        doc_id = parsed.doc_id
        if doc_id in stream.seen:
            parsed = InvalidLine(fallback_id, f"{where}: duplicate id {doc_id!r} "
                                 f"(first at {stream.seen[doc_id]})")
            doc_id = fallback_id
        stream.seen.setdefault(doc_id, where)
        state = self.reader.table.jobs.get(stream.job_id)
        if state is not None and (doc_id in state.processed or doc_id in state.failures):
            return
        if isinstance(parsed, InvalidLine):
            self._fail(stream.job_id, batch_id, doc_id, parsed.reason)
        else:
            self._send_doc(stream.job_id, batch_id, parsed)

    def end_stream(self, data: dict[str, Any]) -> None:
        try:
            end = StreamEnd.model_validate(data)
            batch_id = check_id(end.batch_id, "batch_id")
        except (ValidationError, ValueError) as exc:
            log.warning("closing message ignored", extra={"reason": str(exc)[:500]})
            return
        stream = self._stream(batch_id)
        self.streams.pop(batch_id, None)
        if stream.refused:
            return
        if stream.count and stream.count != end.count:
            log.warning("closing message count differs from the documents this ingest saw",
                        extra={"job_id": stream.job_id, "count": end.count,
                               "seen": stream.count})
        state = self.reader.table.jobs.get(stream.job_id)
        self._register(stream.job_id, batch_id, end.count, state.input_path if state else None,
                       stream.submission_id)
        log.info("stream submission closed", extra={"job_id": stream.job_id,
                                                     "batch_id": batch_id, "total": end.count})

    # --- resume -------------------------------------------------------------------------

    def on_control(self, msg: Message) -> None:
        """Re-send the remaining documents of a resumed job from its recorded input, whoever
        sent the resume (the CLI or any Kafka client). Control records reach ingest through
        its consumer group and are committed only after the re-send is produced, so a crash
        in between loses no resume."""
        try:
            command = parse_control(msg.value())
        except InvalidControlMessage:
            return  # logged by the readers that fold the control topic
        if command.command is not ControlCommand.RESUME:
            return
        self.reader.sync(self.checkpoints)
        table = self.reader.table
        state = table.jobs.get(command.job_id)
        if state is None or state.batch_id is None:
            log.warning("resume for an unknown job ignored", extra={"job_id": command.job_id})
            return
        if table.status(state) is not JobStatus.RUNNING:
            return  # stopped, finished, or paused again since
        ctx = {"job_id": state.job_id, "batch_id": state.batch_id, "path": state.input_path}
        if state.input_path and Path(state.input_path).is_file():
            log.info("resumed: re-sending the remaining documents", extra=ctx)
            sub = Submission(batch_id=state.batch_id, job_id=state.job_id,
                             path=state.input_path, origin="resume")
            self.loop.produce(self.topics.submissions, state.batch_id.encode(),
                              sub.model_dump_json().encode())
        else:
            log.warning("resumed, but the input is not readable here: resubmit the "
                        "remaining documents", extra=ctx)

    def run(self) -> None:
        self.loop.install_signal_handlers()
        try:
            self.loop.run()
        finally:
            self.reader.close()


def run(settings: Settings) -> None:
    Ingest(settings).run()


main = main_for("ingest", run)

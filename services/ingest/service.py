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
from eventpipe.checkpoint.state import TERMINAL, JobState, refusal
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.control.messages import InvalidControlMessage, parse_control
from eventpipe.errors import UsageError
from eventpipe.inbox import InputRefused, allowed_input
from eventpipe.kafka.clients import make_producer
from eventpipe.kafka.topics import Topics
from eventpipe.kafka.tracing import Tracing
from eventpipe.models import (
    ControlCommand,
    DocumentMessage,
    FailedDocument,
    JobRecord,
    JobStatus,
    Stage,
    StatusRecord,
    StreamEnd,
    Submission,
    check_id,
    job_id_for,
    utc_now,
)
from eventpipe.reprocess import resend_remaining
from eventpipe.runtime.loop import ConsumeLoop, is_transient
from eventpipe.runtime.metrics import DOCUMENTS_FAILED, DOCUMENTS_PROCESSED
from eventpipe.runtime.retry import StopRequested
from eventpipe.runtime.service import main_for
from eventpipe.settings import Settings
from services.ingest.lines import (
    InvalidLine,
    Limits,
    LongLine,
    ValidLine,
    line_doc_id,
    parse_line,
    read_lines,
    validate_document,
)

log = logging.getLogger(__name__)

# Checked every this many lines: a pause or stop during a long read stops the sending.
CONTROL_CHECK_LINES = 200
# The largest document count a closing message may announce.
MAX_STREAM_COUNT = 2**31 - 1
ENVELOPE = ("batch_id",)


def count_documents(path: Path, max_line: int) -> int:
    """Every non-blank line is one document (valid or failed), so processed + failed adds up
    to this total."""
    with path.open("rb") as f:
        return sum(1 for _, line in read_lines(f, max_line)
                   if isinstance(line, LongLine) or line.strip())


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
    def __init__(self, settings: Settings, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.tracing = tracing or Tracing(settings, "ingest")
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
        # The whole serialized document must fit in one message (the topics'
        # max.message.bytes, which EVENTPIPE_MAX_MESSAGE_BYTES configures); so must a line.
        self.max_doc = settings.max_message_bytes
        self.limits = Limits(text_bytes=settings.max_message_bytes - 65536,
                             text_chars=settings.max_document_chars)

    # --- shared -------------------------------------------------------------------------

    def _send_doc(self, job_id: str, batch_id: str, valid: ValidLine, where: str) -> bool:
        """Send one document, or fail it when the whole of it (text, extra fields, envelope)
        is larger than a message may be. Returns whether it was sent."""
        doc = DocumentMessage(job_id=job_id, batch_id=batch_id, doc_id=valid.doc_id,
                              text=valid.text, meta=valid.meta,
                              epoch_ms=self.reader.table.control.epoch(job_id))
        value = doc.model_dump_json().encode()
        if len(value) > self.max_doc:
            self._fail(job_id, batch_id, valid.doc_id,
                       f"{where}: the document is {len(value)} bytes as a message; the limit "
                       f"is {self.max_doc} (EVENTPIPE_MAX_MESSAGE_BYTES)")
            return False
        # The root of the document's trace; the stages' spans hang below it.
        span = self.tracing.start("ingest", None, **{
            "eventpipe.job_id": job_id, "eventpipe.batch_id": batch_id,
            "eventpipe.doc_id": valid.doc_id})
        self.loop.produce(self.topics.docs, f"{job_id}/{valid.doc_id}".encode(), value,
                          span.headers)
        span.end()
        DOCUMENTS_PROCESSED.labels("ingest").inc()
        return True

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
        """The CLI's rule (checkpoint.state.refusal), for a job registered here before."""
        table = self.reader.table
        state = table.jobs.get(job_id)
        if state is None or state.batch_id is None:
            return None
        return refusal(table.status(state))

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
        if sub.job_id != job_id_for(sub.batch_id):
            log.error("submission refused: its job_id is not its batch's", extra=ctx)
            return
        try:
            path = allowed_input(self.settings, sub.path)
        except InputRefused as exc:
            log.error("submission refused", extra=ctx | {"reason": str(exc)})
            return
        if not path.is_file() or not os.access(path, os.R_OK):
            log.error("submission refused: input is not a readable file", extra=ctx)
            return
        self.reader.sync(self.checkpoints)
        refused = self._refusal(sub.job_id)
        if refused:
            log.error(f"submission refused: {refused}", extra=ctx)
            return
        table = self.reader.table
        state = table.jobs.get(sub.job_id) or JobState(sub.job_id)
        total = count_documents(path, self.max_doc)
        self._register(sub.job_id, sub.batch_id, total, str(path), sub.submission_id)
        failed = set(state.failures)
        done = set(state.processed) | failed
        seen: dict[str, int] = {}
        sent = skipped = 0
        with path.open("rb") as f:
            for line_no, raw in read_lines(f, self.max_doc):
                if self.loop.stop_event.is_set():
                    # SIGTERM mid-file: stop reading now, within the grace period. The
                    # submission stays uncommitted, so the next ingest reads the file again
                    # and skips what was done (what was sent twice is keyed downstream).
                    raise StopRequested(f"stopped at line {line_no} of {sub.path}")
                if not isinstance(raw, LongLine) and not raw.strip():
                    continue
                if line_no % CONTROL_CHECK_LINES == 0 and self._blocked(sub.job_id):
                    log.info("job paused or stopped: sending stopped", extra=ctx)
                    break
                try:
                    outcome = self._ingest_line(sub, line_no, raw, seen, failed, done)
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    # One line that breaks ingest fails alone; the file goes on.
                    outcome = "failed"
                    self._fail(sub.job_id, sub.batch_id, line_doc_id(line_no),
                               f"line {line_no}: ingest could not handle it: "
                               f"{type(exc).__name__}: {exc}")
                sent += outcome == "sent"
                skipped += outcome == "skipped"
        log.info("submission ingested", extra=ctx | {"total": total, "sent": sent,
                                                      "skipped": skipped,
                                                      "origin": sub.origin,
                                                      "retry_failed": sub.retry_failed})

    def _ingest_line(self, sub: Submission, line_no: int, raw: bytes | LongLine,
                     seen: dict[str, int], failed: set[str], done: set[str]) -> str:
        if isinstance(raw, LongLine):
            parsed: ValidLine | InvalidLine = InvalidLine(
                line_doc_id(line_no), f"line {line_no} is {raw.size} bytes long; the limit is "
                f"{self.max_doc} (EVENTPIPE_MAX_MESSAGE_BYTES)")
        else:
            parsed = parse_line(raw, line_no, self.limits)
        doc_id = parsed.doc_id
        if doc_id in seen:
            # Duplicate ids: the first line wins, later ones fail under their line.
            first = seen[doc_id]
            doc_id = line_doc_id(line_no)
            parsed = InvalidLine(doc_id, f"line {line_no}: duplicate id "
                                 f"{parsed.doc_id!r} (first at line {first})")
        seen.setdefault(doc_id, line_no)
        if (doc_id not in failed) if sub.retry_failed else (doc_id in done):
            return "skipped"
        if isinstance(parsed, InvalidLine):
            self._fail(sub.job_id, sub.batch_id, doc_id, parsed.reason)
            return "failed"
        sent = self._send_doc(sub.job_id, sub.batch_id, parsed, f"line {line_no}")
        return "sent" if sent else "failed"

    # --- documents from any Kafka producer ------------------------------------------------

    def _stream(self, batch_id: str) -> Stream:
        stream = self.streams.get(batch_id)
        if stream is None:
            job_id = job_id_for(batch_id)
            stream = Stream(job_id, batch_id, submission_id=os.urandom(8).hex())
            self.reader.sync(self.checkpoints)
            refused = self._refusal(job_id)
            table = self.reader.table
            state = table.jobs.get(job_id)
            registered = state is not None and state.batch_id is not None
            if refused:
                stream.refused = True
                log.error(f"submission refused: {refused}",
                          extra={"job_id": job_id, "batch_id": batch_id})
            elif registered and state is not None and table.status(state) in TERMINAL:
                # A document after the closing message (or one overtaken by it) of a batch
                # that has finished: it must not reopen the job with an unknown total.
                stream.refused = True
                log.warning("stream document of a finished batch skipped",
                            extra={"job_id": job_id, "batch_id": batch_id})
            elif not registered:
                # The total is unknown until the closing message. A job already registered
                # keeps its total: a late document does not make it unknown again.
                self._register(job_id, batch_id, None, None, stream.submission_id)
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
        parsed = validate_document(data, where, fallback_id, self.limits, ignore=ENVELOPE)
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
            self._send_doc(stream.job_id, batch_id, parsed, where)

    def end_stream(self, data: dict[str, Any]) -> None:
        batch_id = self._batch_id(data)
        if batch_id is None:
            return
        count = data.get("count")
        bad_count = (isinstance(count, bool) or not isinstance(count, int)
                     or not 0 <= count <= MAX_STREAM_COUNT)
        try:
            end = StreamEnd.model_validate(data)
        except ValidationError as exc:
            if not bad_count:
                log.warning("closing message ignored", extra={"reason": str(exc)[:500]})
                return
        stream = self._stream(batch_id)
        self.streams.pop(batch_id, None)
        if stream.refused:
            return
        if bad_count:
            # Waiting for a count that can never be reached would leave the job RUNNING
            # for good: the batch's end fails, with the reason.
            reason = (f"the closing message's count {str(count)[:80]!r} is not an integer "
                      f"from 0 to {MAX_STREAM_COUNT}")
            log.error("stream submission failed", extra={"job_id": stream.job_id,
                                                         "batch_id": batch_id, "reason": reason})
            self.checkpoints.send(StatusRecord(job_id=stream.job_id, status=JobStatus.FAILED,
                                               at=utc_now(), reason=reason))
            self.checkpoints.flush()
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
        if state.reprocess_of is not None:
            self._resume_reprocess(state, ctx)
        elif state.input_path and Path(state.input_path).is_file():
            log.info("resumed: re-sending the remaining documents", extra=ctx)
            sub = Submission(batch_id=state.batch_id, job_id=state.job_id,
                             path=state.input_path, origin="resume")
            self.loop.produce(self.topics.submissions, state.batch_id.encode(),
                              sub.model_dump_json().encode())
        else:
            log.warning("resumed, but the input is not readable here: resubmit the "
                        "remaining documents", extra=ctx)

    def _resume_reprocess(self, state: JobState, ctx: dict[str, Any]) -> None:
        """A reprocess has no input file: its remaining documents come from the saved
        results it started from."""
        assert state.reprocess_of and state.result_version and state.from_stage
        try:
            sent = resend_remaining(
                self.settings, self.loop.produce, state.job_id, state.reprocess_of,
                state.result_version, state.from_stage,
                set(state.processed) | set(state.failures),
                self.reader.table.control.epoch(state.job_id))
        except (UsageError, OSError, ValueError) as exc:
            log.warning("resumed, but the reprocess's saved input is not readable here: "
                        "run the reprocess again", extra=ctx | {"reason": str(exc)[:500]})
            return
        log.info("resumed: re-sent the remaining documents of a reprocess",
                 extra=ctx | {"documents": sent})

    def run(self) -> None:
        self.loop.install_signal_handlers()
        try:
            self.loop.run()
        finally:
            self.reader.close()


def run(settings: Settings) -> None:
    Ingest(settings).run()


main = main_for("ingest", run)

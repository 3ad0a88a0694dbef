from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from confluent_kafka import Message
from pydantic import ValidationError

from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.errors import StopRequested
from eventpipe.kafka.clients import make_producer
from eventpipe.kafka.topics import Topics
from eventpipe.kafka.tracing import Tracing, record_headers
from eventpipe.models import (
    JOB_ID_PATTERN,
    DocRecord,
    DocumentMessage,
    FailedDocument,
    Stage,
    utc_now,
)
from eventpipe.runtime.health import READINESS
from eventpipe.runtime.loop import ConsumeLoop
from eventpipe.runtime.metrics import (
    BACKEND_ERRORS,
    BACKEND_SAVE_SECONDS,
    DOCUMENTS_FAILED,
    DOCUMENTS_PROCESSED,
)
from eventpipe.runtime.service import install_stop_handlers, main_for
from eventpipe.runtime.stage import (
    check_version,
    decode_document,
    describe,
    failure_for_undecodable,
    failure_of,
    schema_version_of,
)
from eventpipe.settings import Settings
from eventpipe.storage.base import (
    Backend,
    BackendUnavailable,
    ResultRecord,
    StorageError,
    result_record,
)
from eventpipe.storage.factory import open_backends

log = logging.getLogger(__name__)


def _saver(backend: Backend, record: ResultRecord) -> Callable[[], None]:
    return lambda: backend.save_documents([record])


def _failure_saver(backend: Backend, failures: list[FailedDocument]) -> Callable[[], None]:
    return lambda: backend.save_failures(failures)


class Sink:
    def __init__(self, settings: Settings, backends: list[Backend],
                 stop_event: threading.Event, tracing: Tracing | None = None) -> None:
        topics = Topics.from_settings(settings)
        self.tracing = tracing or Tracing(settings, "sink")
        self.events_topic = topics.events
        self.backends = backends
        self.replay_max_failures = settings.replay_max_failures
        producer = make_producer(settings)
        self.checkpoints = CheckpointWriter(settings, producer)
        self.loop = ConsumeLoop(
            settings,
            service="sink",
            topics=[topics.events, topics.failed],
            group_id=f"{settings.topic_prefix}-sink",
            handle=self.handle,
            producer=producer,
            stop_event=stop_event,
            on_poison=self._poisoned,
        )

    def _decode(self, msg: Message) -> DocumentMessage | FailedDocument:
        try:
            if msg.topic() == self.events_topic:
                return decode_document(msg.value())
            check_version(schema_version_of(msg.value()))
            return FailedDocument.model_validate_json(msg.value() or b"")
        except (ValueError, ValidationError) as exc:
            return failure_for_undecodable(msg.value(), Stage.SINK, exc)

    @staticmethod
    def _of_a_job(item: DocumentMessage | FailedDocument) -> bool:
        """A failure that names no real job (a foreign message) has no checkpoint to go to."""
        if JOB_ID_PATTERN.fullmatch(item.job_id):
            return True
        log.warning("failure of no known job: not recorded", extra={
            "job_id": item.job_id[:100], "doc_id": item.doc_id[:100]})
        return False

    def _poisoned(self, msg: Message, exc: Exception) -> None:
        """A record the sink could not handle fails alone, recorded in its job's checkpoint
        when it names a real job (else only logged), so the job still finishes."""
        failure = failure_for_undecodable(msg.value(), Stage.SINK, exc)
        if not JOB_ID_PATTERN.fullmatch(failure.job_id):
            return
        self.checkpoints.send(DocRecord(
            job_id=failure.job_id, doc_id=failure.doc_id, state="failed", stage=Stage.SINK,
            error=f"the sink could not handle it: {describe(exc)}", at=utc_now()))
        self.checkpoints.flush()

    def _save(self, backend: Backend, records: Sequence[ResultRecord],
              failures: Sequence[FailedDocument]) -> list[FailedDocument]:
        """Save to one backend, retrying while it is unreachable. A document the backend
        refuses for good fails alone (stage `sink`, the backend's reason)."""
        def call() -> None:
            started = time.perf_counter()
            try:
                backend.save_documents(records)
                backend.save_failures(failures)
            except BackendUnavailable:
                BACKEND_ERRORS.labels(backend.name, "unavailable").inc()
                raise
            except StorageError:
                BACKEND_ERRORS.labels(backend.name, "refused").inc()
                raise
            BACKEND_SAVE_SECONDS.labels(backend.name).observe(time.perf_counter() - started)

        try:
            self.loop.retry_backend(backend.name, call)
            return []
        except StorageError as exc:
            log.warning("backend refused a batch; saving its documents one by one",
                        extra={"backend": backend.name, "reason": describe(exc)})
        refused: list[FailedDocument] = []
        for record in records:
            try:
                self.loop.retry_backend(backend.name, _saver(backend, record))
            except StorageError as exc:
                refused.append(FailedDocument(
                    job_id=record["job_id"], batch_id=record["batch_id"], doc_id=record["id"],
                    stage=Stage.SINK, error=f"{backend.name} refused it: {describe(exc)}"))
        try:
            self.loop.retry_backend(backend.name, lambda: backend.save_failures(failures))
        except StorageError as exc:
            # The checkpoint still records every failure with its reason.
            log.error("backend refused failure records", extra={"backend": backend.name,
                                                                "reason": describe(exc)})
        return refused

    def handle(self, msgs: list[Message]) -> None:
        now = utc_now()
        pairs = [(m, i) for m, i in zip(msgs, map(self._decode, msgs), strict=True)
                 if self._of_a_job(i)]
        items = [i for _, i in pairs]
        # A document's last span: saved and recorded (or failed), as its trace ends.
        spans = [self.tracing.start("sink", record_headers(m), **{
            "eventpipe.job_id": i.job_id, "eventpipe.doc_id": i.doc_id,
            "eventpipe.outcome": "processed" if isinstance(i, DocumentMessage) else "failed"})
            for m, i in pairs]
        try:
            self._save_and_record(items, now)
        finally:
            for span in spans:
                span.end()

    def _save_and_record(self, items: list[DocumentMessage | FailedDocument], now: str
                         ) -> None:
        records = [result_record(i, now) for i in items if isinstance(i, DocumentMessage)]
        failures = [i for i in items if isinstance(i, FailedDocument)]
        # 1. Save to every enabled backend (each idempotent, keyed by job and document) ...
        refused: dict[tuple[str, str], FailedDocument] = {}
        for backend in self.backends:
            for f in self._save(backend, records, failures):
                refused.setdefault((f.job_id, f.doc_id), f)
        if refused:
            self._record_refused(items, refused)
        # 2. ... then record outcomes; the loop commits only after these are acknowledged.
        for item in items:
            if isinstance(item, DocumentMessage):
                failure = refused.get((item.job_id, item.doc_id))
                record = DocRecord(job_id=item.job_id, doc_id=item.doc_id, state="processed",
                                   at=now) if failure is None else DocRecord(
                    job_id=item.job_id, doc_id=item.doc_id, state="failed",
                    stage=Stage.SINK, error=failure.error, at=now,
                    quarantined=failure.quarantined or None)
            else:
                record = DocRecord(job_id=item.job_id, doc_id=item.doc_id, state="failed",
                                   stage=item.stage, error=item.error, at=now,
                                   failure_class=item.failure_class, attempts=item.attempts,
                                   quarantined=item.quarantined or None)
            self.checkpoints.send(record)
        self.checkpoints.flush()
        for item in items:  # counted once recorded, as the checkpoint counts them
            if isinstance(item, DocumentMessage) and (item.job_id, item.doc_id) not in refused:
                DOCUMENTS_PROCESSED.labels("sink").inc()
            elif isinstance(item, DocumentMessage):
                DOCUMENTS_FAILED.labels("sink").inc()

    def _record_refused(self, items: Sequence[DocumentMessage | FailedDocument],
                        refused: dict[tuple[str, str], FailedDocument]) -> None:
        """A document a backend refused becomes a failure record with the events message as
        its payload (a replay sends it to the sink again), kept by every backend that takes it."""
        for item in items:
            key = (item.job_id, item.doc_id)
            if isinstance(item, DocumentMessage) and key in refused:
                refused[key] = failure_of(item, Stage.SINK, refused[key].error, item,
                                          self.replay_max_failures)
        for backend in self.backends:
            try:
                self.loop.retry_backend(backend.name,
                                        _failure_saver(backend, list(refused.values())))
            except StorageError as exc:
                log.error("backend refused failure records", extra={"backend": backend.name,
                                                                    "reason": describe(exc)})

    def run(self) -> None:
        try:
            self.loop.run()
        finally:
            for backend in self.backends:
                backend.close()


def run(settings: Settings) -> None:
    stop = install_stop_handlers()
    try:
        backends = open_backends(settings, stop)
    except StopRequested:
        return
    log.info("backends ready", extra={"backends": [b.name for b in backends]})
    for backend in backends:
        READINESS.add_check(backend.name, _checker(backend))
    Sink(settings, backends, stop).run()


def _checker(backend: Backend) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            backend.check()
        except BackendUnavailable as exc:
            return str(exc)
        return None

    return check


main = main_for("sink", run)

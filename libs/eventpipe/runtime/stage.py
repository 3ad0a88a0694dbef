"""Running a pure stage function over a work topic. A stage is `process(docs) -> results`:
one result per document, either the document with the stage's output filled in, or the
exception that made it fail. It knows nothing of Kafka."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

from confluent_kafka import Message
from pydantic import ValidationError

from eventpipe.control.view import ControlView
from eventpipe.kafka.topics import Topics
from eventpipe.models import DocumentMessage, FailedDocument, Stage
from eventpipe.runtime.idle import IdleRelease
from eventpipe.runtime.loop import ConsumeLoop
from eventpipe.runtime.metrics import DOCUMENTS_FAILED, DOCUMENTS_PROCESSED, STAGE_SECONDS
from eventpipe.settings import Settings

log = logging.getLogger(__name__)

StageResult = DocumentMessage | Exception
ProcessBatch = Callable[[Sequence[DocumentMessage]], list[StageResult]]


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def decode_document(value: bytes | None) -> DocumentMessage:
    if value is None:
        raise ValueError("empty message")
    return DocumentMessage.model_validate_json(value)


def failure_for_undecodable(value: bytes | None, stage: Stage, exc: Exception) -> FailedDocument:
    """A message a foreign producer wrote that is not a document: keep whatever ids it has."""
    ids: dict[str, str] = {}
    try:
        data = json.loads(value or b"")
        if isinstance(data, dict):
            # Cut and cleaned by FailedDocument: the failure must be sendable whatever came.
            ids = {k: str(data[k]) for k in ("job_id", "batch_id", "doc_id") if k in data}
    except (ValueError, UnicodeDecodeError):
        pass
    reason = exc.errors()[0] if isinstance(exc, ValidationError) else exc
    return FailedDocument(
        job_id=ids.get("job_id", "unknown"),
        batch_id=ids.get("batch_id", "unknown"),
        doc_id=ids.get("doc_id", "unknown"),
        stage=stage,
        error=f"invalid message on the work topic: {reason}"[:2000],
    )


def process_isolated(process: ProcessBatch, docs: Sequence[DocumentMessage]) -> list[StageResult]:
    """Process a batch; if the batch call itself raises, retry one document at a time so
    that one bad document fails alone."""
    try:
        results = process(docs)
        if len(results) != len(docs):
            raise RuntimeError(f"stage returned {len(results)} results for {len(docs)} docs")
        return results
    except Exception as exc:
        if len(docs) == 1:
            return [exc]
        log.warning("batch failed; retrying documents one by one", extra={"size": len(docs)})
    out: list[StageResult] = []
    for doc in docs:
        try:
            out.extend(process([doc]))
        except Exception as exc:
            out.append(exc)
    return out


class StageRunner:
    def __init__(
        self,
        settings: Settings,
        stage: Stage,
        source: str,
        target: str,
        process: ProcessBatch,
        release: Callable[[], None] | None = None,
    ) -> None:
        """`release` gives back what the stage can load again (its model) while it idles;
        see eventpipe.runtime.idle."""
        self.settings = settings
        self.stage = stage
        self.target = target
        self.failed_topic = Topics.from_settings(settings).failed
        self.process = process
        self.control = ControlView(settings)
        self.loop = ConsumeLoop(
            settings,
            service=stage.value,
            topics=[source],
            group_id=f"{settings.topic_prefix}-{stage.value}",
            handle=self.handle,
            on_tick=self._tick,
            on_poison=self._poisoned,
        )
        self.idle = IdleRelease(settings.idle_release_s, release)

    def _tick(self) -> None:
        self.idle.tick()

    def _send(self, topic: str, doc_key: str, value: bytes) -> None:
        self.loop.produce(topic, doc_key.encode(), value)

    def _fail(self, failure: FailedDocument) -> None:
        DOCUMENTS_FAILED.labels(self.stage.value).inc()
        log.warning(
            "document failed",
            extra={"job_id": failure.job_id, "doc_id": failure.doc_id, "reason": failure.error},
        )
        self._send(self.failed_topic, f"{failure.job_id}/{failure.doc_id}",
                   failure.model_dump_json().encode())

    def _poisoned(self, msg: Message, exc: Exception) -> None:
        failure = failure_for_undecodable(msg.value(), self.stage, exc)
        failure.error = f"handling the message raised {describe(exc)}"
        self._fail(failure)

    def handle(self, msgs: list[Message]) -> None:
        docs: list[DocumentMessage] = []
        for msg in msgs:
            try:
                doc = decode_document(msg.value())
            except (ValueError, ValidationError) as exc:
                self._fail(failure_for_undecodable(msg.value(), self.stage, exc))
                continue
            if self.control.blocks(doc.job_id, doc.epoch_ms):
                # Paused or stopped: not started here; resume re-sends what is unprocessed.
                log.info("skipped: job paused or stopped",
                         extra={"job_id": doc.job_id, "doc_id": doc.doc_id})
                continue
            docs.append(doc)
        if not docs:
            return
        self.idle.busy()
        started = time.perf_counter()
        results = process_isolated(self.process, docs)
        per_doc_ms = (time.perf_counter() - started) * 1000 / len(docs)
        for doc, result in zip(docs, results, strict=True):
            if isinstance(result, Exception):
                self._fail(FailedDocument(job_id=doc.job_id, batch_id=doc.batch_id,
                                          doc_id=doc.doc_id, stage=self.stage,
                                          error=describe(result)))
                continue
            result.timings_ms[self.stage.value] = round(per_doc_ms, 3)
            STAGE_SECONDS.labels(self.stage.value).observe(per_doc_ms / 1000)
            value = result.model_dump_json().encode()
            if len(value) > self.settings.max_message_bytes:
                self._fail(FailedDocument(
                    job_id=doc.job_id, batch_id=doc.batch_id, doc_id=doc.doc_id,
                    stage=self.stage,
                    error=f"output of {len(value)} bytes exceeds the message limit of "
                    f"{self.settings.max_message_bytes} (EVENTPIPE_MAX_MESSAGE_BYTES)"))
                continue
            self._send(self.target, f"{doc.job_id}/{doc.doc_id}", value)
            DOCUMENTS_PROCESSED.labels(self.stage.value).inc()

    def run(self) -> None:
        self.control.start_caught_up()
        self.loop.install_signal_handlers()
        try:
            self.loop.run()
        finally:
            self.control.close()

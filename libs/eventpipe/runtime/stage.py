"""Running a pure stage function over a work topic. A stage is `process(docs) -> results`:
one result per document, either the document with the stage's output filled in, or the
exception that made it fail. It knows nothing of Kafka."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence

from confluent_kafka import Message
from pydantic import ValidationError

from eventpipe.control.view import ControlView
from eventpipe.errors import NewerSchemaVersion as NewerSchemaVersion
from eventpipe.kafka.topics import Topics
from eventpipe.kafka.tracing import NO_SPAN, DocSpan, Headers, Tracing, record_headers
from eventpipe.models import (
    SCHEMA_VERSION,
    DocumentMessage,
    FailedDocument,
    FailureClass,
    Stage,
    utc_now,
)
from eventpipe.runtime.idle import IdleRelease
from eventpipe.runtime.kills import KillGuard, kills_dir
from eventpipe.runtime.loop import ConsumeLoop
from eventpipe.runtime.metrics import (
    DOCUMENTS_FAILED,
    DOCUMENTS_PROCESSED,
    DOCUMENTS_RETRIED,
    STAGE_SECONDS,
)
from eventpipe.runtime.retry_topic import RetryScheduler, classify, next_retry
from eventpipe.settings import Settings

log = logging.getLogger(__name__)

StageResult = DocumentMessage | Exception
ProcessBatch = Callable[[Sequence[DocumentMessage]], list[StageResult]]


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def schema_version_of(value: bytes | None) -> int | None:
    try:
        data = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    version = data.get("schema_version") if isinstance(data, dict) else None
    return version if isinstance(version, int) else None


def check_version(version: int | None) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise NewerSchemaVersion(
            f"message schema version {version} is newer than this service reads "
            f"({SCHEMA_VERSION}): upgrade eventpipe, then replay the document")


def decode_document(value: bytes | None) -> DocumentMessage:
    if value is None:
        raise ValueError("empty message")
    try:
        doc = DocumentMessage.model_validate_json(value)
    except ValidationError:
        check_version(schema_version_of(value))  # the clearer reason, when it is the cause
        raise
    check_version(doc.schema_version)
    return doc


def failure_of(doc: DocumentMessage, stage: Stage, error: str, payload: DocumentMessage | None,
               replay_max_failures: int, *, failure_class: FailureClass = FailureClass.PERMANENT,
               attempts: int = 1, first_failed_at: str | None = None) -> FailedDocument:
    """The failure record of a document: with its payload (the stage's input) so that it can
    be replayed, and quarantined once it failed after `replay_max_failures` replays."""
    quarantined = doc.replays >= replay_max_failures
    if quarantined:
        error = f"quarantined: failed again after {doc.replays} replays: {error}"
    now = utc_now()
    return FailedDocument(job_id=doc.job_id, batch_id=doc.batch_id, doc_id=doc.doc_id,
                          stage=stage, error=error[:2000], at=now, failure_class=failure_class,
                          attempts=attempts, first_failed_at=first_failed_at or now,
                          replays=doc.replays, quarantined=quarantined, payload=payload)


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
    reason = str(exc.errors()[0] if isinstance(exc, ValidationError) else exc)
    if not isinstance(exc, NewerSchemaVersion):
        reason = f"invalid message on the work topic: {reason}"
    return FailedDocument(
        job_id=ids.get("job_id", "unknown"),
        batch_id=ids.get("batch_id", "unknown"),
        doc_id=ids.get("doc_id", "unknown"),
        stage=stage,
        error=str(reason)[:2000],
    )


def kill_key(doc: DocumentMessage) -> str:
    """A document's strikes are its own per replay: a replayed one starts with none."""
    return f"{doc.job_id}/{doc.doc_id}/{doc.replays}"


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
        model: str | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`release` gives back what the stage can load again (its model) while it idles;
        see eventpipe.runtime.idle. `model` names what makes this stage's output: every
        document it passes on carries it in `models`."""
        self.settings = settings
        self.tracing = tracing or Tracing(settings, stage.value)
        self.stage = stage
        self.model = model
        self.target = target
        topics = Topics.from_settings(settings)
        self.failed_topic = topics.failed
        self.retry_topic = topics.retry(stage.value)
        self.process = process
        self.control = ControlView(settings)
        self.retries = RetryScheduler(settings, stage.value, self.retry_topic, source)
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
        self.kills = KillGuard(kills_dir(settings.data_dir, stage.value))

    def _tick(self) -> None:
        self.idle.tick()
        if not self.retries.is_alive():
            # Its documents wait on the retry topic; a restarted service sends them back.
            raise RuntimeError("the retry scheduler stopped; see the log above")

    def _send(self, topic: str, doc_key: str, value: bytes,
              span: DocSpan = NO_SPAN) -> None:
        self.loop.produce(topic, doc_key.encode(), value, span.headers)

    def _fail(self, failure: FailedDocument, span: DocSpan = NO_SPAN) -> None:
        DOCUMENTS_FAILED.labels(self.stage.value).inc()
        log.warning(
            "document failed",
            extra={"job_id": failure.job_id, "doc_id": failure.doc_id, "reason": failure.error,
                   "class": failure.failure_class.value, "attempts": failure.attempts},
        )
        value = failure.model_dump_json().encode()
        if len(value) > self.settings.max_message_bytes:
            # The failure must get through; a payload this large cannot travel with it.
            failure.payload = None
            failure.error = (failure.error + " (payload not kept: larger than "
                             "EVENTPIPE_MAX_MESSAGE_BYTES)")[-2000:]
            value = failure.model_dump_json().encode()
        self._send(self.failed_topic, f"{failure.job_id}/{failure.doc_id}", value, span)

    def _failed(self, doc: DocumentMessage, raw: bytes, exc: Exception | str,
                span: DocSpan = NO_SPAN) -> None:
        """A document failed here: transient failures wait on the retry topic while the
        budget lasts; the rest are failure records with the stage's input as payload."""
        error = exc if isinstance(exc, str) else describe(exc)
        payload = DocumentMessage.model_validate_json(raw)  # the input, before any change
        s = self.settings
        if isinstance(exc, Exception) and classify(exc) is FailureClass.TRANSIENT:
            decision = next_retry(s, self.stage.value, payload.retry, error)
            if decision.retry is not None:
                payload.retry = decision.retry
                DOCUMENTS_RETRIED.labels(self.stage.value).inc()
                log.info("transient failure; retrying later", extra={
                    "job_id": doc.job_id, "doc_id": doc.doc_id, "attempt": decision.attempts,
                    "not_before_ms": decision.retry.not_before_ms, "reason": error})
                self._send(self.retry_topic, f"{doc.job_id}/{doc.doc_id}",
                           payload.model_dump_json().encode(), span)
                return
            payload.retry = None
            self._fail(failure_of(doc, self.stage, error, payload, s.replay_max_failures,
                                  failure_class=FailureClass.TRANSIENT,
                                  attempts=decision.attempts,
                                  first_failed_at=decision.first_failed_at), span)
            return
        payload.retry = None
        self._fail(failure_of(doc, self.stage, error, payload, s.replay_max_failures), span)

    def _poisoned(self, msg: Message, exc: Exception) -> None:
        failure = failure_for_undecodable(msg.value(), self.stage, exc)
        failure.error = f"handling the message raised {describe(exc)}"
        self._fail(failure)

    def handle(self, msgs: list[Message]) -> None:
        docs: list[DocumentMessage] = []
        raws: list[bytes] = []
        headers: list[Headers | None] = []
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
            raws.append(msg.value() or b"")
            headers.append(record_headers(msg))
        if not docs:
            return
        self.idle.busy()
        keys = [kill_key(doc) for doc in docs]
        strikes = self.kills.strikes(keys)
        clean: list[int] = []
        for i, key in enumerate(keys):
            kills = strikes.get(key, 0)
            if kills >= self.settings.max_stage_kills:
                # It would only kill the process again, and stop its partition for good.
                reason = (f"killed the {self.stage.value} process {kills} times (out of "
                          "memory, or a crash in native code); not processed again")
                span = self._span(docs[i], headers[i])
                self._failed(docs[i], raws[i], reason, span)
                span.end(reason)
            elif kills:
                # In flight when a worker died: alone, so that only the guilty one dies again.
                log.warning("processing alone: in flight when a worker died",
                            extra={"job_id": docs[i].job_id, "doc_id": docs[i].doc_id})
                self._process([docs[i]], [raws[i]], [headers[i]], [key], suspect=True)
            else:
                clean.append(i)
        if clean:
            self._process([docs[i] for i in clean], [raws[i] for i in clean],
                          [headers[i] for i in clean], [keys[i] for i in clean], suspect=False)

    def _span(self, doc: DocumentMessage, headers: Headers | None) -> DocSpan:
        return self.tracing.start(self.stage.value, headers, **{
            "eventpipe.job_id": doc.job_id, "eventpipe.doc_id": doc.doc_id})

    def _process(self, docs: list[DocumentMessage], raws: list[bytes],
                 headers: list[Headers | None], keys: list[str], suspect: bool) -> None:
        # One span per document, over the batch call that processed it.
        spans = [self._span(d, h) for d, h in zip(docs, headers, strict=True)]
        started = time.perf_counter()
        with self.kills.in_flight(keys):
            self._test_kill(docs)
            results = process_isolated(self.process, docs)
        if suspect:
            self.kills.forget(keys)  # it did not kill the process this time
        per_doc_ms = (time.perf_counter() - started) * 1000 / len(docs)
        for doc, raw, result, span in zip(docs, raws, results, spans, strict=True):
            try:
                self._emit(doc, raw, result, span, per_doc_ms)
            finally:
                span.end(describe(result) if isinstance(result, Exception) else None)

    def _emit(self, doc: DocumentMessage, raw: bytes, result: StageResult, span: DocSpan,
              per_doc_ms: float) -> None:
        """Send one document's outcome: its result to the next stage, or its failure."""
        if isinstance(result, Exception):
            self._failed(doc, raw, result, span)
            return
        result.retry = None  # done here: the next stage starts with a fresh budget
        if self.model is not None:
            result.models[self.stage.value] = self.model
        result.timings_ms[self.stage.value] = round(per_doc_ms, 3)
        STAGE_SECONDS.labels(self.stage.value).observe(per_doc_ms / 1000)
        value = result.model_dump_json().encode()
        if len(value) > self.settings.max_message_bytes:
            self._failed(doc, raw,
                         f"output of {len(value)} bytes exceeds the message limit of "
                         f"{self.settings.max_message_bytes} (EVENTPIPE_MAX_MESSAGE_BYTES)",
                         span)
            return
        self._send(self.target, f"{doc.job_id}/{doc.doc_id}", value, span)
        DOCUMENTS_PROCESSED.labels(self.stage.value).inc()

    def _test_kill(self, docs: list[DocumentMessage]) -> None:
        """The test hook of EVENTPIPE_TEST_KILL_DOC_ID: die as the OOM killer would kill."""
        target = self.settings.armed_kill_doc_id
        if target is not None and any(doc.doc_id == target for doc in docs):
            log.warning("test hook: killing this process", extra={"doc_id": target})
            os.kill(os.getpid(), signal.SIGKILL)

    def run(self) -> None:
        self.kills.open()
        self.control.start_caught_up()
        self.retries.start()
        self.loop.install_signal_handlers()
        try:
            self.loop.run()
        finally:
            self.retries.close()
            self.control.close()
            self.kills.close()

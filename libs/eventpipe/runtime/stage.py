"""Running pure stage functions over work topics. A stage is `process(docs) -> results`:
one result per document, either the document with the stage's output filled in, or the
exception that made it fail. It knows nothing of Kafka.

A runner runs one stage, or a chain of stages in one process (`then`): a document read from
the first stage's topic goes through every stage of the chain and leaves on the last one's
topic, with no work topic and no serialization between them (as a stream processor chains
operators). A document read from a later stage's topic (a replay, a retry, a reprocess from
that stage) enters the chain there. A failure is the failing stage's, with that stage's
input as its payload, whatever the layout."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Step:
    """A stage of a chain: the topic a document enters it from, and its function."""

    stage: Stage
    source: str
    process: ProcessBatch
    model: str | None = None


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
        *,
        then: Sequence[Step] = (),
        fused: ProcessBatch | None = None,
        service: str | None = None,
    ) -> None:
        """`release` gives back what the stage can load again (its model) while it idles;
        see eventpipe.runtime.idle. `model` names what makes this stage's output: every
        document it passes on carries it in `models`. `then`: the stages chained after this
        one, in order; `target` is the last one's output topic. `fused`: one function that
        does the first two stages in one call, used for documents that enter at the first
        (its results must equal running the two in turn). `service`: the process's name
        (its ready file, log and kill records), the stage's by default; the consumer group
        is always the first stage's, so that either layout goes on from the same offsets."""
        self.settings = settings
        self.service = service or stage.value
        self.tracing = tracing or Tracing(settings, self.service)
        self.steps = [Step(stage, source, process, model), *then]
        self.fused = fused if self.steps[1:] else None
        self.entry = {step.source: i for i, step in enumerate(self.steps)}
        self.target = target
        topics = Topics.from_settings(settings)
        self.failed_topic = topics.failed
        self.retries = {step.stage: RetryScheduler(settings, step.stage.value,
                                                   topics.retry(step.stage.value), step.source)
                        for step in self.steps}
        self.control = ControlView(settings)
        # A chain reads several topics: cooperative-sticky evens out the number of partitions
        # over all of them (one worker got every partition of the first topic, on Apache
        # Kafka), range splits each topic evenly among the workers.
        loop_settings = (settings.model_copy(update={"partition_assignment_strategy": "range"})
                         if self.steps[1:] else settings)
        self.loop = ConsumeLoop(
            loop_settings,
            service=self.service,
            topics=list(self.entry),
            group_id=f"{settings.topic_prefix}-{stage.value}",
            handle=self.handle,
            on_tick=self._tick,
            on_poison=self._poisoned,
        )
        self.idle = IdleRelease(settings.idle_release_s, release)
        self.kills = KillGuard(kills_dir(settings.data_dir, self.service))

    def _tick(self) -> None:
        self.idle.tick()
        if not all(retries.is_alive() for retries in self.retries.values()):
            # Its documents wait on the retry topic; a restarted service sends them back.
            raise RuntimeError("the retry scheduler stopped; see the log above")

    def _send(self, topic: str, doc_key: str, value: bytes,
              span: DocSpan = NO_SPAN) -> None:
        self.loop.produce(topic, doc_key.encode(), value, span.headers)

    def _fail(self, failure: FailedDocument, span: DocSpan = NO_SPAN) -> None:
        DOCUMENTS_FAILED.labels(failure.stage.value).inc()
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

    def _failed(self, doc: DocumentMessage, raw: bytes, exc: Exception | str, span: DocSpan,
                stage: Stage) -> None:
        """A document failed at `stage`, `raw` being that stage's input: transient failures
        wait on the stage's retry topic while the budget lasts; the rest are failure records
        with the input as payload."""
        error = exc if isinstance(exc, str) else describe(exc)
        payload = DocumentMessage.model_validate_json(raw)  # the input, before any change
        s = self.settings
        if isinstance(exc, Exception) and classify(exc) is FailureClass.TRANSIENT:
            decision = next_retry(s, stage.value, payload.retry, error)
            if decision.retry is not None:
                payload.retry = decision.retry
                DOCUMENTS_RETRIED.labels(stage.value).inc()
                log.info("transient failure; retrying later", extra={
                    "job_id": doc.job_id, "doc_id": doc.doc_id, "attempt": decision.attempts,
                    "not_before_ms": decision.retry.not_before_ms, "reason": error})
                self._send(self.retries[stage].retry_topic, f"{doc.job_id}/{doc.doc_id}",
                           payload.model_dump_json().encode(), span)
                return
            payload.retry = None
            self._fail(failure_of(doc, stage, error, payload, s.replay_max_failures,
                                  failure_class=FailureClass.TRANSIENT,
                                  attempts=decision.attempts,
                                  first_failed_at=decision.first_failed_at), span)
            return
        payload.retry = None
        self._fail(failure_of(doc, stage, error, payload, s.replay_max_failures), span)

    def _poisoned(self, msg: Message, exc: Exception) -> None:
        failure = failure_for_undecodable(msg.value(), self.steps[self._entry_of(msg)].stage,
                                          exc)
        failure.error = f"handling the message raised {describe(exc)}"
        self._fail(failure)

    def _entry_of(self, msg: Message) -> int:
        """The position in the chain of the stage whose topic the message came from."""
        return self.entry.get(msg.topic() or "", 0)

    def handle(self, msgs: list[Message]) -> None:
        # Per entry stage, in the order consumed.
        entries: dict[int, list[tuple[DocumentMessage, bytes, Headers | None]]] = {}
        for msg in msgs:
            entry = self._entry_of(msg)
            try:
                doc = decode_document(msg.value())
            except (ValueError, ValidationError) as exc:
                self._fail(failure_for_undecodable(msg.value(), self.steps[entry].stage, exc))
                continue
            if self.control.blocks(doc.job_id, doc.epoch_ms):
                # Paused or stopped: not started here; resume re-sends what is unprocessed.
                log.info("skipped: job paused or stopped",
                         extra={"job_id": doc.job_id, "doc_id": doc.doc_id})
                continue
            entries.setdefault(entry, []).append((doc, msg.value() or b"", record_headers(msg)))
        for entry, batch in sorted(entries.items()):
            self._handle_entry(entry, batch)

    def _handle_entry(self, entry: int,
                      batch: list[tuple[DocumentMessage, bytes, Headers | None]]) -> None:
        self.idle.busy()
        stage = self.steps[entry].stage
        keys = [kill_key(doc) for doc, _, _ in batch]
        strikes = self.kills.strikes(keys)
        clean: list[int] = []
        for i, key in enumerate(keys):
            doc, raw, headers = batch[i]
            kills = strikes.get(key, 0)
            if kills >= self.settings.max_stage_kills:
                # It would only kill the process again, and stop its partition for good.
                reason = (f"killed the {self.service} process {kills} times (out of "
                          "memory, or a crash in native code); not processed again")
                span = self._span(doc, headers)
                self._failed(doc, raw, reason, span, stage)
                span.end(reason)
            elif kills:
                # In flight when a worker died: alone, so that only the guilty one dies again.
                log.warning("processing alone: in flight when a worker died",
                            extra={"job_id": doc.job_id, "doc_id": doc.doc_id})
                self._process(entry, [batch[i]], [key], suspect=True)
            else:
                clean.append(i)
        if clean:
            self._process(entry, [batch[i] for i in clean], [keys[i] for i in clean],
                          suspect=False)

    def _span(self, doc: DocumentMessage, headers: Headers | None) -> DocSpan:
        return self.tracing.start(self.service, headers, **{
            "eventpipe.job_id": doc.job_id, "eventpipe.doc_id": doc.doc_id})

    def _process(self, entry: int, batch: list[tuple[DocumentMessage, bytes, Headers | None]],
                 keys: list[str], suspect: bool) -> None:
        # One span per document, over the calls that processed it.
        docs = [doc for doc, _, _ in batch]
        raws = [raw for _, raw, _ in batch]
        spans = [self._span(doc, headers) for doc, _, headers in batch]
        outcome: dict[int, str | None] = {}  # position -> why it failed (None: it went on)
        with self.kills.in_flight(keys):
            self._test_kill(docs)
            self._chain(entry, docs, raws, spans, list(range(len(docs))), outcome, fuse=True)
        if suspect:
            self.kills.forget(keys)  # it did not kill the process this time
        for p, span in enumerate(spans):
            span.end(outcome.get(p))

    def _chain(self, i: int, docs: list[DocumentMessage], raws: list[bytes],
               spans: list[DocSpan], at: list[int], outcome: dict[int, str | None],
               fuse: bool) -> None:
        """Run the documents at positions `at` through the stages from the i-th on, then
        send them on. A document the fused call fails goes through the two stages one at a
        time, so that its failure names the stage it failed in, with that stage's input."""
        while at and i < len(self.steps):
            step = self.steps[i]
            process, width = step.process, 1
            if fuse and i == 0 and self.fused is not None:
                process, width = self.fused, 2
            stages = [s.stage for s in self.steps[i:i + width]]
            started = time.perf_counter()
            results = process_isolated(process, [docs[p] for p in at])
            per_doc_ms = (time.perf_counter() - started) * 1000 / len(at)
            going: list[int] = []
            refused: list[int] = []
            for p, result in zip(at, results, strict=True):
                if isinstance(result, Exception):
                    if width > 1:
                        refused.append(p)
                        continue
                    self._failed(docs[p], raws[p], result, spans[p], step.stage)
                    outcome[p] = describe(result)
                    continue
                self._stamp(result, stages, per_doc_ms)
                docs[p] = result
                going.append(p)
            if refused:
                for p in refused:  # as it came, not as the failed call left it
                    docs[p] = DocumentMessage.model_validate_json(raws[p])
                self._chain(i, docs, raws, spans, refused, outcome, fuse=False)
            at, i = going, i + width
            if i < len(self.steps):
                # The next stage's input, kept as it would travel: a failure there is
                # recorded with it, as that stage's own service would record it.
                for p in at:
                    raws[p] = docs[p].model_dump_json().encode()
        for p in at:
            outcome[p] = self._emit(docs[p], raws[p], spans[p])

    def _stamp(self, result: DocumentMessage, stages: list[Stage], per_doc_ms: float) -> None:
        """Record on a document what made its outputs and how long it took per document:
        two fused stages under one timing named by both ("ner+dp")."""
        result.retry = None  # done here: the next stage starts with a fresh budget
        for step in self.steps:
            if step.stage in stages and step.model is not None:
                result.models[step.stage.value] = step.model
        name = "+".join(stage.value for stage in stages)
        result.timings_ms[name] = round(per_doc_ms, 3)
        for stage in stages:
            STAGE_SECONDS.labels(stage.value).observe(per_doc_ms / 1000 / len(stages))
            DOCUMENTS_PROCESSED.labels(stage.value).inc()

    def _emit(self, result: DocumentMessage, raw: bytes, span: DocSpan) -> str | None:
        """Send a document that went through the chain on to the target topic; `raw` is the
        last stage's input. Returns why it failed, if it did."""
        value = result.model_dump_json().encode()
        if len(value) > self.settings.max_message_bytes:
            reason = (f"output of {len(value)} bytes exceeds the message limit of "
                      f"{self.settings.max_message_bytes} (EVENTPIPE_MAX_MESSAGE_BYTES)")
            self._failed(result, raw, reason, span, self.steps[-1].stage)
            return reason
        self._send(self.target, f"{result.job_id}/{result.doc_id}", value, span)
        return None

    def _test_kill(self, docs: list[DocumentMessage]) -> None:
        """The test hook of EVENTPIPE_TEST_KILL_DOC_ID: die as the OOM killer would kill."""
        target = self.settings.armed_kill_doc_id
        if target is not None and any(doc.doc_id == target for doc in docs):
            log.warning("test hook: killing this process", extra={"doc_id": target})
            os.kill(os.getpid(), signal.SIGKILL)

    def open(self) -> None:
        """Start what runs beside the consume loop: kill records, the control view, the
        retry schedulers (one per stage)."""
        self.kills.open()
        self.control.start_caught_up()
        for retries in self.retries.values():
            retries.start()

    def close(self) -> None:
        for retries in self.retries.values():
            retries.close()
        self.control.close()
        self.kills.close()

    def run(self) -> None:
        self.open()
        self.loop.install_signal_handlers()
        try:
            self.loop.run()
        finally:
            self.close()

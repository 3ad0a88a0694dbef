"""Transient failures wait on a retry topic, not in the stage.

A stage that meets a transient failure (a model server down, 429/5xx, a timeout) puts the
document, stamped with when it may be tried again, on its own retry topic and goes on with the
next one: the main topic is never blocked behind a document that waits. `RetryScheduler`, a
thread in every stage process, reads that topic, holds each document until its time (sleeping
on the consumer until the earliest is due: no busy loop), and sends it back to the stage's
input topic. Offsets are committed only up to the first document not yet sent back, so a
crash re-sends, never loses; a document sent back twice is absorbed downstream like any
redelivery (keyed, idempotent writes)."""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from eventpipe.kafka.clients import make_consumer, make_producer, produce
from eventpipe.kafka.tracing import Headers, record_headers
from eventpipe.models import FailureClass, RetryState, utc_now
from eventpipe.settings import Settings

log = logging.getLogger(__name__)

# Documents held in memory at most; beyond that the topic is paused until some are sent back.
MAX_HELD = 10_000


def classify(exc: BaseException) -> FailureClass:
    """Transient: the backend, not the document (exceptions that say `transient = True`, time-
    outs, refused connections). Everything else fails the same way on the same input."""
    if getattr(exc, "transient", False) or isinstance(exc, (TimeoutError, ConnectionError)):
        return FailureClass.TRANSIENT
    return FailureClass.PERMANENT


@dataclass(frozen=True)
class RetryDecision:
    retry: RetryState | None  # set: wait on the retry topic; None: the attempts are spent
    attempts: int
    first_failed_at: str


def next_retry(settings: Settings, stage: str, previous: RetryState | None, error: str,
               now_ms: int | None = None) -> RetryDecision:
    """Another attempt, or not, for a document that just failed transiently at `stage`: up to
    `retry_max_attempts` attempts (the first included) within `retry_max_seconds` of its first
    failure there, waiting `retry_backoff_s`, doubling, at most `retry_max_backoff_s`."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if previous is not None and previous.stage == stage:
        attempts = previous.attempts + 1
        first_ms, first_at = previous.first_failed_ms, previous.first_failed_at
    else:
        attempts, first_ms, first_at = 1, now_ms, utc_now()
    left_s = settings.retry_max_seconds - (now_ms - first_ms) / 1000
    # `attempts` failed so far: one more is allowed while fewer than the maximum were made.
    if attempts >= settings.retry_max_attempts or left_s <= 0:
        return RetryDecision(None, attempts, first_at)
    delay_s = min(settings.retry_backoff_s * 2 ** (attempts - 1),
                  settings.retry_max_backoff_s, left_s)
    state = RetryState(stage=stage, attempts=attempts, first_failed_at=first_at,
                       first_failed_ms=first_ms, not_before_ms=now_ms + int(delay_s * 1000),
                       error=error[:2000])
    return RetryDecision(state, attempts, first_at)


def due_ms(value: bytes | None) -> int:
    """When a held document may go back; 0 (at once) when the message does not say: the stage
    then decides what it is."""
    try:
        data = json.loads(value or b"")
        return int(data["retry"]["not_before_ms"])
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return 0


Held = tuple[int, int, int, bytes | None, bytes | None, Headers | None]


class RetryScheduler(threading.Thread):
    def __init__(self, settings: Settings, stage: str, retry_topic: str, target_topic: str,
                 ) -> None:
        super().__init__(name=f"retry-{stage}", daemon=True)
        self.retry_topic = retry_topic
        self.target_topic = target_topic
        # Documents here wait seconds anyway: a long fetch wait spares the broker idle polls.
        self.consumer = make_consumer(settings, f"{settings.topic_prefix}-retry-{stage}",
                                      **{"fetch.wait.max.ms": 1000})
        self.producer = make_producer(settings)
        self._stopping = threading.Event()
        # (due, partition, offset, key, value, headers): a trace context goes back with it.
        self._held: list[Held] = []
        self._outstanding: dict[int, set[int]] = {}  # partition -> offsets not yet sent back
        self._next: dict[int, int] = {}  # partition -> offset after the last one read
        self._paused = False
        self._errors: list[str] = []

    def _on_revoke(self, _consumer: object, partitions: list[TopicPartition]) -> None:
        # Their uncommitted documents go to the partitions' next owner from the last commit.
        gone = {p.partition for p in partitions}
        self._held = [h for h in self._held if h[1] not in gone]
        heapq.heapify(self._held)
        for p in gone:
            self._outstanding.pop(p, None)
            self._next.pop(p, None)

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def run(self) -> None:
        self.consumer.subscribe([self.retry_topic], on_revoke=self._on_revoke)
        try:
            while not self._stopping.is_set():
                self._step()
        except Exception:
            log.exception("retry scheduler failed; its documents are re-read at the next start")
        finally:
            self.producer.flush(10)
            self.consumer.close()

    def _step(self) -> None:
        now = int(time.time() * 1000)
        wait_s = 0.5 if not self._held else min(0.5, max(0.0, (self._held[0][0] - now) / 1000))
        self._throttle()
        for msg in self.consumer.consume(num_messages=500, timeout=max(wait_s, 0.01)):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("retry topic read error", extra={"error": str(err)})
                continue
            partition, offset = msg.partition() or 0, msg.offset() or 0
            held: Held = (due_ms(msg.value()), partition, offset, msg.key(), msg.value(),
                          record_headers(msg))
            heapq.heappush(self._held, held)
            self._outstanding.setdefault(partition, set()).add(offset)
            self._next[partition] = offset + 1
        self._send_due()

    def _throttle(self) -> None:
        full = len(self._held) >= MAX_HELD
        if full != self._paused:
            assignment = self.consumer.assignment()
            (self.consumer.pause if full else self.consumer.resume)(assignment)
            self._paused = full

    def _send_due(self) -> None:
        now = int(time.time() * 1000)
        sent: list[tuple[int, int]] = []
        while self._held and self._held[0][0] <= now:
            _, partition, offset, key, value, headers = heapq.heappop(self._held)
            produce(self.producer, self.target_topic, key or b"", value or b"",
                    self._on_delivery, headers=headers)
            sent.append((partition, offset))
        if not sent:
            return
        if self.producer.flush(30) or self._errors:
            errors, self._errors = self._errors, []
            # Not acknowledged: hold nothing back, commit nothing; the next start re-reads.
            raise RuntimeError(f"documents not sent back from the retry topic: {errors[:1]}")
        for partition, offset in sent:
            self._outstanding.get(partition, set()).discard(offset)
        offsets = [
            TopicPartition(self.retry_topic, p,
                           min(self._outstanding[p]) if self._outstanding.get(p) else nxt)
            for p, nxt in self._next.items()
        ]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("retry topic commit failed", extra={"error": str(exc)})
        log.info("documents sent back for another attempt",
                 extra={"count": len(sent), "topic": self.target_topic})

    def close(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=10)

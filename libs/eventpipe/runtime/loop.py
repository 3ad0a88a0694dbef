"""The consume loop every service shares: consume a batch, handle it, wait until what it
produced is acknowledged, then commit. Delivery is at-least-once; results are made exactly
once downstream by keyed, idempotent writes."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from eventpipe.errors import BackendUnavailable, CheckpointWriteError, StopRequested
from eventpipe.errors import DeliveryError as DeliveryError
from eventpipe.kafka.clients import make_consumer, make_producer, produce
from eventpipe.runtime.health import HEARTBEAT, READINESS
from eventpipe.runtime.metrics import CONSUMER_LAG
from eventpipe.runtime.service import install_stop_handlers
from eventpipe.settings import Settings
from eventpipe.storage.retry import retry_unavailable

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Message]], None]
PoisonHandler = Callable[[Message, Exception], None]
T = TypeVar("T")

# Kafka errors that say nothing about the record in hand: the connection, not the data.
_TRANSIENT_KAFKA = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
                    KafkaError.REQUEST_TIMED_OUT, KafkaError._MSG_TIMED_OUT}


def is_transient(exc: BaseException) -> bool:
    """Whether an exception is about the system (broker, backend, shutdown) rather than the
    record being handled: such an exception stops the service, whose batch is then
    redelivered, instead of failing records that are fine."""
    if isinstance(exc, StopRequested | DeliveryError | CheckpointWriteError |
                  BackendUnavailable):
        return True
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        err: KafkaError = exc.args[0]
        return bool(err.retriable()) or err.code() in _TRANSIENT_KAFKA
    return False


def log_poison(msg: Message, exc: Exception) -> None:
    log.error("record skipped: handling it raised", extra={
        "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
        "reason": f"{type(exc).__name__}: {exc}"[:2000]})


def ready_file(data_dir: Path, service: str) -> Path:
    return data_dir / "run" / f"{service}-{os.getpid()}.ready"


FIRST_BATCH = 8


class ConsumeLoop:
    def __init__(
        self,
        settings: Settings,
        *,
        service: str,
        topics: list[str],
        group_id: str,
        handle: BatchHandler,
        producer: Producer | None = None,
        on_tick: Callable[[], None] | None = None,
        stop_event: threading.Event | None = None,
        on_poison: PoisonHandler = log_poison,
    ) -> None:
        self.settings = settings
        self.service = service
        self.topics = topics
        self.handle = handle
        self.on_poison = on_poison
        self.on_tick = on_tick
        self.producer = producer or make_producer(settings)
        self.consumer: Consumer = make_consumer(settings, group_id, error_cb=self._on_error)
        self._next_lag_at = 0.0
        self._batch_size = FIRST_BATCH
        self.stop_event = stop_event or threading.Event()
        self._delivery_errors: list[str] = []
        self._ready_path = ready_file(settings.data_dir, service)

    def on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self._delivery_errors.append(str(err))

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            READINESS.set("kafka: all brokers are down")
        log.warning("kafka error", extra={"error": str(err)})

    def _on_revoke(self, _consumer: Consumer, partitions: list[Any]) -> None:
        log.info("partitions revoked",
                 extra={"partitions": [f"{p.topic}:{p.partition}" for p in partitions]})
        # Another consumer reports these partitions' lag now: stop exporting a stale value.
        for tp in partitions:
            with contextlib.suppress(KeyError):  # never measured here
                CONSUMER_LAG.remove(tp.topic, str(tp.partition))

    def _on_assign(self, _consumer: Consumer, partitions: list[Any]) -> None:
        # Incremental (cooperative-sticky): what this member gained; revoked: what it lost.
        log.info("partitions assigned",
                 extra={"partitions": [f"{p.topic}:{p.partition}" for p in partitions]})
        READINESS.set(None)
        self._next_lag_at = 0.0  # measure the new assignment's lag at the next step
        self._ready_path.parent.mkdir(parents=True, exist_ok=True)
        self._ready_path.touch()

    def produce(self, topic: str, key: bytes, value: bytes,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        produce(self.producer, topic, key, value, self.on_delivery, headers=headers)

    def flush(self, timeout_s: float = 60.0) -> None:
        if self.producer.flush(timeout_s):
            raise DeliveryError("records not acknowledged by the broker in time")
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise DeliveryError(f"{len(errors)} records not delivered: {errors[0]}")

    def step(self) -> int:
        HEARTBEAT.beat()
        msgs = self.consumer.consume(
            num_messages=min(self._batch_size, self.settings.stage_batch_size),
            timeout=self.settings.poll_timeout_s,
        )
        # Slow start: after an idle poll the next batches are small and double up to
        # stage_batch_size, so the next stage gets its first documents after a few, not
        # after a whole batch (on 2 cores DP waited ~1 s for NER's first 64).
        self._batch_size = (min(2 * self._batch_size, self.settings.stage_batch_size)
                            if msgs else FIRST_BATCH)
        good = []
        for msg in msgs:
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("consume error", extra={"error": str(err)})
        if time.monotonic() >= self._next_lag_at:
            self._next_lag_at = time.monotonic() + 1.0
            self.record_lag()
        if not good:
            return 0
        READINESS.set(None)  # records arrive: connected
        self.handle_isolated(good)
        self.flush()
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:
            # After a rebalance the batch is redelivered elsewhere; keyed writes absorb it.
            log.warning("commit failed", extra={"error": str(exc)})
        return len(good)

    def handle_isolated(self, msgs: list[Message]) -> None:
        """Handle a batch; when handling raises for a reason in the records (not the broker or
        a backend), handle them one at a time, and turn each record that raises again into
        its failure (`on_poison`), so the loop commits past it and keeps running: a poison
        pill never takes the service down, nor again after every restart."""
        try:
            self.handle(msgs)
            return
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(msgs) == 1:
                self._poisoned(msgs[0], exc)
                return
            log.warning("batch handling raised; handling its records one by one",
                        extra={"size": len(msgs), "reason": f"{type(exc).__name__}: {exc}"[:500]})
        for msg in msgs:
            try:
                self.handle([msg])
            except Exception as exc:
                if is_transient(exc):
                    raise
                self._poisoned(msg, exc)

    def _poisoned(self, msg: Message, exc: Exception) -> None:
        log_poison(msg, exc)
        if self.on_poison is not log_poison:
            self.on_poison(msg, exc)

    def retry_backend(self, what: str, call: Callable[[], T]) -> T:
        """Retry a call to an unreachable backend with backoff. Meanwhile the assignment is
        paused and the group served (heartbeats, rebalances), so the consumer keeps its
        partitions and fetches nothing; the batch in hand is committed only once saved."""
        paused = False

        def wait(seconds: float) -> None:
            nonlocal paused
            HEARTBEAT.beat()  # waiting for a backend on purpose is not hanging
            if not paused:
                self.consumer.pause(self.consumer.assignment())
                paused = True
            msg = self.consumer.poll(seconds)
            if msg is not None and msg.error() is None:
                # Cannot happen with every partition paused; never drop one silently.
                raise RuntimeError("a message arrived while the consumer was paused")

        try:
            return retry_unavailable(what, call, self.stop_event,
                                     self.settings.backend_retry_max_s, wait)
        finally:
            if paused:
                self.consumer.resume(self.consumer.assignment())

    def record_lag(self) -> None:
        """Consumer lag per assigned partition, for /metrics. Uses the high watermark the last
        fetch response carried: a query to the broker waits behind the fetch in flight on the
        same connection (measured ~500 ms per partition against the embedded broker, stalling
        every stage, and its answer was wrong there). A partition with nothing consumed yet
        counts from its committed offset, or from its start."""
        try:
            for tp in self.consumer.position(self.consumer.assignment()):
                low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    continue  # no fetch response yet
                position = tp.offset
                if position < 0:
                    committed = self.consumer.committed([tp], timeout=1.0)[0].offset
                    position = committed if committed >= 0 else max(low, 0)
                CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - position))
        except KafkaException as exc:
            log.debug("lag not measured", extra={"error": str(exc)})

    def install_signal_handlers(self) -> None:
        install_stop_handlers(self.stop_event)

    def run(self) -> None:
        self.consumer.subscribe(self.topics, on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_revoke)
        log.info("consuming", extra={"topics": self.topics})
        try:
            while not self.stop_event.is_set():
                self.step()
                if self.on_tick is not None:
                    self.on_tick()
        except StopRequested as exc:
            # A backend was down, or the handler stopped reading its input, when asked to stop.
            log.info("stopped before the batch was done; it will be redelivered",
                     extra={"reason": str(exc)})
        finally:
            self.flush()
            self.consumer.close()  # leaves the group: partitions move at once
            self._ready_path.unlink(missing_ok=True)
            log.info("stopped")

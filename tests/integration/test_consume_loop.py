"""The shared consume loop on the real broker: batches, commits, and the lag it reports."""

from __future__ import annotations

import time

from confluent_kafka import Message
from confluent_kafka.admin import NewTopic

from eventpipe.kafka.clients import make_admin, make_producer
from eventpipe.runtime.loop import ConsumeLoop
from eventpipe.runtime.metrics import CONSUMER_LAG
from eventpipe.settings import Settings


def lag_of(topic: str, partitions: int) -> float:
    return sum(CONSUMER_LAG.labels(topic, str(p))._value.get() for p in range(partitions))


def test_lag_follows_the_backlog_and_batches_commit_only_when_handled(
        settings: Settings) -> None:
    topic = f"{settings.topic_prefix}.loop"
    admin = make_admin(settings)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(10)
    producer = make_producer(settings)
    for i in range(100):
        producer.produce(topic, key=str(i).encode(), value=str(i).encode())
    assert producer.flush(10) == 0

    settings = settings.model_copy(update={"stage_batch_size": 10})
    seen: list[int] = []

    def handle(msgs: list[Message]) -> None:
        seen.extend(int(m.value() or b"") for m in msgs)

    loop = ConsumeLoop(settings, service="looptest", topics=[topic], group_id="looptest",
                       handle=handle, producer=producer)
    loop.consumer.subscribe([topic])
    deadline = time.monotonic() + 20
    while len(seen) < 30:
        assert time.monotonic() < deadline, f"only {len(seen)} records consumed"
        loop.step()
    # Lag is the high watermark of the last fetch less the position: what is left.
    loop.record_lag()
    assert lag_of(topic, 2) == 100 - len(seen)

    while len(seen) < 100:
        assert time.monotonic() < deadline, f"only {len(seen)} records consumed"
        loop.step()
    loop.record_lag()
    assert lag_of(topic, 2) == 0
    assert sorted(seen) == list(range(100))
    committed = loop.consumer.committed(loop.consumer.assignment(), timeout=10)
    assert sum(tp.offset for tp in committed) == 100
    loop.consumer.close()

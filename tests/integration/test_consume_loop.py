"""The shared consume loop on the real broker: batches, commits, and the lag it reports."""

from __future__ import annotations

import time

from confluent_kafka import Message, Producer
from confluent_kafka.admin import NewTopic

from eventpipe.kafka.clients import make_admin, make_producer
from eventpipe.runtime.loop import FIRST_BATCH, ConsumeLoop
from eventpipe.runtime.metrics import CONSUMER_LAG
from eventpipe.settings import Settings


def lag_of(topic: str, partitions: int) -> float:
    return sum(CONSUMER_LAG.labels(topic, str(p))._value.get() for p in range(partitions))


def new_topic(settings: Settings, name: str, partitions: int) -> tuple[str, Producer]:
    topic = f"{settings.topic_prefix}.{name}"
    admin = make_admin(settings)  # kept until the topic exists: a collected client cancels
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)
    return topic, make_producer(settings)


def send(producer: Producer, topic: str, numbers: range) -> None:
    for i in numbers:
        producer.produce(topic, key=str(i).encode(), value=str(i).encode())
    assert producer.flush(10) == 0


def test_lag_follows_the_backlog_and_batches_commit_only_when_handled(
        settings: Settings) -> None:
    topic, producer = new_topic(settings, "loop", 2)
    send(producer, topic, range(100))

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


def test_batches_start_small_after_idle_and_double_up_to_the_batch_size(
        settings: Settings) -> None:
    topic, producer = new_topic(settings, "slow", 1)
    sizes: list[int] = []
    loop = ConsumeLoop(settings.model_copy(update={"stage_batch_size": 64}), service="slow",
                       topics=[topic], group_id="slowtest", producer=producer,
                       handle=lambda msgs: sizes.append(len(msgs)))
    loop.consumer.subscribe([topic])
    send(producer, topic, range(200))
    deadline = time.monotonic() + 20
    while sum(sizes) < 200:
        assert time.monotonic() < deadline, f"only {sum(sizes)} records consumed"
        loop.step()
    # The next stage gets 8 documents first, not a whole batch; then 16, 32, 64.
    assert sizes[0] <= FIRST_BATCH < max(sizes) <= 64
    assert all(size <= min(64, FIRST_BATCH * 2 ** n) for n, size in enumerate(sizes)), sizes
    while loop.step():  # caught up: an idle poll
        pass
    before = len(sizes)
    send(producer, topic, range(200, 240))
    while sum(sizes) < 240:
        assert time.monotonic() < deadline, f"only {sum(sizes)} records consumed"
        loop.step()
    assert sizes[before] <= FIRST_BATCH, sizes[before:]
    loop.consumer.close()

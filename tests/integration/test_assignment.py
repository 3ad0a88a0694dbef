"""cooperative-sticky, the default assignment strategy, on the real embedded broker: a second
member takes over part of the partitions while the first keeps the rest, and every record is
consumed exactly once across the handover."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.cimpl import NewTopic

from eventpipe.kafka.clients import make_admin, make_consumer, make_producer
from eventpipe.settings import Settings


def partitions(consumer: Consumer) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


def test_cooperative_sticky_moves_only_what_changes_owner(settings: Settings) -> None:
    assert settings.partition_assignment_strategy == "cooperative-sticky"
    topic = f"{settings.topic_prefix}.assign"
    admin = make_admin(settings)  # kept: a collected client cancels its requests
    [future] = admin.create_topics([NewTopic(topic, 4, 1)]).values()
    future.result(30)
    producer = make_producer(settings)
    for i in range(200):
        producer.produce(topic, key=str(i).encode(), value=str(i).encode())
    assert producer.flush(30) == 0

    revoked: dict[str, list[int]] = {"first": [], "second": []}
    seen: dict[bytes, int] = {}

    def member(name: str) -> Consumer:
        consumer = make_consumer(settings, f"{topic}-group")

        def on_revoke(_c: Any, parts: list[Any]) -> None:
            revoked[name] += [p.partition for p in parts]

        consumer.subscribe([topic], on_revoke=on_revoke)
        return consumer

    def poll(*consumers: Consumer) -> None:
        for consumer in consumers:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                value = msg.value()
                assert value is not None
                seen[value] = seen.get(value, 0) + 1
                consumer.commit(msg, asynchronous=False)

    def wait(what: str, done: Any, *consumers: Consumer) -> None:
        deadline = time.monotonic() + 60
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            poll(*consumers)

    first = member("first")
    second = None
    try:
        wait("the first member's assignment", lambda: partitions(first) == {0, 1, 2, 3}, first)
        for _ in range(10):
            poll(first)
        second = member("second")
        wait("the partitions to be shared",
             lambda: partitions(first) and partitions(second)
             and partitions(first) | partitions(second) == {0, 1, 2, 3}
             and not partitions(first) & partitions(second), first, second)
        # Incremental: the first member gave up only what the second now owns.
        assert sorted(revoked["first"]) == sorted(partitions(second))
        wait("every record", lambda: len(seen) == 200, first, second)
        assert set(seen.values()) == {1}
    finally:
        first.close()
        if second is not None:
            second.close()

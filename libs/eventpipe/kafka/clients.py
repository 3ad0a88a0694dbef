"""librdkafka settings for producers, consumers and admin clients, all from Settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from eventpipe.kafka.errors import KafkaSetupError
from eventpipe.settings import Settings


def base_config(settings: Settings) -> dict[str, Any]:
    if not settings.kafka_bootstrap:
        raise KafkaSetupError(
            "no Kafka bootstrap address: set EVENTPIPE_KAFKA_BOOTSTRAP or use `eventpipe run`"
        )
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        conf["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username:
        conf["sasl.username"] = settings.sasl_username
    if settings.sasl_password:
        conf["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_ca_location:
        conf["ssl.ca.location"] = settings.ssl_ca_location
    return conf


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    conf = base_config(settings) | {
        # Idempotence keeps retries from duplicating or reordering records per partition.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.max.bytes": settings.max_message_bytes + 65536,
    }
    return Producer(conf | overrides)


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    conf = base_config(settings) | {
        "group.id": group_id,
        # At-least-once: offsets are committed by hand after the outputs are delivered.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "fetch.wait.max.ms": settings.fetch_wait_max_ms,
        "partition.assignment.strategy": settings.partition_assignment_strategy,
        "fetch.max.bytes": max(52428800, settings.max_message_bytes * 2),
        "max.partition.fetch.bytes": max(1048576, settings.max_message_bytes + 65536),
    }
    return Consumer(conf | overrides)


def make_reader(settings: Settings, **overrides: Any) -> Consumer:
    """A consumer for reading whole topics with assign(): it never joins a group or commits."""
    return make_consumer(settings, group_id="eventpipe-reader-unused", **overrides)


def make_admin(settings: Settings) -> AdminClient:
    return AdminClient(base_config(settings))


def produce(
    producer: Producer,
    topic: str,
    key: bytes,
    value: bytes,
    on_delivery: Callable[..., None],
    partition: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Produce, waiting for room when the local queue is full instead of failing."""
    kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
    if partition is not None:
        kwargs["partition"] = partition
    if headers:
        kwargs["headers"] = headers
    while True:
        try:
            producer.produce(topic, **kwargs)
            return
        except BufferError:
            producer.poll(0.1)

"""Topic creation on the real embedded broker: partitions and configs set, then verified."""

from __future__ import annotations

import pytest
from confluent_kafka.cimpl import NewTopic

from eventpipe.kafka.clients import make_admin
from eventpipe.kafka.errors import KafkaSetupError
from eventpipe.kafka.topics import (
    Topics,
    describe_topic_configs,
    ensure_topics,
    topic_specs,
)
from eventpipe.settings import Settings

# On the embedded broker and on Apache Kafka (tests/conftest.py).
pytestmark = pytest.mark.both_brokers


def test_topics_are_created_with_their_configs(settings: Settings) -> None:
    settings = settings.model_copy(update={"max_message_bytes": 2_000_000,
                                           "work_retention_ms": 3_600_000})
    admin = make_admin(settings)
    specs = ensure_topics(admin, settings)
    t = Topics.from_settings(settings)
    actual = describe_topic_configs(admin, [s.name for s in specs])
    assert actual[t.docs]["max.message.bytes"] == str(2_000_000 + 65536)
    assert actual[t.docs]["retention.ms"] == "3600000"
    assert actual[t.docs]["cleanup.policy"] == "delete"
    assert actual[t.docs]["min.insync.replicas"] == "1"  # replication factor 1
    assert actual[t.failed]["retention.ms"] == str(settings.failed_retention_ms)
    assert actual[t.control]["cleanup.policy"] == "compact"
    assert actual[t.checkpoints]["cleanup.policy"] == "compact"
    # Verifying again changes nothing and passes.
    assert ensure_topics(admin, settings) == specs


def test_an_existing_topic_with_other_configs_fails_until_altered(settings: Settings) -> None:
    admin = make_admin(settings)
    t = Topics.from_settings(settings)
    [future] = admin.create_topics([NewTopic(
        t.docs, settings.work_partitions, 1,
        config={"retention.ms": "1000", "max.message.bytes": "1048588"})]).values()
    future.result()
    with pytest.raises(KafkaSetupError) as caught:
        ensure_topics(admin, settings)
    message = str(caught.value)
    assert f"{t.docs} max.message.bytes=1048588 (expected {settings.max_message_bytes + 65536})" \
        in message
    assert f"{t.docs} retention.ms=1000" in message and "--alter-configs" in message
    ensure_topics(admin, settings, alter=True)
    assert describe_topic_configs(admin, [t.docs])[t.docs]["retention.ms"] == str(
        settings.work_retention_ms)


def test_min_insync_replicas_follows_the_replication_factor(settings: Settings) -> None:
    def insync(**update: int | None) -> set[str]:
        specs = topic_specs(settings.model_copy(update=update))
        return {s.config["min.insync.replicas"] for s in specs}

    assert insync(replication_factor=1) == {"1"}
    assert insync(replication_factor=3) == {"2"}
    assert insync(replication_factor=5, min_insync_replicas=3) == {"3"}
    with pytest.raises(KafkaSetupError, match="more than replication_factor"):
        insync(replication_factor=2, min_insync_replicas=3)

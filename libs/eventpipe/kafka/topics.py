"""Topic names (`<prefix>.<name>`), their partitions and configs, and their creation."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from eventpipe.kafka.errors import KafkaSetupError
from eventpipe.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


@dataclass(frozen=True)
class Topics:
    submissions: str
    docs: str
    ner: str
    dp: str
    events: str
    failed: str
    control: str
    checkpoints: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        p = settings.topic_prefix
        return cls(
            submissions=f"{p}.submissions",
            docs=f"{p}.docs",
            ner=f"{p}.ner",
            dp=f"{p}.dp",
            events=f"{p}.events",
            failed=f"{p}.failed",
            control=f"{p}.control",
            checkpoints=f"{p}.checkpoints",
        )


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t = Topics.from_settings(settings)
    work = settings.work_partitions
    return [
        TopicSpec(t.submissions, work),
        TopicSpec(t.docs, work),
        TopicSpec(t.ner, work),
        TopicSpec(t.dp, work),
        TopicSpec(t.events, work),
        TopicSpec(t.failed, work),
        TopicSpec(t.control, settings.control_partitions, compacted=True),
        TopicSpec(t.checkpoints, settings.checkpoint_partitions, compacted=True),
    ]


def ensure_topics(admin: AdminClient, settings: Settings, timeout_s: float = 30.0) -> None:
    """Create missing topics with their partitions and configs, then verify every one exists
    with the expected partition count. Brokers that auto-create topics would otherwise make
    them with their own defaults on the first metadata request."""
    specs = topic_specs(settings)
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [s for s in specs if s.name not in existing]
    if missing:
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=settings.replication_factor,
                config={"cleanup.policy": "compact"} if s.compacted else {},
            )
            for s in missing
        ]
        for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
            try:
                future.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise KafkaSetupError(f"cannot create topic {name}: {exc}") from exc
    deadline = time.monotonic() + timeout_s
    while True:
        meta = admin.list_topics(timeout=timeout_s).topics
        wrong = [
            f"{s.name} (has {len(meta[s.name].partitions) if s.name in meta else 'no'} "
            f"partitions, expected {s.partitions})"
            for s in specs
            if s.name not in meta or len(meta[s.name].partitions) != s.partitions
        ]
        if not wrong:
            return
        if time.monotonic() > deadline:
            raise KafkaSetupError("topics not as configured: " + ", ".join(wrong))
        time.sleep(0.2)

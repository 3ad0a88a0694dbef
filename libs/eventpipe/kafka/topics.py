"""Topic names (`<prefix>.<name>`), their partitions and configs, and their creation.

Every topic is created with the configs a platform team would otherwise leave to the broker's
defaults (a stock broker accepts 1 MiB messages and lets a write succeed on one replica), and
`ensure_topics` verifies them on topics that already exist: partitions AND configs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaException

# Re-exported by confluent_kafka.admin without __all__, which mypy's strict mode requires.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)
from confluent_kafka.cimpl import NewTopic

from eventpipe.kafka.errors import KafkaSetupError
from eventpipe.settings import Settings

# Room for the record batch around the largest message (the producers allow the same).
BATCH_OVERHEAD_BYTES = 65536


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    # Topic-level configs set at creation and verified afterwards (strings, as Kafka has them).
    config: Mapping[str, str] = field(default_factory=dict)

    @property
    def compacted(self) -> bool:
        return "compact" in self.config.get("cleanup.policy", "")


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
    retry_ner: str
    retry_dp: str
    retry_llm: str

    def retry(self, stage: str) -> str:
        """Where a stage's documents wait out a transient failure (one topic per stage, so
        each stage's scheduler reads only its own)."""
        return {"ner": self.retry_ner, "dp": self.retry_dp, "llm": self.retry_llm}[stage]

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
            retry_ner=f"{p}.retry.ner",
            retry_dp=f"{p}.retry.dp",
            retry_llm=f"{p}.retry.llm",
        )


def min_insync_replicas(settings: Settings) -> int:
    """The setting, or one replica fewer than the topic has (at least 1, at most 2): with
    acks=all a write then survives one broker down and fails rather than live on one copy."""
    if settings.min_insync_replicas is not None:
        return settings.min_insync_replicas
    return min(2, max(1, settings.replication_factor - 1))


def topic_specs(settings: Settings) -> list[TopicSpec]:
    insync = min_insync_replicas(settings)
    if insync > settings.replication_factor:
        raise KafkaSetupError(
            f"min_insync_replicas ({insync}) is more than replication_factor "
            f"({settings.replication_factor}): every write with acks=all would fail"
        )
    t = Topics.from_settings(settings)
    common = {
        "max.message.bytes": str(settings.max_message_bytes + BATCH_OVERHEAD_BYTES),
        "min.insync.replicas": str(insync),
    }
    work = common | {"cleanup.policy": "delete",
                     "retention.ms": str(settings.work_retention_ms)}
    failed = work | {"retention.ms": str(settings.failed_retention_ms)}
    # Read whole by every service: the latest record per key is the state, kept forever.
    compacted = common | {"cleanup.policy": "compact"}
    n = settings.work_partitions
    return [
        TopicSpec(t.submissions, n, work),
        TopicSpec(t.docs, n, work),
        TopicSpec(t.ner, n, work),
        TopicSpec(t.dp, n, work),
        TopicSpec(t.events, n, work),
        TopicSpec(t.failed, n, failed),
        TopicSpec(t.retry_ner, n, work),
        TopicSpec(t.retry_dp, n, work),
        TopicSpec(t.retry_llm, n, work),
        TopicSpec(t.control, settings.control_partitions, compacted),
        TopicSpec(t.checkpoints, settings.checkpoint_partitions, compacted),
    ]


def describe_topic_configs(
    admin: AdminClient, names: Sequence[str], timeout_s: float = 30.0
) -> dict[str, dict[str, str]]:
    """The current configs of the named topics (value strings; None values left out)."""
    futures = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names],
        request_timeout=timeout_s,
    )
    out: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        entries = future.result(timeout=timeout_s)
        out[resource.name] = {k: e.value for k, e in entries.items() if e.value is not None}
    return out


def config_differences(
    specs: Sequence[TopicSpec], actual: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """One line per config that is not what the spec says."""
    wrong = []
    for spec in specs:
        have = actual.get(spec.name, {})
        for key, want in sorted(spec.config.items()):
            if have.get(key) != want:
                wrong.append(f"{spec.name} {key}={have.get(key)} (expected {want})")
    return wrong


def alter_topic_configs(
    admin: AdminClient, specs: Sequence[TopicSpec], timeout_s: float = 30.0
) -> None:
    """Set each spec's configs on its existing topic (others the topic has are kept)."""
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC, s.name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in sorted(s.config.items())
            ],
        )
        for s in specs if s.config
    ]
    if not resources:
        return
    for resource, future in admin.incremental_alter_configs(
            resources, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaSetupError(f"cannot set configs of topic {resource.name}: {exc}") from exc


def ensure_topics(
    admin: AdminClient,
    settings: Settings,
    timeout_s: float = 30.0,
    *,
    specs: Sequence[TopicSpec] | None = None,
    alter: bool = False,
) -> list[TopicSpec]:
    """Create missing topics with their partitions and configs, then verify every one exists
    with the expected partition count and configs. Brokers that auto-create topics would
    otherwise make them with their own defaults on the first metadata request. Existing
    topics whose configs differ fail with every difference named, unless `alter` sets them
    (partitions are never changed: keys would move to other partitions). `specs` defaults
    to `topic_specs(settings)`; returns the specs ensured."""
    specs = list(specs) if specs is not None else topic_specs(settings)
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [s for s in specs if s.name not in existing]
    if missing:
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=settings.replication_factor,
                config=dict(s.config),
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
        # Apache Kafka lists a new topic before its partitions have leaders; a client
        # reaching it then gets NOT_LEADER_FOR_PARTITION. Ready means every one is led.
        wrong += [
            f"{s.name} (partition {p.id} has no leader yet)"
            for s in specs if s.name in meta
            for p in meta[s.name].partitions.values() if p.leader < 0 or p.error is not None
        ]
        if not wrong:
            break
        if time.monotonic() > deadline:
            raise KafkaSetupError("topics not as configured: " + ", ".join(wrong))
        time.sleep(0.2)
    _verify_configs(admin, specs, timeout_s, alter)
    return specs


def _verify_configs(
    admin: AdminClient, specs: Sequence[TopicSpec], timeout_s: float, alter: bool
) -> None:
    try:
        wrong = config_differences(specs, describe_topic_configs(
            admin, [s.name for s in specs], timeout_s))
        if wrong and alter:
            alter_topic_configs(admin, specs, timeout_s)
            # Apache Kafka applies an alteration through its metadata log: a describe right
            # after it can still answer the old values for a moment.
            deadline = time.monotonic() + timeout_s
            while True:
                wrong = config_differences(specs, describe_topic_configs(
                    admin, [s.name for s in specs], timeout_s))
                if not wrong or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
    except KafkaException as exc:
        raise KafkaSetupError(f"cannot read the topics' configs: {exc}") from exc
    if wrong:
        raise KafkaSetupError(
            "topic configs not as configured (`eventpipe topics create --alter-configs` sets "
            "them): " + ", ".join(wrong)
        )

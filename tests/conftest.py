"""Shared fixtures: one real broker per kind per test session, a fresh topic prefix (and so
fresh topics and consumer groups) per test, and the stack's services as real processes.

The broker is parametrized: tests in modules marked `both_brokers` run on the embedded
broker and on a local Apache Kafka (`make kafka`), those marked `kafka_only` (what only a
real Kafka does: compaction, data on disk) on Apache Kafka; the others on the embedded one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventpipe.kafka.broker import EmbeddedBroker
from eventpipe.kafka.local_kafka import LocalKafka
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from helpers import kafka_libs_or_skip

# PostgreSQL and Elasticsearch-API servers for the storage tests.
pytest_plugins = ["fixtures_pg", "fixtures_es"]


BROKERS = ("embedded", "kafka")
# Group timeouts per broker: Apache Kafka refuses sessions below 6000 ms by default.
GROUP_TIMEOUTS = {"embedded": (2000, 500), "kafka": (6000, 2000)}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker
        kinds = (BROKERS if marked("both_brokers") else
                 BROKERS[1:] if marked("kafka_only") else BROKERS[:1])
        metafunc.parametrize("broker", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedBroker | LocalKafka]:
    kind = request.param
    home = tmp_path_factory.mktemp(f"broker-{kind}")
    if kind == "kafka":
        kafka_libs_or_skip()
        with LocalKafka(home, log_path=home / "broker.log") as kafka:
            yield kafka
    else:
        with EmbeddedBroker(log_path=home / "broker.log") as embedded:
            yield embedded


@pytest.fixture
def broker_kind(broker: EmbeddedBroker | LocalKafka) -> str:
    return "kafka" if isinstance(broker, LocalKafka) else "embedded"


@pytest.fixture
def settings(broker: EmbeddedBroker | LocalKafka, broker_kind: str, tmp_path: Path) -> Settings:
    session_ms, heartbeat_ms = GROUP_TIMEOUTS[broker_kind]
    return Settings(
        kafka_bootstrap=broker.bootstrap,
        broker=broker_kind,  # what a test that starts its own broker starts
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path / "data",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=heartbeat_ms,
        checkpoint_flush_interval_s=0.2,
    )


@pytest.fixture
def stack(settings: Settings) -> Iterator[Stack]:
    s = Stack(settings)
    s.start()
    yield s
    s.stop()

"""Shared fixtures: one real embedded broker per test session, a fresh topic prefix (and so
fresh topics and consumer groups) per test, and the stack's services as real processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventpipe.kafka.broker import EmbeddedBroker
from eventpipe.settings import Settings
from eventpipe.stack import Stack

# PostgreSQL and Elasticsearch-API servers for the storage tests.
pytest_plugins = ["fixtures_pg", "fixtures_es"]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return Settings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path / "data",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        checkpoint_flush_interval_s=0.2,
    )


@pytest.fixture
def stack(settings: Settings) -> Iterator[Stack]:
    s = Stack(settings)
    s.start()
    yield s
    s.stop()

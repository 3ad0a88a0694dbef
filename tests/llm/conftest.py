"""Fixtures of the language-model backend tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from llm_helpers import Answer, FakeModelServer, build_tiny_model

# The response cache is tested on its own (test_llm_cache.py); elsewhere one test's answers
# must not serve another's, and Settings() without a data_dir would cache into ./data.
os.environ.setdefault("EVENTPIPE_LLM_CACHE", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("xgrammar")
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeModelServer]]:
    """Starts fake model servers for a test and stops them after it."""
    started: list[FakeModelServer] = []

    def start(answer: Answer, delay_s: float = 0.0, port: int = 0) -> FakeModelServer:
        server = FakeModelServer(answer, delay_s, port).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()

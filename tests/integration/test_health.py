"""Every service's /healthz, /readyz and /metrics while it runs on the embedded broker; the
metrics count the documents of a small batch exactly."""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventpipe.jobs import submit
from eventpipe.settings import Settings
from eventpipe.stack import SERVICES, Stack
from helpers import corpus_lines, wait_checkpoint, write_jsonl


def free_port_block(n: int) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65535 and all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no block of free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"{name}{labels} not in metrics"
    return float(found[1])


@pytest.fixture
def health_stack(settings: Settings) -> Iterator[Stack]:
    stack = Stack(settings.model_copy(update={"health_port": free_port_block(10)}))
    stack.start()
    yield stack
    stack.stop()


def test_health_and_metrics_of_every_service(health_stack: Stack, tmp_path: Path) -> None:
    ports = {name: p.health_port for name, p in health_stack.procs.items()}
    assert len(set(ports.values())) == len(ports) == len(SERVICES)
    for name, port in ports.items():
        assert port is not None
        assert get(port, "/healthz") == (200, "ok\n"), name
        assert get(port, "/readyz")[0] == 200, name
        assert get(port, "/nope")[0] == 404

    lines = [*corpus_lines(20, seed=51), "{broken", '{"id": "x"}']
    job_id = submit(health_stack.settings, write_jsonl(tmp_path / "h.jsonl", lines), "health"
                    ).job_id
    cp = wait_checkpoint(health_stack.settings, job_id, lambda c: c["status"] == "COMPLETED")
    assert cp["processed_documents"] == 20

    def text(name: str) -> str:
        port = ports[name]
        assert port is not None
        return get(port, "/metrics")[1]

    processed = "eventpipe_documents_processed_total"
    assert metric(text("ingest"), processed, '{stage="ingest"}') == 20
    assert metric(text("ingest"), "eventpipe_documents_failed_total", '{stage="ingest"}') == 2
    for stage in ("ner", "dp", "llm", "sink"):
        assert metric(text(stage), processed, f'{{stage="{stage}"}}') == 20, stage
    assert metric(text("dp"), "eventpipe_stage_document_seconds_count", '{stage="dp"}') == 20
    assert metric(text("sink"), "eventpipe_backend_save_seconds_count",
                  '{backend="jsonl"}') >= 1
    assert metric(text("checkpoint"), "eventpipe_checkpoint_write_seconds_count") >= 1
    deadline = time.monotonic() + 15
    while "eventpipe_consumer_lag{" not in text("ner"):  # measured every few seconds
        assert time.monotonic() < deadline, "no consumer lag in the metrics"
        time.sleep(0.5)

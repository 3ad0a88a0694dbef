"""Each language-model backend through the events stage on the real broker, every service a
real process: `openai` against a local chat-completions server, `transformers` with a tiny
random model (valid JSON every time thanks to constrained decoding)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm_helpers import ANSWER, FakeModelServer

from eventpipe.jobs import submit
from eventpipe.models import job_id_for
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import results_path
from helpers import corpus_lines, read_results, wait_checkpoint, write_jsonl


def run_batch(settings: Settings, lines: list[str], batch: str, tmp: Path
              ) -> dict[str, dict[str, Any]]:
    stack = Stack(settings)
    stack.start()
    try:
        submit(stack.settings, write_jsonl(tmp / f"{batch}.jsonl", lines), batch)
        cp = wait_checkpoint(stack.settings, job_id_for(batch),
                             lambda c: c["status"] in ("COMPLETED", "FAILED"), timeout_s=240)
        assert cp["status"] == "COMPLETED" and cp["failed_documents"] == 0
        return {r["id"]: r for r in read_results(results_path(stack.settings.data_dir, batch))}
    finally:
        stack.stop()


def test_openai_backend_through_the_broker(
    settings: Settings, fake_server: Callable[..., FakeModelServer], tmp_path: Path
) -> None:
    def answer(body: dict[str, Any]) -> str:
        prompt = json.dumps(body["messages"])
        return "this is not JSON" if "FALLBACK" in prompt else ANSWER

    server = fake_server(answer)
    lines = [*corpus_lines(6, seed=71),
             json.dumps({"id": "fallback", "text": "FALLBACK: Police arrested a man in Lyon."})]
    results = run_batch(settings.model_copy(update={
        "llm_backend": "openai", "llm_base_url": server.url, "llm_model": "fake-model",
        "llm_prompt": "open"}),
        lines, "openai_stage", tmp_path)
    assert len(results) == 7
    for doc_id, r in results.items():
        if doc_id == "fallback":
            assert r["events_backend"] == "rules"
            assert r["events_fallback"].startswith("openai")
        else:
            assert r["events_backend"] == "openai" and r["events_fallback"] is None
            assert r["events"][0]["type"] == "justice" and r["events"][0]["source"] == "openai"
    assert len(server.requests) >= 7 + 1  # the invalid answer was retried once


def test_transformers_backend_through_the_broker(
    settings: Settings, tiny_model: Path, tmp_path: Path
) -> None:
    results = run_batch(settings.model_copy(update={
        "llm_backend": "transformers", "llm_model": str(tiny_model), "llm_batch_size": 4,
        "llm_max_new_tokens": 1024}), corpus_lines(4, seed=72), "tiny_stage", tmp_path)
    assert len(results) == 4
    for r in results.values():
        assert r["events_backend"] == "transformers", r["events_fallback"]
        assert all(e["source"] == "transformers" for e in r["events"])

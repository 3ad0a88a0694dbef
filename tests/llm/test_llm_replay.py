"""Failures you can work with, end to end on the real broker with every service a real process:
the events stage's model server is down, the documents fail after the retry budget,
`eventpipe failures list` shows them, the input file goes away, the server comes up,
`eventpipe failures replay` sends the stored payloads again, and the job completes with every
document exactly once. And an outage shorter than the budget leaves no failure at all."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llm_helpers
from llm_helpers import ANSWER, FakeModelServer, closed_port

from eventpipe.jobs import submit
from eventpipe.models import job_id_for
from eventpipe.settings import Settings
from eventpipe.stack import Stack
from eventpipe.storage.jsonl import failures_path, results_path
from helpers import corpus_lines, read_results, wait_checkpoint, write_jsonl
from support.processes import kill_service


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return llm_helpers.cli(settings, *args, timeout=120)


def openai_settings(settings: Settings, port: int, **more: Any) -> Settings:
    return settings.model_copy(update={
        "llm_backend": "openai", "llm_base_url": f"http://127.0.0.1:{port}/v1",
        "llm_model": "fake-model", "llm_max_retries": 1, "llm_prompt": "open", **more})


def test_server_down_then_replay_without_the_input_file(
    settings: Settings, fake_server: Callable[..., FakeModelServer], tmp_path: Path
) -> None:
    port = closed_port()
    settings = openai_settings(settings, port, retry_max_attempts=2, retry_max_seconds=20,
                               retry_backoff_s=0.5)
    batch = "replay_batch"
    job_id = job_id_for(batch)
    lines = [*corpus_lines(6, seed=81), "this line is not JSON"]
    stack = Stack(settings)
    stack.start()
    try:
        path = write_jsonl(tmp_path / "in.jsonl", lines)
        submit(stack.settings, path, batch)
        cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] == "COMPLETED",
                             timeout_s=180)
        assert (cp["processed_documents"], cp["failed_documents"]) == (0, 7)
        llm_failed = sorted(d for d, f in cp["failures"].items() if f["stage"] == "llm")
        assert len(llm_failed) == 6
        for doc_id in llm_failed:
            failure = cp["failures"][doc_id]
            assert (failure["class"], failure["attempts"]) == ("transient", 2), failure
            assert "no answer from" in failure["error"]

        listed = cli(stack.settings, "failures", "list", batch, "--json")
        assert listed.returncode == 0, listed.stderr
        report = json.loads(listed.stdout)
        assert report["failed"] == 7
        assert report["by_stage"] == {"llm": 6, "ingest": 1}
        rows = {r["doc_id"]: r for r in report["failures"]}
        assert all(rows[d]["unreplayable"] is None for d in llm_failed)
        assert rows["line-7"]["unreplayable"].startswith("no payload to send")
        text = cli(stack.settings, "failures", "list", batch, "--stage", "llm")
        assert all(d in text.stdout for d in llm_failed) and "line-7" not in text.stdout
        shown = json.loads(cli(stack.settings, "failures", "show", batch,
                               llm_failed[0]).stdout)
        assert shown["payload"]["doc_id"] == llm_failed[0] and shown["payload"]["sentences"]
        assert failures_path(stack.settings.data_dir, batch).exists()

        path.unlink()  # nothing left to resubmit from
        server = fake_server(lambda body: ANSWER, port=port)
        replay = cli(stack.settings, "failures", "replay", batch)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "replaying 6 document(s)" in replay.stdout
        assert "not replayed: line-7 (ingest): no payload to send" in replay.stdout
        assert f"job {job_id}: RUNNING" in replay.stdout or "COMPLETED" in replay.stdout

        cp = wait_checkpoint(stack.settings, job_id,
                             lambda c: c["status"] == "COMPLETED"
                             and c["processed_documents"] == 6, timeout_s=120)
        assert cp["failed_doc_ids"] == ["line-7"]
        assert sorted(cp["processed_doc_ids"]) == llm_failed
        results = read_results(results_path(stack.settings.data_dir, batch))
        assert sorted(r["id"] for r in results) == llm_failed  # each exactly once
        assert all(r["events_backend"] == "openai" for r in results)
        assert len(server.requests) == 6
        stats = json.loads((stack.settings.data_dir / f"batch_stats_{batch}.json").read_text())
        assert stats["documents"] == {"total": 7, "processed": 6, "failed": 1}

        again = cli(stack.settings, "failures", "replay", batch, "--stage", "llm")
        assert again.returncode == 0 and "nothing to replay" in again.stdout
    finally:
        stack.stop()


def test_an_outage_shorter_than_the_budget_leaves_no_failure(
    settings: Settings, fake_server: Callable[..., FakeModelServer], tmp_path: Path
) -> None:
    port = closed_port()
    settings = openai_settings(settings, port, retry_max_attempts=10, retry_max_seconds=120,
                               retry_backoff_s=0.5, retry_max_backoff_s=2)
    batch = "short_outage"
    stack = Stack(settings)
    stack.start()
    try:
        came_up = threading.Event()

        def bring_up_after_first_retry() -> None:
            log = stack.settings.data_dir / "logs" / "llm.log"
            deadline = time.monotonic() + 120
            while "transient failure; retrying later" not in (
                    log.read_text() if log.exists() else ""):
                if time.monotonic() > deadline:
                    return  # the test fails on came_up
                came_up.wait(0.1)
            fake_server(lambda body: ANSWER, port=port)
            came_up.set()

        submit(stack.settings, write_jsonl(tmp_path / "in.jsonl", corpus_lines(5, seed=82)),
               batch)
        starter = threading.Thread(target=bring_up_after_first_retry, daemon=True)
        starter.start()
        cp = wait_checkpoint(stack.settings, job_id_for(batch),
                             lambda c: c["status"] == "COMPLETED", timeout_s=180)
        assert came_up.is_set()
        assert (cp["processed_documents"], cp["failed_documents"]) == (5, 0)
        results = read_results(results_path(stack.settings.data_dir, batch))
        assert len(results) == 5 and all(r["events_backend"] == "openai" for r in results)
    finally:
        stack.stop()


# The replay follows the failures within seconds: the llm service must ask the server again
# at once, not fail the replayed documents on what it learned of the outage before.
def test_services_killed_during_a_replay_lose_and_duplicate_nothing(
    settings: Settings, fake_server: Callable[..., FakeModelServer], tmp_path: Path
) -> None:
    port = closed_port()
    settings = openai_settings(settings, port, retry_max_attempts=1, stage_batch_size=4)
    batch = "replay_kill"
    job_id = job_id_for(batch)
    stack = Stack(settings)
    stack.start()
    try:
        path = write_jsonl(tmp_path / "in.jsonl", corpus_lines(12, seed=83))
        submit(stack.settings, path, batch)
        cp = wait_checkpoint(stack.settings, job_id, lambda c: c["status"] == "COMPLETED",
                             timeout_s=180)
        assert cp["failed_documents"] == 12
        path.unlink()
        fake_server(lambda body: ANSWER, port=port, delay_s=0.2)
        replay = cli(stack.settings, "failures", "replay", job_id)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        for name in ("llm", "sink", "checkpoint", "linker"):
            kill_service(stack, name, signal.SIGKILL)
        cp = wait_checkpoint(stack.settings, job_id,
                             lambda c: c["status"] == "COMPLETED"
                             and c["processed_documents"] == 12, timeout_s=240, stack=stack)
        assert cp["failed_documents"] == 0
        ids = [r["id"] for r in read_results(results_path(stack.settings.data_dir, batch))]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == 12
    finally:
        stack.stop()
